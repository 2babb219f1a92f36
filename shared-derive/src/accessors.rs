//! The field-accessor trait: for `struct Point { x: f64, .. }`, a trait `PointFields<'a>`
//! with `x()`, `set_x(v)`, `update_x(f)` and `x_place()` per field, implemented once for
//! every container of a `Point` (`impl<'a, C: HasPlace<'a, Point>> PointFields<'a> for C`).
//! The methods take the container by value (a reference or a `Place`, both `Copy`), so a
//! field's place borrows the container, not a temporary.
//!
//! The trait is an item beside the struct (users `use` it); its impl sits in the caller's
//! `const _: () = { ... };`. Its visibility is the struct's, narrowed to the least visible
//! field: accessors never reach a field further than the field itself is visible.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, Member, Type, Visibility};

use crate::ast::{Field, Input, Struct};
use crate::errors::Errors;
use crate::generics;
use crate::names::{self, Fresh};
use crate::valid::unshareable;

/// The names of one field's accessors.
pub(crate) struct Names {
    /// `x`, `r#type`, or `_0` for field 0 of a tuple struct.
    pub get: Ident,
    pub set: Ident,
    pub update: Ident,
    pub place: Ident,
}

impl Names {
    pub(crate) fn of(field: &Field<'_>) -> Self {
        let (get, base, span) = match &field.member {
            Member::Named(ident) => (ident.clone(), field.name.clone(), ident.span()),
            Member::Unnamed(index) => (
                format_ident!("_{}", index.index, span = index.span),
                index.index.to_string(),
                index.span,
            ),
        };
        let plain = get.to_string();
        let plain = plain.strip_prefix("r#").unwrap_or(&plain);
        Names {
            set: Ident::new(&format!("set_{base}"), span),
            update: Ident::new(&format!("update_{base}"), span),
            place: Ident::new(&format!("{plain}_place"), span),
            get,
        }
    }

    fn all(&self) -> [&Ident; 4] {
        [&self.get, &self.set, &self.update, &self.place]
    }
}

/// Records an error for every accessor name that two fields would both get (field `set_x`'s
/// getter and field `x`'s setter, for instance).
pub(crate) fn check_names(s: &Struct<'_>, errors: &mut Errors) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for field in &s.fields {
        for name in Names::of(field).all() {
            let key = name.to_string();
            match seen.get(key.as_str()) {
                Some(other) => errors.spanned(
                    &field.member,
                    format!(
                        "fields `{other}` and `{}` would both get an accessor method named \
                         `{key}()`: rename one of them",
                        field.name
                    ),
                ),
                None => {
                    seen.insert(key, &field.name);
                }
            }
        }
    }
}

/// Whether two fields would get an accessor of the same name.
pub(crate) fn names_collide(s: &Struct<'_>) -> bool {
    let mut errors = Errors::default();
    check_names(s, &mut errors);
    errors.finish().is_err()
}

/// The trait's visibility: the struct's, narrowed to the least visible field.
fn visibility(input: &Input<'_>, s: &Struct<'_>) -> TokenStream {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Reach {
        Private,
        Restricted(String),
        Crate,
        Public,
    }
    fn reach(vis: &Visibility) -> Reach {
        match vis {
            Visibility::Public(_) => Reach::Public,
            Visibility::Inherited => Reach::Private,
            Visibility::Restricted(r) if r.path.is_ident("crate") => Reach::Crate,
            Visibility::Restricted(r) if r.path.is_ident("self") => Reach::Private,
            Visibility::Restricted(r) => Reach::Restricted(r.path.to_token_stream().to_string()),
        }
    }
    let all = std::iter::once(input.vis).chain(s.fields.iter().map(|f| f.vis));
    let mut narrowest = (Reach::Public, input.vis);
    for vis in all {
        let r = reach(vis);
        narrowest = match (&narrowest.0, &r) {
            // Two different restrictions cannot be ordered from the tokens: stay private.
            (Reach::Restricted(a), Reach::Restricted(b)) if a != b => {
                (Reach::Private, &Visibility::Inherited)
            }
            _ if r < narrowest.0 => (r, vis),
            _ => narrowest,
        };
    }
    narrowest.1.to_token_stream()
}

/// Whether `ty` is written as a primitive shared type (or an array of one), whose
/// `SharedType` bound need not be spelled out.
fn is_primitive(ty: &Type) -> bool {
    const PRIMITIVES: &[&str] = &[
        "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f32", "f64", "usize", "isize",
    ];
    match ty {
        Type::Array(array) => is_primitive(&array.elem),
        Type::Path(p) if p.qself.is_none() => p
            .path
            .get_ident()
            .is_some_and(|i| PRIMITIVES.contains(&i.to_string().as_str())),
        _ => false,
    }
}

/// The accessor trait (an item for the struct's module) and its blanket impl (for inside
/// `const _`). Nothing for a struct without fields.
///
/// For the fallback (`stub`), fields whose type is already reported as unshareable get no
/// accessors, and both items are bounded by `for<'a> Struct: SharedType`, which the stub
/// `SharedType` impl may not satisfy (it requires `Copy`), so that they add no errors.
pub(crate) fn expand(
    input: &Input<'_>,
    s: &Struct<'_>,
    private: &TokenStream,
    fresh: &Fresh,
    stub: bool,
) -> (TokenStream, TokenStream) {
    let fields: Vec<&Field<'_>> = s
        .fields
        .iter()
        .filter(|f| !stub || unshareable(f.ty).is_none())
        .collect();
    if fields.is_empty() {
        return (TokenStream::new(), TokenStream::new());
    }
    let ident = input.ident;
    let name = &input.name;
    let vis = visibility(input, s);
    let trait_ident = format_ident!("{}Fields", name, span = ident.span());
    // Names nothing of the user's can capture (see `names`).
    let Fresh {
        container,
        ret,
        value,
        f,
        ..
    } = fresh;
    let a = syn::Lifetime::new("'a", Span::call_site());
    // The struct's own generics (lifetimes are refused): the trait is generic like it.
    let struct_generics = generics::with_shared_bounds(input, s, private);
    let (_, ty_generics, struct_where) = struct_generics.split_for_impl();
    let this = quote!(#ident #ty_generics);
    let params = struct_generics.params.iter();
    let params = quote!(#(#params,)*);
    let args: Vec<TokenStream> = struct_generics
        .params
        .iter()
        .map(|param| match param {
            syn::GenericParam::Type(t) => t.ident.to_token_stream(),
            syn::GenericParam::Const(c) => c.ident.to_token_stream(),
            syn::GenericParam::Lifetime(l) => l.lifetime.to_token_stream(),
        })
        .collect();
    let struct_predicates: Vec<&syn::WherePredicate> = struct_where
        .map(|w| w.predicates.iter().collect())
        .unwrap_or_default();
    let has_place = quote!(#private::HasPlace<#a, #this>);
    let access = quote!(<Self as #has_place>::Access);
    let krate_doc: String = input
        .krate()
        .to_token_stream()
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();

    let mut decls = Vec::new();
    let mut defs = Vec::new();
    for field in &fields {
        let Names {
            get,
            set,
            update,
            place,
        } = Names::of(field);
        let (ty, member, fname) = (field.ty, &field.member, &field.name);
        // Where generated names are bound (the impl, `update_x<R>`), the type as
        // `names::field_ty` spells it; the rest of the trait shows it as written.
        let spelled = names::field_ty(input, field, private);
        let place_ty = quote!(#private::Place<#a, #ty, #access>);
        let spelled_place_ty = quote!(#private::Place<#a, #spelled, #access>);
        let doc_get = format!(
            "Reads field `{fname}`: a copy of the field only, under the lock (taken once) on \
             a synchronized container, a relaxed atomic copy on a raw one."
        );
        let doc_set = format!(
            "Writes field `{fname}` and nothing else (no other field, no padding), under the \
             lock (taken once) on a synchronized container."
        );
        let doc_update = format!(
            "Runs `f` on a copy of field `{fname}` and writes it back, returning what `f` \
             returns. On a synchronized container this is one acquisition of the lock, a \
             read-modify-write no other process can interleave with (calling the container's \
             accessors inside `f` panics: it is borrowed); on a raw container it is a racy \
             read-then-write, and a concurrent update may be lost."
        );
        let doc_place = format!(
            "The [`Place`]({krate_doc}::place::Place) of field `{fname}`, to reach the fields of a \
             nested struct (`.{place}().field()`) or an element of an array field \
             (`.{place}().at(i)`) without copying the rest. Takes no lock: each operation on \
             the place does."
        );
        decls.push(quote! {
            #[doc = #doc_get]
            fn #get(self) -> #ty;
            #[doc = #doc_set]
            fn #set(self, #value: #ty);
            #[doc = #doc_update]
            fn #update<#ret>(self, #f: impl ::core::ops::FnOnce(&mut #spelled) -> #ret) -> #ret;
            #[doc = #doc_place]
            fn #place(self) -> #place_ty;
        });
        let this_trait = quote!(<Self as #trait_ident<#a, #(#args),*>>);
        defs.push(quote! {
            #[inline]
            fn #get(self) -> #spelled {
                #private::Place::get(#this_trait::#place(self))
            }
            #[inline]
            fn #set(self, #value: #spelled) {
                #private::Place::set(#this_trait::#place(self), #value)
            }
            #[inline]
            fn #update<#ret>(self, #f: impl ::core::ops::FnOnce(&mut #spelled) -> #ret) -> #ret {
                #private::Place::update(#this_trait::#place(self), #f)
            }
            #[inline]
            #[track_caller]
            fn #place(self) -> #spelled_place_ty {
                // No `unsafe` here: the runtime's `project_field` checks that the field lies
                // inside the struct and is aligned.
                #private::project_field::<#this, #spelled, #access>(
                    #private::HasPlace::<#a, #this>::place(self),
                    ::core::mem::offset_of!(#this, #member),
                )
            }
        });
    }

    // `for<'a> Field: SharedType`: true for a valid struct; when a field type is not a shared
    // type (already an error, reported once at the field), the impl just does not apply,
    // instead of adding errors in every accessor (a bound with a higher-ranked lifetime is
    // not a "trivial" bound, which rustc would check at the definition).
    let mut bounded = BTreeMap::new();
    for field in fields.iter().filter(|f| !is_primitive(f.ty)) {
        let spelled = names::field_ty(input, field, private);
        bounded.insert(spelled.to_string(), (field.ty.span(), spelled));
    }
    let mut bounds: Vec<TokenStream> = bounded
        .values()
        .map(|(ty_span, ty)| {
            let bound = quote::quote_spanned!(*ty_span=> #private::SharedType);
            quote!(for<'__a> #ty: #bound)
        })
        .collect();
    let mut trait_bounds: Vec<TokenStream> = struct_predicates
        .iter()
        .map(|p| p.to_token_stream())
        .collect();
    bounds.extend(trait_bounds.iter().cloned());
    if stub {
        let itself = quote!(for<'__a> #this: #private::SharedType);
        trait_bounds.push(itself.clone());
        bounds.push(itself);
    }
    let trait_where = if trait_bounds.is_empty() {
        TokenStream::new()
    } else {
        quote!(where #(#trait_bounds),*)
    };

    let doc = format!(
        "Field accessors of [`{name}`] in shared memory, made by `#[derive(SharedStruct)]`: \
         each method reads or writes one field without copying the rest of the struct.\n\n\
         Implemented for every container of one `{name}` (every \
         [`HasPlace<'a, {name}>`]({krate_doc}::place::HasPlace)): `&RawValue<{name}>` and \
         `&Value<{name}, L>` (call the methods on the value: `v.x()`), an element `a.at(i)` \
         of a `RawArray<{name}>` or an `Array<{name}, L>`, a guard's \
         `SyncGuard::place(&mut guard)`, and the place of a `{name}` field of another shared \
         struct. On a synchronized container each call takes the lock once; on a raw one it \
         is a relaxed atomic copy.\n\n\
         Outside the module of `{name}`, bring the trait into scope to call them: \
         `use path::to::{trait_ident};`."
    );
    let decl = quote! {
        #[doc = #doc]
        #[allow(dead_code, non_camel_case_types, non_snake_case, private_interfaces)]
        #vis trait #trait_ident<#a, #params>: #has_place #trait_where {
            #(#decls)*
        }
    };
    let imp = quote! {
        #[automatically_derived]
        impl<#a, #params #container: #has_place> #trait_ident<#a, #(#args),*> for #container
        where
            #(#bounds,)*
        {
            #(#defs)*
        }
    };
    (decl, imp)
}
