//! `Event` across processes: CPython's event tests (`_test_multiprocessing.py`,
//! `test_event`) ported to forked processes, named and handed-over events, and a waiter
//! whose only setter is killed.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::{finish, forking, wait_until, PATIENCE};
use shared_runtime::handle::Handle;
use shared_runtime::{Arena, Error, Event, Lock, Process, RawValue};

const SHORT: Duration = Duration::from_millis(20);

#[test]
fn set_clear_and_is_set() {
    let e = Event::new().unwrap();
    assert!(!e.is_set());
    e.set();
    assert!(e.is_set());
    e.set();
    assert!(e.is_set());
    e.clear();
    assert!(!e.is_set());
    e.clear();
    assert!(!e.is_set());
    assert!(format!("{e:?}").contains("set: false"), "{e:?}");
}

#[test]
fn wait_returns_true_once_set_and_false_on_timeout() {
    let e = Event::new().unwrap();
    assert!(!e.wait_timeout(SHORT));
    assert!(!e.wait_timeout(Duration::ZERO));
    e.set();
    assert!(e.wait_timeout(SHORT));
    assert!(e.wait_timeout(Duration::ZERO));
    e.wait();
    e.clear();
    assert!(!e.wait_timeout(SHORT));
}

#[test]
fn a_set_in_another_process_releases_the_waiter() {
    let _f = forking();
    let e = Event::new().unwrap();
    let e2 = e.clone();
    let setter = Process::start(move || e2.set()).unwrap();
    assert!(e.wait_timeout(PATIENCE), "the child's set never arrived");
    assert!(e.is_set());
    finish(setter).unwrap();
}

/// CPython: several waiters, in several processes here, all released by one `set`; after
/// a `clear`, the same waiters time out.
#[test]
fn one_set_releases_every_waiter_in_every_process() {
    let _f = forking();
    const WAITERS: usize = 5;
    let e = Event::new().unwrap();
    let waiting = RawValue::new(0u32).unwrap();
    let children: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (e, waiting) = (e.clone(), waiting.clone());
            Process::start(move || {
                waiting.fetch_add(1, SeqCst);
                u64::from(e.wait_timeout(PATIENCE))
            })
            .unwrap()
        })
        .collect();
    assert!(wait_until(|| waiting.get() == WAITERS as u32));
    e.set();
    for c in children {
        assert_eq!(
            finish(c).unwrap(),
            1,
            "a waiter was not released by the set"
        );
    }

    e.clear();
    let children: Vec<_> = (0..WAITERS)
        .map(|_| {
            let e = e.clone();
            Process::start(move || u64::from(e.wait_timeout(SHORT))).unwrap()
        })
        .collect();
    for c in children {
        assert_eq!(finish(c).unwrap(), 0, "a waiter saw a set after the clear");
    }
}

/// A waiter released by a `set` returns `true` even if the flag is cleared again before it
/// runs (as CPython's): the set is never lost.
#[test]
fn set_then_clear_still_releases_waiters() {
    let _f = forking();
    let e = Event::new().unwrap();
    let waiting = RawValue::new(0u32).unwrap();
    let (e2, w2) = (e.clone(), waiting.clone());
    let waiter = Process::start(move || {
        w2.fetch_add(1, SeqCst);
        u64::from(e2.wait_timeout(PATIENCE))
    })
    .unwrap();
    assert!(wait_until(|| waiting.get() == 1));
    e.set();
    e.clear();
    assert_eq!(finish(waiter).unwrap(), 1);
    assert!(!e.is_set());
}

#[test]
fn a_named_event_is_opened_by_name_in_a_child() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let ready = arena.create::<Event>("ready", ()).unwrap();
    let a = arena.clone();
    let child = Process::start(move || {
        let (e, created) = a.find_or_create::<Event>("ready", ()).unwrap();
        assert!(!created);
        let wrong = a.open::<Lock>("ready");
        assert!(
            matches!(wrong, Err(Error::KindMismatch { .. })),
            "{wrong:?}"
        );
        a.open::<Event>("ready").unwrap().set();
        u64::from(e.is_set())
    })
    .unwrap();
    assert!(ready.wait_timeout(PATIENCE));
    assert_eq!(finish(child).unwrap(), 1);
    let listed = arena.objects().unwrap();
    assert!(listed
        .iter()
        .any(|o| o.name == "ready" && o.label == "Event"));
}

#[test]
fn an_unnamed_event_is_handed_over_by_handle_text() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let e = Event::new_in(&arena).unwrap();
    let text = e.handle().to_string();
    let a = arena.clone();
    let child = Process::start(move || {
        let h: Handle = text.parse().unwrap();
        assert!(Lock::open_handle(&a, &h).is_err());
        Event::open_handle(&a, &h).unwrap().set();
    })
    .unwrap();
    assert!(e.wait_timeout(PATIENCE));
    finish(child).unwrap();
    // This process owns it: opening its own handle is refused, as for raw values.
    assert!(Event::open_handle(&arena, &e.handle()).is_err());
}

/// The process that would set the event is killed: the waiter is not stuck, it returns
/// `false` at its timeout, and the event still works afterwards.
#[test]
fn a_waiter_whose_setter_is_killed_returns_at_its_timeout() {
    let _f = forking();
    let e = Event::new().unwrap();
    let never = Event::new().unwrap();
    let started = RawValue::new(0u32).unwrap();
    let (never2, started2) = (never.clone(), started.clone());
    let setter = Process::start(move || {
        started2.fetch_add(1, SeqCst);
        never2.wait(); // killed while waiting, before it could set anything
    })
    .unwrap();
    let e2 = e.clone();
    let waiter =
        Process::start(move || u64::from(e2.wait_timeout(Duration::from_millis(200)))).unwrap();
    assert!(wait_until(|| started.get() == 1));
    setter.kill().unwrap();
    assert!(finish(setter).is_err(), "the killed setter ended normally");
    assert_eq!(finish(waiter).unwrap(), 0, "released without a set");
    e.set();
    assert!(e.wait_timeout(PATIENCE));
}
