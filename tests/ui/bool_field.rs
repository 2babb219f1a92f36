use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Flags {
    ready: bool,
}

fn main() {}
