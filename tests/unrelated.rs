//! Unrelated processes: copies of `examples/counter.rs`, each `exec`'d from here (none
//! forked from another), open one named arena by name and count together, under a named
//! `Value`'s lock and with `fetch_add` on a named `RawValue`. Both totals must be exact.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use shared_runtime::{Arena, Error, RawValue, Value};

const COPIES: u64 = 4;

/// Starts `COPIES` copies of the counter example with `args`.
fn start_copies(args: &[&str]) -> Vec<Child> {
    (0..COPIES)
        .map(|_| {
            Command::new(common::example("counter"))
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot start the counter example")
        })
        .collect()
}

/// Waits for every child, at most `common::PATIENCE` in all; on a timeout kills them all
/// and fails.
fn wait_all(mut children: Vec<Child>) -> Vec<Output> {
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        let mut running = 0;
        for c in &mut children {
            if c.try_wait().unwrap().is_none() {
                running += 1;
            }
        }
        if running == 0 {
            break;
        }
        if Instant::now() > deadline {
            for c in &mut children {
                let _ = c.kill();
                let _ = c.wait();
            }
            panic!(
                "{running} counter copies still ran after {:?}; killed",
                common::PATIENCE
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "a copy failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    outputs
}

#[test]
fn execd_copies_count_exactly_in_an_arena_this_test_holds() {
    let name = common::unique("counter");
    // This process creates the segment (and so keeps its name until it is done): the
    // copies only open it and none of them waits for the others.
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let iters = 100_000;
    let outputs = wait_all(start_copies(&[
        &name,
        "--procs",
        &COPIES.to_string(),
        "--iters",
        &iters.to_string(),
    ]));
    for out in &outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("did {iters} increments of each")),
            "{stdout}"
        );
        assert!(
            !stdout.contains("expected"),
            "a copy took itself for the creator: {stdout}"
        );
    }
    let expected = COPIES * iters;
    let hits: Value<u64> = arena.open("hits").unwrap();
    let atomic: RawValue<u64> = arena.open("atomic-hits").unwrap();
    let joined: RawValue<u64> = arena.open("joined").unwrap();
    assert_eq!(hits.get(), expected, "locked increments were lost");
    assert_eq!(atomic.load(SeqCst), expected, "atomic increments were lost");
    assert_eq!(joined.load(SeqCst), COPIES);
    // Every copy closed its open records when it exited: only this process's remain.
    for info in arena.objects().unwrap() {
        let mine = u64::from(matches!(
            info.name.as_str(),
            "hits" | "atomic-hits" | "joined"
        ));
        assert_eq!(info.open_count, mine, "{}: {info:?}", info.name);
    }
}

#[test]
fn copies_find_or_create_the_segment_and_the_creator_removes_it() {
    let name = common::unique("counter-own");
    let iters = 20_000;
    let outputs = wait_all(start_copies(&[
        &name,
        "--procs",
        &COPIES.to_string(),
        "--iters",
        &iters.to_string(),
    ]));
    let expected = COPIES * iters;
    let reports: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .filter(|s| s.contains("expected"))
        .collect();
    assert_eq!(reports.len(), 1, "exactly one copy creates and reports");
    let report = &reports[0];
    assert!(
        report.contains(&format!(
            "locked Value<u64> \"hits\": expected {expected}, actual {expected}"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "atomic RawValue<u64> \"atomic-hits\": expected {expected}, actual {expected}"
        )),
        "{report}"
    );
    // The creator outlived the others and removed the name when it ended.
    assert!(matches!(
        Arena::open_segment(&name),
        Err(Error::NotFound { .. })
    ));
}
