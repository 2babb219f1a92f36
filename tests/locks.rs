//! Lock and RLock: semantics, cross-process exclusion, and recovery from dead holders.

mod common;

use std::sync::TryLockError;
use std::time::{Duration, Instant};

use common::{finish, forking, wait_until};
use shared_runtime::{
    Arena, Error, GenericLock, Lock, PoisonCause, Process, RLock, RawValue, Reentrancy,
};

#[test]
fn acquire_try_and_timeout() {
    let lock = Lock::new().unwrap();
    let g = lock.lock().unwrap();
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    // On the holding thread a timed wait could never succeed: it says so at once.
    assert!(matches!(
        lock.try_lock_for(Duration::from_millis(50)),
        Err(TryLockError::WouldBlock)
    ));
    // Another thread waits out the timeout.
    std::thread::scope(|s| {
        s.spawn(|| {
            let t = Instant::now();
            assert!(matches!(
                lock.try_lock_for(Duration::from_millis(50)),
                Err(TryLockError::WouldBlock)
            ));
            assert!(
                t.elapsed() >= Duration::from_millis(45),
                "waited {:?}",
                t.elapsed()
            );
        });
    });
    drop(g);
    assert!(lock.try_lock().is_ok());
    assert!(lock.try_lock_for(Duration::from_millis(50)).is_ok());
    assert!(lock.try_lock_for(Duration::ZERO).is_ok());
}

#[test]
fn other_threads_wait_for_the_holder() {
    let lock = Lock::new().unwrap();
    let n = RawValue::new(0u64).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    let _g = lock.lock().unwrap();
                    n.set(n.get() + 1);
                }
            });
        }
    });
    assert_eq!(n.get(), 40_000);
}

#[test]
fn rlock_reenters_three_deep() {
    let r = RLock::new().unwrap();
    let a = r.lock().unwrap();
    let b = r.lock().unwrap();
    let c = r.try_lock().unwrap();
    assert!(format!("{r:?}").contains("depth: 3"), "{r:?}");
    let pid = std::process::id() as i32;
    assert!(
        format!("{r:?}").contains(&format!("owner: Some({pid})")),
        "{r:?}"
    );
    // Another thread cannot get it until all three are released.
    std::thread::scope(|s| {
        s.spawn(|| assert!(matches!(r.try_lock(), Err(TryLockError::WouldBlock))));
    });
    drop(c);
    drop(b);
    std::thread::scope(|s| {
        s.spawn(|| assert!(r.try_lock().is_err()));
    });
    drop(a);
    std::thread::scope(|s| {
        s.spawn(|| assert!(r.try_lock().is_ok()));
    });
    assert!(format!("{r:?}").contains("owner: None"), "{r:?}");
}

#[test]
#[should_panic(expected = "this thread already holds this Lock, which is not re-entrant")]
fn relocking_a_lock_on_the_same_thread_panics_instead_of_hanging() {
    let lock = Lock::new().unwrap();
    let _a = lock.lock().unwrap();
    let _b = lock.lock();
}

#[test]
fn clones_name_the_same_lock() {
    let a = Lock::new().unwrap();
    let b = a.clone();
    assert!(a.same_as(&b));
    assert!(!a.same_as(&Lock::new().unwrap()));
    let _g = a.lock().unwrap();
    assert!(b.try_lock().is_err());
}

#[test]
fn a_panicking_holder_poisons_the_lock_until_cleared() {
    let lock = Lock::new().unwrap();
    let caught = std::panic::catch_unwind(|| {
        let _g = lock.lock().unwrap();
        panic!("while holding the lock");
    });
    assert!(caught.is_err());
    assert!(lock.is_poisoned());
    for round in 0..3 {
        let err = lock.lock().unwrap_err();
        drop(err.into_inner()); // the guard is reachable, and releases the lock
        assert!(
            matches!(lock.try_lock(), Err(TryLockError::Poisoned(_))),
            "round {round}: every acquirer is told"
        );
    }
    let poison = lock.poison().unwrap();
    assert_eq!(poison.cause, PoisonCause::Panicked);
    assert_eq!(poison.pid, Some(std::process::id() as i32));
    lock.clear_poison();
    assert!(!lock.is_poisoned());
    assert_eq!(lock.poison(), None);
    assert!(lock.lock().is_ok(), "cleared");
}

/// An `RLock` re-entered by its holder is told of the poison at every level, too.
#[test]
fn poison_is_reported_at_every_level_of_an_rlock() {
    let r = RLock::new().unwrap();
    let _ = std::panic::catch_unwind(|| {
        let _g = r.lock().unwrap();
        panic!("while holding the lock");
    });
    let outer = r.lock().unwrap_err().into_inner();
    let inner = r.try_lock();
    assert!(matches!(inner, Err(TryLockError::Poisoned(_))));
    drop((inner, outer));
    r.clear_poison();
    let outer = r.lock().unwrap();
    assert!(r.lock().is_ok());
    drop(outer);
}

fn bump(lock: &Lock, n: &RawValue<u64>) -> shared_runtime::Result<u64> {
    let _g = lock.lock()?;
    n.set(n.get() + 1);
    Ok(n.get())
}

fn bump_quickly(lock: &Lock, n: &RawValue<u64>) -> shared_runtime::Result<u64> {
    let _g = lock.try_lock_for(Duration::from_millis(1))?;
    n.set(n.get() + 1);
    Ok(n.get())
}

/// `?` on lock results: poison becomes `Error::Poisoned` naming the holder (and releases
/// the lock), a lock held elsewhere `Error::WouldBlock`.
#[test]
fn question_mark_on_lock_results() {
    let (lock, n) = (Lock::new().unwrap(), RawValue::new(0u64).unwrap());
    assert_eq!(bump(&lock, &n).unwrap(), 1);
    assert_eq!(bump_quickly(&lock, &n).unwrap(), 2);
    let held = lock.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let err = bump_quickly(&lock, &n).unwrap_err();
            assert!(matches!(err, Error::WouldBlock), "{err}");
            assert!(err.to_string().contains("held by another"), "{err}");
        });
    });
    drop(held);
    let _ = std::panic::catch_unwind(|| {
        let _g = lock.lock();
        panic!("while holding the lock");
    });
    let me = std::process::id() as i32;
    for err in [
        bump(&lock, &n).unwrap_err(),
        bump_quickly(&lock, &n).unwrap_err(),
    ] {
        match &err {
            Error::Poisoned { pid, cause } => {
                assert_eq!((*pid, *cause), (Some(me), PoisonCause::Panicked));
            }
            other => panic!("{other}"),
        }
        let text = err.to_string();
        assert!(text.contains(&format!("process {me} panicked")), "{text}");
    }
    assert_eq!(n.get(), 2, "nothing ran under the poisoned lock");
    // The conversion dropped the guard: the lock is free (and still poisoned).
    std::thread::scope(|s| {
        s.spawn(|| assert!(matches!(lock.try_lock(), Err(TryLockError::Poisoned(_)))));
    });
    lock.clear_poison();
    assert_eq!(bump(&lock, &n).unwrap(), 3);
}

/// A child SIGKILLed while holding the lock: every later acquisition in the parent is
/// told, with the child's pid, until `clear_poison`; `?` names the child.
#[test]
fn a_sigkilled_holders_poison_is_sticky_and_names_it() {
    let _serial = forking();
    let lock = Lock::new().unwrap();
    let holding = RawValue::new(0u8).unwrap();
    let (lock2, holding2) = (lock.clone(), holding.clone());
    let mut child = Process::<()>::start(move || {
        std::mem::forget(lock2.lock().unwrap());
        holding2.set(1);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .unwrap();
    let pid = child.pid();
    assert!(wait_until(|| holding.get() == 1));
    child.kill().unwrap();
    assert!(child.join_timeout(common::PATIENCE).is_err());
    let n = RawValue::new(0u64).unwrap();
    for round in 0..3 {
        let g = lock.lock().unwrap_err().into_inner();
        drop(g);
        assert!(lock.is_poisoned(), "round {round}");
        let err = bump(&lock, &n).unwrap_err();
        assert!(
            matches!(err, Error::Poisoned { pid: Some(p), cause: PoisonCause::Died } if p == pid),
            "round {round}: {err}"
        );
        assert!(
            err.to_string().contains(&format!("process {pid} died")),
            "{err}"
        );
    }
    lock.clear_poison();
    assert_eq!(bump(&lock, &n).unwrap(), 1);
    assert!(!lock.is_poisoned());
}
#[test]
fn locks_live_in_the_arena() {
    let arena = Arena::with_capacity(64 << 20).unwrap();
    let before = arena.stats().unwrap().bytes_in_use;
    let locks: Vec<Lock> = (0..100_000)
        .map(|_| Lock::new_in(&arena).unwrap())
        .collect();
    let per_lock = (arena.stats().unwrap().bytes_in_use - before) / 100_000;
    assert!(per_lock <= 64, "a lock costs {per_lock} bytes of the arena");
    for l in locks.iter().step_by(9973) {
        drop(l.lock().unwrap());
    }
    drop(locks);
    assert_eq!(arena.stats().unwrap().bytes_in_use, before);
}

#[test]
fn lock_held_by_a_child_is_held_for_the_parent() {
    let _serial = forking();
    let lock = Lock::new().unwrap();
    let state = RawValue::new(0u8).unwrap(); // 1: child holds it, 2: parent is done looking
    Process::scope(|s| {
        let child = s
            .start(|| {
                let _g = lock.lock().unwrap();
                state.set(1);
                assert!(wait_until(|| state.get() == 2));
            })
            .unwrap();
        assert!(wait_until(|| state.get() == 1));
        assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            lock.try_lock_for(Duration::from_millis(20)),
            Err(TryLockError::WouldBlock)
        ));
        assert!(
            format!("{lock:?}").contains(&format!("owner: Some({})", child.pid())),
            "{lock:?}"
        );
        state.set(2);
        let g = lock.lock().unwrap(); // released when the child let go
        drop(g);
        finish(child).unwrap();
    })
}

#[test]
fn two_processes_lose_no_increment() {
    let _serial = forking();
    for lock_is_recursive in [false, true] {
        let n = RawValue::new(0u64).unwrap();
        let (lock, rlock) = (Lock::new().unwrap(), RLock::new().unwrap());
        let work = || {
            for _ in 0..100_000 {
                let _g = if lock_is_recursive {
                    rlock.lock()
                } else {
                    lock.lock()
                }
                .unwrap();
                n.set(n.get() + 1);
            }
        };
        Process::scope(|s| {
            let child = s.start(work).unwrap();
            work();
            finish(child).unwrap();
        });
        assert_eq!(n.get(), 200_000, "recursive: {lock_is_recursive}");
    }
}

/// A child killed while holding the lock: the parent gets it back within a second, told
/// by a poison error, and the lock works normally afterwards. Twenty times in a row.
#[test]
fn sigkilled_holder_is_recovered_with_poison() {
    let _serial = forking();
    for lock in [Lock::new().unwrap().into(), RLock::new().unwrap().into()] {
        let lock: AnyLock = lock;
        for round in 0..20 {
            let holding = RawValue::new(0u8).unwrap();
            Process::scope(|s| {
                let mut child = s
                    .start::<()>(|| {
                        let _g = lock.lock();
                        holding.set(1);
                        loop {
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    })
                    .unwrap();
                assert!(
                    wait_until(|| holding.get() == 1),
                    "round {round}: child never took the lock"
                );
                child.kill().unwrap();
                let poisoned = lock.acquire_within(Duration::from_secs(1));
                assert!(
                    poisoned,
                    "round {round}: recovered without the poison indication"
                );
                assert!(child
                    .join_timeout(common::PATIENCE)
                    .unwrap_err()
                    .to_string()
                    .contains("SIGKILL"));
                assert!(
                    lock.acquire_within(Duration::from_secs(1)),
                    "round {round}: poison is sticky"
                );
                lock.clear_poison();
                assert!(
                    !lock.acquire_within(Duration::from_secs(1)),
                    "round {round}: still poisoned after clear_poison"
                );
            });
        }
    }
}

/// Either kind of lock, for running one test body over both.
enum AnyLock {
    Lock(Lock),
    RLock(RLock),
}

impl From<Lock> for AnyLock {
    fn from(l: Lock) -> Self {
        AnyLock::Lock(l)
    }
}

impl From<RLock> for AnyLock {
    fn from(l: RLock) -> Self {
        AnyLock::RLock(l)
    }
}

impl AnyLock {
    fn lock(&self) -> Box<dyn std::fmt::Debug + '_> {
        match self {
            AnyLock::Lock(l) => Box::new(l.lock().unwrap()),
            AnyLock::RLock(l) => Box::new(l.lock().unwrap()),
        }
    }

    fn clear_poison(&self) {
        match self {
            AnyLock::Lock(l) => l.clear_poison(),
            AnyLock::RLock(l) => l.clear_poison(),
        }
    }

    /// Acquires and releases within `timeout`; returns whether it came poisoned. Panics if
    /// the lock could not be had in time.
    fn acquire_within(&self, timeout: Duration) -> bool {
        let r = match self {
            AnyLock::Lock(l) => l.try_lock_for(timeout).map(drop),
            AnyLock::RLock(l) => l.try_lock_for(timeout).map(drop),
        };
        match r {
            Ok(()) => false,
            Err(TryLockError::Poisoned(p)) => {
                drop(p.into_inner());
                true
            }
            Err(TryLockError::WouldBlock) => panic!("lock not recovered within {timeout:?}"),
        }
    }
}

/// A thread that ends while holding a lock (its guard leaked) is a dead holder too: the
/// next acquirer gets the lock, poisoned, instead of waiting forever.
#[test]
fn a_thread_that_exits_holding_the_lock_is_recovered() {
    for lock in [Lock::new().unwrap().into(), RLock::new().unwrap().into()] {
        let lock: AnyLock = lock;
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(lock.lock()));
        });
        let t = Instant::now();
        assert!(
            lock.acquire_within(Duration::from_secs(5)),
            "recovered without poison"
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
        assert!(lock.acquire_within(Duration::from_secs(1)), "sticky");
        lock.clear_poison();
        assert!(!lock.acquire_within(Duration::from_secs(1)));
    }
}

/// A holder whose `/proc` entry cannot be parsed as text (a thread name that is not UTF-8)
/// is still alive: its lock must not be taken from it.
#[test]
fn a_live_holder_with_an_odd_thread_name_keeps_its_lock() {
    let lock = Lock::new().unwrap();
    let holding = std::sync::Barrier::new(2);
    let release = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            // 15 bytes: the kernel keeps them, cutting "é" in half.
            let name = b"abcdefghijklmn\xc3\0";
            // SAFETY: prctl(PR_SET_NAME) reads a NUL-terminated string of at most 16 bytes.
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
            let _g = lock.lock().unwrap();
            holding.wait();
            release.wait();
        });
        holding.wait();
        // Well past the 50 ms liveness poll: a wrong "dead" verdict would steal the lock.
        let timed = matches!(
            lock.try_lock_for(Duration::from_millis(300)),
            Err(TryLockError::WouldBlock)
        );
        let tried = matches!(lock.try_lock(), Err(TryLockError::WouldBlock));
        release.wait(); // before asserting, so that a failure cannot hang the holder
        assert!(timed && tried, "a live holder lost its lock");
    });
    assert!(lock.lock().is_ok());
}

/// A guard moved into a forked child's closure is the parent thread's: dropping the child's
/// copy releases nothing, and the parent's copy releases the lock when the child is joined.
#[test]
fn a_guard_that_crosses_fork_is_released_once_by_its_owner() {
    let _serial = forking();
    let lock = Lock::new().unwrap();
    Process::scope(|s| {
        let guard = lock.lock().unwrap();
        let child = s.start(move || drop(guard)).unwrap();
        // The child has dropped its copy; the lock must still be held (by this thread).
        assert!(wait_until(|| child.pid() > 0));
        std::thread::sleep(Duration::from_millis(20));
        std::thread::scope(|s| {
            s.spawn(|| assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock))));
        });
        finish(child).unwrap(); // drops the parent's copy of the closure, and so the guard
        std::thread::scope(|s| {
            s.spawn(|| assert!(lock.try_lock().is_ok()));
        });
    })
}

/// A timed wait shorter than the liveness poll still takes over from a dead holder.
#[test]
fn short_timeouts_recover_a_dead_holder() {
    let _serial = forking();
    let lock = Lock::new().unwrap();
    let holding = RawValue::new(0u8).unwrap();
    Process::scope(|s| {
        let mut child = s
            .start::<()>(|| {
                std::mem::forget(lock.lock().unwrap());
                holding.set(1);
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
            .unwrap();
        assert!(wait_until(|| holding.get() == 1));
        child.kill().unwrap();
        assert!(child.join_timeout(common::PATIENCE).is_err());
        let got = (0..100).find_map(|_| match lock.try_lock_for(Duration::from_millis(5)) {
            Err(TryLockError::WouldBlock) => None,
            other => Some(other.is_err()),
        });
        assert_eq!(
            got,
            Some(true),
            "never recovered, or recovered without the poison"
        );
    })
}

/// One body for both kinds: `Lock` and `RLock` are one generic type, re-entrant or not by
/// its parameter, and `Debug` still names the kind.
fn one_type_for_both<K: Reentrancy>(lock: GenericLock<K>, name: &str) {
    assert!(
        format!("{lock:?}").starts_with(&format!("{name} {{")),
        "{lock:?}"
    );
    let g = lock.lock().unwrap();
    assert_eq!(lock.try_lock().is_ok(), K::REENTRANT, "{name}");
    drop(g);
    let _ = std::panic::catch_unwind(|| {
        let _g = lock.lock();
        panic!("while holding the lock");
    });
    assert!(format!("{lock:?}").contains("poisoned: true"), "{lock:?}");
    lock.clear_poison();
    assert!(format!("{lock:?}").contains("poisoned: false"), "{lock:?}");
}

#[test]
fn lock_and_rlock_are_one_generic_type() {
    one_type_for_both(Lock::new().unwrap(), "Lock");
    one_type_for_both(RLock::new().unwrap(), "RLock");
    assert!(!format!("{:?}", Lock::new().unwrap()).contains("depth"));
}
