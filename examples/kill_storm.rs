//! The kill storm at full size, printing its figures: four forked workers doing locked
//! `Value`/`Array` updates and allocations in the global and a named arena, one of them
//! `SIGKILL`ed and replaced every 20–150 ms, 500 times; then every ledger is checked against
//! the acknowledged commits, both arenas with `Arena::check()`, and `reclaim_dead()`
//! against what the dead held. The storm is `tests/common/storm.rs`, which
//! `tests/kill_storm.rs` runs at a smaller size.
//!
//! ```text
//! cargo run --example kill_storm              # 500 kills
//! cargo run --example kill_storm -- 2000      # any number of kills
//! KILL_STORM_SEED=123 cargo run --example kill_storm   # replay a run's random choices
//! ```

#[path = "../tests/common/storm.rs"]
mod storm;

fn main() {
    let kills = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .unwrap_or_else(|_| panic!("the number of kills, not {arg:?}")),
        None => 500,
    };
    let report = storm::run(&storm::Config::new(kills));
    println!("{report}");
}
