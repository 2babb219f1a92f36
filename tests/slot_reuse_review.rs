//! Slabs end to end: a write through another process's stale view of a freed object,
//! made between the free and the next claim, must not survive into the next object made
//! in that slot (the claimer zeroes the slot, as the block cache zeroes a block it takes
//! out). Reproducers of a review finding, kept as regression tests. Every wait is bounded.

mod common;

use common::{finish, forking, wait_until};
use shared_runtime::test_hooks::set_slabs_for_tests;
use shared_runtime::{Arena, Event, Lock, Process, RawArray, Value};

/// Flags in a block (128 bytes: never a slot): [child has its view, parent dropped, child wrote].
fn flags(arena: &Arena) -> RawArray<u64> {
    RawArray::zeroed_in(arena, 16).unwrap()
}

fn child_flags(a: &Arena, parent_flags_at: &shared_runtime::handle::Handle) -> RawArray<u64> {
    RawArray::<u64>::open_handle(a, parent_flags_at).unwrap()
}

/// Makes objects with `make` until one lands at `off` (as `at` reads it), keeping the
/// others alive so the allocator moves on; at most 600 tries.
fn made_at<T>(off: u64, make: impl Fn() -> T, at: impl Fn(&T) -> u64) -> (T, Vec<T>) {
    let mut keep = Vec::new();
    loop {
        let x = make();
        if at(&x) == off {
            return (x, keep);
        }
        keep.push(x);
        assert!(keep.len() < 600, "the slot at {off} was never reused");
    }
}

/// A `Lock` dropped by its owner while a child holds a view of it by handle: the child
/// takes the stale lock and exits holding it (or just takes it). The owner's next
/// `Lock::new` gets the same slot, not zeroed: a brand-new lock that is already held by
/// a dead thread (poisoned) instead of a fresh, unlocked one.
#[test]
fn a_new_lock_in_a_reused_slot_is_born_held_by_a_stale_view() {
    set_slabs_for_tests(std::env::var_os("RV_SLABS_OFF").is_none());
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let f = flags(&arena);
    let lock = Lock::new_in(&arena).unwrap();
    let (lh, off, fh) = (lock.handle(), lock.handle().offset, f.handle());
    let a = arena.clone();
    let child = Process::start(move || {
        let f = child_flags(&a, &fh);
        let view = Lock::open_handle(&a, &lh).unwrap();
        f.set(0, 1);
        assert!(wait_until(|| f.get(1) == Some(1)));
        // The owner has dropped the lock: this view is stale. Take it and keep it.
        let g = view.try_lock();
        let took = g.is_ok();
        std::mem::forget(g);
        f.set(2, took as u64 + 1);
    })
    .unwrap();
    assert!(
        wait_until(|| f.get(0) == Some(1)),
        "child never opened its view"
    );
    drop(lock);
    f.set(1, 1);
    finish(child).unwrap();
    assert_eq!(
        f.get(2),
        Some(2),
        "the stale view could not even take the freed lock"
    );
    let (fresh, _keep) = made_at(off, || Lock::new_in(&arena).unwrap(), |l| l.handle().offset);
    // A freshly made lock must be unlocked and unpoisoned.
    assert!(!fresh.is_poisoned(), "Lock::new returned a poisoned lock");
    let r = fresh.try_lock();
    assert!(
        r.is_ok(),
        "Lock::new returned a lock that is already held / poisoned"
    );
}

/// The same with data: `RawArray::zeroed_in` of a small array reuses a slot a child wrote
/// through a stale view after the free; the "zeroed" array is not zero (with blocks, the
/// freed block is zeroed again when handed out).
#[test]
fn a_zeroed_small_array_in_a_reused_slot_is_not_zero() {
    set_slabs_for_tests(std::env::var_os("RV_SLABS_OFF").is_none());
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let f = flags(&arena);
    // Keeps the slab in use, so no sweep gives it back (and zeroes it) meanwhile.
    let _anchor = RawArray::<u32>::zeroed_in(&arena, 4).unwrap();
    let arr = RawArray::<u32>::zeroed_in(&arena, 4).unwrap();
    let (ah, off, fh) = (arr.handle(), arr.handle().offset, f.handle());
    let a = arena.clone();
    let child = Process::start(move || {
        let f = child_flags(&a, &fh);
        let view = RawArray::<u32>::open_handle(&a, &ah).unwrap();
        f.set(0, 1);
        assert!(wait_until(|| f.get(1) == Some(1)));
        for i in 0..4 {
            view.set(i, 0xdead_beef);
        }
        f.set(2, 1);
    })
    .unwrap();
    assert!(wait_until(|| f.get(0) == Some(1)));
    drop(arr);
    f.set(1, 1);
    finish(child).unwrap();
    let (fresh, _keep) = made_at(
        off,
        || RawArray::<u32>::zeroed_in(&arena, 4).unwrap(),
        |x| x.handle().offset,
    );
    let got: Vec<u32> = (0..4).map(|i| fresh.get(i).unwrap()).collect();
    assert_eq!(
        got,
        vec![0; 4],
        "RawArray::zeroed_in handed out non-zero memory"
    );
}

/// An `Event` set through a stale view after its owner dropped it: the owner's next
/// `Event::new` is born set.
#[test]
fn a_new_event_in_a_reused_slot_is_born_set() {
    set_slabs_for_tests(std::env::var_os("RV_SLABS_OFF").is_none());
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let f = flags(&arena);
    let ev = Event::new_in(&arena).unwrap();
    let (eh, off, fh) = (ev.handle(), ev.handle().offset, f.handle());
    let a = arena.clone();
    let child = Process::start(move || {
        let f = child_flags(&a, &fh);
        let view = Event::open_handle(&a, &eh).unwrap();
        f.set(0, 1);
        assert!(wait_until(|| f.get(1) == Some(1)));
        view.set();
        f.set(2, 1);
    })
    .unwrap();
    assert!(wait_until(|| f.get(0) == Some(1)));
    drop(ev);
    f.set(1, 1);
    finish(child).unwrap();
    let (fresh, _keep) = made_at(
        off,
        || Event::new_in(&arena).unwrap(),
        |e| e.handle().offset,
    );
    assert!(
        !fresh.is_set(),
        "Event::new returned an event that is already set"
    );
}

/// A `Value<i32>` (lock cell and data in one slot) whose stale view in a child holds the
/// guard: the owner's next `Value::new` there cannot be locked.
#[test]
fn a_new_value_in_a_reused_slot_is_born_locked() {
    set_slabs_for_tests(std::env::var_os("RV_SLABS_OFF").is_none());
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let f = flags(&arena);
    let v = Value::new_in(&arena, 5i32).unwrap();
    let (vh, off, fh) = (v.handle(), v.handle().lock, f.handle());
    let a = arena.clone();
    let child = Process::start(move || {
        let f = child_flags(&a, &fh);
        let view = Value::<i32>::open_handle(&a, &vh).unwrap();
        f.set(0, 1);
        assert!(wait_until(|| f.get(1) == Some(1)));
        let g = view.getlock().try_lock();
        let took = g.is_ok();
        std::mem::forget(g);
        f.set(2, took as u64 + 1);
    })
    .unwrap();
    assert!(wait_until(|| f.get(0) == Some(1)));
    drop(v);
    f.set(1, 1);
    finish(child).unwrap();
    assert_eq!(f.get(2), Some(2));
    let (fresh, _keep) = made_at(
        off,
        || Value::new_in(&arena, 7i32).unwrap(),
        |x| x.handle().lock,
    );
    assert!(!fresh.is_poisoned(), "Value::new returned a poisoned value");
    assert!(
        fresh.getlock().try_lock().is_ok(),
        "Value::new returned a value already locked"
    );
}

/// Through `reclaim_dead`: a child makes an `Event`, the parent opens it by handle, the
/// child is killed and the parent reclaims its objects, then sets its (now stale) view.
/// The next `Event::new` that lands there is born set.
#[test]
fn a_reclaimed_event_set_through_a_stale_view_is_born_set_again() {
    set_slabs_for_tests(std::env::var_os("RV_SLABS_OFF").is_none());
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let f = flags(&arena);
    let _anchor = Event::new_in(&arena).unwrap(); // keeps the slab (if any) from a sweep
    let (a, fh) = (arena.clone(), f.handle());
    let child = Process::start(move || {
        let f = child_flags(&a, &fh);
        let e = Event::new_in(&a).unwrap();
        let h = e.handle();
        f.set(3, h.offset);
        f.set(0, 1);
        std::thread::sleep(std::time::Duration::from_secs(60));
        drop(e);
    })
    .unwrap();
    assert!(wait_until(|| f.get(0) == Some(1)));
    let off = f.get(3).unwrap();
    let mut h = _anchor.handle();
    h.offset = off;
    let view = Event::open_handle(&arena, &h).unwrap();
    child.kill().unwrap();
    assert!(finish(child).is_err());
    assert_eq!(arena.reclaim_dead().unwrap().objects, 1);
    view.set(); // a stale view: wrong but harmless, says the design
    let (fresh, _keep) = made_at(
        off,
        || Event::new_in(&arena).unwrap(),
        |e| e.handle().offset,
    );
    assert!(
        !fresh.is_set(),
        "Event::new returned an event that is already set"
    );
}
