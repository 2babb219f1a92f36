//! `Process`: values returned by children, typed child failures, `Debug`, and
//! `Process::scope` (every child joined before it returns, even a leaked one).

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use common::{finish, forking, in_child, wait_until};
use shared_runtime::{
    Arena, CChar, Error, Process, RawArray, RawValue, SharedStruct, PANIC_EXIT_CODE,
};

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Reading {
    sensor: u16,
    celsius: f64,
    raw: [u8; 3],
}

/// Children return values of every kind of shared type, by either way of starting them.
#[test]
fn children_return_values() {
    let _serial = forking();
    let pid = std::process::id() as i32;
    assert_eq!(finish(Process::start(|| 40u64 + 2).unwrap()).unwrap(), 42);
    assert_eq!(finish(Process::start(|| -0.5f64).unwrap()).unwrap(), -0.5);
    assert_eq!(
        finish(Process::start(|| *b"fork!").unwrap()).unwrap(),
        *b"fork!"
    );
    assert_eq!(
        finish(Process::start(|| CChar(b'q')).unwrap()).unwrap(),
        CChar(b'q')
    );
    // The child's own pid, which the parent only knows through `pid()`.
    let p = Process::start(|| std::process::id() as i32).unwrap();
    let child = p.pid();
    assert_eq!(finish(p).unwrap(), child);
    assert_ne!(child, pid);
    finish(Process::start(|| ()).unwrap()).unwrap();

    let base = RawValue::new(20.5f64).unwrap();
    let reading = in_child(|| Reading {
        sensor: 7,
        celsius: base.get() + 1.0,
        raw: [1, 2, 3],
    })
    .unwrap();
    assert_eq!(
        reading,
        Reading {
            sensor: 7,
            celsius: 21.5,
            raw: [1, 2, 3]
        }
    );
}

/// Many children in one scope, each returning its share; the values are each child's own.
#[test]
fn scoped_children_return_their_own_values() {
    let _serial = forking();
    let input = RawArray::from_slice(&[3u64, 1, 4, 1, 5, 9, 2, 6]).unwrap();
    let total = Process::scope(|s| {
        let input = &input;
        let children = (0..4)
            .map(|w| {
                s.start(move || input.read(2 * w..2 * w + 2).iter().sum::<u64>() * 10 + w as u64)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut parts = Vec::new();
        for c in children {
            parts.push(finish(c)?);
        }
        Ok::<_, Error>(parts)
    })
    .unwrap();
    assert_eq!(total, [40, 51, 142, 83]);
}

/// A panic comes back with the child's pid and the panic's message, formatted or not.
#[test]
fn panic_is_child_panicked_with_its_message() {
    let _serial = forking();
    let p = Process::<u32>::start(|| panic!("sensor {} is {}", 3, "gone")).unwrap();
    let pid = p.pid();
    match finish(p) {
        Err(Error::ChildPanicked { pid: got, message }) => {
            assert_eq!(got, pid);
            assert_eq!(message, "sensor 3 is gone");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = finish(Process::<()>::start(|| panic::panic_any(5u8)).unwrap()).unwrap_err();
    assert!(
        matches!(&err, Error::ChildPanicked { message, .. } if message == "Box<dyn Any>"),
        "{err:?}"
    );
    assert!(err.to_string().ends_with("panicked: Box<dyn Any>"), "{err}");
}

/// A long message is cut to about a kilobyte, at a character boundary.
#[test]
fn long_panic_message_is_cut_at_a_char_boundary() {
    let _serial = forking();
    let long = "é".repeat(600); // 1200 bytes of two-byte characters
    let err = in_child(move || -> u8 { panic!("{long}") }).unwrap_err();
    let Error::ChildPanicked { message, .. } = err else {
        panic!("unexpected {err:?}")
    };
    assert!(
        message.len() > 900 && message.len() <= 1024,
        "{}",
        message.len()
    );
    assert!(message.chars().all(|c| c == 'é'), "cut inside a character");
}

/// Killed by a signal: `ChildKilled` with the signal's number, named in the message.
#[test]
fn signal_is_child_killed() {
    let _serial = forking();
    let p = Process::<()>::start(|| {
        // SAFETY: raise(3) reads no memory; SIGTERM's default action ends the process.
        unsafe { libc::raise(libc::SIGTERM) };
        unreachable!("SIGTERM ends the process");
    })
    .unwrap();
    let pid = p.pid();
    let err = finish(p).unwrap_err();
    assert!(
        matches!(err, Error::ChildKilled { pid: got, signal: libc::SIGTERM } if got == pid),
        "{err:?}"
    );
    assert!(err.to_string().ends_with("(SIGTERM)"), "{err}");
}

/// Exiting before the closure returns is `ChildExited`, exit code 0 included: a child
/// that wrote no value never gives one.
#[test]
fn early_exit_is_child_exited_even_with_code_zero() {
    let _serial = forking();
    for code in [0, 1, 3, PANIC_EXIT_CODE] {
        let p = Process::<u64>::start(move || std::process::exit(code)).unwrap();
        let pid = p.pid();
        match finish(p) {
            Err(Error::ChildExited { pid: got, code: c }) => assert_eq!((got, c), (pid, code)),
            other => panic!("exit({code}): unexpected {other:?}"),
        }
    }
}

/// `Debug` shows the pid and the state: running, then how the child ended.
#[test]
fn debug_shows_pid_and_state() {
    let _serial = forking();
    let mut p = Process::<()>::start(|| loop {
        std::thread::park();
    })
    .unwrap();
    let pid = p.pid();
    assert_eq!(
        format!("{p:?}"),
        format!("Process {{ pid: {pid}, state: running }}")
    );
    p.kill().unwrap();
    assert!(p.join_timeout(common::PATIENCE).is_err());
    assert_eq!(
        format!("{p:?}"),
        format!("Process {{ pid: {pid}, state: killed by signal 9 (SIGKILL) }}")
    );

    let mut p = Process::start(|| 5u8).unwrap();
    assert_eq!(p.join_timeout(common::PATIENCE).unwrap(), 5);
    assert!(
        format!("{p:?}").ends_with("state: exited with code 0 }"),
        "{p:?}"
    );

    Process::scope(|s| {
        let p = s.start(|| {}).unwrap();
        let pid = p.pid();
        assert!(
            wait_until(|| format!("{p:?}").contains("ended, not joined")),
            "{p:?}"
        );
        assert_eq!(
            format!("{p:?}"),
            format!("ScopedProcess {{ pid: {pid}, state: ended, not joined }}")
        );
        finish(p).unwrap();
    });
}

/// The scope joins a child whose handle was leaked: the child goes on writing a borrowed
/// object after the handle is gone, and the parent sees its last write once `scope`
/// returns; the object is still valid. What the leaked child's closure owned is freed only
/// after the child ended, never while it runs.
#[test]
fn scope_joins_a_forgotten_child() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let counter = RawValue::new_in(&arena, 0u64).unwrap();
    let baseline = arena.stats().unwrap().live_allocations;
    let owned_offset = Process::scope(|s| {
        let counter = &counter; // borrowed by the child
        let owned = RawValue::new_in(&arena, 0u64).unwrap(); // owned by its closure
        let offset = owned.offset();
        let p = s
            .start(move || {
                for i in 1..=50 {
                    std::thread::sleep(Duration::from_millis(2));
                    counter.set(i);
                    owned.set(i);
                }
            })
            .unwrap();
        std::mem::forget(p);
        // The child runs on: its closure's object must not be freed and reused meanwhile.
        let other = RawValue::new_in(&arena, 7u64).unwrap();
        assert_ne!(other.offset(), offset);
        offset
    });
    assert_eq!(
        counter.get(),
        50,
        "scope returned before the child had ended"
    );
    counter.set(51);
    assert_eq!(counter.get(), 51);
    // The owned object (and nothing else of the child's) was freed once the child ended.
    let stats = arena.stats().unwrap();
    assert_eq!(stats.live_allocations, baseline, "offset {owned_offset}");
    arena.check().unwrap();
}

/// A scoped child's failure comes back from its `join`, typed; `scope` returns the
/// closure's value, the error included.
#[test]
fn scoped_child_error_is_returned() {
    let _serial = forking();
    let word = String::from("scoped");
    let err =
        Process::scope(|s| s.start(|| -> u64 { panic!("{word} failure") })?.join()).unwrap_err();
    assert!(
        matches!(&err, Error::ChildPanicked { message, .. } if message == "scoped failure"),
        "{err:?}"
    );
    let err = Process::scope(|s| s.start::<()>(|| std::process::exit(9))?.join()).unwrap_err();
    assert!(matches!(err, Error::ChildExited { code: 9, .. }), "{err:?}");
}

/// A child that failed and that nobody joined makes `scope` panic (as `std::thread::scope`
/// does), after every child was joined; one that was joined does not.
#[test]
fn scope_panics_for_an_unjoined_failed_child() {
    let _serial = forking();
    let done = RawValue::new(0u8).unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        Process::scope(|s| {
            let _ = s.start::<()>(|| panic!("nobody joined me")).unwrap();
            let _ = s
                .start(|| {
                    std::thread::sleep(Duration::from_millis(50));
                    done.set(1);
                })
                .unwrap();
        })
    }));
    let payload = caught.expect_err("scope should have panicked");
    let message = payload
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(message.contains("nobody joined me"), "{message}");
    assert_eq!(done.get(), 1, "the other child was joined first");

    // Joined, the failure is the join's and the scope is content.
    let joined = Process::scope(|s| s.start::<()>(|| panic!("joined")).unwrap().join());
    assert!(matches!(joined, Err(Error::ChildPanicked { .. })));
}

/// A panic in the scope's closure resumes after every child has been joined.
#[test]
fn scope_closure_panic_resumes_after_the_join() {
    let _serial = forking();
    let done = RawValue::new(0u8).unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        Process::scope(|s| {
            let _ = s.start(|| {
                std::thread::sleep(Duration::from_millis(50));
                done.set(1);
            });
            panic!("the scope's own panic");
        })
    }));
    let payload = caught.expect_err("the panic resumes");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"the scope's own panic")
    );
    assert_eq!(
        done.get(),
        1,
        "the child was joined before the panic resumed"
    );
}

/// A child handed its parent's scope cannot start children in it (they would outlive the
/// scope): `ForeignScope`, naming the scope's maker.
#[test]
fn a_child_cannot_use_its_parents_scope() {
    let _serial = forking();
    let parent = std::process::id() as i32;
    let owner = Process::scope(|s| {
        s.start(|| match s.start(|| {}) {
            Err(Error::ForeignScope { owner }) => owner,
            _ => -1,
        })?
        .join()
    })
    .unwrap();
    assert_eq!(owner, parent);
}

/// `()` is a zero-sized shared type: values and arrays of it work.
#[test]
fn unit_is_a_zero_sized_shared_type() {
    let v = RawValue::new(()).unwrap();
    v.set(());
    assert_eq!(v.get(), ());
    let a = RawArray::<()>::zeroed(3).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.to_vec(), [(), (), ()]);
    assert_eq!(RawArray::<()>::zeroed(0).unwrap().len(), 0);
}
