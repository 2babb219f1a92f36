//! What kind of object a name or handle refers to, and the trait every nameable kind
//! implements.

use std::fmt;
use std::sync::Arc;

use crate::arena::Allocation;
use crate::sync::Token;
use crate::types::TypeLayout;

/// The kind of a lock: [`Lock`](crate::Lock) or [`RLock`](crate::RLock).
///
/// ```
/// use shared_runtime::arena::{LockKind, ObjectKind};
/// assert_eq!(ObjectKind::Value(LockKind::RLock).to_string(), "Value<_, RLock>");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LockKind {
    /// Not re-entrant ([`Lock`](crate::Lock)).
    Lock,
    /// Re-entrant ([`RLock`](crate::RLock)).
    RLock,
}

/// The kind of a named object or handle, as the arena's directory records it.
///
/// ```
/// use shared_runtime::arena::{NamedObject, ObjectKind};
/// use shared_runtime::{RawArray, Value};
/// assert_eq!(<RawArray<u8> as NamedObject>::KIND, ObjectKind::RawArray);
/// assert_eq!(<Value<u8> as NamedObject>::KIND.to_string(), "Value<_, RLock>");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum ObjectKind {
    /// A [`RawValue`](crate::RawValue).
    RawValue,
    /// A [`RawArray`](crate::RawArray).
    RawArray,
    /// A [`Value`](crate::Value) with its lock.
    Value(LockKind),
    /// An [`Array`](crate::Array) with its lock.
    Array(LockKind),
    /// A lock on its own: [`Lock`](crate::Lock) or [`RLock`](crate::RLock).
    Lock(LockKind),
    /// An [`Event`](crate::Event).
    Event,
    /// A [`Condition`](crate::Condition).
    Condition,
    /// A [`Semaphore`](crate::Semaphore).
    Semaphore,
    /// A [`BoundedSemaphore`](crate::BoundedSemaphore).
    BoundedSemaphore,
    /// A [`Barrier`](crate::Barrier).
    Barrier,
    /// A [`Queue`](crate::Queue) of elements.
    Queue,
}

impl ObjectKind {
    /// The code stored in the directory and in handles.
    pub(crate) fn code(self) -> u32 {
        let lock = |k| match k {
            LockKind::Lock => 0,
            LockKind::RLock => 1,
        };
        match self {
            ObjectKind::RawValue => 1,
            ObjectKind::RawArray => 2,
            ObjectKind::Value(k) => 4 + lock(k),
            ObjectKind::Array(k) => 6 + lock(k),
            ObjectKind::Lock(k) => 8 + lock(k),
            ObjectKind::Event => 10,
            ObjectKind::Condition => 11,
            ObjectKind::Semaphore => 12,
            ObjectKind::BoundedSemaphore => 13,
            ObjectKind::Barrier => 14,
            ObjectKind::Queue => 15,
        }
    }

    /// The kind a stored code names, `None` for an unknown code.
    pub(crate) fn from_code(code: u32) -> Option<ObjectKind> {
        use LockKind::{Lock, RLock};
        Some(match code {
            1 => ObjectKind::RawValue,
            2 => ObjectKind::RawArray,
            4 => ObjectKind::Value(Lock),
            5 => ObjectKind::Value(RLock),
            6 => ObjectKind::Array(Lock),
            7 => ObjectKind::Array(RLock),
            8 => ObjectKind::Lock(Lock),
            9 => ObjectKind::Lock(RLock),
            10 => ObjectKind::Event,
            11 => ObjectKind::Condition,
            12 => ObjectKind::Semaphore,
            13 => ObjectKind::BoundedSemaphore,
            14 => ObjectKind::Barrier,
            15 => ObjectKind::Queue,
            _ => return None,
        })
    }

    /// Whether objects of this kind have many elements (a queue's are its slots).
    pub fn is_array(self) -> bool {
        matches!(
            self,
            ObjectKind::RawArray | ObjectKind::Array(_) | ObjectKind::Queue
        )
    }

    /// The lock an object of this kind carries (or is), if any.
    pub fn lock(self) -> Option<LockKind> {
        match self {
            ObjectKind::Value(k) | ObjectKind::Array(k) | ObjectKind::Lock(k) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKind::RawValue => f.write_str("RawValue<_>"),
            ObjectKind::RawArray => f.write_str("RawArray<_>"),
            ObjectKind::Value(k) => write!(f, "Value<_, {k:?}>"),
            ObjectKind::Array(k) => write!(f, "Array<_, {k:?}>"),
            ObjectKind::Lock(k) => write!(f, "{k:?}"),
            ObjectKind::Event => f.write_str("Event"),
            ObjectKind::Condition => f.write_str("Condition"),
            ObjectKind::Semaphore => f.write_str("Semaphore"),
            ObjectKind::BoundedSemaphore => f.write_str("BoundedSemaphore"),
            ObjectKind::Barrier => f.write_str("Barrier"),
            ObjectKind::Queue => f.write_str("Queue<_>"),
        }
    }
}

/// How a kind lays out its block. Not part of the public API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The element type's layout; `None` for a lock.
    pub(crate) layout: Option<&'static TypeLayout>,
    /// Number of elements; `None` when opening an array of any length.
    pub(crate) len: Option<u64>,
}

/// An opened object's memory, for building its handle. Not part of the public API.
#[doc(hidden)]
pub struct Parts {
    /// The data (the lock cell for a lock). For a kind with a lock, its `parent` is the
    /// whole block, which starts with the lock cell.
    pub(crate) data: Arc<Allocation>,
    pub(crate) len: usize,
}

/// Bytes of the lock cell at the start of a block of a kind with a lock.
pub(crate) const LOCK_CELL: u64 = 24;

/// Bytes of a [`Queue`](crate::Queue)'s header (its lock cell and ring state) before its
/// slots.
pub(crate) const QUEUE_HEADER: u64 = 128;

/// Where the data of an element type aligned to `align` starts in a block of `kind`.
pub(crate) fn data_offset(kind: ObjectKind, align: u64) -> u64 {
    match kind {
        ObjectKind::Value(_) | ObjectKind::Array(_) => LOCK_CELL.next_multiple_of(align.max(8)),
        ObjectKind::Queue => QUEUE_HEADER.next_multiple_of(align.max(8)),
        _ => 0,
    }
}

/// An object that can be named in an arena: [`RawValue`](crate::RawValue),
/// [`RawArray`](crate::RawArray), [`Value`](crate::Value), [`Array`](crate::Array),
/// [`Lock`](crate::Lock), [`RLock`](crate::RLock), [`Event`](crate::Event). Sealed.
///
/// See [`Arena::create`](crate::Arena::create), [`open`](crate::Arena::open) and
/// [`find_or_create`](crate::Arena::find_or_create).
///
/// ```
/// use shared_runtime::{Arena, Lock, RawArray, Value};
///
/// let arena = Arena::with_capacity(1 << 20)?;
/// let hits = arena.create::<Value<u64>>("hits", 0)?; // Init: the value
/// let xs = arena.create::<RawArray<u8>>("xs", &[1, 2, 3])?; // Init: a slice
/// let (big, created) = arena.find_or_create::<Lock>("big-lock", ())?; // Init: ()
/// assert!(created && hits.get() == 0 && xs.len() == 3);
/// # drop(big);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub trait NamedObject: Sized {
    /// What a new object is made from: the value (`RawValue`, `Value`), a slice of
    /// elements (`RawArray`, `Array`), `()` for a lock or an event.
    type Init<'a>;
    /// The kind recorded in the directory.
    const KIND: ObjectKind;
    /// Bytes of the block of a kind without an element layout (a lock, an event, ...).
    #[doc(hidden)]
    const STATE_BYTES: u64 = LOCK_CELL;
    #[doc(hidden)]
    fn shape(init: Option<&Self::Init<'_>>, _: Token) -> Shape;
    /// Refuses an `init` no object can be made from (a queue of capacity 0), before
    /// anything is allocated.
    #[doc(hidden)]
    fn check_init(_init: &Self::Init<'_>, _: Token) -> crate::Result<()> {
        Ok(())
    }
    /// Writes the initial contents of a fresh, zeroed block's data.
    ///
    /// # Safety
    /// `data` is the start of the data of a fresh block holding `shape(Some(init))`.
    #[doc(hidden)]
    unsafe fn init(init: &Self::Init<'_>, data: *mut u8, _: Token);
    #[doc(hidden)]
    fn build(parts: Parts, _: Token) -> Self;
}
