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
    let p = SyncGuard::place(&mut g);
    // The lock is held by this thread: its place must not be used from another one.
    std::thread::scope(|s| {
        s.spawn(move || p.set_x(0.0));
    });
}
