//! Regression tests for faults: re-entry overflow, hidden /proc, exhausted descriptors, leaked arenas, damaged segments.
//!
//! Each test reproduces a bug that an attacking review found, and fails on the code that
//! had it.

mod common;

use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::TryLockError;
use std::time::Duration;

use common::{finish, forking, hide_proc, in_child, unique};
use shared_runtime::{Arena, Error, Lock, Process, RLock, RawArray, RawValue};

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Bug 1: a thread holding an `RLock` whose depth reached `u32::MAX` (2³²−1 forgotten
/// re-entrant guards) must not wrap the depth to 0: the next release would unlock under
/// the first, live guard and let a second thread in.
#[test]
fn rlock_reentry_depth_never_wraps() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = RLock::new_in(&arena).unwrap();
    let first = lock.lock().unwrap();
    // SAFETY: this thread holds the lock; the depth is put back to 1 before `first` is
    // dropped, so the guards released never outnumber the acquisitions.
    unsafe { lock.set_depth_for_tests(u32::MAX) }; // as if 2³²−2 guards had been forgotten
    let again = catch_unwind(AssertUnwindSafe(|| lock.lock().map(std::mem::forget)));
    let text = panic_text(&*again.expect_err("re-entry past u32::MAX must be refused"));
    assert!(text.contains("re-entered"), "unexpected panic: {text}");
    // The lock is still this thread's alone.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
        });
    });
    // SAFETY: as above: one level left, the one `first` releases.
    unsafe { lock.set_depth_for_tests(1) };
    drop(first);
    std::thread::scope(|s| {
        s.spawn(|| assert!(lock.try_lock().is_ok(), "released at last"));
    });
}

/// Whether a child can hide `/proc` here; prints why not when it cannot.
fn can_hide_proc() -> bool {
    let ok = in_child(|| hide_proc().unwrap()).is_ok();
    if !ok {
        eprintln!("skipped: this machine cannot give a child a mount namespace with /proc hidden");
    }
    ok
}

/// Bug 2: a waiter that cannot see `/proc` must not take a lock from a live holder (it
/// used to read "no /proc entry" as "dead"). Two processes with `/proc` hidden each hold
/// one `Lock` for 200 ms, twice: their critical sections never overlap.
#[test]
fn hidden_proc_never_lets_two_holders_in() {
    let _serial = forking();
    if !can_hide_proc() {
        return;
    }
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    // [inside, overlaps, entries]
    let state = RawArray::<u32>::zeroed_in(&arena, 3).unwrap();
    Process::scope(|s| {
        let (lock, state) = (&lock, &state);
        let children: Vec<_> = (0..2)
            .map(|_| {
                s.start(move || {
                    hide_proc().unwrap();
                    for _ in 0..2 {
                        let _g = lock.lock().unwrap();
                        if state.get(0) != Some(0) {
                            state.set(1, state.get(1).unwrap() + 1);
                        }
                        state.set(0, 1);
                        state.set(2, state.get(2).unwrap() + 1);
                        std::thread::sleep(Duration::from_millis(200));
                        state.set(0, 0);
                    }
                })
                .unwrap()
            })
            .collect();
        for c in children {
            finish(c).unwrap();
        }
        assert_eq!(state.get(2), Some(4), "every critical section ran");
        assert_eq!(state.get(1), Some(0), "two holders were inside at once");
    });
}

/// Without `/proc`, a dead holder is still recovered: the waiter proves the death with
/// `kill(tid, 0)` and, for a zombie nobody has reaped yet, with a pidfd.
#[test]
fn hidden_proc_still_recovers_a_dead_holder() {
    let _serial = forking();
    if !can_hide_proc() {
        return;
    }
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let held = RawValue::new_in(&arena, 0u32).unwrap();
    Process::scope(|s| {
        let (lock, held) = (&lock, &held);
        let holder = s
            .start(move || {
                let g = lock.lock().unwrap();
                held.set(1);
                std::thread::sleep(Duration::from_secs(60));
                drop(g);
            })
            .unwrap();
        assert!(common::wait_until(|| held.get() == 1));
        holder.kill().unwrap(); // not reaped: a zombie until `finish` below
        in_child(move || {
            hide_proc().unwrap();
            match lock.try_lock_for(Duration::from_secs(20)) {
                Err(TryLockError::Poisoned(_)) => {}
                Err(TryLockError::WouldBlock) => panic!("the dead holder was not recovered"),
                Ok(_) => panic!("recovered without being told of the death"),
            }
        })
        .unwrap();
        let err = finish(holder).unwrap_err();
        assert!(err.to_string().contains("SIGKILL"), "{err}");
    });
}

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn set_nofile(lim: libc::rlimit) {
    // SAFETY: setrlimit reads one rlimit from the struct we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// Lowers the soft descriptor limit so that no descriptor can be opened; returns the old
/// limit.
fn exhaust_descriptors() -> libc::rlimit {
    let saved = nofile();
    let probe = std::fs::File::open("/dev/null").unwrap();
    let lowest_free = std::os::fd::AsRawFd::as_raw_fd(&probe) as libc::rlim_t;
    drop(probe);
    set_nofile(libc::rlimit {
        rlim_cur: lowest_free,
        rlim_max: saved.rlim_max,
    });
    assert!(
        std::fs::File::open("/dev/null").is_err(),
        "descriptors left"
    );
    saved
}

/// Bug 3: a thread that first meets a lock while the process is out of descriptors used
/// to take it under a bare thread id, then compute a different identity later and never
/// release it. Now it cannot take it (a clear error/panic, nothing held), and an identity
/// once established serves the thread for life whatever the descriptor table holds.
#[test]
fn out_of_descriptors_a_lock_is_refused_never_stranded() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let (arena, lock) = (&arena, &lock);
    in_child(move || {
        std::thread::scope(|s| {
            // A fresh thread: no identity established yet.
            s.spawn(|| {
                let saved = exhaust_descriptors();
                let made = Lock::new_in(arena);
                assert!(
                    matches!(made, Err(Error::ThreadIdentity { .. })),
                    "creating a lock with no identity: {made:?}"
                );
                let taken = catch_unwind(AssertUnwindSafe(|| lock.lock().map(|_| ())));
                set_nofile(saved);
                let text = panic_text(&*taken.expect_err("acquired without an identity"));
                assert!(text.contains("identity"), "unexpected panic: {text}");
            })
            .join()
            .unwrap();
            // Nothing is held: another thread takes and releases the lock at once.
            s.spawn(|| assert!(lock.try_lock_for(Duration::from_secs(5)).is_ok()))
                .join()
                .unwrap();
            // A thread whose identity is established keeps it when descriptors run out.
            s.spawn(|| {
                drop(lock.lock().unwrap());
                let saved = exhaust_descriptors();
                let g = lock.lock().unwrap();
                drop(g);
                set_nofile(saved);
                std::thread::scope(|s2| {
                    s2.spawn(|| {
                        let other = lock.try_lock_for(Duration::from_secs(5));
                        assert!(other.is_ok(), "the lock was stranded");
                    });
                });
            })
            .join()
            .unwrap();
        });
    })
    .unwrap();
}

/// Bug 4: handing an object over with `into_offset`/`into_handle` used to forget the
/// arena handle inside it, so a named segment was never unlinked by its creator.
#[test]
fn handing_over_releases_the_arena() {
    for via_handle in [false, true] {
        let name = unique("handover");
        let arena = Arena::create_segment(&name, 1 << 20).unwrap();
        let v = RawValue::new_in(&arena, 5u64).unwrap();
        if via_handle {
            v.into_handle().unwrap();
        } else {
            let offset = v.into_offset().unwrap();
            assert_eq!(
                RawValue::<u64>::from_offset_in(&arena, offset)
                    .unwrap()
                    .get(),
                5
            );
        }
        drop(arena);
        assert!(
            matches!(Arena::open_segment(&name), Err(Error::NotFound { .. })),
            "the creator's last handle is gone but the segment is still there (handle: {via_handle})"
        );
    }
}

/// Bug 5: the allocator's lock lives in the segment; a glibc robust mutex there kept
/// robust-list links that glibc followed in the opener's address space. Every word of the
/// header is overwritten, by a writer outside this crate, with garbage and with plausible
/// addresses; an opener in a child process must then get values or errors: never a crash,
/// a hang or a non-zero exit.
#[test]
fn garbage_in_the_header_never_crashes_an_opener() {
    let _serial = forking();
    let name = unique("garbage");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let keep: Vec<_> = (0..8)
        .map(|i| RawArray::<u8>::zeroed_in(&arena, 64 * i + 8).unwrap())
        .collect();
    let (lock_at, _, heap_start) = shared_runtime::test_hooks::layout_for_tests();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    let mut pristine = vec![0u8; heap_start as usize];
    file.read_exact_at(&mut pristine, 0).unwrap();
    let local = 0u64;
    let stack_address = std::ptr::addr_of!(local) as u64;
    let patterns = [0, u64::MAX, 0x4141_4141_4141_4141, stack_address, 1 << 20];
    let (mut opened, mut refused) = (0u32, 0u32);
    let outcome = RawArray::<u8>::zeroed_in(Arena::global(), 1).unwrap();
    for at in (0..heap_start as usize).step_by(8) {
        for pattern in patterns {
            file.write_all_at(&pristine, 0).unwrap();
            file.write_all_at(&pattern.to_le_bytes(), at as u64)
                .unwrap();
            let (name, outcome) = (&name, &outcome);
            if let Err(e) = in_child(move || {
                Arena::set_allocator_patience(Duration::from_millis(200));
                let Ok(a) = Arena::open_segment(name) else {
                    outcome.set(0, 2);
                    return;
                };
                outcome.set(0, 1);
                let _ = a.check();
                let _ = a.stats();
                let _ = a.names();
                if let Ok(v) = RawArray::<u8>::zeroed_in(&a, 100) {
                    v.set(99, 7);
                    drop(v);
                }
                let _ = a.reclaim_dead();
            }) {
                panic!("word at {at} (lock at {lock_at}) = {pattern:#x}: the opener failed: {e}");
            }
            match outcome.get(0) {
                Some(1) => opened += 1,
                Some(2) => refused += 1,
                other => panic!("no outcome recorded: {other:?}"),
            }
        }
    }
    file.write_all_at(&pristine, 0).unwrap();
    assert!(
        opened > 0 && refused > 0,
        "opened {opened}, refused {refused}"
    );
    arena.check().unwrap();
    drop(keep);
}

/// A lock word naming a live thread that will never release (garbage that happens to name
/// one, here `init`'s main thread) makes allocator operations fail after the patience with
/// `Error::AllocatorBusy`, instead of waiting forever or taking the lock.
#[test]
fn a_lock_word_naming_a_live_stranger_is_an_error_not_a_hang() {
    let _serial = forking();
    let name = unique("stranger");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let (lock_at, lock_len, _) = shared_runtime::test_hooks::layout_for_tests();
    assert_eq!(lock_len, 8);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    file.write_all_at(&1u64.to_le_bytes(), lock_at as u64)
        .unwrap(); // thread 1, unstamped
    let name = &name;
    in_child(move || {
        Arena::set_allocator_patience(Duration::from_millis(300));
        let a = Arena::open_segment(name).unwrap();
        let err = RawValue::new_in(&a, 1u8).unwrap_err();
        assert!(
            matches!(err, Error::AllocatorBusy { holder: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("thread 1 "), "{err}");
    })
    .unwrap();
    file.write_all_at(&0u64.to_le_bytes(), lock_at as u64)
        .unwrap();
    arena.check().unwrap();
}
