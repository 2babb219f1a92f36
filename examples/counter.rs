//! Unrelated programs counting together: run this binary several times from a shell (not
//! forked from each other). Every copy opens the named arena `NAME` (default
//! `counter-demo`), then increments one named `Value<u64>` under its lock and one named
//! `RawValue<u64>` with an atomic `fetch_add`, `--iters` times each.
//!
//! ```text
//! cargo build --example counter
//! for i in 1 2 3 4; do target/debug/examples/counter --procs 4 --iters 100000 & done; wait
//! ```
//!
//! Who creates and who removes the segment: every copy finds or creates it
//! (`Arena::open_segment`, else `Arena::create_segment`; of copies racing, exactly one
//! creates). The segment's name goes when its creator drops it, so the creator stays until
//! all `--procs` copies have said they are done (a named counter, `done`), prints the
//! expected and actual totals, and only then exits, removing the name. The others print
//! their part and exit when they are done. A segment left behind by a creator that was
//! killed is removed first (only that segment, and only if its creator provably died), so a new run never counts on
//! top of an old one. If a program already holds the segment (it created it, as
//! `tests/unrelated.rs` does), every copy just opens it and none waits.

use std::process::ExitCode;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use shared_runtime::{Arena, Error, HolderStatus, RawValue, Value};

/// How long a copy waits for the others (the creator) or for the segment to appear.
const PATIENCE: Duration = Duration::from_secs(300);

struct Args {
    name: String,
    procs: u64,
    iters: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        name: "counter-demo".into(),
        procs: 4,
        iters: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{what} needs a number"))?;
            v.parse().map_err(|e| format!("{what} {v}: {e}"))
        };
        match arg.as_str() {
            "--procs" => args.procs = number("--procs")?.max(1),
            "--iters" => args.iters = number("--iters")?,
            "-h" | "--help" => {
                return Err("usage: counter [NAME] [--procs P] [--iters N]".into());
            }
            _ if !arg.starts_with('-') => args.name = arg,
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(args)
}

/// Opens the segment `name`, or creates it; whether this call created it.
fn find_or_create_segment(name: &str) -> Result<(Arena, bool), Error> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Arena::open_segment(name) {
            Ok(arena) => return Ok((arena, false)),
            Err(Error::NotFound { .. }) => match Arena::create_segment(name, 1 << 20) {
                Ok(arena) => return Ok((arena, true)),
                Err(Error::AlreadyExists { .. }) => {} // another copy won the race
                Err(e) => return Err(e),
            },
            // The creator has the name but has not written the header yet.
            Err(e @ Error::InvalidSegment { .. }) if Instant::now() > deadline => return Err(e),
            Err(Error::InvalidSegment { .. }) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e),
        }
    }
}

/// Removes the segment `name` if its creator provably died (a killed earlier run), so that a
/// new run never counts on top of it. Other programs' segments are left alone.
fn remove_if_abandoned(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    match Arena::segment_info(name) {
        Ok(info) if info.creator == HolderStatus::Dead => {
            Arena::remove_segment(name)?;
        }
        // Absent, alive, not provably dead, or not readable yet: leave it.
        _ => {}
    }
    Ok(())
}

fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    remove_if_abandoned(&args.name)?;
    let (arena, creator) = find_or_create_segment(&args.name)?;
    let hits = arena.find_or_create::<Value<u64>>("hits", 0)?.0;
    let atomic = arena.find_or_create::<RawValue<u64>>("atomic-hits", 0)?.0;
    let joined = arena.find_or_create::<RawValue<u64>>("joined", 0)?.0;
    let done = arena.find_or_create::<RawValue<u64>>("done", 0)?.0;

    let me = joined.fetch_add(1, SeqCst);
    if me >= args.procs {
        return Err(format!(
            "{} copies joined segment {:?}, more than --procs {}",
            me + 1,
            args.name,
            args.procs
        )
        .into());
    }
    for _ in 0..args.iters {
        hits.update(|n| *n += 1); // one lock acquisition per increment
        atomic.fetch_add(1, Relaxed); // no lock at all
    }
    done.fetch_add(1, Release);
    let pid = std::process::id();
    println!("pid {pid}: did {} increments of each", args.iters);
    if !creator {
        return Ok(true);
    }

    let deadline = Instant::now() + PATIENCE;
    while done.load(Acquire) < args.procs {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} copies finished within {PATIENCE:?}",
                done.load(Acquire),
                args.procs
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let expected = args.procs * args.iters;
    let (locked, atomic) = (hits.get(), atomic.load(Relaxed));
    println!("{} processes x {} increments", args.procs, args.iters);
    println!("locked Value<u64> \"hits\": expected {expected}, actual {locked}");
    println!("atomic RawValue<u64> \"atomic-hits\": expected {expected}, actual {atomic}");
    // Dropping `arena` (the creator's handle) removes the segment's name.
    Ok(locked == expected && atomic == expected)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("counter: {e}");
            ExitCode::FAILURE
        }
    }
}
