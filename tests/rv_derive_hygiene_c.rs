//! Reviewer `derive`: a field type written through a macro is captured by the accessor
//! impl's generic parameter `C` (names.rs picks names from the tokens it sees; a macro call
//! hides the name). A valid struct fails to compile.
use shared_runtime::{RawValue, SharedStruct};

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct C {
    pub x: u32,
}

macro_rules! the_c {
    () => {
        C
    };
}

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Holder {
    pub inner: the_c!(),
}

#[test]
fn macro_written_field_type_named_like_a_generated_parameter() {
    let v = RawValue::new(Holder { inner: C { x: 1 } }).unwrap();
    assert_eq!(v.inner().x, 1);
}
