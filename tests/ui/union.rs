use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
