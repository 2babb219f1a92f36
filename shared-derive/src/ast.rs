//! The derive's input, read from `syn` into typed nodes that keep the original tokens, so
//! that every error can point at the right place.

use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data as SynData, DataEnum, DataUnion, DeriveInput, Fields, Generics, Ident, Index};
use syn::{Member, Type, Visibility};

use crate::attr::{self, Options, Repr};
use crate::errors::Errors;

/// The item `#[derive(SharedStruct)]` is on.
pub(crate) struct Input<'a> {
    pub ident: &'a Ident,
    /// The name the layout carries: the identifier without `r#`.
    pub name: String,
    pub vis: &'a Visibility,
    pub generics: &'a Generics,
    pub repr: Repr,
    pub options: Options,
    pub data: Data<'a>,
}

/// What kind of item it is; only structs can be derived.
pub(crate) enum Data<'a> {
    Struct(Struct<'a>),
    Enum(&'a DataEnum),
    Union(&'a DataUnion),
}

/// A struct with named, tuple or no fields.
pub(crate) struct Struct<'a> {
    pub original: &'a Fields,
    pub fields: Vec<Field<'a>>,
}

/// One field of the struct.
pub(crate) struct Field<'a> {
    /// How the field is reached: `x` or `0`.
    pub member: Member,
    /// The name the layout carries: `"x"` (without `r#`) or `"0"`.
    pub name: String,
    pub vis: &'a Visibility,
    pub ty: &'a Type,
    /// Its position among the struct's fields.
    pub index: usize,
}

impl<'a> Input<'a> {
    /// Reads the item; attribute errors go to `errors`, and reading carries on.
    pub(crate) fn from_syn(node: &'a DeriveInput, errors: &mut Errors) -> Self {
        let (repr, options) = attr::container(&node.attrs, errors);
        let data = match &node.data {
            SynData::Struct(s) => Data::Struct(Struct::from_syn(&s.fields, errors)),
            SynData::Enum(e) => Data::Enum(e),
            SynData::Union(u) => Data::Union(u),
        };
        Input {
            ident: &node.ident,
            name: node.ident.unraw().to_string(),
            vis: &node.vis,
            generics: &node.generics,
            repr,
            options,
            data,
        }
    }

    /// The runtime crate's path: `::shared_runtime` unless `#[shared(crate = ..)]` says.
    pub(crate) fn krate(&self) -> syn::Path {
        self.options
            .krate
            .clone()
            .unwrap_or_else(|| syn::parse_quote!(::shared_runtime))
    }
}

impl<'a> Struct<'a> {
    fn from_syn(original: &'a Fields, errors: &mut Errors) -> Self {
        let fields = original
            .iter()
            .enumerate()
            .map(|(i, field)| {
                attr::field(&field.attrs, errors);
                let (member, name) = match &field.ident {
                    Some(ident) => (Member::Named(ident.clone()), ident.unraw().to_string()),
                    None => {
                        let index = Index {
                            index: i as u32,
                            span: field.span(),
                        };
                        (Member::Unnamed(index), i.to_string())
                    }
                };
                Field {
                    member,
                    name,
                    vis: &field.vis,
                    ty: &field.ty,
                    index: i,
                }
            })
            .collect();
        Struct { original, fields }
    }
}
