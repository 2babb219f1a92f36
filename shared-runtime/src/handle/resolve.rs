//! What a handle names, checked against the arena under its lock: the block, and for a
//! named object the directory entry (kind, layout, offsets) and an open record.
//!
//! The rules (see docs/design.md, "Opening by handle"):
//! - a block owned by the directory is opened only as what its entry says it is, at the
//!   offsets the entry gives (data after the lock cell at the block's start), with an open
//!   record, so it outlives a `remove`;
//! - a removed named object (an orphan) cannot be opened by handle: nothing says any more
//!   what it is;
//! - a block owned by the calling process is refused for data (it has the handle: clone
//!   it), so a second, independent handle of its data can never exist here;
//! - a lock offset must name a lock: a block made as an unnamed lock cell (`LOCK_BLOCK`)
//!   or a named lock of that kind, never data;
//! - an unnamed `Value`/`Array` made with its own lock is one `LOCK_BLOCK` block, like a
//!   named one: its handle's lock is the block, its data offset lies inside it after the
//!   lock cell; a raw handle naming such data is refused (the data is reached through the
//!   `Value`'s or `Array`'s handle, with its lock);
//! - data is never a lock cell or an open record (`RECORD_BLOCK`): another process's open
//!   record, written through a data handle, could otherwise be erased, freeing a removed
//!   object while it is still open;
//! - an unnamed synchronization object (`Event`, `Condition`, semaphores, `Barrier`,
//!   `Queue`) is opened only from a block tagged as made for its kind (`KIND_TAG`), and data
//!   never from a tagged block: a forged handle cannot make one object's words another
//!   kind's.

use crate::arena::heap::{tag_code, Heap, LOCK_BLOCK, RECORD_BLOCK};
use crate::arena::registry::{Entry, ORPHAN_OWNER, REGISTRY_OWNER};
use crate::arena::{data_offset, Arena, ObjectKind, LOCK_CELL};
use crate::handle::Handle;
use crate::{Error, Result};

/// A checked handle: what to map and which open records were made.
pub(crate) struct Target {
    /// The block holding the data (the lock cell for a lock; for a named `Value`/`Array`,
    /// the block that starts with its lock cell).
    pub(crate) block: u64,
    /// The directory stamp of a named object, 0 for an unnamed one.
    pub(crate) stamp: u64,
    /// This process's open record of a named block, 0 for an unnamed one.
    pub(crate) record: u64,
    /// For an unnamed `Value`/`Array` whose lock is a named lock: the open record of it.
    pub(crate) lock_record: u64,
}

fn bad(h: &Handle, reason: &'static str) -> Error {
    Error::InvalidHandle {
        text: h.to_string(),
        reason,
    }
}

/// The owner tag of the used block whose payload is at `at`.
fn owner(heap: &Heap<'_>, at: u64) -> Result<u32> {
    Ok(heap.object(at)?.owner)
}

fn is_lock_block(heap: &Heap<'_>, at: u64) -> Result<bool> {
    let o = heap.object(at)?;
    Ok(o.marks & LOCK_BLOCK != 0 && o.capacity >= LOCK_CELL)
}

/// Whether the used block whose payload is at `at` is an open record (`records.rs`).
fn is_record_block(heap: &Heap<'_>, at: u64) -> Result<bool> {
    Ok(heap.object(at)?.marks & RECORD_BLOCK != 0)
}

/// Checks the kind tag of the unnamed used block at `at` (`heap::KIND_TAG`): a
/// synchronization object's handle names only a block made as that kind, a data handle
/// (`RawValue`, `RawArray`, `Value`, `Array`) only an untagged block.
fn check_tag(heap: &Heap<'_>, h: &Handle, at: u64, kind: ObjectKind) -> Result<()> {
    let tag = tag_code(heap.object(at)?.marks);
    let want = match kind {
        ObjectKind::RawValue
        | ObjectKind::RawArray
        | ObjectKind::Value(_)
        | ObjectKind::Array(_) => 0,
        k => k.code(),
    };
    if tag == want {
        return Ok(());
    }
    Err(Error::KindMismatch {
        name: format!("handle {h}"),
        stored: match ObjectKind::from_code(tag) {
            Some(k) if tag != 0 => format!("a block made for an unnamed {k}"),
            _ if tag == 0 => "a block made for data or another kind of object".into(),
            _ => format!("a block tagged with unknown kind code {tag}"),
        },
        requested: kind.to_string(),
    })
}

/// The entry of the named object whose block is `block`, checked against `h`.
fn named_entry(heap: &Heap<'_>, h: &Handle, block: u64, kind: ObjectKind) -> Result<Entry> {
    let e = heap
        .entry_of(block)?
        .ok_or(bad(h, "it names a directory block that is no named object"))?;
    if e.kind() != Some(kind) {
        return Err(Error::KindMismatch {
            name: format!("handle {h}"),
            stored: e
                .kind()
                .map_or_else(|| format!("unknown kind {}", e.kind), |k| k.to_string()),
            requested: kind.to_string(),
        });
    }
    if e.fingerprint != h.fingerprint || e.len != h.len {
        return Err(bad(h, "its layout or length is not the named object's"));
    }
    Ok(e)
}

/// Checks `h` (already checked for arena, kind and layout) for data of `bytes` bytes, under
/// the arena lock, and makes the open records a named object needs.
pub(crate) fn resolve(heap: &Heap<'_>, arena: &Arena, h: &Handle, bytes: u64) -> Result<Target> {
    let me = arena.owner_tag();
    let removed = || {
        bad(
            h,
            "its named object was removed: only processes that have it open can use it",
        )
    };
    let unnamed = |block| Target {
        block,
        stamp: 0,
        record: 0,
        lock_record: 0,
    };
    match h.kind {
        ObjectKind::Lock(_) => match owner(heap, h.offset)? {
            REGISTRY_OWNER => {
                let e = named_entry(heap, h, h.offset, h.kind)?;
                let record = heap.open_record(h.offset, me)?;
                Ok(Target {
                    block: h.offset,
                    stamp: e.stamp,
                    record,
                    lock_record: 0,
                })
            }
            ORPHAN_OWNER => Err(removed()),
            _ if is_lock_block(heap, h.offset)? => Ok(unnamed(h.offset)),
            _ => Err(bad(h, "its offset names no lock")),
        },
        // The block of an event (and of every synchronization object) is data like a
        // value's: named, or another process's block.
        ObjectKind::RawValue
        | ObjectKind::RawArray
        | ObjectKind::Event
        | ObjectKind::Condition
        | ObjectKind::Semaphore
        | ObjectKind::BoundedSemaphore
        | ObjectKind::Barrier
        | ObjectKind::Queue => {
            let who = match owner(heap, h.offset) {
                Ok(who) => who,
                Err(e) => return Err(inside_locked_block(heap, h, me).unwrap_or(e)),
            };
            if heap.payload_capacity(h.offset)? < bytes {
                return Err(bad(h, "the object it names is smaller than it says"));
            }
            match who {
                REGISTRY_OWNER => {
                    let e = named_entry(heap, h, h.offset, h.kind)?;
                    // A named queue's slots follow its header; its handle names the
                    // block, like every synchronization object's.
                    let data_at = match h.kind {
                        ObjectKind::Queue => data_offset(ObjectKind::Queue, e.align),
                        _ => 0,
                    };
                    if e.data_at != data_at {
                        return Err(bad(h, "its offset is not the named object's data"));
                    }
                    let record = heap.open_record(h.offset, me)?;
                    Ok(Target {
                        block: h.offset,
                        stamp: e.stamp,
                        record,
                        lock_record: 0,
                    })
                }
                ORPHAN_OWNER => Err(removed()),
                w if w == me => Err(bad(
                    h,
                    "this process owns the object: use (a clone of) the handle it has",
                )),
                _ if is_lock_block(heap, h.offset)? => Err(bad(h, "it names a lock, not data")),
                _ if is_record_block(heap, h.offset)? => Err(bad(
                    h,
                    "it names another process's open record of a named object, not data",
                )),
                _ => {
                    check_tag(heap, h, h.offset, h.kind)?;
                    Ok(unnamed(h.offset))
                }
            }
        }
        ObjectKind::Value(k) | ObjectKind::Array(k) => {
            match owner(heap, h.lock)? {
                REGISTRY_OWNER => {
                    let e = heap
                        .entry_of(h.lock)?
                        .ok_or(bad(h, "its lock names a directory block that is no object"))?;
                    if !matches!(e.kind(), Some(ObjectKind::Lock(_))) {
                        // A named Value/Array: data after the lock cell, in one block.
                        let e = named_entry(heap, h, h.lock, h.kind)?;
                        if h.offset != h.lock + e.data_at {
                            return Err(bad(h, "its offsets are not the named object's"));
                        }
                        let record = heap.open_record(h.lock, me)?;
                        return Ok(Target {
                            block: h.lock,
                            stamp: e.stamp,
                            record,
                            lock_record: 0,
                        });
                    }
                }
                ORPHAN_OWNER => return Err(removed()),
                _ => {}
            }
            // An unnamed Value/Array made with its own lock: data after the lock cell, in
            // the lock's block (the layout of a named one).
            let cap = heap.payload_capacity(h.lock)?;
            if h.offset >= h.lock && h.offset - h.lock < cap {
                let at = h.offset - h.lock;
                match owner(heap, h.lock)? {
                    REGISTRY_OWNER => return Err(bad(h, "its data offset is inside a named lock")),
                    w if w == me => {
                        return Err(bad(
                            h,
                            "this process owns the object: use (a clone of) the handle it has",
                        ))
                    }
                    _ if !is_lock_block(heap, h.lock)? => {
                        return Err(bad(h, "its lock offset names no lock"))
                    }
                    _ => {}
                }
                if at < LOCK_CELL {
                    return Err(bad(h, "its data offset is inside its lock cell"));
                }
                if cap - at < bytes {
                    return Err(bad(h, "the object it names is smaller than it says"));
                }
                return Ok(unnamed(h.lock));
            }
            // An unnamed Value/Array with a lock of its own choosing: data in a block of its
            // own, lock in another.
            match owner(heap, h.offset)? {
                REGISTRY_OWNER | ORPHAN_OWNER => {
                    return Err(bad(h, "its data is a named object of another kind"))
                }
                w if w == me => {
                    return Err(bad(
                        h,
                        "this process owns the object: use (a clone of) the handle it has",
                    ))
                }
                _ if is_lock_block(heap, h.offset)? => {
                    return Err(bad(h, "its data offset names a lock"))
                }
                _ if is_record_block(heap, h.offset)? => {
                    return Err(bad(
                        h,
                        "its data offset names another process's open record, not data",
                    ))
                }
                _ => check_tag(heap, h, h.offset, h.kind)?,
            }
            if heap.payload_capacity(h.offset)? < bytes {
                return Err(bad(h, "the object it names is smaller than it says"));
            }
            let lock_record = match owner(heap, h.lock)? {
                REGISTRY_OWNER => {
                    named_entry_lock(heap, h, k)?;
                    heap.open_record(h.lock, me)?
                }
                _ if is_lock_block(heap, h.lock)? => 0,
                _ => return Err(bad(h, "its lock offset names no lock")),
            };
            Ok(Target {
                lock_record,
                ..unnamed(h.offset)
            })
        }
    }
}

/// Checks that the directory block at `h.lock` is a named lock of kind `k`.
fn named_entry_lock(heap: &Heap<'_>, h: &Handle, k: crate::arena::LockKind) -> Result<()> {
    match heap.entry_of(h.lock)? {
        Some(e) if e.kind() == Some(ObjectKind::Lock(k)) => Ok(()),
        _ => Err(bad(h, "its lock offset names no lock of its kind")),
    }
}

/// Why a raw handle whose offset starts no block is refused, if that offset is the data
/// of an unnamed `Value`/`Array` made with its own lock (after the lock cell, in one block):
/// such data is reached through its `Value`'s or `Array`'s handle, whose lock guards it.
fn inside_locked_block(heap: &Heap<'_>, h: &Handle, me: u32) -> Option<Error> {
    let mut align = 8;
    while align <= crate::arena::MAX_ALIGN as u64 {
        let at = data_offset(ObjectKind::Value(crate::arena::LockKind::Lock), align);
        align *= 2;
        let Some(block) = h.offset.checked_sub(at) else {
            break;
        };
        // Errors here only mean "no lock block starts there".
        if !is_lock_block(heap, block).unwrap_or(false)
            || heap.payload_capacity(block).map_or(true, |cap| cap <= at)
        {
            continue;
        }
        return Some(match owner(heap, block) {
            Ok(w) if w == me => bad(
                h,
                "this process owns the object (the data of a Value or Array, in one block with \
                 its lock): use (a clone of) the handle it has",
            ),
            _ => bad(
                h,
                "it names the data of a Value or Array, which shares one block with its lock: \
                 open the Value's or Array's handle",
            ),
        });
    }
    None
}
