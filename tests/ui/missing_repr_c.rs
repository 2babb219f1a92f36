use shared_runtime::{RawValue, SharedStruct};

#[derive(SharedStruct, Clone, Copy)]
struct Point {
    x: f64,
    y: f64,
}

fn main() {
    // No further errors here: the derive leaves a stub impl behind.
    let _ = RawValue::new(Point { x: 1.0, y: 2.0 });
}
