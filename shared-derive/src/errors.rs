//! Collects every error of one derive, so that all of them are reported in one compile.

use std::fmt::Display;

use quote::ToTokens;

/// The errors found so far. Each pass pushes into it and carries on.
#[derive(Default)]
pub(crate) struct Errors {
    all: Option<syn::Error>,
}

impl Errors {
    /// Records an error that spans `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.all {
            Some(all) => all.combine(error),
            None => self.all = Some(error),
        }
    }

    /// `Ok` if nothing was recorded, otherwise every error, in the order recorded.
    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        self.all.map_or(Ok(()), Err)
    }
}
