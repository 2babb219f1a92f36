//! Names for what the generated code binds itself (parameters, generic parameters), chosen
//! so that nothing of the user's can capture them.
//!
//! Two kinds of capture exist. A generic parameter `C` of the generated impl would capture a
//! field type written `C`; a parameter `value` of a generated method would become a pattern
//! (and fail with E0005/E0530) if the user's module has a `const value` or a unit struct
//! `value`. `Span::mixed_site()` helps with neither: it makes *local variables* hygienic,
//! but a generic type parameter and a const looked up by a parameter pattern resolve like
//! items, at the call site (tried: E0053 and E0005 with mixed-site names).
//!
//! So every name is first made fresh: it appears nowhere in the tokens of the derive's input
//! (struct name, generics, field types, `crate` path), so no user-written token inside the
//! generated code can mean it. Then, for the value-namespace names, [`Fresh::shadows`]
//! declares a function of each name inside the generated `const _: () = { .. };` block:
//! lexical scoping finds it before any const or unit struct of the user's module (also one
//! the scan cannot see, from a glob import), and a function is never a pattern, so the
//! parameter is a binding.
//!
//! The scan cannot see inside a macro call (`the_c!()`, `[u8; len!()]`), so a field type
//! holding one never enters the blocks that bind generated names: [`field_types`] names it
//! `<Struct as FieldType<I>>::Type` in a block of its own that binds nothing, and
//! [`field_ty`] spells it that way everywhere else.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::ast::{Data, Field, Input, Struct};

/// The names the generated code binds.
pub(crate) struct Fresh {
    /// The accessor impl's container type parameter.
    pub container: Ident,
    /// The `update_x` methods' return type parameter.
    pub ret: Ident,
    /// The `set_x` methods' parameter.
    pub value: Ident,
    /// The `update_x` methods' closure parameter.
    pub f: Ident,
    /// `SharedType::store`'s parameters.
    pub src: Ident,
    pub dst: Ident,
}

impl Fresh {
    pub(crate) fn new(input: &Input<'_>) -> Self {
        let mut taken = BTreeSet::new();
        collect(input.ident.to_token_stream(), &mut taken);
        collect(input.generics.to_token_stream(), &mut taken);
        collect(input.krate().to_token_stream(), &mut taken);
        if let Data::Struct(s) = &input.data {
            for field in &s.fields {
                collect(field.ty.to_token_stream(), &mut taken);
            }
        }
        let mut fresh = |base: &str| {
            let mut name = base.to_string();
            let mut n = 0;
            while taken.contains(&name) {
                n += 1;
                name = format!("__{base}{n}");
            }
            taken.insert(name.clone());
            Ident::new(&name, Span::call_site())
        };
        Fresh {
            container: fresh("C"),
            ret: fresh("R"),
            value: fresh("value"),
            f: fresh("f"),
            src: fresh("src"),
            dst: fresh("dst"),
        }
    }

    /// One function per value-namespace name, for the generated `const _` block, so that a
    /// `const` or unit struct of the same name in the user's module cannot turn a parameter
    /// into a pattern.
    pub(crate) fn shadows(&self) -> TokenStream {
        let names = [&self.value, &self.f, &self.src, &self.dst];
        quote! {
            #(
                #[allow(dead_code, non_snake_case)]
                fn #names() {}
            )*
        }
    }
}

/// Whether `ty` holds a macro call, whose expansion the scan cannot see (any `!`: a type
/// has no other, and treating one as a macro call is merely cautious).
pub(crate) fn hides_names(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Punct(p) => p.as_char() == '!',
            TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(ty.to_token_stream())
}

/// A field's type as the blocks that bind generated names spell it: as written when the scan
/// saw every name in it, else `<Struct<..> as FieldType<I>>::Type`, which names no token
/// of the user's (its `Type` is written in [`field_types`]'s block, which binds nothing).
pub(crate) fn field_ty(input: &Input<'_>, field: &Field<'_>, private: &TokenStream) -> TokenStream {
    let ty = field.ty;
    if !hides_names(ty) {
        return ty.to_token_stream();
    }
    let ident = input.ident;
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let index = field.index;
    quote_spanned!(ty.span()=> <#ident #ty_generics as #private::FieldType<#index>>::Type)
}

/// `impl FieldType<I> for Struct { type Type = FieldTy; }` for each field whose type holds a
/// macro call, for a `const _` block of its own: the only generated code those tokens are
/// resolved in, and it binds no name of its own.
pub(crate) fn field_types(input: &Input<'_>, s: &Struct<'_>, private: &TokenStream) -> TokenStream {
    let ident = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let impls = s.fields.iter().filter(|f| hides_names(f.ty)).map(|field| {
        let (ty, index) = (field.ty, field.index);
        quote! {
            #[automatically_derived]
            impl #impl_generics #private::FieldType<#index> for #ident #ty_generics #where_clause {
                type Type = #ty;
            }
        }
    });
    quote!(#(#impls)*)
}

/// Every identifier in `tokens`, without `r#`.
fn collect(tokens: TokenStream, taken: &mut BTreeSet<String>) {
    for token in tokens {
        match token {
            TokenTree::Ident(ident) => {
                let name = ident.to_string();
                let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
                taken.insert(name);
            }
            TokenTree::Group(group) => collect(group.stream(), taken),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use syn::{parse_quote, DeriveInput};

    use super::Fresh;
    use crate::ast::Input;
    use crate::errors::Errors;

    #[test]
    fn names_used_by_the_input_are_avoided() {
        let node: DeriveInput = parse_quote! {
            struct S<C> { a: C, b: __C1, c: [u8; value], d: R }
        };
        let mut errors = Errors::default();
        let fresh = Fresh::new(&Input::from_syn(&node, &mut errors));
        assert_eq!(fresh.container, "__C2");
        assert_eq!(fresh.ret, "__R1");
        assert_eq!(fresh.value, "__value1");
        assert_eq!(fresh.f, "f");
    }
}
