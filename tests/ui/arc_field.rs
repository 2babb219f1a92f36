use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone)]
#[repr(C)]
struct Cached {
    value: std::sync::Arc<u64>,
}

fn main() {}
