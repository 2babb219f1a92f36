use shared_runtime::{RawValue, SharedStruct};

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

fn main() {
    let p = RawValue::new(Point { x: 1.0, y: 2.0 }).unwrap();
    p.set_x(3);
}
