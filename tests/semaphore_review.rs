//! Regressions from the review of Semaphore / BoundedSemaphore: a full table of dead
//! holders, a pid namespace that could not be read for a moment, a forged kind letter.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use common::{finish, forking, hide_proc, in_child, unshare_or_userns, wait_until, PATIENCE};
use shared_runtime::handle::Handle;
use shared_runtime::{Arena, BoundedSemaphore, Event, Lock, Process, RawValue, Semaphore};
use std::sync::TryLockError;

/// Finding 1: entries of holders that are all dead fill the 16-entry table; `record`
/// never reclaims them, so the next guard (in a live process) is unrecorded, and its unit
/// is lost for good when that process dies, although no live process held any entry.
#[test]
fn dead_holders_entries_make_a_live_guard_unrecorded_and_its_unit_lost() {
    let _f = forking();
    let sem = Semaphore::new(17).unwrap();
    for _ in 0..16 {
        let s2 = sem.clone();
        finish(Process::start(move || std::mem::forget(s2.access())).unwrap()).unwrap();
    }
    assert_eq!(sem.value(), 1);
    let recorded = RawValue::new(0u32).unwrap();
    let (s2, r2) = (sem.clone(), recorded.clone());
    finish(
        Process::start(move || {
            let g = s2.access();
            r2.store(1 + u32::from(g.is_recorded()), SeqCst);
            std::mem::forget(g); // its process ends holding it
        })
        .unwrap(),
    )
    .unwrap();
    // All 17 guard holders are dead: every unit should come back. The 17th guard, finding
    // the table full, reclaimed the 16 dead holders' entries (and units) to record itself,
    // so only its own unit is left for this reclaim.
    let back = sem.reclaim_dead();
    assert_eq!(
        (recorded.get(), back, sem.value()),
        (2, 1, 17),
        "(1 = the 17th guard was unrecorded though all 16 table holders were dead; \
         units reclaimed; value)"
    );
}

/// Finding 2: a process in another pid namespace, with `/proc` hidden, that once ran out
/// of descriptors when the crate first asked for its pid namespace, keeps "same namespace"
/// for good (`read_pid_namespace` caches the failure). Its guard is then recorded with its
/// namespace-local pid, unstamped; a reclaimer in the creator's namespace finds no such pid
/// (`kill` = ESRCH) and takes the unit of the live holder: two inside a Semaphore(1).
#[test]
fn a_live_pidns_holder_that_once_hit_emfile_loses_its_unit_to_a_reclaimer() {
    pidns_holder(true);
}

/// Control for finding 2: the same without the moment of no descriptors passes (the
/// holder knows it is foreign, records nothing, and keeps its unit).
#[test]
fn control_a_live_pidns_holder_with_descriptors_keeps_its_unit() {
    pidns_holder(false);
}

fn pidns_holder(exhaust: bool) {
    let sem = Semaphore::new(1).unwrap();
    let s2 = sem.clone();
    let outcome = in_foreign_pidns(
        move |state, go| holder(&s2, state, go, exhaust),
        || {
            let before = sem.value();
            let back = sem.reclaim_dead();
            (before, back, sem.value())
        },
    );
    if let Some((s, (before, back, after))) = outcome {
        assert_eq!(
            (s, before, back, after),
            (s, 0, 0, 0),
            "(state 1 = recorded as a same-namespace pid; value before; reclaimed; value \
             after): the unit of a live holder was reclaimed"
        );
    }
}

/// Runs `hold(state, go)` in a process of a new pid namespace with `/proc` hidden, whose
/// pid there is free in ours; once it has set `state` (9: skipped) runs `check` here, then
/// sets `go` for it to finish. `None` if namespaces are not to be had.
fn in_foreign_pidns<T>(
    hold: impl Fn(&RawValue<u32>, &Event) + Send + 'static,
    check: impl FnOnce() -> T,
) -> Option<(u32, T)> {
    let _f = forking();
    let state = RawValue::new(0u32).unwrap(); // 1 recorded, 2 unrecorded, 9 skipped
    let go = Event::new().unwrap();
    // A pid that no process of this namespace has: the holder gets it in its namespace.
    let p = (60..30000).find(|&p| pid_free_here(p)).unwrap();
    let (st2, go2) = (state.clone(), go.clone());
    let outer = {
        Process::start(move || {
            let (st, go_ref) = (&st2, &go2);
            let hold = &hold;
            if hide_proc().is_err() || !unshare_or_userns(libc::CLONE_NEWPID) {
                st.store(9, SeqCst);
                return;
            }
            Process::scope(|s| {
                s.start(move || {
                    // The namespace's init (pid 1): fork until a child gets pid p.
                    loop {
                        // SAFETY: fork in the namespace's single-threaded init; the child only compares its pid and exits or runs the holder.
                        let c = unsafe { libc::fork() };
                        if c == 0 {
                            // SAFETY: getpid takes no arguments.
                            if unsafe { libc::getpid() } != p {
                                // SAFETY: _exit ends this forked child without running the parent's destructors.
                                unsafe { libc::_exit(0) };
                            }
                            hold(st, go_ref);
                            // SAFETY: as above.
                            unsafe { libc::_exit(0) };
                        }
                        if c < 0 {
                            st.store(9, SeqCst);
                            return;
                        }
                        let mut status = 0;
                        // SAFETY: waitpid writes one int into `status`, which lives across the call.
                        unsafe { libc::waitpid(c, &mut status, 0) };
                        if c >= p {
                            return;
                        }
                    }
                })?
                .join()
            })
            .unwrap();
        })
        .unwrap()
    };
    assert!(wait_until(|| state.get() != 0), "the holder never started");
    let s = state.get();
    if s == 9 {
        eprintln!("skipped: no mount/pid namespace");
        let _ = finish(outer);
        return None;
    }
    let checked = check();
    go.set();
    let _ = finish(outer);
    Some((s, checked))
}

/// The same for a lock (found checking the other users of the cached namespace): a holder
/// in another pid namespace, with `/proc` hidden, that had no free descriptor when it first
/// asked for its namespace wrote its namespace-local thread id, unmarked, into the lock
/// word; a taker here found no such thread and took the lock from the live holder.
#[test]
fn a_live_pidns_lock_holder_that_once_hit_emfile_keeps_its_lock() {
    let lock = Lock::new().unwrap();
    let l2 = lock.clone();
    let outcome = in_foreign_pidns(
        move |state, go| {
            let old = no_descriptors();
            let g = l2.lock();
            // SAFETY: setrlimit reads one rlimit, which lives across the call.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
            state.store(1, SeqCst);
            let deadline = Instant::now() + PATIENCE;
            while !go.wait_timeout(Duration::from_millis(100)) && Instant::now() < deadline {}
            drop(g);
        },
        || match lock.try_lock_for(Duration::from_millis(300)) {
            Err(TryLockError::WouldBlock) => "held",
            Ok(_) => "taken",
            Err(TryLockError::Poisoned(_)) => "taken as a dead holder's",
        },
    );
    if let Some((_, verdict)) = outcome {
        assert_eq!(verdict, "held", "a live holder's lock was taken");
    }
}

/// Whether no process of this pid namespace has pid `p`.
fn pid_free_here(p: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(p, 0) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Lowers the descriptor limit to none; returns the old limits.
fn no_descriptors() -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `old`, which lives across the call.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) };
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: old.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit, which lives across the call.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &none) };
    old
}

fn holder(sem: &Semaphore, state: &RawValue<u32>, go: &Event, exhaust: bool) {
    // No descriptor free while the crate first looks at the pid namespace.
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `old`, which lives across the call.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) };
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: old.rlim_max,
    };
    if exhaust {
        // SAFETY: setrlimit reads one rlimit, which lives across the call.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &none) };
    }
    let _ = sem.reclaim_dead();
    // SAFETY: setrlimit reads one rlimit, which lives across the call.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
    // Descriptors are back; take a guard.
    let Some(g) = sem.access_timeout(Duration::from_secs(5)) else {
        state.store(9, SeqCst);
        return;
    };
    state.store(1 + u32::from(!g.is_recorded()), SeqCst);
    let deadline = Instant::now() + PATIENCE;
    while !go.wait_timeout(Duration::from_millis(100)) && Instant::now() < deadline {}
    drop(g);
}

/// Finding 3: the kind letter of an unnamed semaphore's handle is the only kind check, so
/// a handle with its letter changed opens a BoundedSemaphore as a plain Semaphore (the
/// docs say it does not), and releases through it drive the bounded value past its bound.
#[test]
fn a_forged_letter_opens_a_bounded_semaphore_as_a_plain_one_and_passes_its_bound() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let sem = BoundedSemaphore::new_in(&arena, 3).unwrap();
    let text = sem.handle().to_string();
    assert!(text.ends_with(":Sb"), "{text}");
    let forged = format!("{}:sb", &text[..text.len() - 3]);
    let a = arena.clone();
    let opened = in_child(move || {
        let h: Handle = forged.parse().unwrap();
        match Semaphore::open_handle(&a, &h) {
            Ok(s) => {
                s.release().unwrap();
                1u32
            }
            Err(_) => 0,
        }
    })
    .unwrap();
    assert_eq!(
        (opened, sem.value()),
        (0, 3),
        "a forged kind letter opened the BoundedSemaphore as a Semaphore; its value {} \
         passed its bound {}",
        sem.value(),
        sem.bound()
    );
}
