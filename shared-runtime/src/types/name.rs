//! The names of generic shared structs' layouts, built at compile time: `"Stamped<u32>"`.

use crate::types::layout::{LayoutKind, TypeLayout};

/// The most bytes a layout name holds; a longer one ends in `...` (the fingerprint still
/// tells every instantiation apart: it hashes the fields, not just the name).
const CAPACITY: usize = 160;

/// A layout name under construction, in a fixed buffer, so that a `const` can build it for
/// each instantiation of a generic struct. `#[derive(SharedStruct)]` uses it; so can a
/// hand-written `SharedType` impl of a generic type.
///
/// ```
/// use shared_runtime::layout::LayoutName;
/// use shared_runtime::SharedType;
///
/// const NAME: &str = LayoutName::as_str(
///     &LayoutName::new("Grid")
///         .layout(&<[f32; 3] as SharedType>::LAYOUT)
///         .unsigned(4)
///         .close(),
/// );
/// assert_eq!(NAME, "Grid<[f32; 3], 4>");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LayoutName {
    bytes: [u8; CAPACITY],
    len: usize,
    params: usize,
    truncated: bool,
}

impl LayoutName {
    /// A name that starts with the type's own name, e.g. `"Stamped"`.
    pub const fn new(name: &str) -> Self {
        LayoutName {
            bytes: [0; CAPACITY],
            len: 0,
            params: 0,
            truncated: false,
        }
        .push(name)
    }

    /// Appends a type parameter, by its layout: `u32`, `[u8; 4]`, `Stamped<f64>`.
    pub const fn layout(self, layout: &TypeLayout) -> Self {
        self.separator().label(layout)
    }

    /// Appends a const parameter of a signed integer type.
    pub const fn signed(self, value: i128) -> Self {
        let this = self.separator();
        if value < 0 {
            this.push("-").digits(value.unsigned_abs())
        } else {
            this.digits(value as u128)
        }
    }

    /// Appends a const parameter of an unsigned integer type.
    pub const fn unsigned(self, value: u128) -> Self {
        self.separator().digits(value)
    }

    /// Appends a `bool` const parameter.
    pub const fn boolean(self, value: bool) -> Self {
        self.separator().push(if value { "true" } else { "false" })
    }

    /// Closes the parameter list (`>`), if any was opened.
    pub const fn close(mut self) -> Self {
        if self.truncated {
            self.truncated = false;
            let mut this = self.push("...");
            this.truncated = true;
            this
        } else if self.params > 0 {
            self.push(">")
        } else {
            self
        }
    }

    /// The name so far.
    pub const fn as_str(&self) -> &str {
        let (used, _) = self.bytes.split_at(self.len);
        match core::str::from_utf8(used) {
            Ok(s) => s,
            // Only whole `&str`s are ever appended.
            Err(_) => "",
        }
    }

    const fn separator(mut self) -> Self {
        self.params += 1;
        if self.params == 1 {
            self.push("<")
        } else {
            self.push(", ")
        }
    }

    const fn label(self, layout: &TypeLayout) -> Self {
        match layout.kind {
            LayoutKind::Array { elem, len } => self
                .push("[")
                .label(elem)
                .push("; ")
                .digits(len as u128)
                .push("]"),
            _ => self.push(layout.name),
        }
    }

    const fn digits(self, mut value: u128) -> Self {
        let mut buf = [0u8; 40];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        let (_, digits) = buf.split_at(start);
        match core::str::from_utf8(digits) {
            Ok(s) => self.push(s),
            Err(_) => self,
        }
    }

    /// Appends `piece` whole, or marks the name truncated if it does not fit (keeping room
    /// for the `...`).
    const fn push(mut self, piece: &str) -> Self {
        let piece = piece.as_bytes();
        if self.truncated || self.len + piece.len() > CAPACITY - 3 {
            self.truncated = true;
            return self;
        }
        let mut i = 0;
        while i < piece.len() {
            self.bytes[self.len + i] = piece[i];
            i += 1;
        }
        self.len += piece.len();
        self
    }
}
