//! What can live in shared memory: the [`SharedType`] trait, type layouts, and the
//! character types of the typecode table.

mod chars;
mod ctypes;
mod layout;
mod macros;
mod name;
mod plain;
mod shared_type;

pub use chars::{CChar, WChar};
pub use layout::{FieldLayout, LayoutKind, Primitive, TypeLayout};
pub use name::LayoutName;
pub use plain::Plain;
pub use shared_type::{FieldType, SharedType};
