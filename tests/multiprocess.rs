//! Raw objects across fork: children write, parents read, and failures are reported.

mod common;

use common::{finish, forking, in_child};
use shared_runtime::{
    raw_array, raw_value, Arena, CChar, Error, Process, RawArray, RawValue, WChar, PANIC_EXIT_CODE,
};

/// A child writes a raw value and a raw array of every typecode; the parent reads them.
#[test]
fn child_writes_every_typecode() {
    let _serial = forking();
    macro_rules! check_typecode {
        ($code:tt, $first:expr, $second:expr) => {{
            let v = raw_value!($code, $first).unwrap();
            let a = raw_array!($code, [$first, $first, $first]).unwrap();
            assert_eq!(v.get(), $first);
            in_child(|| {
                v.set($second);
                a.set(1, $second);
                a.write(2, &[$second]);
            })
            .unwrap();
            assert_eq!(v.get(), $second, "typecode {}", $code);
            assert_eq!(a.to_vec(), [$first, $second, $second], "typecode {}", $code);
        }};
    }
    check_typecode!('c', CChar(b'x'), CChar(b'y'));
    check_typecode!('u', WChar::from('a'), WChar::from('€'));
    check_typecode!('b', -5i8, 7i8);
    check_typecode!('B', 5u8, 250u8);
    check_typecode!('h', -232i16, 234i16);
    check_typecode!('H', 232u16, 65000u16);
    check_typecode!('i', 4343i32, 24234i32);
    check_typecode!('I', 4343u32, 4_000_000_000u32);
    check_typecode!('l', -(1i64 << 40), 1i64 << 41);
    check_typecode!('L', 1u64 << 40, 1u64 << 63);
    check_typecode!('q', 1i64 << 33, 1i64 << 34);
    check_typecode!('Q', 1u64 << 33, u64::MAX);
    check_typecode!('f', 3.625f32, -4.25f32);
    check_typecode!('d', 3.625f64, -4.25f64);
}

/// An object allocated by a child is valid in the parent, found through its offset.
#[test]
fn child_allocation_is_visible_to_parent() {
    let _serial = forking();
    let mailbox = RawValue::new(0u64).unwrap();
    in_child(|| {
        let a = RawArray::from_slice(&[10u32, 20, 30]).unwrap();
        mailbox.set(a.into_offset().unwrap());
    })
    .unwrap();
    let offset = mailbox.get();
    assert_ne!(offset, 0);
    let a = RawArray::<u32>::from_offset_in(Arena::global(), offset, 3).unwrap();
    assert_eq!(a.to_vec(), [10, 20, 30]);
    Arena::global().check().unwrap();
}

/// A forked child's copies of its parent's objects free nothing when dropped.
#[test]
fn child_drop_frees_nothing() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = RawValue::new_in(&arena, 7u32).unwrap();
    let a = RawArray::from_slice_in(&arena, &[1u8, 2, 3]).unwrap();
    let before = arena.stats().unwrap();
    let arena2 = arena.clone();
    finish(
        Process::start(move || {
            drop(v);
            drop(a);
            // The child's own allocations are its own and are freed.
            drop(RawValue::new_in(&arena2, 1u8).unwrap());
            // The parent's objects still count as live here too.
            assert_eq!(arena2.stats().unwrap().live_allocations, 2);
        })
        .unwrap(),
    )
    .unwrap();
    // The parent's copies were moved into the closure: the parent frees them once the
    // child has ended, and only then.
    let after = arena.stats().unwrap();
    assert_eq!(after.live_allocations, before.live_allocations - 2);
    assert_eq!(
        after.frees,
        before.frees + 3,
        "the child's object once, the parent's two once"
    );
    arena.check().unwrap();
}

/// Objects moved into a child's closure stay allocated until the child has ended.
#[test]
fn moved_objects_outlive_the_child() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = RawValue::new_in(&arena, 0u64).unwrap();
    let offset = v.offset();
    let p = Process::start(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        v.set(v.get() + 1);
    })
    .unwrap();
    // While the child runs, the parent's allocation must not be reused.
    let other = RawValue::new_in(&arena, 5u64).unwrap();
    assert_ne!(other.offset(), offset);
    finish(p).unwrap();
    assert_eq!(other.get(), 5, "the child wrote only to its own object");
    assert_eq!(arena.stats().unwrap().live_allocations, 1);
}

#[test]
fn child_panic_is_a_failed_join() {
    let _serial = forking();
    let p = Process::<()>::start(|| panic!("deliberate panic in the child")).unwrap();
    let pid = p.pid();
    let err = finish(p).unwrap_err();
    match &err {
        Error::ChildPanicked {
            pid: failed,
            message,
        } => {
            assert_eq!(*failed, pid);
            assert_eq!(message, "deliberate panic in the child");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn child_exit_code_is_reported() {
    let _serial = forking();
    let p = Process::<()>::start(|| std::process::exit(3)).unwrap();
    let pid = p.pid();
    let err = finish(p).unwrap_err();
    assert!(
        matches!(err, Error::ChildExited { pid: p, code: 3 } if p == pid),
        "{err:?}"
    );
    assert!(err.to_string().contains("exited with code 3"), "{err}");
    // The panic exit code without a panic is an exit, not a panic.
    let err = finish(Process::<()>::start(|| std::process::exit(PANIC_EXIT_CODE)).unwrap());
    assert!(
        matches!(
            err,
            Err(Error::ChildExited {
                code: PANIC_EXIT_CODE,
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn killed_child_is_a_failed_join() {
    let _serial = forking();
    let started = RawValue::new(0u8).unwrap();
    let started2 = started.clone();
    let mut p = Process::<()>::start(move || {
        started2.set(1);
        loop {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    })
    .unwrap();
    while started.get() == 0 {
        std::thread::yield_now();
    }
    assert!(matches!(
        p.join_timeout(std::time::Duration::from_millis(20)),
        Err(Error::Timeout(_))
    ));
    p.kill().unwrap();
    let pid = p.pid();
    let err = finish(p).unwrap_err();
    assert!(
        matches!(err, Error::ChildKilled { pid: p, signal: libc::SIGKILL } if p == pid),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("killed by signal 9 (SIGKILL)"),
        "{err}"
    );
}

/// Drop joins: the child has ended when its `Process` is dropped.
#[test]
fn drop_joins_the_child() {
    let _serial = forking();
    let v = RawValue::new(0u32).unwrap();
    {
        let v = v.clone();
        let _p = Process::start(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            v.set(99);
        })
        .unwrap();
    }
    assert_eq!(
        v.get(),
        99,
        "the child had finished when its Process was dropped"
    );
}

/// `CChar` arrays keep ctypes' value/raw semantics across processes.
#[test]
fn child_sets_c_string() {
    let _serial = forking();
    let s = RawArray::from_slice(CChar::from_bytes(b"hello world")).unwrap();
    in_child(|| s.set_value(&s.value().to_ascii_uppercase()).unwrap()).unwrap();
    assert_eq!(s.value(), b"HELLO WORLD");
    let err = s.set_value(b"this is far too long").unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLong {
                len: 20,
                capacity: 11
            }
        ),
        "{err}"
    );
    assert_eq!(
        s.value(),
        b"HELLO WORLD",
        "a failed set_value writes nothing"
    );
    assert!(s.set_raw(&[b'x'; 12]).is_err());
    s.set_raw(b"ab\0").unwrap();
    assert_eq!(s.value(), b"ab");
    assert_eq!(s.raw(), b"ab\0LO WORLD");
}

/// Several children allocate and free concurrently in the global arena.
#[test]
fn children_allocate_concurrently() {
    let _serial = forking();
    let arena = Arena::with_capacity(64 << 20).unwrap();
    let workers: Vec<_> = (0..4u8)
        .map(|t| {
            let arena = arena.clone();
            Process::start(move || {
                for i in 0..2_000usize {
                    let a = RawArray::from_slice_in(&arena, &vec![t; i % 500 + 1]).unwrap();
                    assert!(a.to_vec().iter().all(|&b| b == t));
                }
            })
            .unwrap()
        })
        .collect();
    for w in workers {
        finish(w).unwrap();
    }
    let report = arena.check().unwrap();
    assert_eq!(report.used_blocks, 0);
    assert_eq!(arena.stats().unwrap().allocations, 8_000);
}

/// After `join_timeout` has seen the child end, `join` reports the same outcome instead
/// of waiting for a process that no longer exists.
#[test]
fn join_after_join_timeout_reports_the_same_exit() {
    let _serial = forking();
    let mut p = Process::<()>::start(|| std::process::exit(7)).unwrap();
    let first = p.join_timeout(common::PATIENCE).unwrap_err().to_string();
    assert!(first.contains("exited with code 7"), "{first}");
    let again = p.join_timeout(common::PATIENCE).unwrap_err().to_string();
    assert_eq!(again, first);
    assert_eq!(p.join().unwrap_err().to_string(), first);
}

/// Whether `err` is `join`'s report of a child that someone else reaped.
fn reaped_elsewhere(err: &Error) -> bool {
    matches!(err, Error::Os { source, .. }
        if source.kind() == std::io::ErrorKind::NotFound
            && source.to_string().contains("was reaped by someone else"))
}

/// Reaps child `pid` behind its `Process`'s back, as a `waitpid(-1)` elsewhere would.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid writes only to `status`, which outlives the call.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid, "{}", std::io::Error::last_os_error());
}

/// A child reaped by someone else: `kill` is not an error (and signals nobody), `join`
/// reports the reaping, as a typed error, instead of failing some other way or hanging.
#[test]
fn child_reaped_elsewhere_is_a_typed_error() {
    let _serial = forking();
    let mut p = Process::start(|| {}).unwrap();
    reap(p.pid());
    p.kill().unwrap();
    let err = p.join_timeout(common::PATIENCE).unwrap_err();
    assert!(reaped_elsewhere(&err), "{err}");
    p.kill().unwrap();
    let again = p.join().unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
}

/// The case pidfds are for, made to happen: the child is reaped elsewhere, its pid goes to
/// a new process (a `sleep`), and then the `Process` is killed and joined. Going by pid
/// would kill the `sleep` and report its end as the child's.
///
/// Pid reuse is forced in a pid namespace of its own (inside a user namespace, so no
/// privilege is needed where unprivileged user namespaces are allowed): nothing else forks
/// there, and writing `ns_last_pid` picks the next pid. Skipped, saying so, where the
/// namespaces cannot be had.
#[test]
fn kill_and_join_never_reach_a_process_that_reused_the_pid() {
    const SKIP: i32 = 77;
    fn skip() -> ! {
        // SAFETY: _exit ends the process at once and is always safe to call.
        unsafe { libc::_exit(SKIP) }
    }
    fn in_namespace_init() {
        let mut p = Process::start(|| {}).unwrap();
        let pid = p.pid();
        reap(pid);
        let next = format!("{}", pid - 1); // the next fork here gets ns_last_pid + 1
        if std::fs::write("/proc/sys/kernel/ns_last_pid", next).is_err() {
            skip();
        }
        let mut victim = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert_eq!(victim.id() as i32, pid, "the pid was not reused");

        p.kill().unwrap();
        let err = p.join_timeout(common::PATIENCE).unwrap_err();
        assert!(reaped_elsewhere(&err), "{err}");

        // End the victim with SIGTERM: had `kill` reached it, it would have died of SIGKILL.
        // SAFETY: kill(2) reads no memory; the victim is our unreaped child, so its pid
        // cannot name anyone else.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = victim.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM), "victim: {status}");
    }

    let _serial = forking();
    let outer = Process::start(|| {
        // SAFETY: unshare takes flags only; the forked child has one thread, as a new user
        // namespace requires.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID) } != 0 {
            skip();
        }
        // The next child is the new namespace's init, with pid 1.
        match finish(Process::start(in_namespace_init).unwrap()) {
            Ok(()) => {}
            Err(Error::ChildExited { code: SKIP, .. }) => skip(),
            Err(e) => panic!("{e}"),
        }
    })
    .unwrap();
    match finish(outer) {
        Ok(()) => {}
        Err(Error::ChildExited { code: SKIP, .. }) => {
            eprintln!("skipped: no user and pid namespace, or ns_last_pid not writable there");
        }
        Err(e) => panic!("{e}"),
    }
}

/// With `SIGCHLD` ignored the kernel reaps children itself: `join` still waits for the
/// child to end (what it borrowed must outlive it), then says it was reaped elsewhere.
#[test]
fn join_with_sigchld_ignored_waits_then_reports_the_reaping() {
    struct Restore(libc::sighandler_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: puts back the disposition `signal` returned.
            unsafe { libc::signal(libc::SIGCHLD, self.0) };
        }
    }
    // Every test here that forks holds this, so no other test's child is auto-reaped.
    let _serial = forking();
    let done = RawValue::new(0u8).unwrap();
    // SAFETY: SIG_IGN for SIGCHLD installs no handler; `Restore` puts the old one back.
    let _restore = Restore(unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) });
    Process::scope(|s| {
        let mut p = s
            .start(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                done.set(1);
            })
            .unwrap();
        let err = p.join_timeout(common::PATIENCE).unwrap_err();
        assert!(reaped_elsewhere(&err), "{err}");
        assert_eq!(done.get(), 1, "join returned before the child had ended");
        p.kill().unwrap();
    });
}

/// `join_timeout` sleeps until its deadline, and a deadline no clock can reach (which the
/// pid-based loop overflowed on) means waiting for the end; after `kill`, the join sees it.
#[test]
fn join_timeout_times_out_then_sees_the_kill() {
    use std::time::{Duration, Instant};
    let _serial = forking();
    let mut p = Process::<()>::start(|| loop {
        std::thread::sleep(Duration::from_millis(10));
    })
    .unwrap();
    let asked = Duration::from_millis(50);
    let t = Instant::now();
    assert!(matches!(p.join_timeout(asked), Err(Error::Timeout(_))));
    assert!(t.elapsed() >= asked, "woke after {:?}", t.elapsed());
    p.kill().unwrap();
    let err = p.join_timeout(Duration::MAX).unwrap_err();
    assert!(err.to_string().contains("SIGKILL"), "{err}");
    p.kill().unwrap(); // ended: nothing to do
    assert_eq!(p.join().unwrap_err().to_string(), err.to_string());
}

/// Dropping a killed `Process` waits for, and reaps, the child: no zombie is left.
#[test]
fn drop_reaps_a_killed_child() {
    let _serial = forking();
    let p = Process::<()>::start(|| loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    })
    .unwrap();
    let pid = p.pid();
    p.kill().unwrap();
    drop(p);
    // SAFETY: a null status pointer asks waitpid to store nothing.
    let rc = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    assert_eq!(
        (rc, errno),
        (-1, Some(libc::ECHILD)),
        "child {pid} was left unreaped"
    );
}

/// Without a free file descriptor there is no pidfd: the `Process` goes by pid, and still
/// times out, kills, joins, reports exit codes and reapings elsewhere. Run in a child, so
/// that using up the descriptors touches no other test.
#[test]
fn without_a_pidfd_the_pid_is_used() {
    let _serial = forking();
    let outer = Process::start(|| {
        let limit = libc::rlimit {
            rlim_cur: 64,
            rlim_max: 64,
        };
        // SAFETY: setrlimit reads the rlimit, which outlives the call.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let mut held = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => held.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => panic!("{e}"),
            }
        }

        let mut p = Process::<()>::start(|| loop {
            std::thread::sleep(std::time::Duration::from_millis(10));
        })
        .unwrap();
        let short = std::time::Duration::from_millis(20);
        assert!(matches!(p.join_timeout(short), Err(Error::Timeout(_))));
        p.kill().unwrap();
        let err = finish(p).unwrap_err();
        assert!(err.to_string().contains("SIGKILL"), "{err}");

        let err = finish(Process::<()>::start(|| std::process::exit(3)).unwrap()).unwrap_err();
        assert!(matches!(err, Error::ChildExited { code: 3, .. }), "{err}");

        let p = Process::start(|| {}).unwrap();
        reap(p.pid());
        let err = p.join().unwrap_err();
        assert!(reaped_elsewhere(&err), "{err}");

        assert!(
            std::fs::File::open("/dev/null").is_err(),
            "a descriptor was free all along"
        );
        drop(held);
    })
    .unwrap();
    finish(outer).unwrap();
}

/// A child killed by a signal `nix` has no name for (a real-time one) is reported with its
/// number; decoding it into nix's `Signal` would fail after the child was reaped, and lose
/// how it ended.
#[test]
fn child_killed_by_a_realtime_signal_is_reported() {
    let _serial = forking();
    let sig = libc::SIGRTMIN() + 1;
    let p = Process::start(move || {
        // SAFETY: raise(3) reads no memory; the default action of a real-time signal ends
        // the process.
        unsafe { libc::raise(sig) };
    })
    .unwrap();
    let err = finish(p).unwrap_err();
    assert!(
        matches!(err, Error::ChildKilled { signal, .. } if signal == sig),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with(&format!("was killed by signal {sig} (unknown signal)")),
        "{err}"
    );
}
