use shared_runtime::{RawValue, SharedStruct};

#[derive(SharedStruct, Clone, Copy)]
struct Point {
    x: f64,
    y: f64,
}

fn main() {
    // No further errors here: the derive leaves a stub impl and the accessor trait behind.
    let p = RawValue::new(Point { x: 1.0, y: 2.0 }).unwrap();
    p.set_x(p.y());
}
