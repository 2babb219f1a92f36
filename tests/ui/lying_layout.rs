use shared_runtime::{SharedStruct, SharedType};
use shared_runtime::layout::{LayoutKind, TypeLayout};

// A hand-written impl whose LAYOUT does not describe the type.
#[derive(Clone, Copy)]
#[repr(C)]
struct Wrong {
    a: u32,
    b: u32,
}

// SAFETY: deliberately wrong, to show the derive catching it.
unsafe impl SharedType for Wrong {
    const LAYOUT: TypeLayout = TypeLayout {
        name: "Wrong",
        size: 4,
        align: 4,
        kind: LayoutKind::Struct { fields: &[] },
    };
}

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Outer {
    wrong: Wrong,
}

fn main() {}
