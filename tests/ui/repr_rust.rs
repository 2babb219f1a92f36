use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(Rust)]
struct Record {
    tag: u8,
    value: u64,
}

fn main() {}
