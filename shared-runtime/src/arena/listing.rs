//! A read-only listing of an arena's named objects, for inspectors.

use crate::arena::kind::ObjectKind;
use crate::arena::registry::kind_label;
use crate::arena::{Arena, LOCK_CELL};
use crate::sync::{lock_state_at, LockState};
use crate::Result;

/// One named object as the directory records it (see [`Arena::objects`]).
///
/// ```
/// use shared_runtime::{Arena, Value};
/// let arena = Arena::with_capacity(1 << 20)?;
/// let _hits = arena.create::<Value<u64>>("hits", 0)?;
/// let info = &arena.objects()?[0];
/// assert_eq!((info.name.as_str(), info.label.as_str()), ("hits", "Value<u64, RLock>"));
/// assert_eq!(info.open_count, 1);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// Its name (invalid UTF-8 replaced).
    pub name: String,
    /// Its kind, `None` if the directory holds a kind this build does not know.
    pub kind: Option<ObjectKind>,
    /// The element type's name as its creator wrote it (`u64`, `[f64; 3]`, `Point`; empty
    /// for a lock).
    pub type_name: String,
    /// Kind and type: `Value<u64, RLock>`, `RawArray<u8>`, `Lock`.
    pub label: String,
    /// Bytes of one element (of the lock cell, for a lock).
    pub size: u64,
    /// Number of elements (1 for a value or a lock).
    pub len: u64,
    /// The element type's layout fingerprint (0 for a lock).
    pub fingerprint: u64,
    /// How many processes have it open (open records in the arena; those of dead
    /// processes count until [`Arena::reclaim_dead`] runs).
    pub open_count: u64,
    /// The state of its lock, for a lock, for a `Value`'s or `Array`'s lock, and for the
    /// internal lock of a `Queue` or a `Barrier`.
    pub lock: Option<LockState>,
}

impl Arena {
    /// Every named object, newest first, with its kind, layout, open count and lock state.
    /// Reads the directory under the arena's lock; nothing read is trusted unchecked.
    ///
    /// # Errors
    /// [`Error::Corrupted`](crate::Error::Corrupted) if the directory is damaged.
    ///
    /// ```
    /// use shared_runtime::{Arena, HolderStatus, Lock};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let lock = arena.create::<Lock>("big-lock", ())?;
    /// let _g = lock.lock()?;
    /// let state = arena.objects()?[0].lock.unwrap();
    /// assert_eq!(state.holder.unwrap().status, HolderStatus::Alive);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn objects(&self) -> Result<Vec<ObjectInfo>> {
        self.with_heap(|h| {
            let counts = h.open_counts()?;
            let mut all = Vec::new();
            for (_, e) in h.entries()? {
                let kind = e.kind();
                let type_name = e.type_name();
                // The lock cell starts the object's block; only read after checking that
                // the block is a used one large enough to hold it.
                // A queue's and a barrier's blocks start with their internal lock's cell.
                let has_cell = kind.and_then(ObjectKind::lock).is_some()
                    || matches!(kind, Some(ObjectKind::Queue | ObjectKind::Barrier));
                let lock = match has_cell {
                    true if h.payload_capacity(e.object)? >= LOCK_CELL => {
                        // SAFETY: the block is used (checked), holds LOCK_CELL bytes, is
                        // 16-aligned and inside the mapping, and cannot be freed while the
                        // arena's lock is held.
                        Some(unsafe { lock_state_at(self.base().add(e.object as usize)) })
                    }
                    _ => None,
                };
                all.push(ObjectInfo {
                    name: String::from_utf8_lossy(e.name()).into_owned(),
                    kind,
                    label: kind.map_or_else(
                        || format!("unknown kind {}", e.kind),
                        |k| kind_label(k, &type_name),
                    ),
                    type_name,
                    size: e.size,
                    len: e.len,
                    fingerprint: e.fingerprint,
                    open_count: counts.get(&e.object).copied().unwrap_or(0),
                    lock,
                });
            }
            Ok(all)
        })
    }
}
