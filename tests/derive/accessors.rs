//! The field accessors `#[derive(SharedStruct)]` generates (`x()`, `set_x(v)`,
//! `update_x(f)`, `x_place()`), on every container: `RawValue`, `Value`, elements of
//! `RawArray`/`Array`, guards, and the places of nested structs and array fields.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use shared_runtime::place::HasPlace;
use shared_runtime::{
    array, raw_array, raw_value, value, Array, CChar, Lock, RawArray, RawValue, SharedStruct,
    SyncGuard, Value,
};

use super::{finish, fork_lock, in_child, shape, Foo, Padded, Point, Rgb};
use super::{FooFields, KeywordsFields, PaddedFields, PointFields, RgbFields, ShapeFields};

/// Three levels: `Level1.mid.inner.z`.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Level3 {
    z: i32,
    w: [u16; 2],
}

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Level2 {
    tag: u8,
    inner: Level3,
}

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Level1 {
    id: u64,
    mid: Level2,
}

/// An array field.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Body {
    pos: [f64; 3],
    mass: f64,
}

/// Fields named like methods of the containers and of `Place`.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Clashing {
    get: u32,
    at: u32,
    len: u32,
}

fn level1() -> Level1 {
    Level1 {
        id: 1,
        mid: Level2 {
            tag: 2,
            inner: Level3 { z: 3, w: [4, 5] },
        },
    }
}

const P: Point = Point { x: 1.5, y: -2.0 };

/// Any container of a `Point`: the accessors work in generic code too.
fn norm1<'a, C: HasPlace<'a, Point>>(c: C) -> f64 {
    c.x().abs() + c.y().abs()
}

#[test]
fn accessors_on_raw_values() {
    let v = RawValue::new(P).unwrap();
    assert_eq!((v.x(), v.y()), (1.5, -2.0));
    v.set_x(4.0);
    assert_eq!(v.get(), Point { x: 4.0, y: -2.0 });
    assert_eq!(v.update_y(|y| std::mem::replace(y, 8.0)), -2.0);
    assert_eq!(v.get(), Point { x: 4.0, y: 8.0 });
    assert_eq!(v.x_place().get(), 4.0);
    assert_eq!(norm1(&v), 12.0);
    // Two structs with a field `x` each: each container gets its own struct's accessors.
    let foo = RawValue::new(Foo { x: 3, y: 2.0, z: 1 }).unwrap();
    foo.set_x(foo.x() * 2);
    assert_eq!(foo.get(), Foo { x: 6, y: 2.0, z: 1 });
    // A field write leaves its neighbours alone, across padding.
    let padded = RawValue::new(Padded { a: 1, b: 2.0, c: 3 }).unwrap();
    padded.set_a(-1);
    padded.update_c(|c| *c *= 7);
    assert_eq!(
        padded.get(),
        Padded {
            a: -1,
            b: 2.0,
            c: 21
        }
    );
}

#[test]
fn accessors_on_synchronized_values() {
    let v = Value::new(P).unwrap();
    assert_eq!((v.x(), v.y()), (1.5, -2.0));
    v.set_y(10.0);
    let doubled = v.update_x(|x| {
        *x *= 2.0;
        *x
    });
    assert_eq!(doubled, 3.0);
    assert_eq!(v.get(), Point { x: 3.0, y: 10.0 });
    assert_eq!(norm1(&v), 13.0);
    // With a non-reentrant lock: each call takes and releases it.
    let w = Value::with_lock(P, Lock::new().unwrap()).unwrap();
    w.set_x(w.x() + w.y());
    assert_eq!(w.get(), Point { x: -0.5, y: -2.0 });
    assert!(w.getlock().try_lock().is_ok(), "the lock was left held");
}

#[test]
fn synchronized_accessors_wait_for_the_lock() {
    let v = Value::new(P).unwrap();
    let done = AtomicBool::new(false);
    let held = v.getlock().lock().unwrap();
    thread::scope(|s| {
        let writer = s.spawn(|| {
            v.set_x(5.0);
            let y = v.y();
            done.store(true, Ordering::SeqCst);
            y
        });
        // The writer cannot finish while the lock is held here. (The pause only gives it a
        // chance to get it wrong; nothing depends on its length.)
        thread::sleep(Duration::from_millis(50));
        assert!(
            !done.load(Ordering::SeqCst),
            "an accessor ran without the lock"
        );
        assert_eq!(v.getobj().x(), 1.5, "written without the lock");
        drop(held);
        assert_eq!(writer.join().unwrap(), -2.0);
    });
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(v.x(), 5.0);
}

#[test]
fn synchronized_updates_are_not_lost() {
    let v = Value::new(Point { x: 0.0, y: 0.0 }).unwrap();
    let a = Array::<Foo>::zeroed(2).unwrap();
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    v.update_x(|x| *x += 1.0);
                    a.at(1).update_z(|z| *z += 1);
                }
            });
        }
    });
    assert_eq!(v.get(), Point { x: 4000.0, y: 0.0 });
    assert_eq!(
        a.get(1),
        Some(Foo {
            x: 0,
            y: 0.0,
            z: 4000
        })
    );
}

#[test]
fn array_elements_have_places() {
    let raw = RawArray::from_slice(&[P, P, P]).unwrap();
    raw.at(1).set_x(0.25);
    raw.at(2).update_y(|y| *y = -*y);
    assert_eq!(raw.at(2).y(), 2.0);
    assert_eq!(
        raw.to_vec(),
        [P, Point { x: 0.25, y: -2.0 }, Point { x: 1.5, y: 2.0 }]
    );
    assert_eq!(norm1(raw.at(0)), 3.5);

    let locked = Array::from_slice(&[P, P]).unwrap();
    let second = locked.at(1); // a place: no lock held between calls
    second.set_y(second.y() * 4.0);
    locked.at(0).set(Point { x: 9.0, y: 9.0 });
    assert_eq!(
        locked.to_vec(),
        [Point { x: 9.0, y: 9.0 }, Point { x: 1.5, y: -8.0 }]
    );
    assert_eq!(norm1(second), 9.5);
    let debug = format!("{second:?}");
    assert!(
        debug.starts_with("Place { type: \"Point\", access: Locked"),
        "{debug}"
    );
}

#[test]
#[should_panic(expected = "index out of bounds: the len is 3 but the index is 3")]
fn raw_array_places_check_the_index() {
    let _ = RawArray::<Point>::zeroed(3).unwrap().at(3);
}

#[test]
#[should_panic(expected = "index out of bounds: the len is 2 but the index is 7")]
fn array_places_check_the_index() {
    let _ = Array::<Point>::zeroed(2).unwrap().at(7);
}

#[test]
fn guards_give_places_without_locking_again() {
    // Non-reentrant locks: any second acquisition on this thread would panic.
    let v = Value::with_lock(P, Lock::new().unwrap()).unwrap();
    let a = Array::from_slice_with_lock(&[P, P], Lock::new().unwrap()).unwrap();
    {
        let mut g = v.lock().unwrap();
        let p = SyncGuard::place(&mut g);
        p.set_x(p.y() * 3.0);
        p.update_y(|y| *y += 1.0);
        assert_eq!(norm1(p), 7.0);
        g.y *= 10.0; // plain field access through the guard, after the place
    }
    assert_eq!(v.get(), Point { x: -6.0, y: -10.0 });
    {
        let mut g = a.lock().unwrap();
        SyncGuard::at(&mut g, 1).set_x(100.0);
        let first = SyncGuard::at(&mut g, 0);
        first.set(Point {
            x: first.y(),
            y: first.x(),
        });
        g[1].y = 0.5;
    }
    assert_eq!(
        a.to_vec(),
        [Point { x: -2.0, y: 1.5 }, Point { x: 100.0, y: 0.5 }]
    );
}

#[test]
#[should_panic(expected = "index out of bounds: the len is 2 but the index is 2")]
fn guard_places_check_the_index() {
    let a = Array::<Point>::zeroed(2).unwrap();
    let mut g = a.lock().unwrap();
    let _ = SyncGuard::at(&mut g, 2);
}

#[test]
fn nested_structs_field_by_field() {
    let v = Value::new(level1()).unwrap();
    let inner = v.mid_place().inner_place();
    assert_eq!(inner.z(), 3);
    inner.set_z(-30);
    inner.w_place().at(1).set(50);
    v.mid_place().set_tag(20);
    let mut expected = level1();
    expected.mid.inner.z = -30;
    expected.mid.inner.w[1] = 50;
    expected.mid.tag = 20;
    assert_eq!(v.get(), expected);
    assert_eq!(v.mid().inner.w, [4, 50]);
    assert_eq!(v.id(), 1);

    let raw = RawArray::from_slice(&[level1(), level1()]).unwrap();
    raw.at(1).mid_place().inner_place().update_z(|z| *z += 100);
    assert_eq!(raw.at(1).mid_place().inner_place().z(), 103);
    assert_eq!(raw.get(0), Some(level1()));

    // Arrays of structs inside structs: `shape.corners[1].y`.
    let shapes = Array::from_slice(&[shape(1.0), shape(2.0)]).unwrap();
    shapes.at(1).corners_place().at(1).set_y(-7.5);
    shapes.at(0).origin_place().update_x(|x| *x += 0.5);
    let (mut s0, mut s1) = (shape(1.0), shape(2.0));
    s0.origin.x += 0.5;
    s1.corners[1].y = -7.5;
    assert_eq!(shapes.to_vec(), [s0, s1]);
    let label: [CChar; 5] = shapes.at(0).label();
    assert_eq!(label[..3], *CChar::from_bytes(b"abc"));
}

#[test]
fn array_fields() {
    let b = RawValue::new(Body {
        pos: [1.0, 2.0, 3.0],
        mass: 4.0,
    })
    .unwrap();
    b.set_pos([7.0, 8.0, 9.0]);
    b.pos_place().at(2).update(|z| *z *= 2.0);
    assert_eq!(b.pos(), [7.0, 8.0, 18.0]);
    assert_eq!(b.mass(), 4.0);
    let locked = Array::<Body>::zeroed(2).unwrap();
    locked.at(1).pos_place().at(0).set(-1.0);
    assert_eq!(locked.at(1).pos(), [-1.0, 0.0, 0.0]);
}

#[test]
#[should_panic(expected = "index out of bounds: the len is 3 but the index is 3")]
fn array_field_places_check_the_index() {
    let b = RawValue::<Body>::zeroed().unwrap();
    let _ = b.pos_place().at(3);
}

#[test]
fn tuple_struct_fields_are_underscore_numbers() {
    let v = Value::new(Rgb(1, 2, 3)).unwrap();
    assert_eq!((v._0(), v._1(), v._2()), (1, 2, 3));
    v.set_1(500);
    v.update_2(|b| *b += 10);
    assert_eq!(v._0_place().get(), 1);
    assert_eq!(v.get(), Rgb(1, 500, 13));
}

#[test]
fn raw_identifiers_and_odd_names() {
    let k = RawValue::new(super::Keywords {
        r#type: 1,
        __src: 2,
        __dst: 3,
        _pad0: 4,
    })
    .unwrap();
    k.set_type(k.r#type() + 10);
    k.set___src(k.__src() * 2);
    k.update__pad0(|p| *p += 1);
    assert_eq!(k.type_place().get(), 11);
    assert_eq!((k.__src(), k.__dst(), k._pad0()), (4, 3, 5));

    use super::python_names::{ctypesFields, NoneFields};
    let n = Value::new(super::python_names::None { r#class: 1 }).unwrap();
    n.set_class(n.r#class() + 1);
    assert_eq!(n.get().r#class, 2);
    let c = RawValue::<super::python_names::ctypes>::zeroed().unwrap();
    c.set_None(9);
    c.inner_place().set_y(2.0);
    assert_eq!((c.None(), c.inner().y), (9, 2.0));
}

#[test]
fn hygiene_cases_have_accessors() {
    use super::facade::runtime::RawValue as FacadeValue;
    use super::no_prelude::BareFields;
    use super::ThroughFacadeFields;

    let bare = Value::new(super::no_prelude::Bare { a: 1, b: [2, 3] }).unwrap();
    bare.b_place().at(0).set(20);
    bare.set_a(10);
    assert_eq!(bare.get(), super::no_prelude::Bare { a: 10, b: [20, 3] });
    let f = FacadeValue::new(super::ThroughFacade { a: 5 }).unwrap();
    f.update_a(|a| *a += 1);
    assert_eq!(f.a(), 6);
}

#[test]
fn container_methods_come_before_same_named_accessors() {
    let c = Clashing {
        get: 1,
        at: 2,
        len: 3,
    };
    let v = RawValue::new(c).unwrap();
    assert_eq!(v.get(), c); // `RawValue::get`: the whole struct
    assert_eq!(ClashingFields::get(&v), 1); // the field, by the trait's path
    v.set_get(10);
    let a = Array::from_slice(&[c, c]).unwrap();
    assert_eq!(a.len(), 2); // `Array::len`
    assert_eq!(a.at(1).get(), c); // `Place::get`
    assert_eq!(ClashingFields::get(a.at(1)), 1);
    assert_eq!((a.at(0).at(), ClashingFields::len(a.at(0))), (2, 3));
    assert_eq!(v.get().get, 10);
}

#[test]
fn places_are_send_and_sync_unless_held() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let raw = RawArray::<Point>::zeroed(2).unwrap();
    let locked = Array::<Point>::zeroed(2).unwrap();
    send_sync(&raw.at(0));
    send_sync(&locked.at(0));
    let (p, q) = (raw.at(1), locked.at(1));
    thread::scope(|s| {
        s.spawn(move || p.set_x(1.0));
        s.spawn(move || q.set_x(2.0));
    });
    assert_eq!((raw.at(1).x(), locked.at(1).x()), (1.0, 2.0));
}

#[test]
#[should_panic(expected = "already borrowed by this thread")]
fn accessors_inside_update_panic_instead_of_aliasing() {
    let v = Value::new(P).unwrap();
    v.update(|p| p.x = v.y());
}

#[test]
#[should_panic(expected = "already borrowed by this thread")]
fn accessors_inside_update_of_a_field_panic() {
    let v = Value::new(P).unwrap();
    v.update_x(|x| *x = v.y());
}

#[test]
#[should_panic(expected = "already borrowed by this thread")]
fn accessors_beside_a_live_guard_panic() {
    let a = Array::from_slice(&[P, P]).unwrap();
    let _g = a.lock().unwrap();
    a.at(1).set_x(0.0);
}

#[test]
#[should_panic(expected = "already borrowed by this thread")]
fn accessors_inside_update_with_a_plain_lock_panic() {
    let v = Value::with_lock(P, Lock::new().unwrap()).unwrap();
    v.update_y(|y| *y = v.x());
}

#[test]
fn macros_accept_struct_types() -> shared_runtime::Result<()> {
    let q = Point { x: 3.0, y: 4.0 };
    let v = value!(Point, q)?;
    assert_eq!(v.x(), 3.0);
    let locked = value!(Point, q, lock = Lock::new()?)?;
    locked.set_y(5.0);
    assert_eq!(locked.get(), Point { x: 3.0, y: 5.0 });
    assert_eq!(value!(Point)?.get(), Point { x: 0.0, y: 0.0 });
    let zeros = array!(Point, 3)?;
    assert_eq!(zeros.to_vec(), [Point { x: 0.0, y: 0.0 }; 3]);
    let two = array!(Point, [P, q])?;
    assert_eq!(two.at(1).y(), 4.0);
    let shared_lock = array!(Point, [q], lock = Lock::new()?)?;
    assert_eq!(shared_lock.to_vec(), [q]);
    let raw = raw_value!(Point, q)?;
    assert_eq!(raw.y(), 4.0);
    assert_eq!(raw_value!(Point)?.get(), Point { x: 0.0, y: 0.0 });
    let raw_zeros = raw_array!(Point, 2)?;
    raw_zeros.at(1).set_x(1.0);
    assert_eq!(
        raw_zeros.to_vec(),
        [Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 0.0 }]
    );
    assert_eq!(raw_array!(Point, [q, P])?.to_vec(), [q, P]);
    assert_eq!(
        raw_array!(Level1, 1)?.at(0).mid_place().inner_place().z(),
        0
    );
    Ok(())
}

/// A child and its parent update fields through accessors, under the lock, interleaved.
#[test]
fn accessors_in_a_forked_child() {
    let _fork = fork_lock();
    let v = Value::new(Point { x: 0.0, y: 0.0 }).unwrap();
    let a = Array::from_slice(&[level1(), level1()]).unwrap();
    let raw = RawValue::new(Body {
        pos: [0.0; 3],
        mass: 1.0,
    })
    .unwrap();
    in_child(|| {
        for _ in 0..1000 {
            v.update_x(|x| *x += 1.0);
            a.at(1).mid_place().inner_place().update_z(|z| *z += 1);
        }
        v.set_y(-1.0);
        a.at(0).set_id(77);
        raw.pos_place().at(1).set(2.5);
        raw.set_mass(raw.mass() * 8.0);
    });
    // The parent ran its half after the child; the interleaved version is below.
    for _ in 0..1000 {
        v.update_x(|x| *x += 1.0);
    }
    assert_eq!(v.get(), Point { x: 2000.0, y: -1.0 });
    assert_eq!(a.at(1).mid_place().inner_place().z(), 1003);
    assert_eq!(a.at(0).id(), 77);
    assert_eq!(
        raw.get(),
        Body {
            pos: [0.0, 2.5, 0.0],
            mass: 8.0
        }
    );

    let counter = Value::new(Foo { x: 0, y: 0.0, z: 0 }).unwrap();
    let work = || {
        for _ in 0..2000 {
            counter.update_z(|z| *z += 1);
        }
    };
    shared_runtime::Process::scope(|s| {
        let child = s.start(work).unwrap(); // a copy of `work`
        work();
        finish(child);
    });
    assert_eq!(counter.z(), 4000, "an update under the lock was lost");
}
