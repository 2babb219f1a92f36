//! Second attacking review: pid/time namespaces (`arena/namespace.rs`, `sys/procfs.rs`),
//! children made without libc's fork (`sys/process.rs`), and `Arena::try_global`. Each
//! test states what the design promises and fails on the current code.
//!
//! They need root (or a user namespace) for the namespace tests; a test that cannot set up
//! its namespace says so on stderr and passes.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::probe::{describe, outcome, SKIPPED, WOULD_BLOCK};
use common::{finish, forking, hide_proc, in_child, unshare_or_userns, wait_until};
use shared_runtime::{Arena, Error, Lock, Process, RLock, RawArray, RawValue};

/// The calling process's start time (field 22 of `/proc/self/stat`), as this process's
/// time namespace shows it.
fn my_start_time() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = s.rsplit(')').next().unwrap();
    rest.split_ascii_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

fn wait_pid(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    // SAFETY: waits for a child of this process.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    status
}

/// Finding A (two holders): identities are unique only within one pid namespace, and the
/// single FOREIGN bit does not say *which* foreign namespace. Pid 1 of a child pid namespace
/// N1 and pid 1 of a namespace N2 nested in it (or of a sibling namespace) that started in
/// the same clock tick (10 ms) write the same identity `1 | FOREIGN | stamp`. The second
/// one's `RLock::try_lock` then sees "this thread already holds it" and re-enters a lock
/// the first one holds; its allocator calls see "the allocator's lock names this thread".
#[test]
fn pid1s_of_two_foreign_pidns_never_both_hold_an_rlock() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    // [start of N1's pid 1, start of N2's pid 1, try_lock outcome, stats outcome]
    let st = RawArray::<u64>::zeroed_in(&arena, 4).unwrap();
    for _attempt in 0..20 {
        for i in 0..4 {
            st.set(i, 0);
        }
        let lock = RLock::new_in(&arena).unwrap();
        let (arena_ref, lock_ref, st) = (&arena, &lock, &st);
        in_child(move || {
            if !unshare_or_userns(libc::CLONE_NEWPID) {
                st.set(2, SKIPPED);
                return;
            }
            Process::scope(|s| {
                s.start(move || {
                    // pid 1 of N1.
                    let g = lock_ref.lock().unwrap();
                    arena_ref.hold_allocator_lock_for_tests().unwrap();
                    if !unshare_or_userns(libc::CLONE_NEWPID) {
                        st.set(2, SKIPPED);
                        return;
                    }
                    Process::scope(|s2| {
                        let a2 = s2
                            .start(move || {
                                // pid 1 of N2.
                                st.set(1, my_start_time());
                                st.set(2, outcome(lock_ref.try_lock(), false));
                                Arena::set_allocator_patience(Duration::from_millis(200));
                                st.set(
                                    3,
                                    match arena_ref.stats() {
                                        Ok(_) => 10,
                                        Err(Error::AllocatorBusy { .. }) => 11,
                                        Err(Error::Corrupted(_)) => 12,
                                        Err(_) => 13,
                                    },
                                );
                            })
                            .unwrap();
                        st.set(0, my_start_time());
                        a2.join().unwrap();
                    });
                    // SAFETY: taken above by this thread.
                    unsafe { arena_ref.release_allocator_lock_for_tests() };
                    drop(g);
                })?
                .join()
            })
            .unwrap();
        })
        .unwrap();
        if st.get(2) == Some(SKIPPED) {
            eprintln!("skipped: no pid namespace");
            return;
        }
        if st.get(0) != st.get(1) {
            continue; // different clock ticks: different stamps, try again
        }
        let (got, stats) = (st.get(2).unwrap(), st.get(3).unwrap());
        assert!(
            got == WOULD_BLOCK && stats == 11,
            "pid 1 of a nested pid namespace, started in the same tick as pid 1 of its \
             parent namespace (which holds the RLock and the allocator lock), got {} from \
             try_lock and {} from stats()",
            describe(got),
            match stats {
                10 => "Ok (allocator lock taken while held)",
                12 => "Error::Corrupted (\"names this thread as its holder\")",
                _ => "another error",
            }
        );
        return;
    }
    eprintln!("inconclusive: no attempt started both pid 1s in one clock tick");
}

/// Finding B (two holders): `/proc/self/timens_offsets` shows the offsets of
/// `time_for_children`, not of the reader's own time namespace. A process that called
/// `unshare(CLONE_NEWTIME)` itself (and set an offset for its future children) stays in
/// the old namespace, yet subtracts its children's boottime offset from every start time
/// it reads: every live holder's stamp "differs", so it takes their locks. Here the
/// process is a raw-`fork` child (so its caches are renewed lazily, after the unshare);
/// a program that unshares in `main` before using the crate is in the same position.
#[test]
fn a_process_that_unshared_a_time_namespace_never_takes_a_live_lock() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let out = RawValue::new_in(&arena, 0u64).unwrap();
    let g = lock.lock().unwrap(); // this live thread holds it throughout
    let (lock_ref, out_ref) = (&lock, &out);
    in_child(move || {
        // SAFETY: a raw fork of a single-threaded process; the child leaves with _exit.
        let pid = unsafe { libc::syscall(libc::SYS_fork) } as libc::pid_t;
        if pid == 0 {
            let ok = unshare_or_userns(libc::CLONE_NEWTIME)
                && std::fs::write("/proc/self/timens_offsets", "boottime 100000 0\n").is_ok();
            let got = if ok {
                outcome(lock_ref.try_lock_for(Duration::from_millis(300)), true)
            } else {
                SKIPPED
            };
            out_ref.set(got);
            // SAFETY: leave at once.
            unsafe { libc::_exit(0) }
        }
        wait_pid(pid);
    })
    .unwrap();
    let got = out.get();
    drop(g);
    if got == SKIPPED {
        eprintln!("skipped: no time namespace");
        return;
    }
    assert_eq!(
        got,
        WOULD_BLOCK,
        "a process that unshared (but did not enter) a time namespace got {} while this \
         thread holds the lock",
        describe(got)
    );
}

/// Finding B': the boottime offset is cached per process and renewed only after fork, but
/// `setns(fd, CLONE_NEWTIME)` moves a (single-threaded) process into another time
/// namespace: the cached offset (0) is stale, every start time it reads is shifted, and
/// it takes live holders' locks.
#[test]
fn a_process_that_setns_into_a_time_namespace_never_takes_a_live_lock() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    // [pid of a process in the shifted time namespace (or SKIPPED), stop, outcome]
    let st = RawArray::<u64>::zeroed_in(&arena, 3).unwrap();
    let g = lock.lock().unwrap(); // this live thread holds it throughout
    Process::scope(|s| {
        let (lock_ref, st) = (&lock, &st);
        let ns_owner = s
            .start(move || {
                let ok = unshare_or_userns(libc::CLONE_NEWTIME)
                    && std::fs::write("/proc/self/timens_offsets", "boottime 100000 0\n").is_ok();
                if !ok {
                    st.set(0, SKIPPED);
                    return;
                }
                Process::scope(|s| {
                    s.start(move || {
                        st.set(0, u64::from(std::process::id()));
                        while st.get(1) != Some(1) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })?
                    .join()
                })
                .unwrap();
            })
            .unwrap();
        assert!(wait_until(|| st.get(0) != Some(0)));
        let target = st.get(0).unwrap();
        let mut got = SKIPPED;
        if target != SKIPPED {
            in_child(move || {
                let path = format!("/proc/{target}/ns/time");
                let fd = std::fs::File::open(path).unwrap();
                // SAFETY: setns on a descriptor we own; this process is single-threaded.
                let rc = unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::CLONE_NEWTIME)
                };
                if rc != 0 {
                    st.set(2, SKIPPED);
                    return;
                }
                st.set(
                    2,
                    outcome(lock_ref.try_lock_for(Duration::from_millis(300)), true),
                );
            })
            .unwrap();
            got = st.get(2).unwrap();
        }
        st.set(1, 1);
        finish(ns_owner).unwrap();
        drop(g);
        if got == SKIPPED {
            eprintln!("skipped: no time namespace / setns");
            return;
        }
        assert_eq!(
            got,
            WOULD_BLOCK,
            "a process that setns()'d into a time namespace got {} while this thread holds the \
         lock",
            describe(got)
        );
    })
}

/// Finding C (use after free of a live process's objects): `Arena::reclaim_dead` asks
/// `foreign()` -> `pid_namespace()` BEFORE anything calls `renew_if_forked`, so a child
/// made by a raw `clone(CLONE_NEWPID)` (how namespace tools start their children; no
/// `pthread_atfork` handler runs) reads its parent's cached pid namespace, thinks it is
/// not foreign, and then proves every owner dead (`kill(pid, 0)` is ESRCH in its new
/// namespace): it frees the objects of the live test process.
#[test]
fn a_raw_clone_newpid_child_never_reclaims_a_live_processs_objects() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let scratch = Arena::with_capacity(1 << 16).unwrap();
    let mine = RawValue::new_in(&arena, 42u64).unwrap(); // owned by this live process
    let reclaimed = RawValue::new_in(&scratch, 0u64).unwrap();
    let (arena_ref, out) = (&arena, &reclaimed);
    in_child(move || {
        arena_ref.stats().unwrap(); // caches this process's pid namespace, as any use does
                                    // SAFETY: a fork-like clone of a single-threaded process into a new pid namespace;
                                    // the child leaves with _exit.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWPID | libc::SIGCHLD,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        } as libc::pid_t;
        if pid == 0 {
            let n = arena_ref.reclaim_dead().map_or(u64::MAX, |r| r.objects);
            out.set(n);
            // SAFETY: leave at once.
            unsafe { libc::_exit(0) }
        }
        if pid < 0 {
            out.set(SKIPPED + 1000);
            return;
        }
        wait_pid(pid);
    })
    .unwrap();
    let n = reclaimed.get();
    if n == SKIPPED + 1000 {
        eprintln!("skipped: no clone(CLONE_NEWPID)");
        return;
    }
    assert_eq!(
        n,
        0,
        "reclaim_dead in a raw clone(CLONE_NEWPID) child freed {n} object(s) of the live \
         test process (its value now reads {})",
        mine.get()
    );
}

/// Finding C': same stale `pid_namespace()` read in `header::validate`: a raw
/// `clone(CLONE_NEWPID)` child whose first call is `open_segment` opens an arena of another
/// pid namespace, which `open_segment` promises to refuse.
#[test]
fn a_raw_clone_newpid_child_cannot_open_a_named_arena() {
    let _serial = forking();
    let name = format!("shr-review2-pidns-{}", std::process::id());
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let scratch = Arena::with_capacity(1 << 16).unwrap();
    let out = RawValue::new_in(&scratch, 0u64).unwrap(); // 1 opened, 2 refused
    let (name_ref, out_ref) = (&name, &out);
    in_child(move || {
        let _ = Arena::open_segment(name_ref).unwrap(); // caches the pid namespace
                                                        // SAFETY: as in the test above.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWPID | libc::SIGCHLD,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        } as libc::pid_t;
        if pid == 0 {
            out_ref.set(if Arena::open_segment(name_ref).is_ok() {
                1
            } else {
                2
            });
            // SAFETY: leave at once.
            unsafe { libc::_exit(0) }
        }
        if pid < 0 {
            out_ref.set(SKIPPED);
            return;
        }
        wait_pid(pid);
    })
    .unwrap();
    drop(arena);
    let _ = Arena::remove_segment(&name);
    let got = out.get();
    if got == SKIPPED {
        eprintln!("skipped: no clone(CLONE_NEWPID)");
        return;
    }
    assert_eq!(
        got, 2,
        "a raw clone(CLONE_NEWPID) child opened a named arena of another pid namespace"
    );
}

/// Finding D (two holders): an arena created where `/proc` cannot be read records
/// `creator_pidns = 0`, so nobody is ever foreign to it; a child forked into a new pid
/// namespace then "proves" the live creator thread dead (`kill(tid, 0)` is ESRCH in its
/// namespace) and takes its lock. (Same with a creator that has `/proc` and a pidns child
/// that has none: `pid_namespace()` is `None`, taken as "same namespace".)
#[test]
fn a_pidns_child_never_takes_a_lock_of_a_creator_without_proc() {
    let _serial = forking();
    let scratch = Arena::with_capacity(1 << 16).unwrap();
    let out = RawValue::new_in(&scratch, 0u64).unwrap();
    let out_ref = &out;
    in_child(move || {
        if let Err(e) = hide_proc() {
            eprintln!("cannot hide /proc: {e}");
            out_ref.set(SKIPPED);
            return;
        }
        let arena = Arena::with_capacity(1 << 20).unwrap(); // creator_pidns = 0
        let lock = Lock::new_in(&arena).unwrap();
        let g = lock.lock().unwrap(); // this live thread holds it throughout
        if !unshare_or_userns(libc::CLONE_NEWPID) {
            out_ref.set(SKIPPED);
            return;
        }
        let lock_ref = &lock;
        Process::scope(|s| {
            s.start(move || out_ref.set(outcome(lock_ref.try_lock(), true)))?
                .join()
        })
        .unwrap();
        drop(g);
    })
    .unwrap();
    let got = out.get();
    if got == SKIPPED {
        eprintln!("skipped: no mount/pid namespace");
        return;
    }
    assert_eq!(
        got,
        WOULD_BLOCK,
        "a child in a new pid namespace got {} while its parent (creator without /proc) \
         holds the lock",
        describe(got)
    );
}

/// Runs in a `clone(CLONE_VM | CLONE_VFORK)` child (what `vfork`/`posix_spawn` make) on
/// the parent thread's TLS: touches a lock once and leaves.
extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `&Lock` passed by `vfork_touch`, alive while the parent waits.
    let lock = unsafe { &*arg.cast::<Lock>() };
    drop(lock.try_lock());
    // SAFETY: leave at once, without touching the shared stdio.
    unsafe { libc::_exit(0) }
}

fn vfork_touch(lock: &Lock) {
    let mut stack = vec![0u8; 256 * 1024];
    // SAFETY: the stack top of a buffer we own, 16-aligned.
    let top = unsafe { stack.as_mut_ptr().add(stack.len()) } as usize & !15;
    // SAFETY: CLONE_VFORK suspends this thread until the child has exited, so `stack` and
    // `lock` outlive it.
    let pid = unsafe {
        libc::clone(
            vfork_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (lock as *const Lock).cast_mut().cast(),
        )
    };
    assert!(pid > 0, "clone failed");
    wait_pid(pid);
}

/// Finding E (two holders, needs code in a vfork child): the wipe-on-fork page is shared,
/// not wiped, with a `CLONE_VM` child, and so is the parent thread's TLS. A vfork child
/// that runs crate code while the parent thread's identity is not established yet
/// establishes it with ITS tid and start time; the parent thread then holds locks under the
/// dead child's identity, and any waiter "proves" it dead.
#[test]
fn a_vfork_child_never_hands_its_identity_to_the_parent_thread() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let st = RawArray::<u64>::zeroed_in(&arena, 2).unwrap(); // [held, stop]
    Process::scope(|s| {
        let (lock_ref, st) = (&lock, &st);
        let child = s
            .start(move || {
                std::thread::scope(|s| {
                    s.spawn(|| {
                        // A fresh thread: no identity yet.
                        vfork_touch(lock_ref);
                        let g = lock_ref.lock().unwrap();
                        st.set(0, 1);
                        while st.get(1) != Some(1) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        drop(g);
                    });
                });
            })
            .unwrap();
        assert!(wait_until(|| st.get(0) == Some(1)));
        let got = outcome(lock.try_lock_for(Duration::from_millis(300)), true);
        st.set(1, 1);
        finish(child).unwrap();
        assert_eq!(
            got,
            WOULD_BLOCK,
            "this thread got {} while a live thread (which once made a vfork child) holds the \
         lock",
            describe(got)
        );
    })
}

/// The role of a re-executed copy of this binary in
/// `a_fork_during_global_creation_never_hangs_the_child`.
const GLOBAL_FORK_ROLE: &str = "SHR_REVIEW2_GLOBAL_FORK";

#[test]
#[ignore = "helper, run by a_fork_during_global_creation_never_hangs_the_child"]
fn global_fork_helper() {
    if std::env::var_os(GLOBAL_FORK_ROLE).is_none() {
        return;
    }
    // A fresh process: the global arena does not exist yet.
    static GO: AtomicBool = AtomicBool::new(false);
    let creator = std::thread::spawn(|| {
        GO.store(true, Ordering::SeqCst);
        Arena::try_global().unwrap();
    });
    while !GO.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    // SAFETY: the child only calls the crate and leaves with _exit; alarm() ends it if
    // it hangs.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(3) };
        let code = if Arena::try_global().is_ok() { 0 } else { 1 };
        // SAFETY: leave at once.
        unsafe { libc::_exit(code) }
    }
    let status = wait_pid(pid);
    creator.join().unwrap();
    let hung = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM;
    println!("GLOBAL-FORK-RESULT {}", if hung { "hung" } else { "ok" });
}

/// Finding F (hang): `Arena::try_global` creates the global arena under a process-private
/// `Mutex`. A `fork()` (libc's, by any thread of the program) while another thread is
/// creating it leaves the child with that mutex locked by a thread that does not exist
/// there: the child's first constructor (every `new`, `Process::start`) blocks forever.
#[test]
fn a_fork_during_global_creation_never_hangs_the_child() {
    let exe = std::env::current_exe().unwrap();
    let (mut hung, mut runs) = (0, 0);
    for _ in 0..30 {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "global_fork_helper",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(GLOBAL_FORK_ROLE, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("GLOBAL-FORK-RESULT hung") {
            hung += 1;
        }
        if text.contains("GLOBAL-FORK-RESULT") {
            runs += 1;
        }
        if hung > 0 {
            break;
        }
    }
    assert!(runs > 0, "the helper never reported");
    assert_eq!(
        hung, 0,
        "a child forked while another thread created the global arena blocked forever in \
         Arena::try_global ({hung} of {runs} runs; killed by SIGALRM after 3 s)"
    );
}
