use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Segment {
    ends: (f64, f64),
}

fn main() {}
