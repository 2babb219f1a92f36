//! Regression tests from an attacking review of the plain-store release of object locks
//! (`sys/counted_lock.rs`): lost wake-ups through the WOKEN bit, garbage in the sleeper
//! word, killed sleepers. Each of the first three failed on the reviewed code. A lost
//! wake-up is seen, without a timing assertion where the sleeper is ours, by the test hook
//! `lock_free_timeouts`: a sleep that ran into its timeout and found the lock free. Every
//! wait is bounded, and every test holds `forking()`: the counters are the process's, and
//! one test strands a sleeper on purpose. The `ptrace` tests skip, saying so, where tracing
//! is not permitted.

mod common;

use std::time::{Duration, Instant};

use common::forking;
use shared_runtime::test_hooks::{
    end_failed_wake_for_tests, lock_free_timeouts, lock_sleeps, peek_for_tests, poke_for_tests,
};
use shared_runtime::{Arena, Lock, Process, Value};

const WOKEN: u64 = 1 << 31;
/// Word 2 of a lock cell: sleepers (low half), poison (high half).
const SLEEPERS_WORD: usize = 2;

fn peek(a: &Arena, off: u64) -> u64 {
    peek_for_tests(a, off, SLEEPERS_WORD).unwrap()
}
fn poke(a: &Arena, off: u64, v: u64) {
    // SAFETY: the lock cell's words are atomics; nothing non-atomic is referenced.
    unsafe { poke_for_tests(a, off, SLEEPERS_WORD, v) }.unwrap();
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The interleaving (all steps are the library's own, reproduced here on the shared word):
/// release R_prev (of an earlier holder) is in `CountedLock::wake`: it set WOKEN and its
/// `futex_wake_one` found nobody queued yet (sleeper B was between its membarrier and
/// FUTEX_WAIT), and its thread is preempted at the system call's return, before it clears
/// WOKEN. B now sleeps on holder C. C releases: it sees WOKEN set and skips its wake-up.
/// R_prev resumes (the library's own code, through a test hook): it clears WOKEN and, B
/// being counted, wakes it. The reviewed code only cleared WOKEN: B slept its whole POLL
/// on a free lock.
#[test]
fn woken_bit_of_a_failed_wake_strands_a_sleeper() {
    // The sleep counters are the process's: no other test of this file runs meanwhile.
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let off = lock.handle().offset;
    let g = lock.lock().unwrap(); // C holds
    let free0 = lock_free_timeouts();
    std::thread::scope(|s| {
        let b = s.spawn(|| lock.try_lock_for(Duration::from_secs(5)).is_ok());
        // B counted (and asleep).
        assert!(common::wait_until(|| peek(&arena, off) & 0x7fff_ffff == 1));
        std::thread::sleep(Duration::from_millis(5));
        // R_prev: fetch_or(WOKEN); futex_wake_one -> nobody (B was not queued yet); preempted.
        let w = peek(&arena, off);
        poke(&arena, off, w | WOKEN);
        // C releases: skips its wake-up (WOKEN is set).
        drop(g);
        // R_prev resumes.
        std::thread::sleep(Duration::from_millis(1));
        end_failed_wake_for_tests(&arena, off).unwrap();
        assert!(b.join().unwrap(), "B never took the lock");
    });
    assert_eq!(
        lock_free_timeouts() - free0,
        0,
        "B slept until its timeout on a free lock: lost wake-up"
    );
    assert_eq!(
        peek(&arena, off) & 0xffff_ffff,
        0,
        "sleeper word left dirty"
    );
}

/// Garbage 0xFFFF_FFFF in the sleeper word (count 2^31-1 with WOKEN): on the reviewed code
/// each sleeper's fetch_add wrapped it to 0 (it slept uncounted) and its fetch_sub restored
/// it, so every contended acquisition by a lone waiter cost a whole POLL, forever. Now the
/// first waiter repairs it. Also 0x7FFF_FFFF (an increment would carry into WOKEN).
#[test]
fn garbage_sleeper_word_costs_a_poll_per_wait_forever() {
    // The sleep counters are the process's: no other test of this file runs meanwhile.
    let _f = forking();
    for garbage in [0xFFFF_FFFF, 0x7FFF_FFFF] {
        let arena = Arena::with_capacity(1 << 20).unwrap();
        let lock = Lock::new_in(&arena).unwrap();
        let off = lock.handle().offset;
        poke(&arena, off, garbage);
        let free0 = lock_free_timeouts();
        for _ in 0..5 {
            let g = lock.lock().unwrap();
            std::thread::scope(|s| {
                let b = s.spawn(|| lock.try_lock_for(Duration::from_secs(5)).is_ok());
                // B is counted (after the repair) before C releases.
                assert!(common::wait_until(|| peek(&arena, off) & 0x7fff_ffff == 1));
                std::thread::sleep(Duration::from_millis(5));
                drop(g);
                assert!(b.join().unwrap(), "B never took the lock");
            });
        }
        let stalls = lock_free_timeouts() - free0;
        let word = peek(&arena, off) & 0xffff_ffff;
        eprintln!("garbage {garbage:#x}: {stalls} sleeps on a free lock, word now {word:#x}");
        assert_eq!(word, 0, "the garbage never healed");
        assert_eq!(stalls, 0, "sleeps ran into their timeout on a free lock");
    }
}

/// Killed sleepers raise the count for good, one each; a count pushed near the top of its
/// bits (as by very many kills, or garbage) is taken for damage by the next waiter, never
/// carried into WOKEN.
#[test]
fn raised_count_never_carries_into_woken() {
    // The sleep counters are the process's: no other test of this file runs meanwhile.
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let off = lock.handle().offset;
    for raised in [
        3u64,
        1 << 22,
        (1 << 22) + 1,
        0x7FFF_FFFE,
        WOKEN | 0x7FFF_FFFE,
    ] {
        poke(&arena, off, raised);
        let g = lock.lock().unwrap();
        std::thread::scope(|s| {
            let b = s.spawn(|| lock.try_lock_for(Duration::from_secs(5)).is_ok());
            // Counted: raised + 1 if sane, else repaired to 1; WOKEN never from a carry.
            let want = if raised & 0x7fff_ffff <= 1 << 22 {
                (raised & 0x7fff_ffff) + 1
            } else {
                1
            };
            assert!(
                common::wait_until(|| peek(&arena, off) & 0x7fff_ffff == want),
                "count {:#x} after a waiter joined {raised:#x}",
                peek(&arena, off) & 0xffff_ffff
            );
            drop(g);
            assert!(b.join().unwrap());
        });
        let left = peek(&arena, off) & 0xffff_ffff;
        let want = if raised & 0x7fff_ffff <= 1 << 22 {
            raised & 0x7fff_ffff
        } else {
            0
        };
        assert_eq!(left & 0x7fff_ffff, want, "after {raised:#x}");
    }
}

/// A stress test: children contend on a Value. Measured with timestamps (printed only: a
/// loaded machine makes them too): a wait of >= 50 ms whose lock sat free >= 25 ms before
/// the waiter got it (previous holder's release timestamp). Checked: sleeps that ran into
/// their timeout on a free lock (the `lock_free_timeouts` hook; 1 in 200 sleeps allowed for
/// a release within microseconds of a timeout). With `leak`, a sleeper is SIGKILLed first
/// (count left at 1), which makes every release go through `wake()`.
fn stress(leak: bool) -> (u64, u64, u64, u64) {
    let _f = forking();
    let v = Value::new(0u64).unwrap();
    let off = v.handle().lock;
    let arena = Arena::global();
    if leak {
        let g = v.getlock().lock().unwrap();
        let v2 = v.clone();
        let mut p = Process::start(move || {
            v2.update(|x| *x += 1);
        })
        .unwrap();
        assert!(common::wait_until(|| peek(arena, off) & 0x7fff_ffff >= 1));
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: kills our own child.
        unsafe { libc::kill(p.pid(), libc::SIGKILL) };
        let _ = p.join_timeout(Duration::from_secs(10));
        drop(g);
        assert_eq!(
            peek(arena, off) & 0x7fff_ffff,
            1,
            "the killed sleeper stays counted"
        );
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let children = env("RV_CHILDREN", 10) as usize;
    let rounds = env("RV_ROUNDS", 4000);
    let every = env("RV_EVERY", 8);
    let hold = Duration::from_micros(env("RV_HOLD_US", 50));
    let ready = Value::new(0u64).unwrap();
    let stats = Process::scope(|s| {
        let cs: Vec<_> = (0..children)
            .map(|i| {
                let (v, ready) = (&v, &ready);
                s.start(move || {
                    // 0: a forked child counts its own sleeps only.
                    let (s0, l0) = (lock_sleeps().0, lock_free_timeouts());
                    ready.update(|r| *r += 1);
                    assert!(common::wait_until(|| ready.get() == children as u64));
                    let (mut stalls, mut free_stalls) = (0u64, 0u64);
                    for round in 0..rounds {
                        let t0 = now_ns();
                        let (st, fr) = v.update(|last| {
                            let t = now_ns();
                            let waited = t - t0;
                            let gap = if *last == 0 {
                                0
                            } else {
                                t.saturating_sub(*last)
                            };
                            if round % every == i as u64 % every {
                                let until = Instant::now() + hold;
                                while Instant::now() < until {
                                    std::hint::spin_loop();
                                }
                            }
                            *last = now_ns();
                            (
                                waited >= 50_000_000,
                                waited >= 50_000_000 && gap >= 25_000_000,
                            )
                        });
                        stalls += u64::from(st);
                        free_stalls += u64::from(fr);
                    }
                    let (sleeps, _) = lock_sleeps();
                    [stalls, free_stalls, sleeps - s0, lock_free_timeouts() - l0]
                })
                .unwrap()
            })
            .collect();
        cs.into_iter()
            .map(|c| common::finish(c).unwrap())
            .collect::<Vec<_>>()
    });
    let sum = |k: usize| stats.iter().map(|s| s[k]).sum::<u64>();
    let r = (sum(0), sum(1), sum(2), sum(3));
    eprintln!(
        "leak={leak}: {} waits >= 50ms, {} of them with the lock free >= 25ms before; {} sleeps, {} timeouts on a free lock",
        r.0, r.1, r.2, r.3
    );
    r
}

#[test]
fn stress_stalls_without_holder_delay() {
    let (_, _, sleeps, free) = stress(false);
    assert!(
        free <= (sleeps / 200).max(2),
        "{free} of {sleeps} sleeps ran into their timeout on a free lock: lost wake-ups"
    );
}

#[test]
fn stress_stalls_without_holder_delay_after_a_killed_sleeper() {
    let (_, _, sleeps, free) = stress(true);
    assert!(
        free <= (sleeps / 200).max(2),
        "{free} of {sleeps} sleeps ran into their timeout on a free lock: lost wake-ups"
    );
}

// ---------------------------------------------------------------------------------------
// The same lost wake-up with the library's own code only, the interleaving forced by
// ptrace (stops at system calls). Threads: C (this test's thread) holds and releases;
// B (a raw-forked child) is a waiter; A (another child) is a releaser.
//   1. C holds. B reads the word (C), joins the count, clears WOKEN, and is stopped at
//      the entry of its membarrier (before FUTEX_WAIT).
//   2. C releases (count 1: its wake-up finds nobody queued and clears WOKEN again).
//   3. A takes the free lock and releases: count 1, so `wake()` sets WOKEN and its
//      FUTEX_WAKE finds nobody queued (B is not in FUTEX_WAIT yet); A is stopped at the
//      exit of that FUTEX_WAKE (a preemption at system-call return does the same).
//   4. C takes the lock again (the word names C again). B runs on: membarrier, FUTEX_WAIT
//      on C, asleep.
//   5. C releases: WOKEN is set, so it wakes nobody. A runs on and clears WOKEN.
//   B sleeps its whole nap (~50 ms) on a free lock.

const SYS_MEMBARRIER: u64 = 324;
const SYS_FUTEX: u64 = 202;
const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SyscallInfo {
    op: u8,
    _pad: [u8; 3],
    arch: u32,
    ip: u64,
    sp: u64,
    // entry: nr, args[6]; exit: rval, is_error
    data: [u64; 7],
}

fn info(pid: libc::pid_t) -> SyscallInfo {
    let mut i = SyscallInfo::default();
    // SAFETY: the kernel writes at most the size given into `i`.
    let n = unsafe {
        libc::ptrace(
            PTRACE_GET_SYSCALL_INFO,
            pid,
            std::mem::size_of::<SyscallInfo>(),
            &mut i as *mut SyscallInfo,
        )
    };
    assert!(
        n > 0,
        "PTRACE_GET_SYSCALL_INFO: {}",
        std::io::Error::last_os_error()
    );
    i
}

/// Runs the traced `pid` from system-call stop to system-call stop until `stop` accepts
/// one (entry: op 1, exit: op 2); `last_entry` carries the latest entry's (nr, args).
fn run_until(
    pid: libc::pid_t,
    last_entry: &mut [u64; 7],
    mut stop: impl FnMut(&SyscallInfo, &[u64; 7]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sig = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "tracee {pid} never reached the stop"
        );
        // SAFETY: pid is our stopped tracee.
        let rc = unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid, 0, sig) };
        assert_eq!(rc, 0);
        sig = 0;
        let mut status = 0;
        // SAFETY: waits for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        assert_eq!(rc, pid);
        assert!(libc::WIFSTOPPED(status), "tracee {pid} ended: {status:#x}");
        if libc::WSTOPSIG(status) != (libc::SIGTRAP | 0x80) {
            sig = libc::WSTOPSIG(status);
            if sig == libc::SIGSTOP || sig == libc::SIGTRAP {
                sig = 0;
            }
            continue;
        }
        let i = info(pid);
        if i.op == 1 {
            *last_entry = i.data;
        }
        if stop(&i, last_entry) {
            return;
        }
    }
}

/// Whether this process may trace its children (a container or a Yama setting may
/// forbid it); if not, why, for the test to print as it skips.
fn ptrace_refused() -> Option<String> {
    // SAFETY: the child only asks to be traced and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain ptrace; _exit ends the child at once.
        unsafe {
            let rc = libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::_exit(if rc == 0 {
                0
            } else {
                *libc::__errno_location()
            });
        }
    }
    let status = common::wait_pid(pid);
    match libc::WEXITSTATUS(status) {
        0 => None,
        errno => Some(format!(
            "PTRACE_TRACEME refused: {}",
            std::io::Error::from_raw_os_error(errno)
        )),
    }
}

/// Forks a child that asks to be traced, stops itself, then runs `f` and exits.
fn traced_child(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child runs `f` then _exit; the test's other threads are idle.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain ptrace and raise in the child.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
        }
        f();
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) }
    }
    let mut status = 0;
    // SAFETY: our child.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    assert_eq!(rc, pid);
    assert!(libc::WIFSTOPPED(status));
    let opts = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL;
    // SAFETY: our stopped tracee.
    let rc = unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts) };
    assert_eq!(rc, 0);
    pid
}

#[test]
fn ptrace_forced_interleaving_loses_a_wake_up() {
    let _f = forking();
    if let Some(why) = ptrace_refused() {
        eprintln!("SKIPPED: {why}; this test forces its interleaving with ptrace");
        return;
    }
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let off = lock.handle().offset;
    let mut fds = [0; 2];
    // SAFETY: a pipe for B's result.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);

    // 1. C holds; B waits until its membarrier.
    let g = lock.lock().unwrap();
    let b = traced_child(|| {
        let free0 = lock_free_timeouts();
        let got = lock.try_lock_for(Duration::from_secs(5)).is_ok();
        // Whether B took the lock, and how many of its sleeps ended on a free lock.
        let r = [u64::from(got), lock_free_timeouts() - free0];
        // SAFETY: writes 16 bytes to the pipe.
        unsafe { libc::write(fds[1], r.as_ptr().cast(), 16) };
    });
    let a = traced_child(|| {
        drop(lock.lock().unwrap());
    });
    let mut eb = [0u64; 7];
    run_until(b, &mut eb, |i, _| {
        i.op == 1 && i.data[0] == SYS_MEMBARRIER && i.data[1] == 2
    });
    assert_eq!(
        peek(&arena, off) & 0xffff_ffff,
        1,
        "B is counted, WOKEN clear"
    );
    // 2.
    drop(g);
    // 3. A's FUTEX_WAKE (op 1, shared) returns 0: stop there.
    let mut ea = [0u64; 7];
    run_until(a, &mut ea, |i, e| {
        i.op == 2 && e[0] == SYS_FUTEX && e[2] == libc::FUTEX_WAKE as u64 && i.data[0] == 0
    });
    assert_eq!(
        peek(&arena, off) & 0xffff_ffff,
        WOKEN | 1,
        "A's wake-up is in flight"
    );
    // 4. C again; B on into its FUTEX_WAIT.
    let g = lock.lock().unwrap();
    run_until(b, &mut eb, |i, _| {
        i.op == 1 && i.data[0] == SYS_FUTEX && i.data[2] == libc::FUTEX_WAIT as u64
    });
    // SAFETY: detaching our tracee lets it run on (into the FUTEX_WAIT).
    unsafe { libc::ptrace(libc::PTRACE_DETACH, b, 0, 0) };
    std::thread::sleep(Duration::from_millis(5));
    // 5.
    drop(g);
    // SAFETY: as above.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, a, 0, 0) };
    let mut pfd = libc::pollfd {
        fd: fds[0],
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, 5 s.
    let rc = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert_eq!(rc, 1, "B never took the lock");
    let mut r = [0u64; 2];
    // SAFETY: reads 16 bytes.
    assert_eq!(unsafe { libc::read(fds[0], r.as_mut_ptr().cast(), 16) }, 16);
    for pid in [a, b] {
        let mut st = 0;
        // SAFETY: reaps our children.
        unsafe { libc::waitpid(pid, &mut st, libc::__WALL) };
    }
    assert_eq!(r[0], 1, "B timed out");
    assert_eq!(
        r[1], 0,
        "B slept until its timeout on a free lock: lost wake-up (no kill, no garbage)"
    );
}

/// Liveness (the times are printed): a woken sleeper SIGKILLed before
/// it clears WOKEN leaves the other sleeper D asleep on a free lock until its nap ends
/// (at most one POLL); the next handover is fast again.
#[test]
fn killed_woken_sleeper_costs_at_most_one_poll() {
    let _f = forking();
    if let Some(why) = ptrace_refused() {
        eprintln!("SKIPPED: {why}; this test forces its interleaving with ptrace");
        return;
    }
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let off = lock.handle().offset;
    let g = lock.lock().unwrap();
    let b = traced_child(|| {
        let _ = lock.try_lock_for(Duration::from_secs(5));
    });
    let mut eb = [0u64; 7];
    // B into its FUTEX_WAIT (entry stop), then let it sleep.
    run_until(b, &mut eb, |i, _| {
        i.op == 1 && i.data[0] == SYS_FUTEX && i.data[2] == libc::FUTEX_WAIT as u64
    });
    // SAFETY: our tracee, resumed into the syscall; the next stop is its exit.
    assert_eq!(unsafe { libc::ptrace(libc::PTRACE_SYSCALL, b, 0, 0) }, 0);
    std::thread::sleep(Duration::from_millis(5));
    let (latency, next) = std::thread::scope(|s| {
        let d = s.spawn(|| {
            let got = lock.try_lock_for(Duration::from_secs(5));
            let t = Instant::now();
            assert!(got.is_ok(), "a waiter never got a lock released under it");
            drop(got);
            t
        });
        assert!(common::wait_until(|| peek(&arena, off) & 0x7fff_ffff == 2));
        std::thread::sleep(Duration::from_millis(5));
        let released = Instant::now();
        drop(g); // wakes B (first queued): WOKEN set
        let mut st = 0;
        // SAFETY: B's syscall-exit stop.
        assert_eq!(unsafe { libc::waitpid(b, &mut st, libc::__WALL) }, b);
        eprintln!(
            "sleeper word after the release: {:#x}",
            peek(&arena, off) & 0xffff_ffff
        );
        // SAFETY: kill our child, woken but not yet run.
        unsafe { libc::kill(b, libc::SIGKILL) };
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(b, &mut st, libc::__WALL) };
        let latency = d.join().unwrap() - released;
        // The next contended handover.
        let g = lock.lock().unwrap();
        let d = s.spawn(|| {
            let got = lock.try_lock_for(Duration::from_secs(5));
            let t = Instant::now();
            assert!(got.is_ok(), "a waiter never got a lock released under it");
            drop(got);
            t
        });
        std::thread::sleep(Duration::from_millis(10));
        let r = Instant::now();
        drop(g);
        (latency, d.join().unwrap() - r)
    });
    // Both waiters got the lock (asserted in their threads); how long it took is reported,
    // not asserted (timing belongs in benches: these machines are shared and noisy). The
    // documented bound is one POLL (50 ms) for the first, a fast handover for the next.
    eprintln!("D took {latency:?} after the release; the next handover {next:?}");
}

/// Installs a seccomp filter making membarrier fail with EPERM (other calls allowed).
fn deny_membarrier() {
    filter_membarrier(None, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
}

/// Installs a seccomp filter on the calling thread: membarrier with command `command`
/// (every command if `None`) returns `action`; every other call is allowed.
fn filter_membarrier(command: Option<u32>, action: u32) {
    common::seccomp::filter(libc::SYS_membarrier, command, action);
}

/// membarrier refused by a real seccomp filter: a process filtered before it forks has
/// children whose registration fails (fenced releases), and contention with registered
/// processes still makes progress without long stalls.
#[test]
fn seccomp_refused_membarrier() {
    let _f = forking();
    let v = Value::new(0u64).unwrap();
    let out = common::in_child(|| {
        deny_membarrier();
        // A grandchild of the filtered process: its atfork registration is refused.
        let plain =
            common::in_child(|| u8::from(shared_runtime::test_hooks::releases_plain())).unwrap();
        let t0 = Instant::now();
        let r = Process::scope(|s| {
            let cs: Vec<_> = (0..4u64)
                .map(|_| {
                    s.start(|| {
                        let (a0, b0) = lock_sleeps();
                        for _ in 0..3000 {
                            v.update(|x| *x += 1);
                        }
                        let (a, b) = lock_sleeps();
                        [a - a0, b - b0]
                    })
                    .unwrap()
                })
                .collect();
            cs.into_iter()
                .map(|c| common::finish(c).unwrap())
                .fold((0, 0), |a, b| (a.0 + b[0], a.1 + b[1]))
        });
        [u64::from(plain), r.0, r.1, t0.elapsed().as_millis() as u64]
    })
    .unwrap();
    // And registered processes contending at the same time would be needed for the mixed
    // case; here: the filtered ones alone.
    eprintln!(
        "plain={} sleeps={} long={} in {} ms",
        out[0], out[1], out[2], out[3]
    );
    assert_eq!(
        out[0], 0,
        "a process whose registration was refused releases plainly"
    );
    assert_eq!(v.get(), 12000);
    assert_eq!(out[2], 0);
}

/// Installs a seccomp filter that fakes the success of membarrier's registration command
/// (an error return of 0: nothing is registered) and lets every other call through.
fn fake_membarrier_registration() {
    // `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`.
    filter_membarrier(Some(1 << 2), libc::SECCOMP_RET_ERRNO);
}

/// A process whose registration for membarriers is faked (the call "succeeds" and the
/// kernel registers nothing) must not release with a plain store: waiters' barriers skip
/// it, and a wake-up could be lost. A forked child inherits its parent's registration (the
/// kernel copies it with the address space), so the faked one is that of a program
/// started under the filter: this test runs itself again, under the filter, in the mode
/// the environment variable names. Where the kernel cannot report registrations (before
/// Linux 6.3) the test says so and checks nothing.
#[test]
fn a_faked_membarrier_registration_is_not_trusted() {
    const MODE: &str = "SHR_TEST_FAKED_MEMBARRIER";
    if std::env::var_os(MODE).is_some() {
        // The program started under the filter (the marker tells the test it ran).
        println!("faked-registration-checked");
        assert!(
            !shared_runtime::test_hooks::releases_plain(),
            "a process whose membarrier registration was faked releases with a plain store"
        );
        return;
    }
    let _f = forking();
    // SAFETY: membarrier takes integers only (`MEMBARRIER_CMD_GET_REGISTRATIONS`).
    let askable = unsafe { libc::syscall(libc::SYS_membarrier, 1 << 9, 0, 0) } >= 0;
    if !askable {
        eprintln!("skipped: this kernel cannot report membarrier registrations (before 6.3)");
        return;
    }
    let code = common::in_child(|| {
        fake_membarrier_registration();
        common::seccomp::run_self(
            "a_faked_membarrier_registration_is_not_trusted",
            MODE,
            "faked-registration-checked",
        )
    })
    .unwrap();
    assert_eq!(
        code, 0,
        "the program started under a filter faking membarrier's registration: 1 released \
         with a plain store, 2 ran no check"
    );
}

/// A waiter that slept and then took the lock over from a dead holder clears a wake-up in
/// flight, as one that takes a released lock does: the reviewed code left WOKEN set, and
/// every later release skipped its wake-up until some sleeper cleared it.
#[test]
fn taking_over_from_a_dead_holder_clears_woken() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let off = lock.handle().offset;
    // SAFETY: the child takes the lock and sleeps until killed; the test's other threads
    // are idle (the forking lock is held).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        std::mem::forget(lock.lock());
        std::thread::sleep(Duration::from_secs(30));
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) }
    }
    assert!(common::wait_until(|| peek_for_tests(&arena, off, 0)
        .unwrap()
        != 0));
    std::thread::scope(|s| {
        let b = s.spawn(|| lock.try_lock_for(Duration::from_secs(5)).map(drop).is_err());
        // B counted and asleep; a wake-up is in flight for it (a release's WOKEN).
        assert!(common::wait_until(|| peek(&arena, off) & 0x7fff_ffff == 1));
        let w = peek(&arena, off);
        poke(&arena, off, w | WOKEN);
        // SAFETY: kills and reaps our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        common::wait_pid(pid);
        assert!(
            b.join().unwrap(),
            "B took over from the dead holder: poisoned"
        );
    });
    assert_eq!(
        peek(&arena, off) & WOKEN,
        0,
        "WOKEN left set by a waiter that took over from a dead holder"
    );
}
