//! Names for what the generated code binds itself (parameters, generic parameters), chosen
//! so that nothing of the user's can capture them.
//!
//! Two kinds of capture exist. A generic parameter `C` of the generated impl would capture a
//! field type written `C`; a parameter `value` of a generated method would become a pattern
//! (and fail with E0005/E0530) if the user's module has a `const value` or a unit struct
//! `value`, whatever the span's hygiene. So every name is first made fresh: it appears
//! nowhere in the derive's input (struct name, generics, field types, `crate` path), so no
//! user-written token inside the generated code can mean it. Then, for the value-namespace
//! names, [`Fresh::shadows`] declares a function of each name inside the generated
//! `const _: () = { .. };` block: lexical scoping finds it before any const or unit struct
//! of the user's module, and a function is never a pattern, so the parameter is a binding.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::Ident;

use crate::ast::{Data, Input};

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
