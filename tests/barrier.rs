//! `Barrier` across processes: CPython's barrier tests (`_test_multiprocessing.py`,
//! `_TestBarrier`: barrier passes, wait return, action (here: the leader), abort, reset,
//! abort and reset, timeout, single party) ported to forked processes; named and
//! handed-over barriers; parties killed before arriving and inside the barrier's lock.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::{finish, forking, wait_until, PATIENCE};
use shared_runtime::handle::Handle;
use shared_runtime::{Arena, Barrier, Error, Lock, Process, RawArray, RawValue};

/// CPython's `N`: the number of parties of most tests.
const N: usize = 5;

/// Starts `f(i)` in `n` children.
fn start(n: usize, f: impl Fn(usize) -> u64 + Clone + 'static) -> Vec<Process<u64>> {
    (0..n)
        .map(|i| {
            let f = f.clone();
            Process::start(move || f(i)).unwrap()
        })
        .collect()
}

/// What each child returned, in order.
fn results(children: Vec<Process<u64>>) -> Vec<u64> {
    children.into_iter().map(|c| finish(c).unwrap()).collect()
}

/// Runs `f(i)` in `n` children and returns what each returned, in order.
fn parties(n: usize, f: impl Fn(usize) -> u64 + Clone + 'static) -> Vec<u64> {
    results(start(n, f))
}

/// A round of `b` (3 parties) with two children: what each of the three got.
fn round_of_three(b: &Barrier) -> (u64, Vec<u64>) {
    let b2 = b.clone();
    let two = start(2, move |_| code(b2.wait_timeout(PATIENCE)));
    (code(b.wait_timeout(PATIENCE)), results(two))
}

/// Result codes of a wait.
const PASSED: u64 = 1;
const BROKEN: u64 = 2;

fn code(r: shared_runtime::Result<shared_runtime::BarrierWaitResult>) -> u64 {
    match r {
        Ok(_) => PASSED,
        Err(Error::BrokenBarrier) => BROKEN,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// CPython `test_barrier` / `test_barrier_10`: in each pass nobody leaves the barrier
/// before everyone has arrived.
#[test]
fn nobody_passes_before_all_have_arrived() {
    let _f = forking();
    const PASSES: usize = 10;
    let b = Barrier::new(N).unwrap();
    let arrived = RawArray::<u32>::zeroed(PASSES).unwrap();
    let left = RawArray::<u32>::zeroed(PASSES).unwrap();
    let (a, l) = (arrived.clone(), left.clone());
    let out = parties(N, move |_| {
        for pass in 0..PASSES {
            a.fetch_add(pass, 1, SeqCst);
            b.wait_timeout(PATIENCE).unwrap();
            assert_eq!(a.get(pass), Some(N as u32), "passed before all arrived");
            l.fetch_add(pass, 1, SeqCst);
            b.wait_timeout(PATIENCE).unwrap();
            assert_eq!(l.get(pass), Some(N as u32));
        }
        0
    });
    assert_eq!(out, vec![0; N]);
    assert_eq!(arrived.to_vec(), vec![N as u32; PASSES]);
}

/// CPython `test_wait_return` and `test_action`: each round's indexes are 0..N, one each,
/// and exactly one party — the one with index N - 1 — is the leader; what the leader does
/// before the next wait is seen by all after it.
#[test]
fn indexes_are_distinct_and_one_party_leads() {
    let _f = forking();
    const ROUNDS: usize = 20;
    let b = Barrier::new(N).unwrap();
    let index_counts = RawArray::<u32>::zeroed(N).unwrap();
    let actions = RawValue::new(0u32).unwrap();
    let (ic, act) = (index_counts.clone(), actions.clone());
    let out = parties(N, move |_| {
        let mut leads = 0;
        for round in 0..ROUNDS {
            let r = b.wait_timeout(PATIENCE).unwrap();
            ic.fetch_add(r.index(), 1, SeqCst);
            assert_eq!(r.is_leader(), r.index() == N - 1);
            if r.is_leader() {
                act.fetch_add(1, SeqCst); // the "action"
                leads += 1;
            }
            b.wait_timeout(PATIENCE).unwrap();
            assert_eq!(act.get(), round as u32 + 1, "the leader's action not seen");
            b.wait_timeout(PATIENCE).unwrap();
        }
        leads
    });
    assert_eq!(
        out.iter().sum::<u64>(),
        ROUNDS as u64,
        "one leader per round"
    );
    // N indexes in each round's first wait: every index exactly ROUNDS times.
    assert_eq!(index_counts.to_vec(), vec![ROUNDS as u32; N]);
}

/// CPython `test_abort`: the middle party aborts instead of waiting again; every other
/// party gets `BrokenBarrier`, and the barrier stays broken.
#[test]
fn abort_breaks_the_barrier_for_every_waiter() {
    let _f = forking();
    let b = Barrier::new(N).unwrap();
    let b2 = b.clone();
    let out = parties(N, move |_| {
        let i = b2.wait_timeout(PATIENCE).unwrap().index();
        if i == N / 2 {
            assert!(wait_until(|| b2.n_waiting() == N - 1));
            b2.abort();
            return 0;
        }
        code(b2.wait_timeout(PATIENCE))
    });
    let broken = out.iter().filter(|&&c| c == BROKEN).count();
    assert_eq!(broken, N - 1, "{out:?}");
    assert!(b.is_broken());
    assert_eq!(b.n_waiting(), 0);
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
}

/// CPython `test_reset`: the middle party resets while the others wait: they get
/// `BrokenBarrier`, and then all pass the barrier again.
#[test]
fn reset_breaks_current_waiters_then_the_barrier_works_again() {
    let _f = forking();
    let b = Barrier::new(N).unwrap();
    let b2 = b.clone();
    let out = parties(N, move |_| {
        let i = b2.wait_timeout(PATIENCE).unwrap().index();
        let first = if i == N / 2 {
            assert!(wait_until(|| b2.n_waiting() == N - 1));
            b2.reset();
            0
        } else {
            code(b2.wait_timeout(PATIENCE))
        };
        // Pass the barrier again.
        first * 10 + code(b2.wait_timeout(PATIENCE))
    });
    let mut sorted = out.clone();
    sorted.sort();
    let mut expected = vec![BROKEN * 10 + PASSED; N - 1];
    expected.insert(0, PASSED);
    assert_eq!(sorted, expected, "{out:?}");
    assert!(!b.is_broken());
}

/// CPython `test_abort_and_reset`: the middle party aborts; after a second barrier one
/// party resets, and everyone passes the first barrier once more.
#[test]
fn abort_then_reset_makes_the_barrier_usable() {
    let _f = forking();
    let b = Barrier::new(N).unwrap();
    let after = Barrier::new(N).unwrap();
    let (b2, a2) = (b.clone(), after.clone());
    let out = parties(N, move |_| {
        let i = b2.wait_timeout(PATIENCE).unwrap().index();
        let first = if i == N / 2 {
            assert!(wait_until(|| b2.n_waiting() == N - 1));
            b2.abort();
            0
        } else {
            code(b2.wait_timeout(PATIENCE))
        };
        // Synchronise on the second barrier; its leader resets the first.
        if a2.wait_timeout(PATIENCE).unwrap().is_leader() {
            b2.reset();
        }
        a2.wait_timeout(PATIENCE).unwrap();
        first * 10 + code(b2.wait_timeout(PATIENCE))
    });
    let passed_after = out.iter().filter(|&&c| c % 10 == PASSED).count();
    let broken_first = out.iter().filter(|&&c| c / 10 == BROKEN).count();
    assert_eq!((passed_after, broken_first), (N, N - 1), "{out:?}");
}

/// CPython `test_timeout`: one party is late; another's timed wait runs out and breaks the
/// barrier, so every party — the late one included — gets `BrokenBarrier`.
#[test]
fn a_timeout_breaks_the_barrier_for_everyone() {
    let _f = forking();
    let b = Barrier::new(N).unwrap();
    let b2 = b.clone();
    let out = parties(N, move |_| {
        let i = b2.wait_timeout(PATIENCE).unwrap().index();
        if i == N / 2 {
            // Late: arrives only once the barrier is broken.
            assert!(wait_until(|| b2.is_broken()));
            return code(b2.wait());
        }
        let timeout = if i == 0 {
            Duration::from_millis(100)
        } else {
            PATIENCE
        };
        code(b2.wait_timeout(timeout))
    });
    assert_eq!(out, vec![BROKEN; N]);
    assert!(b.is_broken());
}

/// CPython `test_single_thread`: a barrier of one party never blocks, and always leads.
#[test]
fn a_single_party_passes_at_once() {
    let b = Barrier::new(1).unwrap();
    for _ in 0..3 {
        let r = b.wait().unwrap();
        assert!(r.is_leader() && r.index() == 0);
    }
    assert!(matches!(
        Barrier::new(0),
        Err(Error::InvalidParties { parties: 0 })
    ));
    assert!(Barrier::new(Barrier::MAX_PARTIES + 1).is_err());
    let d = format!("{b:?}");
    assert!(d.contains("parties: 1") && d.contains("round: 3"), "{d}");
}

/// A party is killed before it arrives: the others, waiting with timeouts, get
/// `BrokenBarrier` rather than hang, and a reset makes the barrier usable again.
#[test]
fn a_party_killed_before_arriving_breaks_timed_waits() {
    let _f = forking();
    let b = Barrier::new(3).unwrap();
    let started = RawValue::new(0u32).unwrap();
    let s2 = started.clone();
    let victim = Process::<()>::start(move || {
        s2.set(1);
        loop {
            std::thread::sleep(Duration::from_secs(1)); // never reaches the barrier
        }
    })
    .unwrap();
    let b2 = b.clone();
    let other = Process::start(move || code(b2.wait_timeout(Duration::from_millis(300)))).unwrap();
    assert!(wait_until(|| started.get() == 1));
    victim.kill().unwrap();
    assert!(finish(victim).is_err());
    let mine = code(b.wait_timeout(PATIENCE));
    assert_eq!((mine, finish(other).unwrap()), (BROKEN, BROKEN));
    b.reset();
    assert_eq!(round_of_three(&b), (PASSED, vec![PASSED; 2]));
}

/// A party is killed inside the barrier's lock: a waiter — even an untimed one — notices
/// the dead holder, breaks the barrier rather than guess the count, and gets
/// `BrokenBarrier`; reset repairs it.
#[test]
fn a_party_killed_inside_the_lock_breaks_the_barrier() {
    let _f = forking();
    let b = Barrier::new(3).unwrap();
    let b2 = b.clone();
    let waiter = Process::start(move || code(b2.wait())).unwrap();
    assert!(wait_until(|| b.n_waiting() == 1));
    let (b3, holding) = (b.clone(), RawValue::new(0u32).unwrap());
    let h3 = holding.clone();
    let victim = Process::<()>::start(move || {
        let _g = b3.hold_lock_for_tests();
        h3.set(1);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .unwrap();
    assert!(wait_until(|| holding.get() == 1));
    victim.kill().unwrap();
    assert!(finish(victim).is_err());
    assert_eq!(finish(waiter).unwrap(), BROKEN);
    assert!(b.is_broken());
    b.reset();
    assert_eq!(round_of_three(&b), (PASSED, vec![PASSED; 2]));
}

#[test]
fn named_and_handed_over_barriers_work_across_processes() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let named = arena.create::<Barrier>("meet", 3).unwrap();
    assert!(matches!(
        arena.create::<Barrier>("zero", 0),
        Err(Error::InvalidParties { parties: 0 })
    ));
    assert!(
        arena.open::<Barrier>("zero").is_err(),
        "a failed create made a name"
    );
    let unnamed = Barrier::new_in(&arena, 2).unwrap();
    let text = unnamed.handle().to_string();
    let a = arena.clone();
    let children: Vec<_> = (0..2)
        .map(|i| {
            let (a, text) = (a.clone(), text.clone());
            Process::start(move || {
                let b = a.open::<Barrier>("meet").unwrap();
                assert_eq!(b.parties(), 3);
                assert!(a.open::<Lock>("meet").is_err());
                let r = b.wait_timeout(PATIENCE).unwrap().index() as u64;
                if i == 0 {
                    let h: Handle = text.parse().unwrap();
                    assert!(Lock::open_handle(&a, &h).is_err());
                    let u = Barrier::open_handle(&a, &h).unwrap();
                    assert_eq!(u.parties(), 2);
                    u.wait_timeout(PATIENCE).unwrap();
                }
                r
            })
            .unwrap()
        })
        .collect();
    let mine = named.wait_timeout(PATIENCE).unwrap().index() as u64;
    unnamed.wait_timeout(PATIENCE).unwrap();
    let total: u64 = children.into_iter().map(|c| finish(c).unwrap()).sum();
    assert_eq!(mine + total, 3, "indexes 0, 1 and 2");
    assert!(Barrier::open_handle(&arena, &unnamed.handle()).is_err());
    let listed = arena.objects().unwrap();
    assert!(listed
        .iter()
        .any(|o| o.name == "meet" && o.label == "Barrier"));
}

#[test]
fn is_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Barrier>();
}
