use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct View<'a> {
    data: &'a [u8; 4],
}

fn main() {}
