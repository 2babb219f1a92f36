use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Node {
    value: u32,
    next: *const Node,
}

fn main() {}
