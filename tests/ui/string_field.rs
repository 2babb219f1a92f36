use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone)]
#[repr(C)]
struct User {
    id: u32,
    name: String,
}

fn main() {}
