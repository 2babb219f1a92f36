//! Reviewer `derive`: a field type whose array length comes from a macro naming a user
//! `const value` resolves, inside the generated `const _` block, to the derive's shadow
//! `fn value() {}` (names.rs): a valid struct fails to compile.
#![allow(non_upper_case_globals)]
use shared_runtime::{RawValue, SharedStruct};

const value: usize = 4;

macro_rules! len {
    () => {
        value
    };
}

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Buf {
    pub b: [u8; len!()],
}

#[test]
fn macro_written_array_length_named_like_a_generated_parameter() {
    let v = RawValue::new(Buf { b: [1; 4] }).unwrap();
    assert_eq!(v.b(), [1; 4]);
}
