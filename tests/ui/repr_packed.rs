use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C, packed)]
struct Record {
    tag: u8,
    value: u64,
}

fn main() {}
