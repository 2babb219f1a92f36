//! The objects' lock releases with a plain store and wakes a sleeper only if the sleeper
//! count says one sleeps (the protocol is in `sys/counted_lock.rs`). These tests look for
//! lost wake-ups across processes, with the plain release (membarrier registered), with the
//! fenced one (a process that is not registered) and with membarrier refused altogether.
//!
//! How a lost wake-up is seen without a timing assertion: a sleeper whose wake-up is lost
//! sleeps its whole nap (up to `futex::POLL`, 50 ms) and the futex reports a timeout. The
//! test hook `lock_sleeps` counts, per process, the sleeps and those sleeps asked to last at
//! least half a `POLL` that ended by their timeout. Every critical section here is short
//! (the longest holds the lock 200 µs), so such a timeout means a lost wake-up, or a holder
//! descheduled for 25 ms or more by a loaded machine: the tests allow 1 in 100 sleeps for
//! the latter. A release that skips its wake-up, or a sleeper that is not counted, makes
//! nearly every sleep such a timeout and fails deterministically; the narrow race the
//! membarrier closes (a store still in the releaser's store buffer) shows only sometimes.
//! Every wait is bounded: children are joined with `common::finish`.

use std::time::{Duration, Instant};

use shared_runtime::test_hooks::{
    force_fenced_release, lock_sleeps, refuse_membarrier, releases_plain,
};
use shared_runtime::{Process, Value};

mod common;

const CHILDREN: u64 = 5;
const ROUNDS: u64 = 4000;
/// Every this many rounds a child holds the lock long enough for the others to sleep.
const LONG_EVERY: u64 = 40;
const LONG_HOLD: Duration = Duration::from_micros(200);

/// How a child sets itself up before the rounds.
#[derive(Clone, Copy)]
enum Mode {
    Registered,
    Fenced,
    Refused,
}

/// Runs the rounds in `CHILDREN` children, child `i` set up as `mode(i)`; the counter's
/// total and the summed (sleeps, long timeouts).
fn run(mode: impl Fn(u64) -> Mode) -> (u64, u64, u64) {
    let _f = common::forking();
    let counter = Value::new(0u64).unwrap();
    // The children start the rounds together (each waits at most PATIENCE for the others).
    let ready = Value::new(0u64).unwrap();
    let stats = Process::scope(|s| {
        let children: Vec<_> = (0..CHILDREN)
            .map(|i| {
                let (counter, ready, mode) = (&counter, &ready, mode(i));
                s.start(move || {
                    match mode {
                        Mode::Registered => {}
                        Mode::Fenced => force_fenced_release(),
                        Mode::Refused => refuse_membarrier(),
                    }
                    let plain = releases_plain();
                    ready.update(|r| *r += 1);
                    assert!(common::wait_until(|| ready.get() == CHILDREN));
                    for round in 0..ROUNDS {
                        counter.update(|x| {
                            *x += 1;
                            if round % LONG_EVERY == i {
                                let until = Instant::now() + LONG_HOLD;
                                while Instant::now() < until {
                                    std::hint::spin_loop();
                                }
                            }
                        });
                    }
                    let (sleeps, long) = lock_sleeps();
                    [sleeps, long, u64::from(plain)]
                })
                .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| common::finish(c).unwrap())
            .collect::<Vec<_>>()
    });
    for (i, [_, _, plain]) in stats.iter().enumerate() {
        let expect = matches!(mode(i as u64), Mode::Registered) && releases_plain();
        assert_eq!(*plain == 1, expect, "child {i}'s release path");
    }
    let sleeps = stats.iter().map(|s| s[0]).sum();
    let long = stats.iter().map(|s| s[1]).sum();
    eprintln!("{sleeps} sleeps, {long} ran into their timeout");
    (counter.get(), sleeps, long)
}

fn check((total, sleeps, long): (u64, u64, u64)) {
    assert_eq!(total, CHILDREN * ROUNDS, "an update was lost");
    // Without sleeps the test would prove nothing.
    assert!(
        sleeps > 0,
        "no waiter slept: the test did not exercise wake-ups"
    );
    assert!(
        long <= (sleeps / 100).max(2),
        "{long} of {sleeps} sleeps ran into their timeout: lost wake-ups"
    );
}

#[test]
fn plain_releases_lose_no_wake_up() {
    check(run(|_| Mode::Registered));
}

#[test]
fn fenced_and_plain_releases_mixed_lose_no_wake_up() {
    check(run(|i| {
        if i % 2 == 0 {
            Mode::Fenced
        } else {
            Mode::Registered
        }
    }));
}

#[test]
fn refused_membarrier_still_makes_progress() {
    // Refused waiters nap at most 1 ms (never counted as long), so only progress and the
    // bound on the registered children's sleeps are checked.
    check(run(|i| {
        if i < 2 {
            Mode::Refused
        } else {
            Mode::Registered
        }
    }));
}

#[test]
fn children_register_again() {
    let _f = common::forking();
    // This machine's kernel accepts membarrier (the crate's own test says so); where it
    // does not, nothing below is plain.
    let parent = releases_plain();
    // A child made by libc's fork registers in its atfork handler.
    let child = common::in_child(|| u8::from(releases_plain())).unwrap();
    assert_eq!(child == 1, parent);
    // A child made by a raw fork system call has the registration bit wiped; its first
    // release renews its caches (and registers) and is fenced, the next ones plain.
    // SAFETY: a raw fork; the child runs only the code below and ends with _exit.
    let pid = unsafe { libc::syscall(libc::SYS_fork) } as libc::pid_t;
    if pid == 0 {
        let first = releases_plain();
        let then = releases_plain();
        let code = i32::from(first) | i32::from(then) << 1;
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) }
    }
    let status = common::wait_pid(pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), i32::from(parent) << 1);
}
