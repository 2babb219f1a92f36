//! Writes the `SharedType` impl of a valid struct, or, when the struct is not valid, its
//! errors plus a stub impl that keeps the rest of the user's crate from failing with
//! unrelated errors (thiserror's fallback).
//!
//! Everything generated is wrapped in `const _: () = { ... };`, reaches the runtime only
//! through `<crate>::__private_v1` (see `private_path`) and the standard library only through `::core`, so it means
//! the same under `#![no_implicit_prelude]` and beside any names the user has in scope.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use crate::accessors;
use crate::ast::{Data, Field, Input, Struct};
use crate::errors::Errors;
use crate::generics;
use crate::names::{self, Fresh};
use crate::valid::unshareable;

/// The derive: parse, validate, expand.
pub(crate) fn derive(node: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let input = Input::from_syn(node, &mut errors);
    input.validate(&mut errors);
    match (errors.finish(), &input.data) {
        (Ok(()), Data::Struct(s)) => Ok(impl_struct(&input, s)),
        (Err(error), _) => Ok(fallback(&input, &error)),
        (Ok(()), _) => Err(syn::Error::new(
            Span::call_site(),
            "internal error in #[derive(SharedStruct)]: an enum or union passed validation",
        )),
    }
}

/// `<FieldTy as SharedType>`, spanned at the field's type so that rustc's "cannot live in
/// shared memory" error points at it (`FieldTy` spelled by [`names::field_ty`]).
fn as_shared(input: &Input<'_>, field: &Field<'_>, private: &TokenStream) -> TokenStream {
    let ty = names::field_ty(input, field, private);
    quote_spanned!(field.ty.span()=> <#ty as #private::SharedType>)
}

fn impl_struct(input: &Input<'_>, s: &Struct<'_>) -> TokenStream {
    let krate = input.krate();
    let private = crate::private_path(&krate);
    let ident = input.ident;
    let generics = generics::with_shared_bounds(input, s, &private);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let this = quote!(#ident #ty_generics);
    let fresh = Fresh::new(input);
    let (src, dst) = (&fresh.src, &fresh.dst);
    let name = generics::layout_name(input, &private);

    let field_layouts = s.fields.iter().map(|field| {
        let (member, field_name) = (&field.member, &field.name);
        let shared = as_shared(input, field, &private);
        quote! {
            #private::FieldLayout {
                name: #field_name,
                offset: ::core::mem::offset_of!(#this, #member),
                ty: &#shared::LAYOUT,
            }
        }
    });
    let stores = s.fields.iter().map(|field| {
        let member = &field.member;
        let ty = names::field_ty(input, field, &private);
        let shared = as_shared(input, field, &private);
        quote! {
            #shared::store(
                &#src.#member,
                #dst.wrapping_byte_add(::core::mem::offset_of!(#this, #member)).cast::<#ty>(),
            );
        }
    });
    let checks = layout_checks(input, s, &this, &private);
    // A plain struct's checks run where it is defined; a generic one's, per instantiation,
    // when its layout is used (every container uses it) or a value is stored.
    let (eager, in_layout, check_on_store) = if input.generics.params.is_empty() {
        (Some(quote!(const _: () = { #checks };)), None, None)
    } else {
        let on_store =
            quote!(let _: &#private::TypeLayout = &<Self as #private::SharedType>::LAYOUT;);
        (None, Some(checks), Some(on_store))
    };
    let (fields_trait, fields_impl) = accessors::expand(input, s, &private, &fresh, false);
    let shadows = fresh.shadows();
    let field_types = names::field_types(input, s, &private);

    // SAFETY (of the generated impl): validation proved the struct is #[repr(C)] or
    // #[repr(transparent)] (so its layout is fixed, and `offset_of!` and `size_of` describe
    // it), not packed (so every field is aligned), without lifetimes, and not an enum or
    // union; the impl's bounds and body make rustc prove every field type is a `SharedType`,
    // so every byte pattern of each field is valid, no field holds a pointer, and the struct
    // is `Copy + Send + Sync + 'static` like its fields; the checks evaluated with `LAYOUT`
    // prove it is not zero-sized and that the fields lie inside it without overlapping.
    // `store` writes each field through the field type's own `store`, which covers every
    // non-padding byte of the struct and never writes padding.
    quote! {
        #fields_trait

        #[allow(deprecated)]
        const _: () = {
            #field_types
        };

        #[allow(deprecated)]
        const _: () = {
            #shadows

            #[automatically_derived]
            unsafe impl #impl_generics #private::SharedType for #this #where_clause {
                // The checks sit in `size`'s block: the name's temporary must be in the
                // initializer itself to live as long as the constant.
                const LAYOUT: #private::TypeLayout = #private::TypeLayout {
                    name: #name,
                    size: {
                        #in_layout
                        ::core::mem::size_of::<#this>()
                    },
                    align: ::core::mem::align_of::<#this>(),
                    kind: #private::LayoutKind::Struct { fields: &[#(#field_layouts),*] },
                };

                #[inline]
                unsafe fn store(#src: &Self, #dst: *mut Self) {
                    // SAFETY (the generated block): the caller guarantees `dst` is valid for
                    // writes of `Self` and aligned, so each field at its `offset_of!` (computed
                    // with wrapping arithmetic, no dereference) is valid and aligned for its
                    // type (#[repr(C)] or transparent, not packed); the caller's concurrency
                    // guarantee is the one each field's `store` needs.
                    #check_on_store
                    unsafe { #(#stores)* }
                }
            }

            #eager

            #fields_impl
        };
    }
}

/// Compile-time assertions backing the layout, evaluated with `LAYOUT` (for a generic
/// struct, once per instantiation): the struct is not zero-sized, each field type's `LAYOUT`
/// tells the truth about its size and alignment, and the fields lie inside the struct in
/// order, without overlapping.
fn layout_checks(
    input: &Input<'_>,
    s: &Struct<'_>,
    this: &TokenStream,
    private: &TokenStream,
) -> TokenStream {
    let name = &input.name;
    let size_of_struct = quote!(::core::mem::size_of::<#this>());
    let zero_sized = format!(
        "`{name}` is zero-sized: a struct with nothing in it has nothing to put in shared \
         memory; add a field (a u8 if it only marks something)"
    );
    let mut previous_end: Option<TokenStream> = None;
    let asserts = s.fields.iter().map(|field| {
        let member = &field.member;
        let ty = names::field_ty(input, field, private);
        let shared = as_shared(input, field, private);
        let offset = quote!(::core::mem::offset_of!(#this, #member));
        let size = quote!(::core::mem::size_of::<#ty>());
        let truthful = format!(
            "the type of field `{}` of `{name}` has a SharedType::LAYOUT whose size or \
             alignment is not its own: its `unsafe impl SharedType` is wrong",
            field.name,
        );
        let inside = format!("field `{}` does not lie inside `{name}`", field.name);
        let ordered = format!(
            "field `{}` of `{name}` overlaps the field before it",
            field.name
        );
        let in_order = previous_end.as_ref().map(|end| {
            quote! { ::core::assert!(#end <= #offset, #ordered); }
        });
        previous_end = Some(quote!(#offset + #size));
        quote! {
            ::core::assert!(
                #shared::LAYOUT.size == #size
                    && #shared::LAYOUT.align == ::core::mem::align_of::<#ty>(),
                #truthful
            );
            ::core::assert!(#offset + #size <= #size_of_struct, #inside);
            #in_order
        }
    });
    let asserts: Vec<_> = asserts.collect();
    quote! {
        ::core::assert!(#size_of_struct != 0, #zero_sized);
        #(#asserts)*
    }
}

/// The errors, plus a stub impl so that uses of the type elsewhere do not fail as well, plus
/// `FieldTy: SharedType` checks for the fields the macro had nothing to say about, so that
/// those errors come in the same compile.
fn fallback(input: &Input<'_>, error: &syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    let krate = input.krate();
    let private = crate::private_path(&krate);
    let ident = input.ident;
    let name = &input.name;
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let mut generics = input.generics.clone();
    // A higher-ranked bound is not a "trivial bound", so rustc accepts the impl even when
    // the struct is not `Copy` (https://github.com/rust-lang/rust/issues/48214).
    generics
        .make_where_clause()
        .predicates
        .push(syn::parse_quote! {
            for<'__shared_workaround> #ident #ty_generics: ::core::marker::Copy
                + ::core::marker::Send
                + ::core::marker::Sync
                + 'static
        });
    let (impl_generics, _, where_clause) = generics.split_for_impl();

    let field_checks = match &input.data {
        Data::Struct(s) if input.generics.params.is_empty() => {
            let layouts = s
                .fields
                .iter()
                .filter(|f| unshareable(f.ty).is_none())
                .map(|field| {
                    let shared = as_shared(input, field, &private);
                    quote!(#shared::LAYOUT)
                });
            quote! {
                const _: &[#private::TypeLayout] = &[#(#layouts),*];
            }
        }
        _ => TokenStream::new(),
    };
    // The accessor trait too, so that code calling `v.x()` adds no errors of its own; not
    // for fields already reported as unshareable, nor when accessor names collide.
    let fresh = Fresh::new(input);
    let shadows = fresh.shadows();
    let (fields_trait, fields_impl) = match &input.data {
        Data::Struct(s) if input.generics.params.is_empty() && !accessors::names_collide(s) => {
            accessors::expand(input, s, &private, &fresh, true)
        }
        _ => (TokenStream::new(), TokenStream::new()),
    };
    let field_types = match &input.data {
        Data::Struct(s) if input.generics.params.is_empty() => {
            names::field_types(input, s, &private)
        }
        _ => TokenStream::new(),
    };

    quote! {
        #errors

        #fields_trait

        #[allow(deprecated)]
        const _: () = {
            #field_types

            #field_checks
        };

        #[allow(deprecated)]
        const _: () = {
            #shadows

            // SAFETY: none needed: the crate does not compile (the errors above), so this
            // placeholder impl never runs.
            #[automatically_derived]
            unsafe impl #impl_generics #private::SharedType for #ident #ty_generics #where_clause {
                const LAYOUT: #private::TypeLayout = #private::TypeLayout {
                    name: #name,
                    size: 0,
                    align: 1,
                    kind: #private::LayoutKind::Struct { fields: &[] },
                };
            }

            #fields_impl
        };
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::{TokenStream, TokenTree};
    use syn::parse_quote;

    /// The `unsafe` keywords in `tokens`.
    fn unsafes(tokens: TokenStream) -> usize {
        tokens
            .into_iter()
            .map(|t| match t {
                TokenTree::Ident(i) if i == "unsafe" => 1,
                TokenTree::Group(g) => unsafes(g.stream()),
                _ => 0,
            })
            .sum()
    }

    /// The generated code has three `unsafe`s, all in the `SharedType` impl: `unsafe impl`,
    /// `unsafe fn store` and the block in `store` that calls the fields' `store`. The field
    /// accessors have none, so a `#[shared(crate = ..)]` path naming other items cannot
    /// make generated code dereference a pointer of its choosing.
    #[test]
    fn the_only_unsafe_is_the_shared_type_impl() {
        for input in [
            parse_quote!(
                #[repr(C)]
                struct P {
                    x: f64,
                    y: [u8; 3],
                }
            ),
            parse_quote!(
                #[repr(C)]
                #[shared(crate = "crate::fake")]
                struct S<T> {
                    a: T,
                }
            ),
            parse_quote!(
                #[repr(transparent)]
                struct M(f64);
            ),
        ] {
            let tokens = super::derive(&input).unwrap();
            assert_eq!(unsafes(tokens.clone()), 3, "{tokens}");
        }
    }
}
