//! Everything that makes a struct unfit for shared memory and that the macro can see in the
//! tokens. What it cannot see (the traits a field type implements) rustc checks, through
//! the `FieldTy: SharedType` bounds the expansion emits.

use syn::{Fields, GenericParam, Type, TypePath};

use crate::ast::{Data, Input, Struct};
use crate::attr::ReprKind;
use crate::errors::Errors;
use crate::generics::{const_kind, ConstKind};

impl Input<'_> {
    /// Records every reason the item cannot derive `SharedStruct`.
    pub(crate) fn validate(&self, errors: &mut Errors) {
        match &self.data {
            Data::Struct(s) => {
                self.check_repr(errors);
                self.check_generics(errors);
                check_fields(s, self, errors);
            }
            Data::Enum(e) => errors.spanned(
                e.enum_token,
                "enums cannot derive SharedStruct: another process can leave any bytes in \
                 shared memory, and not every byte pattern is a valid discriminant; use a \
                 #[repr(C)] struct with an integer tag field (u8 or u32) and constants for its \
                 values",
            ),
            Data::Union(u) => errors.spanned(
                u.union_token,
                "unions cannot derive SharedStruct: the derive cannot tell which of a union's \
                 bytes are initialised; use a byte array field ([u8; N]) and convert explicitly",
            ),
        }
    }

    fn check_repr(&self, errors: &mut Errors) {
        // Set when an error already says "use #[repr(C)]".
        let mut said_use_c = false;
        for item in &self.repr.items {
            said_use_c |= !matches!(
                item.kind,
                ReprKind::C | ReprKind::Align | ReprKind::Packed | ReprKind::Transparent
            );
            let message = match &item.kind {
                ReprKind::C | ReprKind::Align | ReprKind::Transparent => continue,
                ReprKind::Packed => {
                    "#[repr(packed)] is not supported: packed fields may be misaligned, and shared \
                     memory is read and written with aligned atomic operations; remove `packed` \
                     (to save space, order the fields from the largest alignment to the smallest)"
                        .to_string()
                }
                ReprKind::Rust => "#[repr(Rust)] lets the compiler reorder fields, so another \
                                   program could not agree on the layout: use #[repr(C)]"
                    .to_string(),
                ReprKind::Int(int) => {
                    format!("#[repr({int})] is for enums: use #[repr(C)] on a shared struct")
                }
                ReprKind::Other(other) => format!(
                    "#[repr({other})] is not supported: use #[repr(C)], optionally with align(N)"
                ),
            };
            errors.push(syn::Error::new(item.span, message));
        }
        if !self.repr.is_c() && !self.repr.is_transparent() && !said_use_c {
            errors.spanned(
                self.ident,
                format!(
                    "`{}` needs #[repr(C)] to derive SharedStruct: Rust's default layout may \
                     reorder fields and change between builds, so other processes could not \
                     agree on it; add #[repr(C)] (or #[repr(C, align(N))]) to the struct, or \
                     #[repr(transparent)] to a one-field newtype",
                    self.name
                ),
            );
        }
    }

    fn check_generics(&self, errors: &mut Errors) {
        for param in &self.generics.params {
            match param {
                GenericParam::Lifetime(_) => errors.spanned(
                    param,
                    "a shared struct cannot have lifetime parameters: it cannot borrow anything, \
                     since a reference means nothing in another process; remove the lifetime \
                     and store the data itself",
                ),
                GenericParam::Const(c) if matches!(const_kind(&c.ty), ConstKind::Other) => errors
                    .spanned(
                        &c.ty,
                        "a const parameter of a shared struct must be an integer or a bool (its \
                         value is part of the layout's name): use `const N: usize`",
                    ),
                GenericParam::Type(_) | GenericParam::Const(_) => {}
            }
        }
    }
}

fn check_fields(s: &Struct<'_>, input: &Input<'_>, errors: &mut Errors) {
    if s.fields.is_empty() {
        let message = format!(
            "`{}` has no fields: a zero-sized struct has nothing to put in shared memory; \
                 add a field (a u8 if it only marks something)",
            input.name
        );
        match s.original {
            Fields::Unit => errors.spanned(input.ident, message),
            braces_or_parens => errors.spanned(braces_or_parens, message),
        }
    }
    for field in &s.fields {
        if let Some((ty, message)) = unshareable(field.ty) {
            errors.spanned(ty, message);
        } else if let Some(self_token) = mentions_self(field.ty) {
            errors.spanned(
                self_token,
                format!(
                    "`Self` cannot appear in a field type of a shared struct: the derive copies \
                     field types into impls of other types, where `Self` means something else; \
                     write the type out (`{}`)",
                    input.name
                ),
            );
        }
    }
    crate::accessors::check_names(s, errors);
}

/// The first `Self` in a field type, if any.
fn mentions_self(ty: &Type) -> Option<proc_macro2::Ident> {
    fn walk(tokens: proc_macro2::TokenStream) -> Option<proc_macro2::Ident> {
        tokens.into_iter().find_map(|token| match token {
            proc_macro2::TokenTree::Ident(i) if i == "Self" => Some(i),
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => None,
        })
    }
    walk(quote::ToTokens::to_token_stream(ty))
}

/// Why a field type obviously cannot live in shared memory, if it obviously cannot: the
/// part of the type at fault and a message that says what to use instead.
pub(crate) fn unshareable(ty: &Type) -> Option<(&Type, String)> {
    let because = |message: &str| Some((ty, message.to_string()));
    match ty {
        Type::Array(array) => unshareable(&array.elem),
        Type::Group(group) => unshareable(&group.elem),
        Type::Paren(paren) => unshareable(&paren.elem),
        Type::Ptr(_) => because(
            "a raw pointer cannot live in shared memory: a pointer means nothing in another \
             process, which maps memory at other addresses; store an index or an offset instead",
        ),
        Type::Reference(_) => because(
            "a reference cannot live in shared memory: it points into this process, which means \
             nothing in another one; store the value itself, or an index or an offset",
        ),
        Type::BareFn(_) => because(
            "a function pointer cannot live in shared memory: code is not at the same address \
             in every program; store an index into a table of functions instead",
        ),
        Type::Slice(_) => because(
            "a slice has no fixed size, so it cannot be a field of a shared struct: use an \
             array [T; N]",
        ),
        Type::TraitObject(_) => because(
            "a trait object has no fixed size and carries a vtable pointer, which means nothing \
             in another process: use a concrete shared type",
        ),
        Type::Tuple(tuple) if tuple.elems.is_empty() => {
            because("`()` has nothing to share: remove the field")
        }
        Type::Tuple(_) => because(
            "tuples have Rust's layout, which the compiler may reorder: use a #[repr(C)] struct \
             with #[derive(SharedStruct)], or an array",
        ),
        Type::Path(path) => known_path(path).map(|message| (ty, message.to_string())),
        _ => None,
    }
}

/// Messages for well-known types that cannot be shared, matched by name when written
/// plainly (`Vec<u8>`) or through `std`, `alloc` or `core` (`std::vec::Vec<u8>`).
fn known_path(ty: &TypePath) -> Option<&'static str> {
    if ty.qself.is_some() {
        return None;
    }
    let segments = &ty.path.segments;
    let last = segments.last()?;
    let first = segments.first()?;
    let plain = segments.len() == 1 && ty.path.leading_colon.is_none();
    let from_std = segments.len() > 1 && ["std", "alloc", "core"].iter().any(|c| first.ident == c);
    if !plain && !from_std {
        return None;
    }
    match last.ident.to_string().as_str() {
        "Box" => Some(
            "`Box` points into this process's heap, which other processes cannot see: store \
             the value itself in the struct",
        ),
        "Vec" => Some(
            "`Vec` points into this process's heap, which other processes cannot see: use an \
             array [T; N] (with a length field if it varies), or a separate RawArray<T>",
        ),
        "String" => Some(
            "`String` points into this process's heap, which other processes cannot see: use \
             a [CChar; N] field (set it with a NUL-terminated byte string, like a C char array)",
        ),
        "Rc" | "Arc" => Some(
            "a reference-counted pointer points into this process's heap and its count is not \
             shared: store the value itself, or share it separately in a RawValue<T>",
        ),
        "str" => Some(
            "`str` has no fixed size and strings on the heap cannot be shared: use a [CChar; N] \
             field",
        ),
        "bool" => Some(
            "`bool` cannot live in shared memory: another process can leave any byte there, \
             and only 0 and 1 are valid bools; use u8 (0 or 1) instead",
        ),
        "char" => Some(
            "`char` cannot live in shared memory: another process can leave any u32 there, and \
             not every u32 is a valid char; use WChar (ctypes' c_wchar) instead",
        ),
        "Option" => Some(
            "`Option` is an enum, and not every byte pattern is a valid Option: store the value \
             with a separate u8 flag field instead",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use syn::{parse_quote, Type};

    use super::unshareable;

    fn flagged(ty: Type) -> Option<String> {
        unshareable(&ty).map(|(_, message)| message)
    }

    #[test]
    fn well_known_unshareable_types_are_named() {
        assert!(flagged(parse_quote!(*const u8))
            .unwrap()
            .contains("pointer"));
        assert!(flagged(parse_quote!(&'static [u8]))
            .unwrap()
            .contains("reference"));
        assert!(flagged(parse_quote!(std::vec::Vec<u8>))
            .unwrap()
            .contains("`Vec`"));
        assert!(flagged(parse_quote!(::alloc::boxed::Box<u8>))
            .unwrap()
            .contains("`Box`"));
        assert!(flagged(parse_quote!(core::primitive::bool))
            .unwrap()
            .contains("use u8"));
        assert!(flagged(parse_quote!([[char; 2]; 3]))
            .unwrap()
            .contains("WChar"));
        assert!(flagged(parse_quote!(fn() -> u8))
            .unwrap()
            .contains("function pointer"));
    }

    #[test]
    fn other_types_are_left_to_the_trait_bound() {
        assert_eq!(flagged(parse_quote!(u64)), None);
        assert_eq!(flagged(parse_quote!([Point; 4])), None);
        // A user's own type that happens to share a name is not guessed at.
        assert_eq!(flagged(parse_quote!(geometry::Vec)), None);
        assert_eq!(flagged(parse_quote!(<T as Trait>::String)), None);
        assert_eq!(flagged(parse_quote!(Vec3)), None);
    }
}
