use shared_runtime::SharedStruct;

// Has a field, but no bytes.
#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Z {
    z: [u64; 0],
}

fn main() {}
