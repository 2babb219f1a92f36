use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Maybe {
    value: Option<u32>,
}

fn main() {}
