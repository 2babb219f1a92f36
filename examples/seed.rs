//! The seed example: Python's `multiprocessing.sharedctypes` example, in Rust.
//!
//! A child process squares a locked integer, a raw double and an array of points, and
//! uppercases a shared C string; the parent prints what the child left behind:
//!
//! ```text
//! 49
//! 0.1111111111111111
//! HELLO WORLD
//! [(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]
//! ```

use shared_runtime::{Array, CChar, Lock, Process, RawValue, SharedStruct, Value};

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

fn modify(n: &Value<i32>, x: &RawValue<f64>, s: &Array<CChar, Lock>, a: &Array<Point, Lock>) {
    n.update(|v| *v = v.pow(2)); // one read-modify-write under the lock
    x.set(x.get().powi(2)); // raw: no lock, potentially non-atomic
    s.set_value(&s.value().to_ascii_uppercase()).unwrap();
    for i in 0..a.len() {
        a.update(i, |p| {
            p.x = p.x.powi(2);
            p.y = p.y.powi(2);
        });
    }
}

fn main() -> shared_runtime::Result<()> {
    let lock = Lock::new()?;
    let n = Value::new(7)?;
    let x = RawValue::new(1.0 / 3.0)?;
    let s = Array::from_slice_with_lock(CChar::from_bytes(b"hello world"), lock.clone())?;
    let a = Array::from_slice_with_lock(
        &[
            Point { x: 1.875, y: -6.25 },
            Point { x: -5.75, y: 2.0 },
            Point { x: 2.375, y: 9.5 },
        ],
        lock.clone(),
    )?;
    Process::scope(|scope| scope.start(|| modify(&n, &x, &s, &a))?.join())?;
    // join: Err if the child failed (ChildPanicked / ChildKilled / ChildExited)
    println!("{}", n.get()); // 49
    println!("{}", x.get()); // 0.1111111111111111
    println!("{}", String::from_utf8_lossy(&s.value())); // HELLO WORLD
    println!(
        "{:?}",
        a.to_vec().iter().map(|p| (p.x, p.y)).collect::<Vec<_>>()
    );
    // [(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]
    Ok(())
}
