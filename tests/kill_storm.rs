//! A kill storm over locked updates and allocations in the global and a named arena.
//!
//! Four forked workers commit journaled updates to a `Value` under a `Lock`, an `Array`
//! under a `Lock` (in a named arena) and a `Value` under an `RLock` taken re-entrantly,
//! and allocate and free objects in both arenas, while a random one is `SIGKILL`ed and
//! replaced every 20–150 ms. Afterwards every ledger equals the sum of its acknowledged
//! commits, `Arena::check()` holds, `reclaim_dead()` has freed exactly what the dead held,
//! and no acquisition waited a second. The storm itself is in `common/storm.rs`, shared
//! with `examples/kill_storm.rs`; `KILL_STORM_SEED` replays a run's random choices.

mod common;
#[path = "common/storm.rs"]
mod storm;

use common::forking;

/// Kills at the size `cargo test` runs (a few seconds).
const QUICK_KILLS: u64 = 60;
/// Kills at full size.
const FULL_KILLS: u64 = 500;

#[test]
fn kill_storm() {
    let _serial = forking();
    let report = storm::run(&storm::Config::new(QUICK_KILLS));
    assert_eq!(report.kills, QUICK_KILLS);
    println!("{report}");
}

#[test]
#[ignore = "full size, about a minute: cargo test --test kill_storm -- --ignored --nocapture"]
fn kill_storm_full_size() {
    let _serial = forking();
    let report = storm::run(&storm::Config::new(FULL_KILLS));
    assert!(report.kills >= 500);
    println!("{report}");
}
