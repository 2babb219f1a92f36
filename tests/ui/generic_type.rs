use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Pair<T, const N: usize> {
    items: [T; N],
}

fn main() {}
