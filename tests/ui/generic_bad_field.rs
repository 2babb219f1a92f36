use shared_runtime::{RawValue, SharedStruct};

// A generic struct with one unshareable field: one error, at the field, and none from the
// uses of the struct below.
#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Tagged<T> {
    value: T,
    name: &'static str,
}

fn main() {
    let _ = RawValue::<Tagged<u32>>::zeroed();
}
