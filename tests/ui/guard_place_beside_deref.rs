use shared_runtime::{SharedStruct, SyncGuard, Value};

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

fn main() {
    let v = Value::new(Point { x: 1.0, y: 2.0 }).unwrap();
    let mut g = v.lock().unwrap();
    let plain: &Point = &g;
    // The place writes shared memory: it needs the guard mutably, so no `&Point` from the
    // guard may be alive.
    SyncGuard::place(&mut g).set_x(plain.y);
    let _ = plain.x;
}
