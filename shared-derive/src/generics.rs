//! Generic shared structs: `struct Stamped<T> { seq: u64, value: T }` is a shared type for
//! every shared `T`. The impls get a `T: SharedType` bound per type parameter and a
//! `FieldTy: SharedType` bound per field type that mentions a parameter; the layout's name
//! spells the instantiation (`"Stamped<u32>"`), built at compile time.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{GenericParam, Generics, Type, WherePredicate};

use crate::ast::{Input, Struct};
use crate::names;

/// The struct's generics with the bounds its `SharedType` impl needs.
pub(crate) fn with_shared_bounds(
    input: &Input<'_>,
    s: &Struct<'_>,
    private: &TokenStream,
) -> Generics {
    let mut generics = input.generics.clone();
    for param in &mut generics.params {
        // Defaults (`struct S<T = u8>`) belong to the struct alone: impls may not have them,
        // and the accessor trait puts its own parameters first, before which no default
        // may come.
        match param {
            GenericParam::Type(ty) => {
                ty.bounds.push(syn::parse_quote!(#private::SharedType));
                ty.eq_token = None;
                ty.default = None;
            }
            GenericParam::Const(c) => {
                c.eq_token = None;
                c.default = None;
            }
            GenericParam::Lifetime(_) => {}
        }
    }
    // A type holding a macro call may mention a parameter the tokens do not show.
    let generic = !input.generics.params.is_empty();
    let predicates: Vec<WherePredicate> = s
        .fields
        .iter()
        .filter(|field| {
            mentions_param(field.ty, input.generics) || (generic && names::hides_names(field.ty))
        })
        .map(|field| {
            let ty = names::field_ty(input, field, private);
            syn::parse_quote!(#ty: #private::SharedType)
        })
        .collect();
    if !predicates.is_empty() {
        generics.make_where_clause().predicates.extend(predicates);
    }
    generics
}

/// Whether `ty` names one of the struct's type or const parameters.
pub(crate) fn mentions_param(ty: &Type, generics: &Generics) -> bool {
    let names: Vec<String> = generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(t) => Some(t.ident.to_string()),
            GenericParam::Const(c) => Some(c.ident.to_string()),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    fn walk(tokens: TokenStream, names: &[String]) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(i) => names.contains(&i.to_string()),
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), names),
            _ => false,
        })
    }
    !names.is_empty() && walk(ty.to_token_stream(), &names)
}

/// The layout's name: `"Point"` for a plain struct, for a generic one an expression that
/// builds `"Stamped<u32>"` or `"Grid<f64, 4>"` at compile time from each parameter's own
/// layout or value.
pub(crate) fn layout_name(input: &Input<'_>, private: &TokenStream) -> TokenStream {
    let name = &input.name;
    let params: Vec<TokenStream> = input
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(t) => {
                let ident = &t.ident;
                Some(quote!(.layout(&<#ident as #private::SharedType>::LAYOUT)))
            }
            GenericParam::Const(c) => {
                let ident = &c.ident;
                Some(match const_kind(&c.ty) {
                    ConstKind::Signed => quote!(.signed(#ident as ::core::primitive::i128)),
                    ConstKind::Unsigned => quote!(.unsigned(#ident as ::core::primitive::u128)),
                    ConstKind::Bool => quote!(.boolean(#ident)),
                    ConstKind::Other => return None,
                })
            }
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    if params.is_empty() {
        return quote!(#name);
    }
    quote! {
        #private::LayoutName::as_str(
            &#private::LayoutName::new(#name) #(#params)* .close()
        )
    }
}

/// What a const parameter's value is rendered as.
pub(crate) enum ConstKind {
    Signed,
    Unsigned,
    Bool,
    Other,
}

/// The kind of a const parameter's type, from its tokens.
pub(crate) fn const_kind(ty: &Type) -> ConstKind {
    let Type::Path(path) = ty else {
        return ConstKind::Other;
    };
    let Some(ident) = path.path.get_ident() else {
        return ConstKind::Other;
    };
    match ident.to_string().as_str() {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => ConstKind::Signed,
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => ConstKind::Unsigned,
        "bool" => ConstKind::Bool,
        _ => ConstKind::Other,
    }
}
