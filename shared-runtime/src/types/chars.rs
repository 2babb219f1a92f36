//! `CChar` and `WChar`: ctypes' `c_char` and `c_wchar`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::types::layout::{Primitive, TypeLayout};
use crate::types::SharedType;

/// One byte of a C string, ctypes' `c_char` (typecode `'c'`).
///
/// Arrays of `CChar` have the string accessors of ctypes' `c_char` arrays:
/// `value`/`set_value` (NUL-terminated) and `raw`/`set_raw` (all bytes).
///
/// ```
/// use shared_runtime::{CChar, RawArray};
///
/// let s = RawArray::from_slice(CChar::from_bytes(b"hi"))?;
/// assert_eq!(s.value(), b"hi");
/// assert_eq!(CChar(b'x').0, b'x');
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
pub struct CChar(pub u8);

impl CChar {
    /// Views bytes as `CChar`s, without copying.
    ///
    /// ```
    /// use shared_runtime::CChar;
    /// assert_eq!(CChar::from_bytes(b"ab"), &[CChar(b'a'), CChar(b'b')]);
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> &[CChar] {
        // zerocopy proves it at compile time: same element size and alignment, every byte
        // is a valid `CChar`.
        zerocopy::transmute_ref!(bytes)
    }

    /// Views `CChar`s as bytes, without copying.
    ///
    /// ```
    /// use shared_runtime::CChar;
    /// assert_eq!(CChar::as_bytes(&[CChar(b'o'), CChar(b'k')]), b"ok");
    /// ```
    pub fn as_bytes(chars: &[CChar]) -> &[u8] {
        IntoBytes::as_bytes(chars)
    }
}

impl From<u8> for CChar {
    fn from(b: u8) -> Self {
        CChar(b)
    }
}

/// A wide character, ctypes' `c_wchar` on Linux (typecode `'u'`): a 32-bit code unit.
///
/// It is a `u32`, not a `char`, because shared memory can hold any bit pattern and not every
/// `u32` is a valid `char`; [`WChar::to_char`] checks.
///
/// ```
/// use shared_runtime::WChar;
/// let w = WChar::from('é');
/// assert_eq!(w.to_char(), Some('é'));
/// assert_eq!(WChar(0xD800).to_char(), None);
/// ```
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
)]
pub struct WChar(pub u32);

impl WChar {
    /// The character, if this code unit is a valid Unicode scalar value.
    pub fn to_char(self) -> Option<char> {
        char::from_u32(self.0)
    }
}

impl From<char> for WChar {
    fn from(c: char) -> Self {
        WChar(c as u32)
    }
}

// SAFETY: #[repr(transparent)] over u8: every bit pattern is valid, no pointers (zerocopy's
// derives above prove it: `FromBytes + IntoBytes + Immutable`).
unsafe impl SharedType for CChar {
    const LAYOUT: TypeLayout = TypeLayout::primitive(Primitive::CChar);
}

// SAFETY: #[repr(transparent)] over u32: every bit pattern is valid, no pointers (proved by
// zerocopy's derives above).
unsafe impl SharedType for WChar {
    const LAYOUT: TypeLayout = TypeLayout::primitive(Primitive::WChar);
}
