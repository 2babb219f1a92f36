use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
#[shared(lock = true)]
struct Counter {
    #[shared(skip)]
    count: u64,
}

fn main() {}
