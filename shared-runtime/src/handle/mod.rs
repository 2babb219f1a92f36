//! Handles: how an object is named to another process (offset + layout fingerprint).

mod event;
mod kinds;
mod open;
mod queue;
mod resolve;

use std::fmt;
use std::str::FromStr;

use crate::arena::{LockKind, ObjectKind};
use crate::{Error, Result};

/// A reference to a shared object that can be sent to another process — as text
/// ([`Display`](fmt::Display)/[`FromStr`]), or with serde behind the `serde` feature — and
/// opened there with `open_handle` of the same kind: [`RawValue`](crate::RawValue),
/// [`RawArray`](crate::RawArray), [`Value`](crate::Value), [`Array`](crate::Array),
/// [`Lock`](crate::Lock), [`RLock`](crate::RLock), [`Event`](crate::Event).
///
/// It names the arena (by its [`id`](crate::Arena::id)), the object's kind, offset (and
/// its lock's), its length, and its type's layout fingerprint, which the opener checks against the type it asks
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
/// assert_eq!(h, v.handle());
/// // In another process mapping the arena: `RawValue::<u32>::open_handle(&arena, &h)`.
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Handle {
    /// The arena's id.
    pub arena: u64,
    /// The object's byte offset in the arena (of its data, for a `Value`/`Array`; of the
    /// lock cell, for a lock).
    pub offset: u64,
    /// Number of elements (1 for a value or a lock).
    pub len: u64,
    /// The layout fingerprint of the element type (0 for a lock).
    pub fingerprint: u64,
    /// What kind of object it names.
    pub kind: ObjectKind,
    /// The byte offset of the lock cell of a `Value`/`Array` (0 for the other kinds).
    pub lock: u64,
    /// Whether ownership travels with the handle.
    pub owned: bool,
}

const PREFIX: &str = "shr2";
const OLD_PREFIX: &str = "shr1";

/// The letters of each kind in the text form.
fn letters(kind: ObjectKind) -> &'static str {
    use LockKind::{Lock, RLock};
    match kind {
        ObjectKind::RawValue => "v",
        ObjectKind::RawArray => "a",
        ObjectKind::Value(Lock) => "Vl",
        ObjectKind::Value(RLock) => "Vr",
        ObjectKind::Array(Lock) => "Al",
        ObjectKind::Array(RLock) => "Ar",
        ObjectKind::Lock(Lock) => "l",
        ObjectKind::Lock(RLock) => "r",
        ObjectKind::Event => "e",
        ObjectKind::Condition => "c",
        ObjectKind::Semaphore => "s",
        ObjectKind::BoundedSemaphore => "S",
        ObjectKind::Barrier => "B",
        ObjectKind::Queue => "q",
    }
}

fn kind_of(letters: &str) -> Option<ObjectKind> {
    use LockKind::{Lock, RLock};
    Some(match letters {
        "v" => ObjectKind::RawValue,
        "a" => ObjectKind::RawArray,
        "Vl" => ObjectKind::Value(Lock),
        "Vr" => ObjectKind::Value(RLock),
        "Al" => ObjectKind::Array(Lock),
        "Ar" => ObjectKind::Array(RLock),
        "l" => ObjectKind::Lock(Lock),
        "r" => ObjectKind::Lock(RLock),
        "e" => ObjectKind::Event,
        "c" => ObjectKind::Condition,
        "s" => ObjectKind::Semaphore,
        "S" => ObjectKind::BoundedSemaphore,
        "B" => ObjectKind::Barrier,
        "q" => ObjectKind::Queue,
        _ => return None,
    })
}

impl fmt::Display for Handle {
    /// `shr2:<arena>:<offset>:<len>:<fingerprint>:<lock>:<kind><b|o>`, numbers in hex;
    /// the kind is `v` (RawValue), `a` (RawArray), `Vl`/`Vr` (Value with a Lock/RLock),
    /// `Al`/`Ar` (Array), `l`/`r` (Lock/RLock); `b` lends, `o` carries ownership.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}:{:x}:{:x}:{:x}:{:x}:{:x}:{}{}",
            self.arena,
            self.offset,
            self.len,
            self.fingerprint,
            self.lock,
            letters(self.kind),
            if self.owned { 'o' } else { 'b' }
        )
    }
}

impl FromStr for Handle {
    type Err = Error;

    /// Parses the form written by `Display`, and the older `shr1` form of raw objects
    /// (`shr1:<arena>:<offset>:<len>:<fingerprint>:<v|a><b|o>`).
    fn from_str(text: &str) -> Result<Handle> {
        let bad = |reason| Error::InvalidHandle {
            text: text.to_string(),
            reason,
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (arena, offset, len, fingerprint, lock, flags) = match parts[..] {
            [PREFIX, arena, offset, len, fp, lock, flags] => (arena, offset, len, fp, lock, flags),
            [OLD_PREFIX, arena, offset, len, fp, flags] => (arena, offset, len, fp, "0", flags),
            [PREFIX | OLD_PREFIX, ..] => {
                return Err(bad(
                    "expected shr2:<arena>:<offset>:<len>:<fingerprint>:<lock>:<kind><b|o>",
                ))
            }
            _ => return Err(bad("it does not start with shr2: (or the older shr1:)")),
        };
        let hex = |s: &str| {
            // from_str_radix would also take a leading '+': one spelling per handle.
            let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
            digits
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
                .ok_or(bad("a field is not hex"))
        };
        let (kind, owned) = match flags.split_at_checked(flags.len().saturating_sub(1)) {
            Some((k, "b")) => (kind_of(k), false),
            Some((k, "o")) => (kind_of(k), true),
            _ => (None, false),
        };
        let kind = kind
            .filter(|k| {
                parts[0] == PREFIX
                    || !matches!(
                        k,
                        ObjectKind::Value(_)
                            | ObjectKind::Array(_)
                            | ObjectKind::Lock(_)
                            | ObjectKind::Event
                            | ObjectKind::Condition
                            | ObjectKind::Semaphore
                            | ObjectKind::BoundedSemaphore
                            | ObjectKind::Barrier
                            | ObjectKind::Queue
                    )
            })
            .ok_or(bad(
                "the kind is not one of v, a, Vl, Vr, Al, Ar, l, r, e, c, s, S, B, q followed by b or o",
            ))?;
        Ok(Handle {
            arena: hex(arena)?,
            offset: hex(offset)?,
            len: hex(len)?,
            fingerprint: hex(fingerprint)?,
            kind,
            lock: hex(lock)?,
            owned,
        })
    }
}
