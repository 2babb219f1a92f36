//! The lock's fast path: the identity and release key kept in the guard (a guard crossing a
//! fork releases nothing), the pid a forked child records, the compare-and-swap before the re-entry check (re-locking a held `Lock` still
//! panics), a fresh acquisition's depth, the borrow mark taken from the guard, a foreign pid
//! namespace, and the `vfork` limit. Every wait is bounded.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::{raw_fork, reap};

use shared_runtime::{Lock, RLock, Value};

/// Waits for `pid` at most 20 s (then kills it); its exit code, or 200+signal.
fn libc_fork() -> libc::pid_t {
    // SAFETY: as above, through libc.
    unsafe { libc::fork() }
}

fn exit(code: i32) -> ! {
    // SAFETY: ends the child at once.
    unsafe { libc::_exit(code) }
}

/// Runs `f` on a thread, `None` if it did not finish within 10 s (a deadlock).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

/// A Lock guard moved into a forked child and dropped there releases nothing: the lock
/// stays the parent's (child's try_lock would block), with either fork.
fn guard_crosses_fork(fork: fn() -> libc::pid_t) {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    let g = lock.lock().unwrap();
    let pid = fork();
    if pid == 0 {
        drop(g);
        let code = if lock.try_lock().is_ok() { 1 } else { 0 };
        exit(code);
    }
    assert_eq!(reap(pid), 0, "the child's drop released the parent's lock");
    assert!(lock.state().holder.is_some(), "parent lost its lock");
    drop(g);
    assert!(
        lock.try_lock().is_ok(),
        "the parent's release did not release"
    );
}

#[test]
fn lock_guard_dropped_in_raw_fork_child() {
    guard_crosses_fork(raw_fork);
}

#[test]
fn lock_guard_dropped_in_libc_fork_child() {
    guard_crosses_fork(libc_fork);
}

/// A forked child records its own pid as a lock's holder, not its parent's (which the
/// forking thread had copied before the fork), with either fork: the pid a poison record
/// names if the child dies holding it.
fn child_records_its_own_pid(fork: fn() -> libc::pid_t) {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    drop(lock.lock().unwrap()); // this thread's copies are made before the fork
    let pid = fork();
    if pid == 0 {
        let me = std::process::id() as i32;
        let g = lock.lock().unwrap();
        let recorded = lock.state().holder.and_then(|h| h.pid);
        drop(g);
        exit(if recorded == Some(me) { 0 } else { 1 });
    }
    assert_eq!(reap(pid), 0, "the child recorded another pid as the holder");
}

#[test]
fn raw_fork_child_records_its_own_pid() {
    child_records_its_own_pid(raw_fork);
}

#[test]
fn libc_fork_child_records_its_own_pid() {
    child_records_its_own_pid(libc_fork);
}

/// The same for an RLock held twice: the child's drops change no depth.
#[test]
fn rlock_guards_dropped_in_raw_fork_child_keep_depth() {
    let _f = common::forking();
    let lock = RLock::new().unwrap();
    let g1 = lock.lock().unwrap();
    let g2 = lock.lock().unwrap();
    let pid = raw_fork();
    if pid == 0 {
        drop(g2);
        drop(g1);
        exit(if lock.state().depth == 2 { 0 } else { 1 });
    }
    assert_eq!(reap(pid), 0, "child's drops changed the shared depth");
    assert_eq!(lock.state().depth, 2);
    drop(g2);
    drop(g1);
    assert_eq!(lock.state().depth, 0);
    assert!(lock.try_lock().is_ok());
}

/// A Lock re-acquired by its holder panics (not deadlocks), also when the word carries the
/// waiters bit (another thread sleeping on it).
#[test]
fn lock_reentry_panics_with_waiters_bit_set() {
    let _f = common::forking(); // no other test thread runs (or panics) during a raw fork
    let r = bounded(|| {
        let lock = Lock::new().unwrap();
        let g = lock.lock().unwrap();
        let l2 = lock.clone();
        let waiter = std::thread::spawn(move || drop(l2.lock()));
        // Let the waiter set the waiters bit and sleep.
        std::thread::sleep(Duration::from_millis(300));
        let again = catch_unwind(AssertUnwindSafe(|| drop(lock.lock())));
        let try_again = matches!(lock.try_lock(), Err(std::sync::TryLockError::WouldBlock));
        let try_for = matches!(
            lock.try_lock_for(Duration::from_millis(10)),
            Err(std::sync::TryLockError::WouldBlock)
        );
        drop(g);
        waiter.join().unwrap();
        (again.is_err(), try_again, try_for, lock.is_poisoned())
    });
    assert_eq!(
        r,
        Some((true, true, true, false)),
        "(panicked, try WouldBlock, try_for WouldBlock, poisoned)"
    );
}

/// RLock re-entry counts depth through lock, try_lock and try_lock_for, and after a
/// takeover from a dead holder (which left depth 3) starts again from 1.
#[test]
fn rlock_depth_after_dead_holder() {
    let _f = common::forking();
    let lock = RLock::new().unwrap();
    let pid = libc_fork();
    if pid == 0 {
        let a = lock.lock().unwrap();
        let b = lock.try_lock().unwrap();
        let c = lock.try_lock_for(Duration::from_millis(1)).unwrap();
        std::mem::forget((a, b, c));
        exit(if lock.state().depth == 3 { 0 } else { 1 });
    }
    assert_eq!(reap(pid), 0);
    let r = bounded(move || {
        let g1 = lock.lock().unwrap_or_else(|p| p.into_inner());
        let d1 = lock.state().depth;
        let g2 = lock.lock().unwrap_or_else(|p| p.into_inner());
        let d2 = lock.state().depth;
        drop(g2);
        drop(g1);
        let l = lock.clone();
        let free = std::thread::spawn(move || {
            l.try_lock().is_ok()
                || matches!(l.try_lock(), Err(std::sync::TryLockError::Poisoned(_)))
        })
        .join()
        .unwrap();
        (d1, d2, lock.state().depth, free)
    });
    assert_eq!(r, Some((1, 2, 0, true)));
}

/// The borrow mark in a raw-fork child (renewed by the lock itself): a nested access on
/// the holding thread still panics rather than aliasing the guard.
#[test]
fn borrow_mark_in_raw_fork_child() {
    let _f = common::forking();
    let v = Value::new(5u64).unwrap();
    let pid = raw_fork();
    if pid == 0 {
        let code = match catch_unwind(AssertUnwindSafe(|| {
            let mut g = v.lock().unwrap();
            *g = 6;
            v.get()
        })) {
            Ok(_) => 1, // nested get went through behind the guard
            Err(_) => 0,
        };
        exit(code);
    }
    assert_eq!(
        reap(pid),
        0,
        "nested get in a raw-fork child was not refused"
    );
}

/// A child in another pid namespace (foreign identities, released through `held_here`):
/// its Lock releases, its RLock counts depth, its Value refuses re-entry.
#[test]
fn foreign_namespace_child_locks() {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    let rlock = RLock::new().unwrap();
    let v = Value::new(1u64).unwrap();
    let pid = libc_fork();
    if pid == 0 {
        if !common::unshare_or_userns(libc::CLONE_NEWPID) {
            exit(77);
        }
        let pid = libc_fork();
        if pid == 0 {
            let mut code = 0;
            {
                let _g = lock.lock().unwrap();
                // Written as foreign: no process of the creator's namespace can check it
                // (the parent's per-thread copy of its namespace was not kept).
                let status = lock.state().holder.map(|h| h.status);
                if status != Some(shared_runtime::HolderStatus::Unknown) {
                    code |= 32;
                }
            }
            if lock.try_lock().is_err() {
                code |= 1;
            }
            let a = rlock.lock().unwrap();
            let b = rlock.lock().unwrap();
            if rlock.state().depth != 2 {
                code |= 2;
            }
            drop(b);
            drop(a);
            if rlock.state().depth != 0 || rlock.state().holder.is_some() {
                code |= 4;
            }
            if catch_unwind(AssertUnwindSafe(|| {
                let _g = v.lock();
                v.get()
            }))
            .is_ok()
            {
                code |= 8;
            }
            if catch_unwind(AssertUnwindSafe(|| drop(lock.lock().map(|_g| lock.lock())))).is_ok() {
                code |= 16;
            }
            exit(code);
        }
        exit(reap(pid));
    }
    let code = reap(pid);
    if code == 77 {
        eprintln!("skipped: no pid namespace");
        return;
    }
    assert_eq!(code, 0, "foreign child failures (bits): {code}");
    assert!(lock.try_lock().is_ok() || lock.is_poisoned());
}

/// A known limit (docs/safety.md): a `vfork` child shares its parent thread's memory, the
/// thread-local identity cache included, so it takes locks *as* that thread; an `RLock` the
/// suspended parent holds is re-entered. Telling them apart would cost a `getpid` system
/// call on every acquisition. POSIX lets a `vfork` child only `exec` or `_exit`.
#[test]
#[ignore = "known limit: a vfork child acts as its parent thread on locks (docs/safety.md)"]
#[allow(deprecated)] // libc::vfork: the point is to show what a vfork child does
fn vfork_child_reenters_parents_rlock() {
    let _f = common::forking();
    let lock = RLock::new().unwrap();
    let g = lock.lock().unwrap();
    // SAFETY: the child only calls try_lock, forgets the guard and _exits.
    let pid = unsafe { libc::vfork() };
    if pid == 0 {
        if let Ok(g) = lock.try_lock() {
            std::mem::forget(g);
        }
        exit(0);
    }
    assert_eq!(reap(pid), 0);
    let depth = lock.state().depth;
    // Undo what the child did, so the test leaves nothing held.
    if depth == 2 {
        // SAFETY: this thread holds it; restore the one level it took.
        unsafe { lock.set_depth_for_tests(1) };
    }
    drop(g);
    assert_eq!(
        depth, 1,
        "a vfork child re-entered the parent thread's RLock"
    );
}
