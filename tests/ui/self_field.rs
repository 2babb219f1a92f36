use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Node {
    id: u32,
    children: [Self; 0],
}

fn main() {}
