use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone)]
#[repr(C)]
struct Tree {
    value: u32,
    left: Box<u32>,
}

fn main() {}
