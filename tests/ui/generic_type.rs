use shared_runtime::SharedStruct;

// Type and integer const parameters are fine; a `char` one has no layout name.
#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Pair<T, const N: usize, const C: char> {
    items: [T; N],
}

fn main() {}
