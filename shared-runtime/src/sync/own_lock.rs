//! `Value`s and `Array`s made with their own lock: one arena block holding the lock cell and
//! then the data, the layout of a named one (`arena::data_offset`). One allocation instead
//! of two, and a contended update moves one cache line instead of two when the data is
//! small (the lock word and a value of up to 40 bytes share a 64-byte line whenever the
//! block does not straddle one). A lock passed in (`with_lock`, possibly shared by other
//! objects) keeps the data in a block of its own.

use std::sync::Arc;

use crate::arena::{
    data_offset, fresh_blocks_refused, opened, Allocation, Arena, LockKind, ObjectKind, FRESH_TRIES,
};
use crate::raw::{byte_len, RawArray, RawValue};
use crate::sync::{GenericLock, LockCore, Reentrancy, Synchronized};
use crate::{Result, SharedType};

/// A fresh zeroed block for `bytes` bytes of data aligned to `align` after a lock cell: the
/// data (a part of the block, which it keeps alive) and the lock (the whole block). The
/// block is freed when the last handle of either is dropped.
#[inline]
fn block<K: Reentrancy>(
    arena: &Arena,
    kind: ObjectKind,
    bytes: usize,
    align: usize,
) -> Result<(Arc<Allocation>, GenericLock<K>)> {
    // As `Lock::new_in`: the creating thread will most likely take the lock, so a thread
    // that cannot be identified is told now, as an error, not at the first `lock` (the
    // identity itself, cached per thread, is not needed yet).
    crate::sys::liveness::thread_identity()?;
    let at = data_offset(kind, align as u64);
    let size = at
        .checked_add(bytes as u64)
        .ok_or(crate::Error::SizeOverflow {
            count: bytes,
            elem_size: 1,
        })?;
    let mut tries = 0;
    loop {
        let block = arena.alloc_lock_block(size, align)?;
        let data = Allocation::part_arc(Arc::clone(&block), at);
        // Recorded as this process's one handle of the data, paired with the lock at the
        // block's start (what `Synchronized::from_parts` records for an owned object).
        match opened::record(arena, block.offset(), block.offset(), &data) {
            // A fresh block is zeroed: an unlocked lock cell.
            Ok(()) => return Ok((data, GenericLock::from_core(LockCore::from_alloc(block)))),
            Err((e, inherited)) => {
                drop(data);
                tries += 1;
                refused(arena, block, e, inherited, tries)?;
            }
        }
    }
}

/// After the map of opened objects refused `block` (`tries` blocks in a row so far) because
/// this process has a live handle of it: the block is set aside (kept out of this
/// process's use while that handle lives), and the caller takes another one if the handle
/// was `inherited` from an ancestor (a copy of an object its parent has since freed, never
/// dropped here), at most [`FRESH_TRIES`] in all.
///
/// # Errors
/// `refusal` ([`crate::Error::AlreadyOpen`]) if the handle is one this process recorded
/// itself (a view of an object that had the block before, which it can drop), or
/// `AlreadyOpen` for the last of [`FRESH_TRIES`] blocks refused in a row.
#[cold]
#[inline(never)]
fn refused(
    arena: &Arena,
    block: Arc<Allocation>,
    refusal: crate::Error,
    inherited: bool,
    tries: usize,
) -> Result<()> {
    let offset = block.offset();
    opened::set_aside(arena, block);
    if !inherited {
        return Err(refusal);
    }
    if tries < FRESH_TRIES {
        return Ok(());
    }
    Err(fresh_blocks_refused(offset))
}

/// The lock kind `K` as the directory names it (the data offset does not depend on it).
fn lock_kind<K: Reentrancy>() -> LockKind {
    if K::REENTRANT {
        LockKind::RLock
    } else {
        LockKind::Lock
    }
}

/// A new `Value` holding `value` (zero if `None`) with its own lock, in one block of
/// `arena`.
#[inline]
pub(crate) fn value_in<T: SharedType, K: Reentrancy>(
    arena: &Arena,
    value: Option<T>,
) -> Result<Synchronized<RawValue<T>, GenericLock<K>>> {
    let kind = ObjectKind::Value(lock_kind::<K>());
    let (data, lock) = block::<K>(arena, kind, size_of::<T>(), align_of::<T>())?;
    let raw = RawValue::from_arc(data);
    if let Some(v) = value {
        // A fresh object: no thread has it borrowed, and no other handle of it exists.
        raw.set_unchecked(v);
    }
    // The data's handle is new and this process's only one: wrapping it is sound.
    Ok(Synchronized::from_opened(raw, lock))
}

/// A new `Array` of `len` elements, holding `items` (zeroes if `None`; `items.len()` is
/// `len`), with its own lock, in one block of `arena`.
pub(crate) fn array_in<T: SharedType, K: Reentrancy>(
    arena: &Arena,
    len: usize,
    items: Option<&[T]>,
) -> Result<Synchronized<RawArray<T>, GenericLock<K>>> {
    let kind = ObjectKind::Array(lock_kind::<K>());
    let bytes = byte_len::<T>(len)?;
    let (data, lock) = block::<K>(arena, kind, bytes, align_of::<T>())?;
    let raw = RawArray::from_arc(data, len);
    if let Some(items) = items {
        debug_assert_eq!(items.len(), len);
        // A fresh object: no thread has it borrowed.
        raw.write_unchecked(0, items);
    }
    Ok(Synchronized::from_opened(raw, lock))
}
