//! `#[derive(SharedStruct)]` for `shared-runtime`: a `#[repr(C)]` struct whose fields are
//! all shared types becomes a shared type itself, with its layout checked by the compiler.
//!
//! Use it through `shared_runtime::SharedStruct` (this crate is its implementation):
//!
//! ```text
//! use shared_runtime::{RawValue, SharedStruct};
//!
//! #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct Point { x: f64, y: f64 }
//!
//! let p = RawValue::new(Point { x: 1.0, y: 2.0 })?;
//! ```
//!
//! Runnable examples live in `shared-runtime`'s documentation (`TypeLayout::to_ctypes`),
//! and its guide (`shared_runtime::guide::derive`, `docs/derive.md` in the repository) lists
//! every rule the derive checks.
//!
//! The macro runs in three passes, each in its own module: `ast` reads the `syn` input
//! (with `attr` for `#[repr]` and `#[shared]`), `valid` collects every reason the struct
//! cannot be shared, and `expand` writes the impl (with `accessors` for the field-accessor
//! trait, `generics` for generic structs and `names` for names nothing of the user's can
//! capture), or on failure the errors plus a stub impl so the rest of the user's crate does
//! not fail with unrelated errors.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod accessors;
mod ast;
mod attr;
mod errors;
mod expand;
mod generics;
mod names;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// The runtime's hidden module that generated code goes through: `<crate>::__private_v1`.
///
/// Versioned (and the runtime pins this crate's exact version), so a derive and a runtime
/// that disagree about what the module holds fail to compile instead of misbehaving. The
/// one place the name is written.
pub(crate) fn private_path(krate: &syn::Path) -> proc_macro2::TokenStream {
    quote::quote!(#krate::__private_v1)
}

/// Derives `shared_runtime::SharedType` for a `#[repr(C)]` struct whose fields are all
/// shared types.
///
/// The struct must also be `Copy` (`#[derive(Clone, Copy)]`), must not be zero-sized and
/// must have at least one field; tuple structs and `#[repr(transparent)]` newtypes are
/// allowed (their fields are named `"0"`, `"1"`, ... in the layout). A generic struct is a
/// shared type for every shared instantiation (each type parameter is bounded by
/// `SharedType`, and the layout, named e.g. `"Stamped<u32>"`, is computed per
/// instantiation); lifetime parameters are refused. Pointers, references, `Box`, `Vec`,
/// `String`, `Rc`, `Arc`, `bool` and `char` fields are rejected with a message that says
/// what to use instead; any other field type must implement `SharedType`.
///
/// The generated code holds no `unsafe` block besides the `SharedType` impl itself, and
/// binds no name a user item can capture.
///
/// It also writes a trait `{Struct}Fields` beside the struct, implemented for every shared
/// container of it (`RawValue`, `Value`, array elements through `at(i)`, guards, and
/// places of nested struct fields), with four methods per field `x: F`: `x() -> F`,
/// `set_x(F)`, `update_x(|&mut F| -> R) -> R` and `x_place()`. Each reads or writes only that
/// field; on a synchronized container each call takes the lock once. Tuple struct fields
/// are `_0()`, `set_0()`, ...; the trait is as visible as the struct and its least visible
/// field. `shared_runtime::guide::derive` has the details.
///
/// One option exists: `#[shared(crate = "path")]` names the runtime crate when it is not
/// reachable as `::shared_runtime` (for crates that re-export it).
///
/// ```text
/// #[derive(SharedStruct, Clone, Copy)]
/// #[repr(C, align(16))]
/// struct Particle { pos: [f32; 3], mass: f32, id: u64 }
/// ```
#[proc_macro_derive(SharedStruct, attributes(shared))]
pub fn derive_shared_struct(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
