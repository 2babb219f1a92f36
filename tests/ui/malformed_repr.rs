use shared_runtime::SharedStruct;

// A #[repr] the derive cannot read is refused, not skipped.
#[derive(SharedStruct, Clone, Copy)]
#[repr(C = 1)]
struct Point {
    x: f64,
}

fn main() {}
