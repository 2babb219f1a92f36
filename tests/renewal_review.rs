//! Reproducers kept from the attacking review of the renewal of a child made by a raw
//! `fork`; every wait is bounded.
//!
//! - A second thread of the child that used a lock while the renewing thread was between
//!   publishing the renewed word and storing the child's pid copied the parent's pid for
//!   good. The pid and the process-wide caches are now the child's before the word is
//!   published.
//! - A thread of a child whose map of opened objects was held at the fork, using the map
//!   during the renewal, spun forever on a lock no thread of the child would release. The
//!   map is now known broken before the renewal is published (other threads wait for it),
//!   and the map's spin lock gives up once the map is known broken.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::raw_fork;
use common::seccomp::exit_now as exit;

use common::reap;

use shared_runtime::Lock;

static IN_HANDLER: AtomicBool = AtomicBool::new(false);
static B_DONE: AtomicBool = AtomicBool::new(false);
static A_PID: AtomicU32 = AtomicU32::new(0);

/// SIGSYS from the filter below, on the original thread only (the filter is installed
/// there after the second thread started): the first time (the `getpid` between the wipe
/// word's store and `PID`'s), waits until the second thread has locked, as if the original
/// thread had been preempted there; every time, answers `getpid` with the pid.
extern "C" fn on_trapped_getpid(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if !IN_HANDLER.swap(true, Ordering::SeqCst) {
        // At most half a second (clock_gettime is async-signal-safe).
        let start = Instant::now();
        while !B_DONE.load(Ordering::SeqCst) && start.elapsed() < Duration::from_millis(500) {
            std::hint::spin_loop();
        }
    }
    // SAFETY: the kernel passes the interrupted context; rax is the system call's result.
    unsafe {
        let uc = ctx.cast::<libc::ucontext_t>();
        (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = i64::from(A_PID.load(Ordering::SeqCst));
    }
}

/// On the calling thread only: `getpid` traps (SIGSYS), everything else runs.
fn trap_getpid_on_this_thread() {
    // SAFETY: installs this test's handler for SIGSYS (async-signal-safe: atomics and the
    // interrupted context only).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_trapped_getpid as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()), 0);
    }
    common::seccomp::filter(libc::SYS_getpid, None, libc::SECCOMP_RET_TRAP);
}

/// Two threads of a raw-fork child race: the original thread starts the renewal
/// (`refresh_pid_in_child` stores the wipe word *before* it stores `PID`, with a `getpid`
/// system call in between); a second thread that loads the word in that window sees a
/// renewed word of the new generation, empties its caches, notes the new generation in
/// `CACHES_OF`, and then copies the *parent's* pid from the static `PID` into `PID_HERE`
/// (`first_pid` has no `vforked` check, unlike the TID and IDENTITY caches). Since its
/// `CACHES_OF` is current, nothing ever empties that copy again: every lock that thread
/// takes records the parent's pid as owner for the rest of the child's life.
///
/// The interleaving is made deterministic by trapping the original thread's `getpid`
/// (seccomp, SIGSYS) and holding it there, as a preemption at that point would.
#[test]
fn raw_fork_child_thread_racing_the_renewal_caches_parents_pid() {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    let other = Lock::new().unwrap();
    drop(lock.lock().unwrap());
    let pid = raw_fork();
    if pid == 0 {
        // SAFETY: getpid, before the filter exists.
        A_PID.store(
            unsafe { libc::syscall(libc::SYS_getpid) } as u32,
            Ordering::SeqCst,
        );
        let l2 = lock.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            while !IN_HANDLER.load(Ordering::SeqCst) {
                if start.elapsed() > Duration::from_secs(5) {
                    exit(98);
                }
                std::hint::spin_loop();
            }
            // First use of the crate on this thread, while the original thread is held
            // between the wipe word's store and PID's.
            drop(l2.lock().unwrap());
            B_DONE.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            // Long after every renewal is over: what does this thread record?
            let g = l2.lock().unwrap();
            let recorded = l2.state().holder.and_then(|h| h.pid);
            drop(g);
            recorded
        });
        trap_getpid_on_this_thread();
        drop(other.lock().unwrap()); // the original thread renews
        let recorded = t.join().unwrap_or(None);
        let me = A_PID.load(Ordering::SeqCst) as i32;
        // SAFETY: getppid takes nothing.
        let parent = unsafe { libc::getppid() };
        exit(if recorded == Some(me) {
            0
        } else if recorded == Some(parent) {
            1
        } else {
            2
        });
    }
    assert_eq!(
        reap(pid),
        0,
        "a thread of a raw-fork child recorded its parent's pid as holder for good"
    );
}

static B_TID: AtomicU32 = AtomicU32::new(0);

fn thread_state(tid: u32) -> Option<u8> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let after = s.rfind(')')?;
    s.as_bytes().get(after + 2).copied()
}

/// A raw-fork child whose map was held at the fork by a thread that does not exist in it
/// (so `BROKEN` must be set and every use refused): the renewing thread stores the wipe
/// word first and sets `BROKEN` last (`renew_raw_child`: `refresh_pid_in_child`, then
/// `after_raw_fork`). A second thread of the child that uses the map in between sees a
/// renewed word, `BROKEN` still false, and waits in `take()` for a lock nobody will ever
/// release: it spins forever, even after `BROKEN` is set. (The renewing thread is held
/// in between by trapping its `getpid`, as a preemption there would.)
#[test]
fn raw_fork_child_with_held_map_hangs_a_thread_using_it_during_the_renewal() {
    let _f = common::forking();
    use shared_runtime::{Arena, RawValue, Value};
    let a = Arena::with_capacity(1 << 22).unwrap();
    let busy_arena = Arena::with_capacity(1 << 22).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(Value::new_in(&busy_arena, 0u64).unwrap());
            }
        })
    };
    let other = Lock::new().unwrap();
    let mut codes = Vec::new();
    let mut verdict = None;
    for _ in 0..500 {
        let pid = raw_fork();
        if pid == 0 {
            // SAFETY: getpid, before the filter exists.
            A_PID.store(
                unsafe { libc::syscall(libc::SYS_getpid) } as u32,
                Ordering::SeqCst,
            );
            let a2 = a.clone();
            let _t = std::thread::spawn(move || {
                // SAFETY: gettid takes nothing.
                B_TID.store(
                    unsafe { libc::syscall(libc::SYS_gettid) } as u32,
                    Ordering::SeqCst,
                );
                let start = Instant::now();
                while !IN_HANDLER.load(Ordering::SeqCst) {
                    if start.elapsed() > Duration::from_secs(5) {
                        exit(96);
                    }
                    std::hint::spin_loop();
                }
                let _ = Value::new_in(&a2, 0u64);
                B_DONE.store(true, Ordering::SeqCst);
            });
            while B_TID.load(Ordering::SeqCst) == 0 {
                std::hint::spin_loop();
            }
            trap_getpid_on_this_thread();
            drop(other.lock().unwrap()); // the original thread renews
            let name = format!("rvfixprobe-{}", A_PID.load(Ordering::SeqCst));
            match a.create::<RawValue<u8>>(&name, 0) {
                Ok(_) => exit(10), // the map was not held at the fork: try again
                Err(shared_runtime::Error::Corrupted(_)) => {}
                Err(_) => exit(20),
            }
            let start = Instant::now();
            while !B_DONE.load(Ordering::SeqCst) {
                if start.elapsed() > Duration::from_secs(2) {
                    // Spinning in `take()` (running/yielding), or blocked on something else
                    // (a lock of malloc's copied held: not this finding).
                    exit(match thread_state(B_TID.load(Ordering::SeqCst)) {
                        Some(b'R') => 1,
                        _ => 97,
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            exit(0);
        }
        let code = reap(pid);
        codes.push(code);
        if code == 10 || code == 97 || code == 255 {
            continue;
        }
        verdict = Some(code);
        break;
    }
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    let tail: Vec<_> = codes.iter().rev().take(8).collect();
    let verdict = verdict.unwrap_or_else(|| panic!("never forked with the map held: {tail:?}"));
    assert_eq!(
        verdict,
        0,
        "a thread of a broken-map raw-fork child spins forever waiting for the map's lock \
         (code {verdict}; tries {:?})",
        codes.len()
    );
}
