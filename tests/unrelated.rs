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

/// The environment variable that turns this test binary into the lock holder of
/// `a_killed_execd_holder_of_a_named_lock_is_recovered_with_poison`: the segment's name.
const HOLDER_ENV: &str = "SHARED_RUNTIME_TEST_HOLD_LOCK";

/// Not a test of its own: run as a separate program (this binary, `exec`'d with
/// `HOLDER_ENV` set), it opens the segment and the named lock by name, takes the lock, says
/// so through a named counter, and sleeps holding it until it is killed.
#[test]
fn holder_program() {
    let Ok(name) = std::env::var(HOLDER_ENV) else {
        return; // an ordinary run of the suite
    };
    let arena = Arena::open_segment(&name).unwrap();
    let lock = arena.open::<shared_runtime::Lock>("big-lock").unwrap();
    let holding = arena.open::<RawValue<u64>>("holding").unwrap();
    let guard = lock.lock().unwrap();
    holding.store(u64::from(std::process::id()), SeqCst);
    std::thread::sleep(common::PATIENCE);
    drop(guard);
    panic!("the holder was not killed");
}

/// A program that did not fork from this one opens a named lock by name, takes it and is
/// killed with SIGKILL: this process, which opened the same lock by name, recovers it with
/// poison naming the dead program, and the lock works afterwards.
#[test]
fn a_killed_execd_holder_of_a_named_lock_is_recovered_with_poison() {
    let name = common::unique("execd-holder");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    arena
        .create::<shared_runtime::Lock>("big-lock", ())
        .unwrap();
    let holding = arena.create::<RawValue<u64>>("holding", 0).unwrap();
    let lock = arena.open::<shared_runtime::Lock>("big-lock").unwrap();
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "holder_program",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, &name)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = holder.id() as i32;
    let took = common::wait_until(|| holding.load(SeqCst) != 0);
    if !took {
        let _ = holder.kill();
        let _ = holder.wait();
        panic!("the exec'd holder never took the lock");
    }
    assert_eq!(
        holding.load(SeqCst),
        pid as u64,
        "the holder is the exec'd program"
    );
    assert!(
        matches!(lock.try_lock(), Err(std::sync::TryLockError::WouldBlock)),
        "held by the other program"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let err = lock
        .try_lock_for(common::PATIENCE)
        .expect_err("a dead holder's lock comes back poisoned");
    let std::sync::TryLockError::Poisoned(poisoned) = err else {
        panic!(
            "the dead holder's lock was not recovered within {:?}",
            common::PATIENCE
        );
    };
    drop(poisoned.into_inner());
    let poison = lock.poison().expect("the lock says it is poisoned");
    assert_eq!(poison.pid, Some(pid), "the poison names the killed program");
    lock.clear_poison();
    assert!(lock.try_lock().is_ok(), "the lock works afterwards");
}
