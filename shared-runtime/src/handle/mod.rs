//! Handles: how an object is named to another process (offset + layout fingerprint).

mod open;

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A reference to a shared object that can be sent to another process — as text
/// ([`Display`](fmt::Display)/[`FromStr`]), or with serde behind the `serde` feature — and
/// opened there with `RawValue::open_handle` / `RawArray::open_handle`.
///
/// It names the arena (by its [`id`](crate::Arena::id)), the object's offset, its length,
/// and its type's layout fingerprint, which the opener checks against the type it asks
/// for. A handle made by `into_handle` also carries ownership: the process that opens it
/// becomes the object's owner (once; a second open of the same owned handle fails).
///
/// ```
/// use shared_runtime::RawValue;
/// use shared_runtime::handle::Handle;
///
/// let v = RawValue::new(7u32)?;
/// let text = v.handle().to_string();
/// let h: Handle = text.parse()?;
/// let w = RawValue::<u32>::open_handle(v.arena(), &h)?;
/// assert_eq!(w.get(), 7);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Handle {
    /// The arena's id.
    pub arena: u64,
    /// The object's byte offset in the arena.
    pub offset: u64,
    /// Number of elements (1 for a value).
    pub len: u64,
    /// The layout fingerprint of the element type.
    pub fingerprint: u64,
    /// Whether it names an array (rather than a value).
    pub array: bool,
    /// Whether ownership travels with the handle.
    pub owned: bool,
}

const PREFIX: &str = "shr1";

impl fmt::Display for Handle {
    /// `shr1:<arena>:<offset>:<len>:<fingerprint>:<v|a><b|o>`, numbers in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}:{:x}:{:x}:{:x}:{:x}:{}{}",
            self.arena,
            self.offset,
            self.len,
            self.fingerprint,
            if self.array { 'a' } else { 'v' },
            if self.owned { 'o' } else { 'b' }
        )
    }
}

impl FromStr for Handle {
    type Err = Error;

    /// Parses the form written by `Display`.
    fn from_str(text: &str) -> Result<Handle> {
        let bad = |reason| Error::InvalidHandle {
            text: text.to_string(),
            reason,
        };
        let parts: Vec<&str> = text.split(':').collect();
        let [prefix, arena, offset, len, fingerprint, flags] = parts[..] else {
            return Err(bad(
                "expected shr1:<arena>:<offset>:<len>:<fingerprint>:<flags>",
            ));
        };
        if prefix != PREFIX {
            return Err(bad("it does not start with shr1:"));
        }
        let hex = |s: &str| {
            // from_str_radix would also take a leading '+': one spelling per handle.
            let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
            digits
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
                .ok_or(bad("a field is not hex"))
        };
        let (array, owned) = match flags {
            "vb" => (false, false),
            "vo" => (false, true),
            "ab" => (true, false),
            "ao" => (true, true),
            _ => return Err(bad("the flags are not one of vb, vo, ab, ao")),
        };
        Ok(Handle {
            arena: hex(arena)?,
            offset: hex(offset)?,
            len: hex(len)?,
            fingerprint: hex(fingerprint)?,
            array,
            owned,
        })
    }
}
