//! Value, Array and synchronized(): CPython's test_sharedctypes, ported, plus ours.

mod common;

use common::{finish, forking, in_child};
use shared_runtime::{
    array, raw_array, raw_value, synchronized, value, Array, CChar, Error, Lock, PoisonCause,
    Process, RLock, RawArray, RawValue, Synchronized, Value,
};

/// CPython's `test_value`: for each typecode, create, check, let a child set the second
/// value, and see it in the parent; with locks and raw.
#[test]
fn values_cross_processes() {
    let _serial = forking();
    macro_rules! case {
        ($code:tt, $first:expr, $second:expr) => {{
            let locked = value!($code, $first).unwrap();
            let explicit = value!($code, $first, lock = Lock::new().unwrap()).unwrap();
            let raw = raw_value!($code, $first).unwrap();
            assert_eq!(
                (locked.get(), explicit.get(), raw.get()),
                ($first, $first, $first)
            );
            in_child(|| {
                locked.set($second);
                explicit.update(|v| *v = $second);
                raw.set($second);
            })
            .unwrap();
            assert_eq!(locked.get(), $second, "typecode {}", $code);
            assert_eq!(explicit.get(), $second, "typecode {}", $code);
            assert_eq!(raw.get(), $second, "typecode {}", $code);
        }};
    }
    case!('i', 4343i32, 24234i32);
    case!('d', 3.625f64, -4.25f64);
    case!('h', -232i16, 234i16);
    case!('q', 1i64 << 33, 1i64 << 34);
    case!('c', CChar(b'x'), CChar(b'y'));
}

fn prefix_sums(a: &Array<i32>) {
    for i in 1..a.len() {
        let previous = a.get(i - 1).unwrap();
        a.update(i, |v| *v += previous);
    }
}

/// CPython's `test_array`.
#[test]
fn array_sequence_ops_and_child_prefix_sums() {
    let _serial = forking();
    let seq = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831];
    for raw in [false, true] {
        let arr = Array::from_slice(&seq).unwrap();
        let raw_arr = RawArray::from_slice(&seq).unwrap();
        assert_eq!((arr.len(), raw_arr.len()), (10, 10));
        assert_eq!((arr.get(3), raw_arr.get(3)), (Some(821), Some(821)));
        assert_eq!(arr.read(2..7), seq[2..7]);
        assert_eq!(raw_arr.read(2..7), seq[2..7]);
        arr.write(4, &[1, 2, 3, 4]);
        raw_arr.write(4, &[1, 2, 3, 4]);
        let expected_before = [680, 626, 934, 821, 1, 2, 3, 4, 714, 831];
        assert_eq!(arr.to_vec(), expected_before);
        in_child(|| {
            if raw {
                for i in 1..raw_arr.len() {
                    raw_arr.set(i, raw_arr.get(i).unwrap() + raw_arr.get(i - 1).unwrap());
                }
            } else {
                prefix_sums(&arr);
            }
        })
        .unwrap();
        let expected = [680, 1306, 2240, 3061, 3062, 3064, 3067, 3071, 3785, 4616];
        if raw {
            assert_eq!(raw_arr.to_vec(), expected);
        } else {
            assert_eq!(arr.to_vec(), expected);
        }
    }
}

/// CPython's `test_array_from_size`: zeroed, three times with frees in between.
#[test]
fn zeroed_arrays_three_times() {
    for _ in 0..3 {
        let a = array!('i', 10).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a.to_vec(), [0; 10]);
        a.write(0, &[9; 10]);
        let r = raw_array!('i', 10).unwrap();
        assert_eq!(r.to_vec(), [0; 10]);
        r.write(0, &[9; 10]);
    }
}

/// CPython's `test_getobj_getlock`.
#[test]
fn getobj_and_getlock() {
    let lock = RLock::new().unwrap();
    let v = Value::with_lock(5i32, lock.clone()).unwrap();
    assert_eq!(v.getobj().get(), 5);
    assert!(v.getlock().same_as(&lock));
    let a = Array::from_slice_with_lock(&[1u8, 2], lock.clone()).unwrap();
    assert!(a.getlock().same_as(&lock));
    assert!(a.getlock().same_as(v.getlock()), "one lock guards both");
    // A fresh lock per object otherwise.
    let (b, c) = (Value::new(0u8).unwrap(), Value::new(0u8).unwrap());
    assert!(!b.getlock().same_as(c.getlock()));
    // Raw objects have no lock: RawValue and RawArray have no getlock method at all (a
    // compile error, checked by tests/ui/raw_value_has_no_getlock.rs).
    let s = synchronized(RawValue::new(1.5f64).unwrap(), Some(lock.clone())).unwrap();
    assert!(s.getlock().same_as(&lock));
    let fresh = synchronized(RawArray::<u8>::zeroed(2).unwrap(), Lock::new().unwrap()).unwrap();
    assert_eq!(fresh.to_vec(), [0, 0]);
    let (raw, l) = fresh.into_parts().unwrap();
    assert_eq!(raw.len(), 2);
    assert!(l.try_lock().is_ok());
}

#[test]
fn lock_is_held_across_get_set_update() {
    let v = Value::new(0u64).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5_000 {
                    v.update(|n| *n += 1);
                }
            });
        }
    });
    assert_eq!(v.get(), 20_000);
}

#[test]
fn guards_give_plain_access_under_one_lock() {
    let a = Array::from_slice(&[5, 3, 9, 1]).unwrap();
    {
        let mut g = a.lock().unwrap();
        g.sort_unstable();
        g.iter_mut().for_each(|x| *x *= 2);
        // The lock is held: another thread cannot take it meanwhile.
        std::thread::scope(|s| {
            s.spawn(|| assert!(a.getlock().try_lock().is_err()));
        });
    }
    assert_eq!(a.to_vec(), [2, 6, 10, 18]);
    let v = Value::new([1u8, 2, 3]).unwrap();
    v.lock().unwrap()[1] = 20;
    assert_eq!(v.get(), [1, 20, 3]);
}

#[test]
#[should_panic(expected = "already borrowed by this thread")]
fn reentering_an_object_while_its_guard_lives_panics() {
    let v = Value::new(1u32).unwrap();
    let _g = v.lock().unwrap();
    v.get(); // RLock would let this in; the borrow mark refuses it
}

#[test]
#[should_panic(expected = "already borrowed by this thread")]
fn reentering_inside_update_panics() {
    let v = Value::new(1u32).unwrap();
    v.update(|x| *x = v.get() + 1);
}

#[test]
fn objects_sharing_an_rlock_nest() {
    let lock = RLock::new().unwrap();
    let a = Value::with_lock(1i32, lock.clone()).unwrap();
    let b = Value::with_lock(2i32, lock).unwrap();
    let mut ga = a.lock().unwrap();
    let gb = b.lock().unwrap(); // same thread, same RLock, different data: fine
    *ga += *gb;
    drop((gb, ga));
    assert_eq!(a.get(), 3);
}

#[test]
fn c_strings_under_a_shared_lock() {
    let _serial = forking();
    let lock = Lock::new().unwrap();
    let s = Array::from_slice_with_lock(CChar::from_bytes(b"hello world"), lock.clone()).unwrap();
    in_child(|| s.set_value(&s.value().to_ascii_uppercase()).unwrap()).unwrap();
    assert_eq!(s.value(), b"HELLO WORLD");
    assert!(s.set_value(&[b'x'; 12]).is_err());
    assert!(s.set_raw(&[b'x'; 12]).is_err());
    s.set_raw(b"J").unwrap();
    assert_eq!(s.raw(), b"JELLO WORLD");
}

/// A child SIGKILLed while holding a value's lock: every later `lock()` is told (with the
/// child's pid) until `clear_poison()`; `get`/`set` work meanwhile and clear nothing.
#[test]
fn a_dead_holder_is_reported_by_lock_until_cleared_and_ignored_by_accessors() {
    let _serial = forking();
    let v = Value::new(0u64).unwrap();
    let holding = RawValue::new(0u8).unwrap();
    let (v2, holding2) = (v.clone(), holding.clone());
    let mut child = Process::<()>::start(move || {
        let mut g = v2.lock().unwrap();
        *g = 7;
        holding2.set(1);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    })
    .unwrap();
    let pid = child.pid();
    assert!(common::wait_until(|| holding.get() == 1));
    child.kill().unwrap();
    let _ = child.join_timeout(common::PATIENCE);
    let err = v.lock().unwrap_err();
    assert_eq!(
        *err.into_inner(),
        7,
        "the poisoned guard still reaches the data"
    );
    let poison = v.poison().unwrap();
    assert_eq!((poison.pid, poison.cause), (Some(pid), PoisonCause::Died));
    v.set(8); // the accessors work on a poisoned object...
    assert_eq!(v.get(), 8);
    v.update(|n| *n += 1);
    assert!(v.is_poisoned(), "...and do not clear the poison");
    for _ in 0..3 {
        assert_eq!(
            *v.lock().unwrap_err().into_inner(),
            9,
            "every lock() is told"
        );
    }
    let err = add_one(&v).unwrap_err();
    assert!(
        matches!(err, Error::Poisoned { pid: Some(p), cause: PoisonCause::Died } if p == pid),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("process {pid} died")),
        "{err}"
    );
    v.clear_poison();
    assert!(!v.is_poisoned());
    assert_eq!(add_one(&v).unwrap(), 10);
}

/// `v.lock()?` in a function returning the crate's `Result`.
fn add_one(v: &Value<u64>) -> shared_runtime::Result<u64> {
    let mut g = v.lock()?;
    *g += 1;
    Ok(*g)
}

#[test]
fn a_panic_inside_update_poisons_until_cleared() {
    let a = Array::from_slice(&[1u8, 2]).unwrap();
    let caught = std::panic::catch_unwind(|| a.update(0, |_| panic!("half-way")));
    assert!(caught.is_err());
    assert_eq!(a.to_vec(), [1, 2]);
    assert!(a.is_poisoned(), "reading does not clear it");
    let me = std::process::id() as i32;
    assert_eq!(a.poison().unwrap().pid, Some(me));
    assert!(a.lock().is_err());
    assert!(a.lock().is_err(), "sticky");
    a.clear_poison();
    assert_eq!(a.lock().unwrap().len(), 2);
}

/// `synchronized(obj, None)` needs no annotation and gives an `RLock`; a lock can be passed
/// as itself; `Synchronized::new`/`with_lock` do the same.
#[test]
fn synchronized_with_none_needs_no_annotation() -> shared_runtime::Result<()> {
    let v = synchronized(RawValue::new(1)?, None)?;
    assert_eq!(v.get(), 1);
    let _outer = v.getlock().lock().unwrap();
    assert!(v.getlock().lock().is_ok(), "an RLock: re-entrant");
    drop(_outer);
    assert!(format!("{v:?}").contains("RLock {"), "{v:?}");
    let a = synchronized(RawArray::from_slice(&[1.5, 2.5])?, None)?;
    assert_eq!(a.to_vec(), [1.5, 2.5]);
    let rlock = RLock::new()?;
    let b = synchronized(RawValue::new(2u8)?, Some(rlock.clone()))?;
    assert!(b.getlock().same_as(&rlock));
    let lock = Lock::new()?;
    let c = synchronized(RawValue::new(3u8)?, lock.clone())?;
    assert!(c.getlock().same_as(&lock));
    let d = Synchronized::new(RawArray::<u16>::zeroed(3)?)?;
    assert_eq!(d.to_vec(), [0; 3]);
    let e = Synchronized::with_lock(RawValue::new(4i8)?, lock.clone())?;
    assert!(e.getlock().same_as(&lock));
    assert_eq!(e.get(), 4);
    Ok(())
}

/// An object with other live clones is refused: a clone outside the wrapper could write
/// behind a guard, and a second wrapper would have another lock.
#[test]
fn a_cloned_object_cannot_be_synchronized() {
    let raw = RawValue::new(1u32).unwrap();
    let twin = raw.clone();
    let err = synchronized(raw.clone(), None).unwrap_err();
    assert!(matches!(err, Error::StillCloned { clones: 2, .. }), "{err}");
    assert!(Synchronized::new(raw.clone()).is_err());
    drop(twin);
    assert_eq!(synchronized(raw, None).unwrap().get(), 1);
}

/// Clones of a `Synchronized` share one object and one lock, here and in a child.
#[test]
fn clones_share_the_object_and_the_lock() {
    let _serial = forking();
    let v = Value::new(0u64).unwrap();
    let v2 = v.clone();
    assert!(v.getlock().same_as(v2.getlock()));
    v2.set(5);
    assert_eq!(v.get(), 5);
    let children: Vec<_> = (0..2)
        .map(|_| {
            let v = v.clone();
            Process::start(move || {
                for _ in 0..1000 {
                    v.update(|n| *n += 1);
                }
            })
            .unwrap()
        })
        .collect();
    for _ in 0..1000 {
        v2.update(|n| *n += 1);
    }
    for c in children {
        finish(c).unwrap();
    }
    assert_eq!(v.get(), 3005);
}

/// A guard through one clone and `get()` through another, on the same thread: the borrow
/// mark is shared by the clones, so this is refused instead of aliasing the guard's `&mut`.
#[test]
#[should_panic(expected = "already borrowed by this thread")]
fn a_guard_through_one_clone_refuses_get_through_another() {
    let v = Value::new(1u32).unwrap();
    let v2 = v.clone();
    let _g = v.lock().unwrap();
    v2.get();
}

#[test]
#[should_panic(expected = "getobj() while this thread holds a guard")]
fn getobj_through_a_clone_beside_a_live_guard_panics() {
    let a = Array::from_slice(&[1u8]).unwrap();
    let b = a.clone();
    let _g = a.lock().unwrap();
    b.getobj();
}

#[test]
fn objects_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Value<f64>>();
    assert_send_sync::<Array<CChar, Lock>>();
    assert_send_sync::<Lock>();
    assert_send_sync::<RLock>();
}

#[test]
fn locked_bulk_copies_check_ranges_and_round_trip() {
    let a = Array::from_slice(&(0..100u16).collect::<Vec<_>>()).unwrap();
    assert_eq!(a.read(10..13), [10, 11, 12]);
    a.write(98, &[7, 7]);
    assert_eq!(a.read(97..), [97, 7, 7]);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.write(99, &[1, 2])));
    assert!(caught.is_err(), "writing past the end panics");
    assert!(
        a.getlock().try_lock().is_ok(),
        "and leaves the lock free, unpoisoned"
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.read(50..101)));
    assert!(caught.is_err());
    assert_eq!(a.to_vec().len(), 100);
}

#[test]
#[should_panic(expected = "getobj() while this thread holds a guard")]
fn raw_access_beside_a_live_guard_panics() {
    let v = Value::new(1u64).unwrap();
    let g = v.lock().unwrap();
    v.getobj().set(2); // would write behind `g`
    drop(g);
}
