//! The names of generic shared structs' layouts, built at compile time: `"Stamped<u32>"`.

use crate::types::layout::{fnv_bytes, fnv_u64, LayoutKind, TypeLayout, FNV_OFFSET};

/// The most bytes a layout name holds. A longer one is cut and ends in `...#` and 16 hex
/// digits: a hash of the struct's name, of every type parameter's fingerprint and of every
/// const parameter's value, taken whole whatever was cut. The fingerprint hashes the name,
/// so it still tells every instantiation apart, the parameters that were cut included.
const CAPACITY: usize = 160;

/// What a cut name ends with: `...#` and 16 hex digits.
const TAIL: usize = 4 + 16;

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
    /// The hash of everything appended, cut or not.
    hash: u64,
}

impl LayoutName {
    /// A name that starts with the type's own name, e.g. `"Stamped"`.
    pub const fn new(name: &str) -> Self {
        LayoutName {
            bytes: [0; CAPACITY],
            len: 0,
            params: 0,
            truncated: false,
            hash: fnv_bytes(FNV_OFFSET, name.as_bytes()),
        }
        .push(name)
    }

    /// Appends a type parameter, by its layout: `u32`, `[u8; 4]`, `Stamped<f64>`.
    pub const fn layout(mut self, layout: &TypeLayout) -> Self {
        self.hash = fnv_u64(fnv_u64(self.hash, 1), layout.fingerprint());
        self.separator().label(layout)
    }

    /// Appends a const parameter of a signed integer type.
    pub const fn signed(mut self, value: i128) -> Self {
        self.hash = fnv_bytes(fnv_u64(self.hash, 2), &value.to_le_bytes());
        let this = self.separator();
        if value < 0 {
            this.push("-").digits(value.unsigned_abs())
        } else {
            this.digits(value as u128)
        }
    }

    /// Appends a const parameter of an unsigned integer type.
    pub const fn unsigned(mut self, value: u128) -> Self {
        self.hash = fnv_bytes(fnv_u64(self.hash, 3), &value.to_le_bytes());
        self.separator().digits(value)
    }

    /// Appends a `bool` const parameter.
    pub const fn boolean(mut self, value: bool) -> Self {
        self.hash = fnv_u64(fnv_u64(self.hash, 4), value as u64);
        self.separator().push(if value { "true" } else { "false" })
    }

    /// Closes the parameter list (`>`), if any was opened. A name that was cut ends in
    /// `...#` and the hash of everything appended instead.
    ///
    /// ```
    /// use shared_runtime::layout::LayoutName;
    ///
    /// let long = "x".repeat(130);
    /// let a = LayoutName::new(&long).unsigned(u128::MAX).close();
    /// let b = LayoutName::new(&long).unsigned(u128::MAX - 1).close();
    /// assert!(a.as_str().starts_with("xxx") && a.as_str().contains("...#"));
    /// assert_eq!(a.as_str().len(), 131 + 20); // `x..x<...#` and the hash
    /// assert_ne!(a.as_str(), b.as_str()); // the parameter that was cut still counts
    /// ```
    pub const fn close(mut self) -> Self {
        if self.truncated {
            self.truncated = false;
            let hash = self.hash;
            let mut this = self.append("...#", CAPACITY).hex(hash);
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

    /// Appends `layout`'s name, arrays spelled out: `[[u8; 2]; 3]`. A loop, not recursion
    /// (a const evaluation has a bounded stack), that stops once the name is cut.
    const fn label(mut self, layout: &TypeLayout) -> Self {
        // `[` once per level of nesting, then the element type's name.
        let mut depth = 0;
        let mut inner = layout;
        while let LayoutKind::Array { elem, .. } = inner.kind {
            if self.truncated {
                return self;
            }
            self = self.push("[");
            depth += 1;
            inner = elem;
        }
        self = self.push(inner.name);
        // `; len]` from the innermost level out: level `depth - 1` is the innermost.
        while depth > 0 && !self.truncated {
            depth -= 1;
            let mut level = layout;
            let mut i = 0;
            while i < depth {
                if let LayoutKind::Array { elem, .. } = level.kind {
                    level = elem;
                }
                i += 1;
            }
            if let LayoutKind::Array { len, .. } = level.kind {
                self = self.push("; ").digits(len as u128).push("]");
            }
        }
        self
    }

    const fn hex(self, value: u64) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            buf[i] = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
            i += 1;
        }
        match core::str::from_utf8(&buf) {
            Ok(s) => self.append(s, CAPACITY),
            Err(_) => self,
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
    /// for the `...#` and the hash).
    const fn push(self, piece: &str) -> Self {
        self.append(piece, CAPACITY - TAIL)
    }

    /// Appends `piece` whole if the name stays within `limit` bytes, else marks it truncated.
    const fn append(mut self, piece: &str, limit: usize) -> Self {
        let piece = piece.as_bytes();
        if self.truncated || self.len + piece.len() > limit {
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
