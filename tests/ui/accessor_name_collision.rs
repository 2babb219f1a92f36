use shared_runtime::SharedStruct;

// Field `x` gets a setter `set_x()`, and so would field `set_x` a getter.
#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Point {
    x: f64,
    set_x: f64,
}

fn main() {}
