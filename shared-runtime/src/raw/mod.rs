//! Raw shared objects: no lock, racy-but-sound access.

mod array;
mod chars;
mod copy;
pub(crate) mod racy;
mod value;

pub(crate) use array::resolve;
pub use array::RawArray;
pub use copy::{copy, copy_in, copy_slice, copy_slice_in};
pub use value::RawValue;
