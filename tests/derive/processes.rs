//! Derived structs shared with forked children: arrays of structs, and CPython's
//! sharedctypes structure tests, raw and synchronized.

use super::*;

#[test]
fn arrays_of_structs_are_shared_with_a_child() {
    let _fork = fork_lock();
    let points = RawArray::from_slice(&[
        Point { x: 1.875, y: -6.25 },
        Point { x: -5.75, y: 2.0 },
        Point { x: 2.375, y: 9.5 },
    ])
    .unwrap();
    let scenes = RawArray::from_slice(&[scene(), scene()]).unwrap();
    in_child(|| {
        for i in 0..points.len() {
            let p = points.get(i).unwrap();
            points.set(
                i,
                Point {
                    x: p.x * p.x,
                    y: p.y * p.y,
                },
            );
        }
        let mut s = scenes.get(1).unwrap();
        s.shapes[0].corners[1].y = 99.0;
        s.extra[2].c = 42;
        scenes.set(1, s);
    });
    let squares: Vec<(f64, f64)> = points.to_vec().iter().map(|p| (p.x, p.y)).collect();
    assert_eq!(
        squares,
        [(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]
    );
    let s = scenes.get(1).unwrap();
    assert_eq!((s.shapes[0].corners[1].y, s.extra[2].c), (99.0, 42));
    assert_eq!(scenes.get(0).unwrap(), scene());
}

/// CPython's `test_sharedctypes` (`lock=False`), on raw objects.
#[test]
fn cpython_sharedctypes() {
    let _fork = fork_lock();
    let x = RawValue::new(7i32).unwrap();
    let y = RawValue::new(1.0f64 / 3.0).unwrap();
    let z = RawValue::new(1i64 << 33).unwrap();
    let foo = RawValue::new(Foo { x: 3, y: 2.0, z: 0 }).unwrap();
    let arr = RawArray::from_slice(&(0..10).map(f64::from).collect::<Vec<_>>()).unwrap();
    let string = RawArray::<CChar>::zeroed(20).unwrap();
    string.set_value(b"hello").unwrap();

    in_child(|| {
        x.set(x.get() * 2);
        y.set(y.get() * 2.0);
        z.set(z.get() * 2);
        let mut f = foo.get();
        f.x *= 2;
        f.y *= 2.0;
        foo.set(f);
        for i in 0..arr.len() {
            arr.set(i, arr.get(i).unwrap() * 2.0);
        }
        string.set_value(&string.value().repeat(2)).unwrap();
    });

    assert_eq!(x.get(), 14);
    assert!((y.get() - 2.0 / 3.0).abs() < 1e-12, "{}", y.get());
    assert_eq!(z.get(), 1 << 34);
    assert_eq!(foo.get(), Foo { x: 6, y: 4.0, z: 0 });
    for i in 0..10 {
        assert_eq!(arr.get(i), Some(i as f64 * 2.0));
    }
    assert_eq!(string.value(), b"hellohello");
}

/// CPython's `test_synchronize` (`test_sharedctypes` with `lock=True`): the test above on
/// synchronized objects, with the struct's fields updated in place by its accessors.
#[test]
fn cpython_sharedctypes_synchronized() {
    let _fork = fork_lock();
    let x = Value::new(7i32).unwrap();
    let y = Value::new(1.0f64 / 3.0).unwrap();
    let z = Value::new(1i64 << 33).unwrap();
    let foo = Value::new(Foo { x: 3, y: 2.0, z: 0 }).unwrap();
    let arr = Array::from_slice(&(0..10).map(f64::from).collect::<Vec<_>>()).unwrap();
    let string = Array::<CChar>::zeroed(20).unwrap();
    string.set_value(b"hello").unwrap();

    in_child(|| {
        x.update(|v| *v *= 2);
        y.update(|v| *v *= 2.0);
        z.update(|v| *v *= 2);
        foo.update_x(|v| *v *= 2);
        foo.update_y(|v| *v *= 2.0);
        string.set_value(&string.value().repeat(2)).unwrap();
        for i in 0..arr.len() {
            arr.update(i, |v| *v *= 2.0);
        }
    });

    assert_eq!(x.get(), 14);
    assert!((y.get() - 2.0 / 3.0).abs() < 1e-12, "{}", y.get());
    assert_eq!(z.get(), 1 << 34);
    assert_eq!(foo.get(), Foo { x: 6, y: 4.0, z: 0 });
    assert_eq!((foo.x(), foo.y(), foo.z()), (6, 4.0, 0));
    for i in 0..10 {
        assert_eq!(arr.get(i), Some(i as f64 * 2.0));
    }
    assert_eq!(string.value(), b"hellohello");
}

/// CPython's `test_copy`, on raw objects.
#[test]
fn cpython_copy() {
    let foo = RawValue::new(Foo {
        x: 2,
        y: 5.0,
        z: 1 << 33,
    })
    .unwrap();
    let bar = copy(&foo.get()).unwrap();
    foo.set(Foo { x: 0, y: 0.0, z: 0 });
    assert_eq!(foo.get(), Foo { x: 0, y: 0.0, z: 0 });
    assert_eq!(
        bar.get(),
        Foo {
            x: 2,
            y: 5.0,
            z: 1 << 33
        }
    );
}
