//! Named objects of every kind: kinds and layouts checked, one handle per object per
//! process, lifetime across processes (remove while open, dead openers reclaimed), and
//! handles of every kind.

mod common;

use std::time::Duration;

use common::{finish, forking, unique, wait_until};
use shared_runtime::arena::ObjectKind;
use shared_runtime::handle::Handle;
use shared_runtime::{
    Arena, Array, Error, HolderStatus, Lock, PoisonCause, Process, RLock, RawArray, RawValue, Value,
};

fn arena() -> Arena {
    Arena::with_capacity(1 << 20).unwrap()
}

#[test]
fn every_kind_is_checked_when_opened() {
    let a = arena();
    a.create::<RawValue<u64>>("rv", 1).unwrap();
    a.create::<RawArray<u16>>("ra", &[1, 2]).unwrap();
    a.create::<Value<u64>>("v", 2).unwrap();
    a.create::<Value<u64, Lock>>("vl", 3).unwrap();
    a.create::<Array<u8>>("arr", &[4, 5]).unwrap();
    a.create::<Lock>("lock", ()).unwrap();
    a.create::<RLock>("rlock", ()).unwrap();
    let kind = |r: Result<(), Error>, names: [&str; 2]| {
        let err = r.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::KindMismatch { .. }), "{text}");
        for n in names {
            assert!(text.contains(n), "{text} lacks {n}");
        }
    };
    kind(
        a.open::<Value<u64>>("lock").map(drop),
        ["Lock", "Value<u64, RLock>"],
    );
    kind(
        a.open::<Value<u64, RLock>>("vl").map(drop),
        ["Value<u64, Lock>", "Value<u64, RLock>"],
    );
    kind(
        a.open::<RawValue<u64>>("v").map(drop),
        ["Value<u64, RLock>", "RawValue<u64>"],
    );
    kind(a.open::<Lock>("rlock").map(drop), ["RLock", "Lock"]);
    kind(a.open::<RLock>("rv").map(drop), ["RawValue<u64>", "RLock"]);
    kind(
        a.open::<Array<u16>>("ra").map(drop),
        ["RawArray<u16>", "Array<u16, RLock>"],
    );
    kind(
        a.open::<RawArray<u8>>("arr").map(drop),
        ["Array<u8, RLock>", "RawArray<u8>"],
    );
    let layout = |r: Result<(), Error>| {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::LayoutMismatch { .. }), "{err}");
    };
    layout(a.open::<Value<u32>>("v").map(drop));
    layout(a.open::<RawValue<i64>>("rv").map(drop));
    layout(a.open::<RawArray<u8>>("ra").map(drop));
    layout(a.open::<Array<i8>>("arr").map(drop));
    layout(a.find_or_create::<Array<u8>>("arr", &[0; 3]).map(drop));
    // And the right kinds open, sharing data and lock.
    let v: Value<u64> = a.open("v").unwrap();
    assert_eq!(v.get(), 2);
    assert_eq!(a.open::<Array<u8>>("arr").unwrap().to_vec(), [4, 5]);
    assert_eq!(a.open::<RawArray<u16>>("ra").unwrap().len(), 2);
    let l1: Lock = a.open("lock").unwrap();
    let l2: Lock = a.open("lock").unwrap();
    let g = l1.lock().unwrap();
    assert!(l2.try_lock().is_err());
    drop(g);
    a.check().unwrap();
}

#[test]
fn a_named_value_has_one_handle_per_process() {
    let a = arena();
    let x = a.create::<Value<u64>>("x", 1).unwrap();
    let y: Value<u64> = a.open("x").unwrap();
    assert!(x.getlock().same_as(y.getlock()));
    let guard = x.lock().unwrap();
    // Through the second handle, on the same thread: the borrow mark is shared, so this
    // is refused instead of aliasing the guard's `&mut`.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| y.get()));
    assert!(
        r.is_err(),
        "get() through a second handle must not alias a guard"
    );
    drop(guard);
    x.clear_poison();
    assert_eq!(y.get(), 1);
}

#[test]
fn find_or_create_races_in_eight_processes_make_one_of_each() {
    let _serial = forking();
    for _ in 0..5 {
        let a = arena();
        let made = a.create::<RawArray<u8>>("made", &[0; 24]).unwrap();
        let go = a.create::<RawValue<u8>>("go", 0).unwrap();
        let kids: Vec<_> = (0..8usize)
            .map(|i| {
                let (a, made, go) = (a.clone(), made.clone(), go.clone());
                Process::start(move || {
                    while go.get() == 0 {
                        std::hint::spin_loop();
                    }
                    let (v, c0) = a.find_or_create::<Value<u64>>("v", i as u64).unwrap();
                    let (l, c1) = a.find_or_create::<Lock>("l", ()).unwrap();
                    let (r, c2) = a
                        .find_or_create::<RawArray<u32>>("r", &[i as u32; 3])
                        .unwrap();
                    v.update(|n| *n += 100);
                    drop((l, r));
                    made.set(i * 3, c0 as u8);
                    made.set(i * 3 + 1, c1 as u8);
                    made.set(i * 3 + 2, c2 as u8);
                })
                .unwrap()
            })
            .collect();
        go.set(1);
        for k in kids {
            finish(k).unwrap();
        }
        let flags = made.to_vec();
        for kind in 0..3 {
            let n: u32 = (0..8).map(|i| u32::from(flags[i * 3 + kind])).sum();
            assert_eq!(n, 1, "kind {kind}: {flags:?}");
        }
        let v: Value<u64> = a.open("v").unwrap();
        assert_eq!(
            v.get() % 100,
            v.get() - 800,
            "one initial value plus 8 updates"
        );
        assert!(v.get() >= 800 && v.get() < 808);
        a.check().unwrap();
    }
}

#[test]
fn a_killed_holder_of_a_named_lock_is_recovered_with_poison() {
    let _serial = forking();
    let name = unique("named-kill");
    let creator = Arena::create_segment(&name, 1 << 20).unwrap();
    let lock = creator.create::<Lock>("big-lock", ()).unwrap();
    let ready = creator.create::<RawValue<u8>>("ready", 0).unwrap();
    let seg = name.clone();
    let child = Process::<()>::start(move || {
        // Everything by name, as an unrelated program would.
        let arena = Arena::open_segment(&seg).unwrap();
        let lock: Lock = arena.open("big-lock").unwrap();
        let ready: RawValue<u8> = arena.open("ready").unwrap();
        let _g = lock.lock().unwrap();
        ready.set(1);
        loop {
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .unwrap();
    assert!(wait_until(|| ready.get() == 1));
    let held = creator.objects().unwrap();
    let info = held.iter().find(|o| o.name == "big-lock").unwrap();
    let holder = info.lock.unwrap().holder.unwrap();
    assert_eq!(holder.pid, Some(child.pid()));
    assert_eq!(holder.status, HolderStatus::Alive);
    let pid = child.pid();
    child.kill().unwrap();
    assert!(finish(child).is_err());
    let dead = lock.state().holder.unwrap();
    assert_eq!(dead.status, HolderStatus::Dead);
    let err = lock.lock().unwrap_err();
    let poison = lock.poison().unwrap();
    assert_eq!((poison.cause, poison.pid), (PoisonCause::Died, Some(pid)));
    drop(err);
    assert!(lock.state().holder.is_none());
}

#[test]
fn a_removed_object_lives_while_open_and_is_never_shared() {
    let a = arena();
    let before = a.stats().unwrap().live_allocations;
    let v = a.create::<Value<u64>>("x", 5).unwrap();
    let h = v.handle();
    assert!(a.remove("x").unwrap());
    assert!(matches!(
        a.open::<Value<u64>>("x"),
        Err(Error::NotFound { .. })
    ));
    // New objects, named and not, never share the removed one's bytes (its lock included).
    let lo = h.lock;
    let hi = h.offset + 8;
    let mut others = Vec::new();
    for i in 0..50u64 {
        let w = a.create::<Value<u64>>(&format!("y{i}"), i).unwrap();
        let r = RawArray::<u8>::zeroed_in(&a, 40).unwrap();
        for (start, end) in [
            (w.handle().lock, w.handle().offset + 8),
            (r.offset(), r.offset() + 40),
        ] {
            assert!(
                end <= lo || start >= hi,
                "[{start}, {end}) overlaps [{lo}, {hi})"
            );
        }
        others.push((w, r));
    }
    v.update(|n| *n += 1);
    assert_eq!(v.get(), 6);
    drop(others);
    for i in 0..50 {
        a.remove(&format!("y{i}")).unwrap();
    }
    drop(v); // the last opener: now it is freed
    assert_eq!(a.stats().unwrap().live_allocations, before);
    a.check().unwrap();
}

#[test]
fn a_killed_openers_open_record_is_reclaimed() {
    let _serial = forking();
    let a = arena();
    let before = a.stats().unwrap().live_allocations;
    a.create::<Array<u32>>("xs", &[1, 2, 3]).unwrap();
    let ready = RawValue::new_in(&a, 0u8).unwrap();
    let (a2, ready2) = (a.clone(), ready.clone());
    let child = Process::<()>::start(move || {
        let xs: Array<u32> = a2.open("xs").unwrap();
        xs.set(0, 7);
        ready2.set(1);
        loop {
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .unwrap();
    assert!(wait_until(|| ready.get() == 1));
    assert_eq!(a.objects().unwrap()[0].open_count, 1);
    child.kill().unwrap();
    assert!(finish(child).is_err());
    assert!(a.remove("xs").unwrap());
    // The dead child still has it open, as far as the arena knows: not freed yet.
    assert_eq!(a.stats().unwrap().live_allocations, before + 3);
    let got = a.reclaim_dead().unwrap();
    assert_eq!(got.objects, 2, "the open record and the orphan");
    drop(ready);
    assert_eq!(a.stats().unwrap().live_allocations, before);
    a.check().unwrap();
}

#[test]
fn handles_of_every_kind_check_what_they_open() {
    let _serial = forking();
    let a = arena();
    let v = a.create::<Value<u64, Lock>>("v", 1).unwrap();
    let xs = Array::from_slice_in(&a, &[1i16, 2, 3]).unwrap();
    let l = a.create::<RLock>("l", ()).unwrap();
    let raw = RawValue::new_in(&a, 9u8).unwrap();
    let texts: Vec<String> = [v.handle(), xs.handle(), l.handle(), raw.handle()]
        .iter()
        .map(Handle::to_string)
        .collect();
    for t in &texts {
        assert_eq!(t.parse::<Handle>().unwrap().to_string(), *t);
    }
    assert_eq!(
        v.handle().kind,
        ObjectKind::Value(shared_runtime::arena::LockKind::Lock)
    );
    let old = format!(
        "shr1:{:x}:{:x}:1:{:x}:vb",
        a.id(),
        raw.offset(),
        raw.handle().fingerprint
    );
    assert_eq!(old.parse::<Handle>().unwrap(), raw.handle());
    assert!("shr1:1:2:1:3:Vlb".parse::<Handle>().is_err());
    let (a2, texts2) = (a.clone(), texts.clone());
    let checks = Process::start(move || {
        let [vh, xh, lh, rh]: [Handle; 4] = std::array::from_fn(|i| texts2[i].parse().unwrap());
        let v = Value::<u64, Lock>::open_handle(&a2, &vh).unwrap();
        v.update(|n| *n += 1);
        let xs = Array::<i16>::open_handle(&a2, &xh).unwrap();
        xs.set(2, -3);
        let l = RLock::open_handle(&a2, &lh).unwrap();
        let g = l.lock().unwrap();
        std::mem::forget(g); // held by a process about to exit: recovered later
        let mismatches = [
            matches!(
                Value::<u64>::open_handle(&a2, &vh),
                Err(Error::KindMismatch { .. })
            ),
            matches!(
                Value::<u32, Lock>::open_handle(&a2, &vh),
                Err(Error::LayoutMismatch { .. })
            ),
            matches!(Lock::open_handle(&a2, &lh), Err(Error::KindMismatch { .. })),
            matches!(
                Array::<i16>::open_handle(&a2, &rh),
                Err(Error::KindMismatch { .. })
            ),
            matches!(
                RawArray::<i16>::open_handle(&a2, &xh),
                Err(Error::KindMismatch { .. })
            ),
            matches!(
                Array::<i16>::open_handle(&a2, &Handle { len: 1000, ..xh }),
                Err(Error::InvalidHandle { .. })
            ),
            matches!(
                Array::<i16>::open_handle(&Arena::with_capacity(1 << 20).unwrap(), &xh),
                Err(Error::InvalidHandle { .. })
            ),
        ];
        mismatches.iter().all(|&ok| ok) as u8
    })
    .unwrap();
    assert_eq!(finish(checks).unwrap(), 1);
    assert_eq!(v.get(), 2);
    assert_eq!(xs.to_vec(), [1, 2, -3]);
    assert!(l.lock().is_err(), "the holder exited holding it: poisoned");
    // In the owning process, a second handle of its own Value is refused.
    assert!(matches!(
        Array::<i16>::open_handle(&a, &xs.handle()),
        Err(Error::InvalidHandle { .. })
    ));
}

#[test]
fn an_opener_that_ends_normally_closes_its_record() {
    let _serial = forking();
    let name = unique("named-close");
    let a = Arena::create_segment(&name, 1 << 20).unwrap();
    a.create::<RawValue<u64>>("j", 0).unwrap();
    let seg = name.clone();
    let p = Process::start(move || {
        let named = Arena::open_segment(&seg).unwrap();
        let j: RawValue<u64> = named.open("j").unwrap();
        j.set(1);
    })
    .unwrap();
    finish(p).unwrap();
    assert_eq!(a.objects().unwrap()[0].open_count, 0);
    assert_eq!(a.reclaim_dead().unwrap().objects, 0);
}

#[test]
fn a_child_that_inherited_a_handle_and_opens_by_name_is_counted() {
    let _serial = forking();
    let a = arena();
    let before = a.stats().unwrap().live_allocations;
    let v = a.create::<Value<u64>>("v", 1).unwrap();
    let done = RawValue::new_in(&a, 0u8).unwrap();
    let (a2, done2) = (a.clone(), done.clone());
    let p = Process::start(move || {
        // The parent's handle is inherited (in the map); opening by name reuses it (one
        // handle per process) and records this process's own use.
        let mine: Value<u64> = a2.open("v").unwrap();
        let n = a2.objects().unwrap()[0].open_count;
        mine.update(|x| *x += 1);
        drop(mine);
        done2.set(1);
        n
    })
    .unwrap();
    assert_eq!(
        finish(p).unwrap(),
        2,
        "the parent's open record and the child's"
    );
    assert_eq!(done.get(), 1);
    // The child's inherited handle was never dropped there (a forked child does not run
    // its parent's destructors), so its record stays until the child is proven dead.
    assert_eq!(a.objects().unwrap()[0].open_count, 2);
    assert_eq!(v.get(), 2);
    drop((v, done));
    a.remove("v").unwrap();
    assert!(
        a.stats().unwrap().live_allocations > before,
        "the child's record keeps it"
    );
    assert_eq!(
        a.reclaim_dead().unwrap().objects,
        2,
        "its record, then the object"
    );
    assert_eq!(a.stats().unwrap().live_allocations, before);
}

/// The listing names every synchronization kind, shows the internal lock of a queue and a
/// barrier (so a stuck one can be inspected), and no lock for the lock-free kinds.
#[test]
fn the_listing_shows_synchronization_objects_and_their_internal_locks() {
    use shared_runtime::{Barrier, BoundedSemaphore, Condition, Event, Queue, Semaphore};
    let a = Arena::with_capacity(1 << 20).unwrap();
    let _e = a.create::<Event>("e", ()).unwrap();
    let _c = a.create::<Condition>("c", ()).unwrap();
    let _s = a.create::<Semaphore>("s", 2).unwrap();
    let _b = a.create::<BoundedSemaphore>("bs", 2).unwrap();
    let _r = a.create::<Barrier>("r", 3).unwrap();
    let _q = a.create::<Queue<u32>>("q", 4).unwrap();
    let all = a.objects().unwrap();
    let find = |n: &str| all.iter().find(|o| o.name == n).expect("listed");
    for (name, kind, locked) in [
        ("e", ObjectKind::Event, false),
        ("c", ObjectKind::Condition, false),
        ("s", ObjectKind::Semaphore, false),
        ("bs", ObjectKind::BoundedSemaphore, false),
        ("r", ObjectKind::Barrier, true),
        ("q", ObjectKind::Queue, true),
    ] {
        let o = find(name);
        assert_eq!(o.kind, Some(kind), "{name}");
        assert_eq!(o.lock.is_some(), locked, "{name}: {:?}", o.lock);
        if let Some(state) = &o.lock {
            assert!(state.holder.is_none() && state.poison.is_none(), "{name}");
        }
    }
}
