//! Reproducers kept from the attacking review of the uncontended lock path; every wait is
//! bounded.
//!
//! A child made by a raw `fork` renews its caches on whichever thread first notices the
//! wiped page. The per-thread caches (identity, thread id, pid copy, pid-namespace copy)
//! used to be reset only on *that* thread: if the child started a thread that used the
//! crate first, the forking thread (the child's original thread, whose thread-locals are a
//! copy of its parent thread's) kept its parent thread's identity and pid for good. The
//! child then released its parent's lock, re-entered its parent's `RLock`, held a lock that
//! nobody could recover after its death, and recorded its parent's pid as holder. Each
//! thread now notes the fork generation its caches were filled under, and empties them when
//! the wipe page's word names another.

use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::{raw_fork, reap};

use shared_runtime::{Lock, RLock};

fn exit(code: i32) -> ! {
    // SAFETY: ends the process at once.
    unsafe { libc::_exit(code) }
}

/// In the child: runs `f` on a new thread, bounded (exit 99 on a hang).
fn on_new_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(v) => v,
        Err(_) => exit(99),
    }
}

/// A guard that crossed a raw fork, dropped in the child on its original thread after
/// another thread of the child touched the crate (and so renewed the caches), releases the
/// parent's lock: the forking thread still has the parent thread's identity cached, so
/// `leave_slow`'s `cached_identity_renewed() == me` says "this thread holds it".
#[test]
fn raw_fork_guard_dropped_after_other_thread_renewed_releases_parents_lock() {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    let other = Lock::new().unwrap();
    let g = lock.lock().unwrap();
    let pid = raw_fork();
    if pid == 0 {
        // Any use of the crate on another thread renews the child's caches there.
        on_new_thread(move || drop(other.lock().unwrap()));
        drop(g); // the parent's guard, copied into the child: must release nothing
        let l = lock.clone();
        let free = on_new_thread(move || l.try_lock().is_ok());
        exit(if free { 1 } else { 0 });
    }
    let code = reap(pid);
    let held = lock.state().holder.is_some();
    drop(g);
    assert_eq!(
        code, 0,
        "the child released the parent's lock (exit {code})"
    );
    assert!(held, "the parent's lock is free while its guard lives");
}

/// The same stale identity lets the child's original thread *re-enter* the parent's
/// `RLock`: two processes inside one critical section.
#[test]
fn raw_fork_child_reenters_parents_rlock_after_other_thread_renewed() {
    let _f = common::forking();
    let rlock = RLock::new().unwrap();
    let other = Lock::new().unwrap();
    let g = rlock.lock().unwrap();
    let pid = raw_fork();
    if pid == 0 {
        on_new_thread(move || drop(other.lock().unwrap()));
        let code = match rlock.try_lock() {
            Ok(g2) => {
                std::mem::forget(g2);
                1 // entered while the parent holds it
            }
            Err(_) => 0,
        };
        exit(code);
    }
    let code = reap(pid);
    let depth = rlock.state().depth;
    if depth == 2 {
        // SAFETY: this thread holds it; undo the child's level so the test cleans up.
        unsafe { rlock.set_depth_for_tests(1) };
    }
    drop(g);
    assert_eq!(
        code, 0,
        "the child re-entered the parent's RLock (depth {depth})"
    );
}

/// A child (raw fork, another thread renewed first) whose original thread takes a free
/// lock writes its parent thread's identity and pid into it; when the child dies holding
/// it, nobody can prove the holder dead (the parent thread lives): the lock is never
/// recovered, and the recorded pid is the parent's.
#[test]
fn raw_fork_child_dies_holding_lock_never_recovered() {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    let other = Lock::new().unwrap();
    drop(lock.lock().unwrap()); // this thread's identity and pid copies are made
    let (r, w) = {
        let mut fds = [0; 2];
        // SAFETY: a pipe for the child's report.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        (fds[0], fds[1])
    };
    let pid = raw_fork();
    if pid == 0 {
        on_new_thread(move || drop(other.lock().unwrap()));
        let g = lock.lock().unwrap();
        let recorded = lock.state().holder.and_then(|h| h.pid).unwrap_or(0);
        std::mem::forget(g);
        let buf = recorded.to_ne_bytes();
        // SAFETY: writes 4 bytes from a live buffer.
        unsafe { libc::write(w, buf.as_ptr().cast(), 4) };
        exit(0); // dies holding the lock
    }
    let code = reap(pid);
    let mut buf = [0u8; 4];
    // SAFETY: reads 4 bytes into a live buffer; the child has exited.
    unsafe { libc::read(r, buf.as_mut_ptr().cast(), 4) };
    // SAFETY: our descriptors.
    unsafe {
        libc::close(r);
        libc::close(w)
    };
    let recorded = i32::from_ne_bytes(buf);
    assert_eq!(code, 0);
    // Another thread of the parent: the lock's holder died, so it must get the lock
    // (poisoned, OwnerDied) well within 3 s.
    let l = lock.clone();
    let got = std::thread::spawn(move || match l.try_lock_for(Duration::from_secs(3)) {
        Ok(_) => "ok",
        Err(std::sync::TryLockError::Poisoned(_)) => "poisoned (recovered)",
        Err(std::sync::TryLockError::WouldBlock) => "would block",
    })
    .join()
    .unwrap();
    let holder = lock.state().holder.map(|h| h.pid);
    let _ = recorded; // (see the next test for the pid alone)
    assert_ne!(
        got, "would block",
        "a dead child's lock was not recovered within 3 s (holder {holder:?}, child {pid})"
    );
}

/// New with this change (passes on dd4bd40): the pid a raw-fork child writes into `owner`
/// comes from the forking thread's `PID_HERE`, which the renewal on another thread did not
/// reset: the child records its parent's pid (what a poison record would name, and what
/// decides `Died` against `ThreadDied`).
#[test]
fn raw_fork_child_records_parents_pid_after_other_thread_renewed() {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    let other = Lock::new().unwrap();
    drop(lock.lock().unwrap()); // this thread's PID_HERE copy is made
    let pid = raw_fork();
    if pid == 0 {
        on_new_thread(move || drop(other.lock().unwrap()));
        let me = std::process::id() as i32;
        let g = lock.lock().unwrap();
        let recorded = lock.state().holder.and_then(|h| h.pid);
        drop(g);
        exit(if recorded == Some(me) { 0 } else { 1 });
    }
    assert_eq!(
        reap(pid),
        0,
        "the child recorded its parent's pid as the holder"
    );
}
