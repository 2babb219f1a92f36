//! The attributes the derive reads: `#[repr(...)]` and its own `#[shared(...)]`.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, LitStr, Path};

use crate::errors::Errors;

/// One item of a `#[repr(...)]` attribute, e.g. `C` or `align(16)`.
pub(crate) struct ReprItem {
    pub kind: ReprKind,
    /// The item's name, for error spans.
    pub span: Span,
}

/// What a `#[repr(...)]` item asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReprKind {
    /// `C`: the layout the derive needs.
    C,
    /// `align(N)`: a larger alignment, fine beside `C`.
    Align,
    /// `packed` or `packed(N)`.
    Packed,
    /// `transparent`.
    Transparent,
    /// `Rust`: the default layout, spelled out.
    Rust,
    /// `u8`, `i32`, ...: enum discriminant types.
    Int(String),
    /// Anything else (`simd`, future reprs).
    Other(String),
}

/// Every `#[repr(...)]` on the item, in order.
#[derive(Default)]
pub(crate) struct Repr {
    pub items: Vec<ReprItem>,
}

impl Repr {
    /// Whether `C` was asked for.
    pub(crate) fn is_c(&self) -> bool {
        self.items.iter().any(|item| item.kind == ReprKind::C)
    }

    /// Whether `transparent` was asked for.
    pub(crate) fn is_transparent(&self) -> bool {
        self.items
            .iter()
            .any(|item| item.kind == ReprKind::Transparent)
    }
}

/// The derive's own options: `#[shared(crate = "path")]`.
#[derive(Default)]
pub(crate) struct Options {
    /// Where the runtime crate is, when it is not `::shared_runtime`.
    pub krate: Option<Path>,
}

const INTEGER_REPRS: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
];

/// Reads `#[repr]` and `#[shared]` from the attributes of the item being derived.
pub(crate) fn container(attrs: &[Attribute], errors: &mut Errors) -> (Repr, Options) {
    let mut repr = Repr::default();
    let mut options = Options::default();
    for attr in attrs {
        if attr.path().is_ident("repr") {
            // A `#[repr]` the derive cannot read is refused (fail closed): the derive never
            // guesses at a layout.
            if let Err(e) = attr.parse_nested_meta(|meta| repr_item(&mut repr, &meta)) {
                errors.push(syn::Error::new(
                    e.span(),
                    format!(
                        "#[derive(SharedStruct)] cannot read this #[repr(...)] ({e}): write it \
                         as #[repr(C)] or #[repr(C, align(N))]"
                    ),
                ));
            }
        } else if attr.path().is_ident("shared") {
            if let Err(e) = shared_options(attr, &mut options) {
                errors.push(e);
            }
        }
    }
    (repr, options)
}

fn repr_item(repr: &mut Repr, meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    // `r#C` is `C`.
    let name = meta
        .path
        .get_ident()
        .map(|ident| ident.unraw().to_string())
        .unwrap_or_else(|| meta.path.to_token_stream().to_string());
    let kind = match name.as_str() {
        "C" => ReprKind::C,
        "align" => ReprKind::Align,
        "packed" => ReprKind::Packed,
        "transparent" => ReprKind::Transparent,
        "Rust" => ReprKind::Rust,
        int if INTEGER_REPRS.contains(&int) => ReprKind::Int(name.clone()),
        _ => ReprKind::Other(name.clone()),
    };
    // `align(16)`, `packed(2)`: the argument does not matter to the derive.
    if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    repr.items.push(ReprItem {
        kind,
        span: meta.path.span(),
    });
    Ok(())
}

fn shared_options(attr: &Attribute, options: &mut Options) -> syn::Result<()> {
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("crate") {
            let value = meta.value()?;
            let path = if value.peek(LitStr) {
                value.parse::<LitStr>()?.parse::<Path>()?
            } else {
                value.parse::<Path>()?
            };
            if options.krate.is_some() {
                return Err(meta.error("`crate` is given twice: keep one"));
            }
            options.krate = Some(path);
            Ok(())
        } else {
            Err(meta.error(
                "unknown option: #[shared(...)] takes only `crate = \"path\"`, the path of the \
                 shared_runtime crate when it is re-exported under another name",
            ))
        }
    })
}

/// Rejects `#[shared]` on a field: fields take no options.
pub(crate) fn field(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("shared")) {
        errors.spanned(
            attr,
            "fields take no #[shared] options: put #[shared(crate = \"...\")] on the struct, \
             or remove this attribute",
        );
    }
}
