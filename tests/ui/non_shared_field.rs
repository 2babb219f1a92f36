use shared_runtime::SharedStruct;

// A #[repr(C)] struct, but without #[derive(SharedStruct)].
#[derive(Clone, Copy)]
#[repr(C)]
struct Inner {
    a: u32,
}

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Outer {
    inner: Inner,
    many: [Inner; 4],
}

fn main() {}
