use shared_runtime::SharedStruct;

#[derive(SharedStruct)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

fn main() {}
