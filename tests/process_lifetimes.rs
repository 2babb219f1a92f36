//! What a child uses outlives it: `Process::scope` joins every child on every path out
//! (a panicking destructor, a destructor that starts a child), a child waits for the
//! descendants it leaked, report blocks are freed on every path, and edge cases of how a
//! child's end is reported.

mod common;

use std::cell::Cell;
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
        // SAFETY: kill and waitpid take integers and a null status pointer, which waitpid
        // accepts; at worst they fail with ESRCH/ECHILD.
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

/// A destructor of the parent's copy of a closure that panics does not let `Process::scope`
/// unwind before every child has ended: the scope waits for all of them before it runs any
/// destructor (which once let it unwind while a borrowing child still ran, and wrote memory
/// the parent had freed and reused).
#[test]
fn a_panicking_capture_destructor_still_joins_every_child() {
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
    let payload = caught.expect_err("the destructor's panic resumes");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"the parent's copy of a capture panicked in its destructor")
    );
    assert!(
        joined_before_return && fresh_value == 0,
        "scope returned (by unwinding) with a child still running: joined={joined_before_return}, \
         child finished later={child_finished}; the fresh object at offset {} (victim was {victim_offset}) \
         now reads {fresh_value:#x}",
        fresh.offset()
    );
}

/// A capture whose destructor starts another child in the scope, and records what `start`
/// said: 1 refused as `ScopeClosing`, 2 started, 3 another error.
struct StartOnDrop<'s, 'e> {
    scope: &'s Scope<'s, 'e>,
    victim: &'s RawValue<u64>,
    done: &'s RawValue<u64>,
    pid: &'s RawValue<i32>,
    said: &'s Cell<u8>,
    armed: bool,
}
impl Drop for StartOnDrop<'_, '_> {
    fn drop(&mut self) {
        if self.armed {
            let (victim, done, pid) = (self.victim, self.done, self.pid);
            let started = self.scope.start(move || {
                pid.set(getpid());
                std::thread::sleep(Duration::from_millis(400));
                victim.set(MARK);
                done.set(1);
            });
            self.said.set(match started {
                Err(Error::ScopeClosing) => 1,
                Ok(_) => 2,
                Err(_) => 3,
            });
        }
    }
}

/// A destructor that runs while the scope closes (the parent's copy of a closure, dropped
/// after the children have ended) cannot start a child in it: `start` says `ScopeClosing`,
/// and no child runs on after `scope` returned (one once escaped the scope this way, and
/// wrote a borrowed object after it was freed).
#[test]
fn a_child_cannot_be_started_while_the_scope_closes() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let victim = RawValue::new_in(&arena, 0u64).unwrap();
    let done = RawValue::new(0u64).unwrap();
    let pid = RawValue::new(0i32).unwrap();
    let said = Cell::new(0u8);
    Process::scope(|s| {
        let g = StartOnDrop {
            scope: s,
            victim: &victim,
            done: &done,
            pid: &pid,
            said: &said,
            armed: true,
        };
        // The child disarms its own copy; the parent's copy is dropped as the scope closes.
        drop(
            s.start(move || {
                let mut g = g;
                g.armed = false;
            })
            .unwrap(),
        );
    });
    let started_pid = pid.get();
    drop(victim);
    let fresh = RawValue::new_in(&arena, 0u64).unwrap();
    let fresh_value = fresh.get();
    reap(started_pid);
    assert_eq!(
        said.get(),
        1,
        "start while closing: 1 = ScopeClosing, 2 = started"
    );
    assert_eq!(
        (started_pid, done.get(), fresh_value),
        (0, 0, 0),
        "a child ran after the scope closed"
    );
}

/// A child whose closure returns waits for the descendants it leaked before it ends: the
/// middle child forgets its `Process` of a grandchild; the grandparent's join of the middle
/// returns only after the grandchild has ended, so the object the grandparent frees then
/// is no longer written (once the grandchild wrote the freed, reused block).
#[test]
fn a_child_waits_for_the_grandchild_it_leaked() {
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
    assert_eq!(
        done.get(),
        1,
        "the middle child ended before its grandchild"
    );
    drop(victim); // the last handle in the grandparent: the block is freed
    let fresh = RawValue::new_in(&arena, 0u64).unwrap();
    let finished = eventually(&done);
    let fresh_value = fresh.get();
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

/// A panic whose message's `Display` panics makes std abort ("panicked while processing
/// panic"): the child is reported killed by `SIGABRT`.
#[test]
fn panic_whose_display_panics_is_sigabrt() {
    let _serial = forking();
    let r = in_child(|| -> u8 { panic!("{}", BadDisplay) });
    assert!(
        matches!(r, Err(Error::ChildKilled { signal, .. }) if signal == libc::SIGABRT),
        "{r:?}"
    );
}

/// A child reaped elsewhere (SIGCHLD = SIG_IGN), checked in a child so the disposition
/// stays there: join reports NotFound, drop does not hang.
#[test]
fn reaped_elsewhere_is_reported_and_drop_does_not_hang() {
    let _serial = forking();
    let r = in_child(|| -> u8 {
        // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
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

/// A forgotten `ScopedProcess` leaks nothing: the scope owns the child's report block (the
/// handle once did, and about 1 KiB of the global arena was lost with it).
#[test]
fn a_forgotten_scoped_process_leaks_no_report_block() {
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

/// A capture destructor that panics does not keep the others from running: every copy is
/// dropped, and the first panic resumes afterwards.
#[test]
fn every_capture_is_dropped_though_one_destructor_panics() {
    struct Count<'a>(&'a Cell<u32>);
    impl Drop for Count<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let _serial = forking();
    let dropped = Cell::new(0);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        Process::scope(|s| {
            let (bomb, a, b) = (PanicOnDrop(true), Count(&dropped), Count(&dropped));
            let _ = s.start(move || std::mem::forget(a)).unwrap();
            let _ = s.start(move || std::mem::forget(bomb)).unwrap();
            let _ = s.start(move || std::mem::forget(b)).unwrap();
        })
    }));
    assert!(caught.is_err(), "the destructor's panic resumes");
    // In the parent: the two counting copies were dropped, one before and one after the
    // panicking one.
    assert_eq!(dropped.get(), 2);
}

/// An unjoined scoped child reaped by someone else (`SIGCHLD` ignored, in a child so that
/// the disposition stays there) makes the scope panic unless its closure returned.
#[test]
fn an_unjoined_child_reaped_elsewhere_is_judged_by_its_report() {
    let _serial = forking();
    let r = in_child(|| -> u8 {
        // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let returned = panic::catch_unwind(|| Process::scope(|s| drop(s.start(|| 1u8))));
        let panicked = panic::catch_unwind(|| {
            Process::scope(|s| drop(s.start(|| -> u8 { panic!("unseen") })))
        });
        let message = match &panicked {
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default(),
            Ok(()) => String::new(),
        };
        let ok = returned.is_ok()
            && message.contains("panicked: unseen")
            && message.contains("reaped by someone else");
        ok as u8
    });
    assert_eq!(r.unwrap(), 1);
}
