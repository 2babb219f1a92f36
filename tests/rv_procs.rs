//! Reviewer reproducers for the process slice (`rv-procs`). Run with `--test-threads=1`.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common::{finish, forking, in_child};
use shared_runtime::{Arena, Error, Process, RawValue, Scope};

const MARK: u64 = 0xDEAD_BEEF;

fn getpid() -> i32 {
    std::process::id() as i32
}

/// Kills and reaps a leftover child (cleanup only).
fn reap(pid: i32) {
    if pid > 0 {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// Waits (bounded) until `flag` is set; true if it was.
fn eventually(flag: &RawValue<u64>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while flag.get() == 0 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

struct PanicOnDrop(bool);
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if self.0 {
            panic!("the parent's copy of a capture panicked in its destructor");
        }
    }
}

/// FINDING 1: `join_all` drops each child's captured closure (user destructors) inside its
/// loop; a destructor that panics unwinds out of `Process::scope`, dropping the remaining
/// entries (pidfd, report block, captures) without waiting: `scope` returns while a
/// borrowing child still runs, and the child then writes memory the parent has freed and
/// reused.
#[test]
fn capture_drop_panic_unwinds_out_of_scope_without_joining() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let victim = RawValue::new_in(&arena, 0u64).unwrap();
    let victim_offset = victim.offset();
    let done = RawValue::new(0u64).unwrap();
    let pid = RawValue::new(0i32).unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        Process::scope(|s| {
            let bomb = PanicOnDrop(true);
            // Child 1: forgets its own copy; the parent's copy panics when join_all drops it.
            drop(s.start(move || std::mem::forget(bomb)).unwrap());
            // Child 2: borrows `victim`, writes it late.
            drop(
                s.start(|| {
                    pid.set(getpid());
                    std::thread::sleep(Duration::from_millis(400));
                    victim.set(MARK);
                    done.set(1);
                })
                .unwrap(),
            );
        })
    }));
    let joined_before_return = done.get() == 1;
    // The scope is over: the borrowed object may be freed and its memory reused.
    drop(victim);
    let fresh = RawValue::new_in(&arena, 0u64).unwrap();
    let child_finished = eventually(&done);
    let fresh_value = fresh.get();
    reap(pid.get());
    assert!(
        caught.is_err(),
        "(setup) expected the destructor panic to propagate"
    );
    assert!(
        joined_before_return && fresh_value == 0,
        "scope returned (by unwinding) with a child still running: joined={joined_before_return}, \
         child finished later={child_finished}; the fresh object at offset {} (victim was {victim_offset}) \
         now reads {fresh_value:#x}",
        fresh.offset()
    );
}

/// A capture whose destructor starts another child in the scope.
struct StartOnDrop<'s, 'e> {
    scope: &'s Scope<'s, 'e>,
    victim: &'s RawValue<u64>,
    done: &'s RawValue<u64>,
    pid: &'s RawValue<i32>,
    armed: bool,
}
impl Drop for StartOnDrop<'_, '_> {
    fn drop(&mut self) {
        if self.armed {
            let (victim, done, pid) = (self.victim, self.done, self.pid);
            let _ = self.scope.start(move || {
                pid.set(getpid());
                std::thread::sleep(Duration::from_millis(400));
                victim.set(MARK);
                done.set(1);
            });
        }
    }
}

/// FINDING 2: `join_all` takes the child list once, then drops captures (user code) that
/// may still call `Scope::start`: a child started then is pushed into the emptied list,
/// never joined, and `scope` returns normally while it runs on a borrowed object.
#[test]
fn child_started_from_a_capture_drop_escapes_the_scope() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let victim = RawValue::new_in(&arena, 0u64).unwrap();
    let done = RawValue::new(0u64).unwrap();
    let pid = RawValue::new(0i32).unwrap();
    Process::scope(|s| {
        let g = StartOnDrop {
            scope: s,
            victim: &victim,
            done: &done,
            pid: &pid,
            armed: true,
        };
        // The child disarms its own copy; the parent's copy is dropped by join_all.
        drop(
            s.start(move || {
                let mut g = g;
                g.armed = false;
            })
            .unwrap(),
        );
    });
    let joined_before_return = done.get() == 1;
    drop(victim);
    let fresh = RawValue::new_in(&arena, 0u64).unwrap();
    let child_finished = eventually(&done);
    let fresh_value = fresh.get();
    reap(pid.get());
    assert!(
        joined_before_return && fresh_value == 0,
        "scope returned with a child still running: joined={joined_before_return}, child \
         finished later={child_finished}, child pid {}; the fresh object now reads {fresh_value:#x}",
        pid.get()
    );
}

/// FINDING 3: a grandchild outlives everything that keeps its objects alive. The middle
/// child leaks its `Process` (or exits, or is killed) and ends; the grandparent joins it,
/// drops the object, and the grandchild goes on writing the freed (and reused) block.
/// `Process`'s doc: "the child can never write freed memory".
#[test]
fn grandchild_writes_memory_its_grandparent_freed() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let victim = RawValue::new_in(&arena, 0u64).unwrap();
    let done = RawValue::new(0u64).unwrap();
    let gpid = RawValue::new(0i32).unwrap();
    let (v2, d2, g2) = (victim.clone(), done.clone(), gpid.clone());
    let middle = Process::start(move || {
        let (v3, d3, g3) = (v2.clone(), d2.clone(), g2.clone());
        let grandchild = Process::start(move || {
            g3.set(getpid());
            std::thread::sleep(Duration::from_millis(400));
            v3.set(MARK);
            d3.set(1);
        })
        .unwrap();
        std::mem::forget(grandchild); // safe code
    })
    .unwrap();
    finish(middle).unwrap(); // the middle child returned normally
    drop(victim); // the last handle in the grandparent: the block is freed
    let fresh = RawValue::new_in(&arena, 0u64).unwrap();
    let finished = eventually(&done);
    let fresh_value = fresh.get();
    reap(gpid.get()); // not our child; just in case
    assert!(
        fresh_value == 0,
        "grandchild (pid {}, finished={finished}) wrote {fresh_value:#x} into a block freed and \
         reused by its grandparent",
        gpid.get()
    );
}

/// Report blocks are freed on every path (arena stats before/after).
#[test]
fn report_blocks_are_freed_on_every_path() {
    let _serial = forking();
    let arena = Arena::global();
    let before = arena.stats().unwrap();
    // joined, value
    assert_eq!(finish(Process::start(|| 7u64).unwrap()).unwrap(), 7);
    // joined, panic
    assert!(matches!(
        finish(Process::<u8>::start(|| panic!("x")).unwrap()),
        Err(Error::ChildPanicked { .. })
    ));
    // dropped without join
    drop(Process::start(|| 1u32).unwrap());
    // timeout then kill then join
    let mut p = Process::<()>::start(|| loop {
        std::thread::park()
    })
    .unwrap();
    assert!(matches!(
        p.join_timeout(Duration::from_millis(5)),
        Err(Error::Timeout(_))
    ));
    p.kill().unwrap();
    assert!(matches!(
        finish(p),
        Err(Error::ChildKilled { signal: 9, .. })
    ));
    // exit(0) early
    assert!(matches!(
        finish(Process::<u64>::start(|| std::process::exit(0)).unwrap()),
        Err(Error::ChildExited { code: 0, .. })
    ));
    // scope: joined, unjoined-dropped, timed-out-then-joined, closure panic
    let _ = Process::scope(|s| {
        let a = s.start(|| 1u64).unwrap();
        drop(s.start(|| 2u64).unwrap());
        let mut c = s
            .start(|| std::thread::sleep(Duration::from_millis(50)))
            .unwrap();
        let _ = c.join_timeout(Duration::from_millis(1));
        a.join()
    });
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        Process::scope(|s| {
            let _ = s.start(|| 3u64);
            panic!("scope closure");
        })
    }));
    let after = arena.stats().unwrap();
    assert_eq!(
        (after.live_allocations, after.bytes_in_use),
        (before.live_allocations, before.bytes_in_use)
    );
}

/// Panic messages at the buffer limit with multibyte characters, and non-string payloads.
#[test]
fn panic_message_edges() {
    let _serial = forking();
    let msg = |m: String| match in_child(move || -> u8 { panic!("{m}") }) {
        Err(Error::ChildPanicked { message, .. }) => message,
        other => panic!("{other:?}"),
    };
    let exact = "a".repeat(1016);
    assert_eq!(msg(exact.clone()), exact);
    let over = format!("{}é", "a".repeat(1015)); // é straddles the limit
    assert_eq!(msg(over), "a".repeat(1015));
    let four = format!("{}😀x", "a".repeat(1013)); // 4-byte char straddles
    assert_eq!(msg(four), "a".repeat(1013));
    let any = in_child(|| -> u8 { std::panic::panic_any(5u32) });
    assert!(
        matches!(&any, Err(Error::ChildPanicked { message, .. }) if message == "Box<dyn Any>"),
        "{any:?}"
    );
}

struct BadDisplay;
impl std::fmt::Display for BadDisplay {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Display panicked")
    }
}

/// QUESTION: a panic whose message's Display panics: std aborts ("panicked while processing
/// panic"); here that is reported as ChildKilled { signal: 6 } (printed for the record).
#[test]
fn panic_whose_display_panics() {
    let _serial = forking();
    let r = in_child(|| -> u8 { panic!("{}", BadDisplay) });
    eprintln!("panic with a panicking Display: {r:?}");
    assert!(r.is_err());
}

/// A child reaped elsewhere (SIGCHLD = SIG_IGN), checked in a child so the disposition
/// stays there: join reports NotFound, drop does not hang.
#[test]
fn reaped_elsewhere_is_reported_and_drop_does_not_hang() {
    let _serial = forking();
    let r = in_child(|| -> u8 {
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let p = Process::start(|| 5u64).unwrap();
        let ok = match p.join() {
            Err(Error::Os { source, .. }) => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        };
        drop(Process::start(|| 5u64).unwrap());
        ok as u8
    });
    assert_eq!(r.unwrap(), 1);
}

/// QUESTION (leak): a forgotten `ScopedProcess` leaks its report block (about 1 KiB of the
/// global arena) for good, though the scope joins the child: the scope could own the block.
#[test]
fn forgotten_scoped_process_leaks_its_report_block() {
    let _serial = forking();
    let before = Arena::global().stats().unwrap();
    Process::scope(|s| std::mem::forget(s.start(|| 1u64).unwrap()));
    let after = Arena::global().stats().unwrap();
    assert_eq!(
        after.bytes_in_use,
        before.bytes_in_use,
        "leaked {} bytes in {} blocks",
        after.bytes_in_use - before.bytes_in_use,
        after.live_allocations - before.live_allocations
    );
}
