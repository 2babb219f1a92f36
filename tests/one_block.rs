//! A `Value`/`Array` made with its own lock is one arena block (lock cell, then data), like
//! a named one: one allocation, freed once when the last of its data and lock handles
//! goes, and its handles open in other processes; a lock passed in keeps two blocks.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{forking, in_child, wait_until};
use shared_runtime::arena::{LockKind, ObjectKind};
use shared_runtime::handle::Handle;
use shared_runtime::{
    synchronized, Arena, Array, Error, Lock, Process, RLock, RawValue, Synchronized, Value,
};

fn arena() -> Arena {
    Arena::with_capacity(1 << 20).unwrap()
}

fn blocks(a: &Arena) -> u64 {
    a.stats().unwrap().live_allocations
}

#[test]
fn made_with_its_own_lock_is_one_block_freed_once() {
    let a = arena();
    let empty = blocks(&a);
    let v = Value::new_in(&a, 7i32).unwrap();
    assert_eq!(blocks(&a), empty + 1, "value and lock in one block");
    let arr = Array::from_slice_in(&a, &[1u16, 2, 3]).unwrap();
    let z = Array::<u64>::zeroed_in(&a, 5).unwrap();
    assert_eq!(blocks(&a), empty + 3);
    assert_eq!(
        (v.get(), arr.to_vec(), z.to_vec()),
        (7, vec![1, 2, 3], vec![0; 5])
    );
    // The data sits after the lock cell, in the lock's block.
    let h = v.handle();
    assert!(h.offset > h.lock && h.offset - h.lock < 64, "{h:?}");
    // The lock dropped first: the block lives on with the data.
    let (raw, lock) = v.into_parts().unwrap();
    drop(lock);
    assert_eq!(blocks(&a), empty + 3);
    raw.set(9);
    assert_eq!(raw.get(), 9);
    drop(raw);
    assert_eq!(
        blocks(&a),
        empty + 2,
        "freed with the last of data and lock"
    );
    // The data dropped first: the block lives on with the lock.
    let (raw, lock) = arr.into_parts().unwrap();
    drop(raw);
    assert_eq!(blocks(&a), empty + 2);
    assert!(lock.try_lock().is_ok());
    drop(lock);
    drop(z);
    assert_eq!(blocks(&a), empty);
    a.check().unwrap();
}

#[test]
fn a_lock_passed_in_or_an_existing_object_keeps_two_blocks() {
    let a = arena();
    let empty = blocks(&a);
    let lock = Lock::new_in(&a).unwrap();
    let v = Value::with_lock_in(&a, 1u8, lock.clone()).unwrap();
    assert_eq!(blocks(&a), empty + 2);
    let w = synchronized(RawValue::new_in(&a, 2u8).unwrap(), None).unwrap();
    assert_eq!(blocks(&a), empty + 4, "an existing object is not copied");
    assert!(v.getlock().same_as(&lock));
    assert_eq!((v.get(), w.get()), (1, 2));
}

#[test]
fn the_global_constructors_make_one_block() {
    let g = Arena::global();
    let v = Value::new(1u64).unwrap();
    let z = Value::<u64>::zeroed().unwrap();
    let arr = Array::<u8>::zeroed(3).unwrap();
    let s = Array::from_slice(&[1.5f32]).unwrap();
    for h in [v.handle(), z.handle(), arr.handle(), s.handle()] {
        assert!(h.offset > h.lock && h.offset - h.lock < 64, "{h:?}");
        assert_eq!(h.arena, g.id());
    }
    let m = shared_runtime::Synchronized::new(RawValue::new(1u8).unwrap()).unwrap();
    let h = m.handle();
    assert!(
        h.offset < h.lock || h.offset - h.lock >= 64,
        "two blocks: {h:?}"
    );
}

#[test]
fn its_data_alone_cannot_be_handed_over() {
    let (raw, _lock) = Value::new(3u32).unwrap().into_parts().unwrap();
    assert!(matches!(raw.into_offset(), Err(Error::SharesBlock { .. })));
    let (raw, _lock) = Array::<u8>::zeroed(2).unwrap().into_parts().unwrap();
    let err = raw.into_handle().unwrap_err();
    assert!(err.to_string().contains("shares one arena block"), "{err}");
}

#[test]
fn its_data_can_be_wrapped_again_after_into_parts() {
    let (raw, _old) = Value::new(4i16).unwrap().into_parts().unwrap();
    let v = synchronized(raw, Lock::new().unwrap()).unwrap();
    v.update(|x| *x += 1);
    assert_eq!(v.get(), 5);
    // Wrapping a clone while another lives is still refused.
    let (raw, _old) = Value::new(4i16).unwrap().into_parts().unwrap();
    let _twin = raw.clone();
    assert!(matches!(
        synchronized(raw, None),
        Err(Error::StillCloned { .. })
    ));
}

#[test]
fn handles_open_in_a_child_and_name_one_lock() {
    let _serial = forking();
    let a = arena();
    let v = Value::new_in(&a, 10u64).unwrap();
    let arr = Array::from_slice_in(&a, &[1i32, 2]).unwrap();
    let (hv, ha, hl) = (v.handle(), arr.handle(), v.getlock().handle());
    let seen = in_child(|| {
        let w = Value::<u64>::open_handle(&a, &hv).unwrap();
        let b = Array::<i32>::open_handle(&a, &ha).unwrap();
        let l = RLock::open_handle(&a, &hl).unwrap();
        assert!(w.getlock().same_as(&l), "the Value's lock is its block");
        {
            // The lock opened on its own guards the value: held here, `update` would wait.
            let _g = l.lock().unwrap();
            assert!(w.getlock().try_lock().is_ok(), "re-entrant in this thread");
        }
        w.update(|x| *x += 1);
        b.set(1, 20);
        // The data alone is not opened by a raw handle.
        let raw = RawValue::<u64>::open_handle(&a, &w.getobj().handle());
        let refused = matches!(&raw, Err(e) if e.to_string().contains("shares one block"));
        // A forged handle: the data offset moved inside the block.
        let forged = Handle {
            offset: hv.offset + 8,
            ..hv
        };
        let moved = Value::<u64>::open_handle(&a, &forged).is_err();
        // A forged handle: the data offset inside the lock cell.
        let forged = Handle {
            offset: hv.lock + 8,
            ..hv
        };
        let in_cell = Value::<u64>::open_handle(&a, &forged).is_err();
        // A forged handle: an Array longer than its block.
        let forged = Handle { len: 1000, ..ha };
        let long = Array::<i32>::open_handle(&a, &forged).is_err();
        u8::from(refused) | u8::from(moved) << 1 | u8::from(in_cell) << 2 | u8::from(long) << 3
    })
    .unwrap();
    assert_eq!(
        seen, 0b1111,
        "refusals (bits: raw, moved, in cell, too long)"
    );
    assert_eq!((v.get(), arr.to_vec()), (11, vec![1, 20]));
}

#[test]
fn this_process_is_told_to_clone_the_handle_it_has() {
    let a = arena();
    let v = Value::new_in(&a, 1u64).unwrap();
    let err = Value::<u64>::open_handle(&a, &v.handle()).unwrap_err();
    assert!(err.to_string().contains("clone"), "{err}");
    let err = RawValue::<u64>::open_handle(&a, &v.getobj().handle()).unwrap_err();
    assert!(err.to_string().contains("clone"), "{err}");
}

#[test]
fn a_forked_child_gets_its_inherited_handle() {
    let _serial = forking();
    let a = arena();
    let v = Value::new_in(&a, 1u64).unwrap();
    let h = v.handle();
    let v2 = v.clone();
    let aliased = in_child(|| {
        let w = Value::<u64>::open_handle(&a, &h).unwrap();
        let g = v2.lock().unwrap();
        let wrote = catch_unwind(AssertUnwindSafe(|| w.update(|x| *x = 3))).is_ok();
        drop(g);
        u8::from(wrote)
    })
    .unwrap();
    assert_eq!(aliased, 0, "a second &mut T inside a guard");
}

/// A forged Value handle pairing a lock made on its own with data in that lock block's
/// spare bytes (after the cell): refused, or a value whose writes leave the lock working.
#[test]
fn a_forged_handle_into_a_plain_lock_block_cannot_break_the_lock() {
    let _serial = forking();
    let a = arena();
    let lock = RLock::new_in(&a).unwrap();
    let lh = lock.handle();
    let forged = Handle {
        arena: a.id(),
        offset: lh.offset + 24,
        len: 1,
        fingerprint: RawValue::new_in(&a, 0u32).unwrap().handle().fingerprint,
        kind: ObjectKind::Value(LockKind::RLock),
        lock: lh.offset,
        owned: false,
    };
    // This process owns the lock's block: refused, as for any object it owns.
    assert!(Value::<u32>::open_handle(&a, &forged).is_err());
    let broke = in_child(|| {
        if let Ok(v) = Value::<u32>::open_handle(&a, &forged) {
            v.set(u32::MAX);
        }
        let l = RLock::open_handle(&a, &lh).unwrap();
        let g = l.try_lock();
        u8::from(g.is_err() || l.is_poisoned())
    })
    .unwrap();
    assert_eq!(broke, 0);
    assert!(lock.try_lock().is_ok() && !lock.is_poisoned());
}

/// Whether `w`'s raw accessor is refused while this thread holds a guard of `v`: true only
/// if `w` is the same handle as `v` (one borrow mark), not a second one of its block.
fn shares_the_mark(v: &Value<u64>, w: &Value<u64>) -> bool {
    let _g = v.lock().unwrap();
    catch_unwind(AssertUnwindSafe(|| w.getobj().get())).is_err()
}

#[test]
fn a_fresh_value_opened_by_its_handle_here_or_in_a_child_is_its_own_handle() {
    let _serial = forking();
    let a = arena();
    // Several, dropped and made again, so that the handles opened below are of objects
    // made after others were dropped (the map of opened objects records the new ones).
    for _ in 0..100 {
        drop(Value::new_in(&a, 1u64).unwrap());
    }
    let v = Value::new_in(&a, 10u64).unwrap();
    let h = v.handle();
    let inherited = Value::new_in(&a, 20u64).unwrap();
    let hi = inherited.handle();
    // In a forked child: the handle it inherited, not a second one.
    let child = in_child(|| {
        let w = Value::<u64>::open_handle(&a, &hi).unwrap();
        u8::from(shares_the_mark(&inherited, &w))
    })
    .unwrap();
    assert_eq!(
        child, 1,
        "the child opened a second handle of its inherited Value"
    );
    // Here, the owner: refused (it has the handle; a second one is never made).
    assert!(Value::<u64>::open_handle(&a, &h).is_err());
    // A child opens it (the handle it inherited), then forks: the grandchild finds the
    // same handle again, whether the child's open moved it into the map or not.
    let seen = in_child(|| {
        let w = Value::<u64>::open_handle(&a, &h).unwrap();
        let first = shares_the_mark(&v, &w);
        drop(w);
        let second = in_child(|| {
            let w = Value::<u64>::open_handle(&a, &h).unwrap();
            u8::from(shares_the_mark(&v, &w))
        })
        .unwrap();
        u8::from(first) | second << 1
    })
    .unwrap();
    assert_eq!(
        seen, 0b11,
        "a second handle of an inherited Value (bits: child, grandchild)"
    );
}

/// A forked child that inherited a fresh `Value` never gets a `Value` of its own in that
/// block once the parent has freed it (the inherited handle would reach the new object's
/// data behind its guards): the block is refused and set aside, and the child's `Value`s
/// are made in other blocks.
#[test]
fn a_fresh_value_in_a_block_an_inherited_value_names_is_refused() {
    let _serial = forking();
    let a = arena();
    // 64 bytes of data: one 88-byte block, not a slab slot (a forked child claims slots in
    // slabs of its own only, so it never gets its parent's freed slot; blocks it can get).
    let v = Value::new_in(&a, [1u64; 8]).unwrap();
    let off = v.handle().lock;
    let freed = RawValue::new_in(&a, 0u8).unwrap();
    let code = Process::scope(|s| {
        // The child keeps its copy of `v` (never dropped there).
        let child = s.start(|| {
            if !wait_until(|| freed.get() == 1) {
                return 99u8;
            }
            let mut held = Vec::new();
            while held.len() < 64 {
                match Value::new_in(&a, [2u64; 8]) {
                    Ok(x) if x.handle().lock == off => return 1,
                    Ok(x) => held.push(x),
                    Err(Error::AlreadyOpen { .. }) => return 3,
                    Err(_) => return 2,
                }
            }
            0
        })?;
        drop(v);
        freed.set(1);
        child.join()
    })
    .unwrap();
    assert_eq!(
        code, 0,
        "1: made in the block the inherited Value names; 2: another error; 3: refused"
    );
}

/// As above, for a `Value` made with a lock passed in (its data in a block of its own):
/// once the parent has freed a value the child inherited, a block the child is given for
/// new data may be the one the inherited copy names. It is set aside and another taken,
/// so the child still gets every `Value` it asks for, none of them in that block.
#[test]
fn a_child_is_not_refused_a_value_with_a_lock_passed_in() {
    let _serial = forking();
    let a = arena();
    let lock = Lock::new_in(&a).unwrap();
    // 64 bytes of data: an ordinary block, not a slab slot.
    let v =
        Synchronized::with_lock(RawValue::new_in(&a, [1u64; 8]).unwrap(), lock.clone()).unwrap();
    let off = v.handle().offset;
    let freed = RawValue::new_in(&a, 0u8).unwrap();
    let code = Process::scope(|s| {
        let child = s.start(|| {
            if !wait_until(|| freed.get() == 1) {
                return 99u8;
            }
            let mut held = Vec::new();
            while held.len() < 64 {
                let made = RawValue::new_in(&a, [2u64; 8])
                    .and_then(|raw| Synchronized::with_lock(raw, lock.clone()));
                match made {
                    Ok(x) if x.handle().offset == off => return 1,
                    Ok(x) => held.push(x),
                    Err(Error::AlreadyOpen { .. }) => return 3,
                    Err(_) => return 2,
                }
            }
            0
        })?;
        drop(v);
        freed.set(1);
        child.join()
    })
    .unwrap();
    assert_eq!(
        code, 0,
        "1: made in the block the inherited Value names; 2: another error; 3: refused"
    );
}
