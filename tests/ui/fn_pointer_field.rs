use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Task {
    run: fn(u32) -> u32,
}

fn main() {}
