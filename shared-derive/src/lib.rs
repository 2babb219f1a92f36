//! `#[derive(SharedStruct)]` for `shared-runtime`.

use proc_macro::TokenStream;

/// Derives `SharedType` for a `#[repr(C)]` struct whose fields are all shared types.
#[proc_macro_derive(SharedStruct, attributes(shared))]
pub fn derive_shared_struct(input: TokenStream) -> TokenStream {
    let _ = input;
    TokenStream::new()
}
