use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Empty {}

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Unit;

fn main() {}
