//! Open records: how the arena knows which processes have a named object open.
//!
//! Each process that opens a named object holds one small block, owned by that process
//! (its pid in the block header, like any object it allocates), holding a check word and
//! the object's offset. The block is marked [`RECORD_BLOCK`] in its header, and only a
//! block so marked (with the right check word) counts as a record. The object of a removed
//! name (an orphan) is freed when no open record refers to it: when the last opener closes
//! it, or when `reclaim_dead` frees the records of openers that are proven dead. The count
//! is never stored, only counted, so a process killed at any point cannot leave it wrong.
//!
//! No process but the opener writes a record: its offset is never handed out, and a handle
//! naming it is refused (`handle::resolve` opens no `RECORD_BLOCK` as data), so no other
//! process, a forked child included, can erase it and free the object early. User data
//! can never pass for a record either, as no data block carries the mark.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::arena::check::walk;
use crate::arena::heap::{Heap, HDR, RECORD_BLOCK, USED};
use crate::arena::registry::{ORPHAN_OWNER, REGISTRY_OWNER};
use crate::{Error, Result};

/// Payload bytes of an open record: check word, object offset.
const RECORD: u64 = 16;

impl Heap<'_> {
    /// The check word of a record at payload `at` naming `object`.
    fn record_check(&self, at: u64, object: u64) -> u64 {
        // SAFETY: the header is at offset 0 of the mapping; `id` is written once, when the
        // arena is created, before anyone else can see it.
        let id = unsafe { (*self.base().cast::<crate::arena::ArenaHeader>()).id() };
        (id ^ at.rotate_left(17) ^ object.rotate_left(41) ^ 0x6f70_656e_7265_6331)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            | 1
    }

    /// Reads word `i` of the payload at `at` atomically (it may be a user's object, written
    /// by others without the arena lock).
    fn payload_word(&self, at: u64, i: u64) -> u64 {
        // SAFETY: callers pass the payload of a used block of at least RECORD bytes, inside
        // the mapping and 16-aligned; an atomic load races with nothing.
        unsafe { (*self.base().add((at + 8 * i) as usize).cast::<AtomicU64>()).load(Relaxed) }
    }

    /// The object the used block `b` (of `size` bytes) is an open record of, if it is one.
    fn record_target(&self, b: u64, size: u64) -> Result<Option<u64>> {
        if size < HDR + RECORD || self.word(b) & RECORD_BLOCK == 0 {
            return Ok(None);
        }
        let owner = self.owner_of(b)?;
        if owner == 0 || owner == REGISTRY_OWNER || owner == ORPHAN_OWNER {
            return Ok(None);
        }
        let at = b + HDR;
        let object = self.payload_word(at, 1);
        Ok(
            (object != 0 && self.payload_word(at, 0) == self.record_check(at, object))
                .then_some(object),
        )
    }

    /// Makes `opener`'s open record of the object at `object`.
    pub(crate) fn open_record(&self, object: u64, opener: u32) -> Result<u64> {
        let at = self.alloc(RECORD, 16, opener)?;
        // Marked before it holds anything: the mark makes it a record for `resolve`, which
        // then never hands it out as data; the check word, written last, makes it count.
        let b = at - HDR;
        self.set_word(b, self.word(b) | RECORD_BLOCK);
        self.set_word(at + 8, object);
        self.set_word(at, self.record_check(at, object));
        Ok(at)
    }

    /// Frees `opener`'s record at `record` of `object`, then the object if it was removed
    /// and nobody else has it open.
    pub(crate) fn close_record(&self, record: u64, object: u64, opener: u32) -> Result<()> {
        let b = self.used_block(record)?;
        if self.record_target(b, self.size_of(b)?)? != Some(object) {
            return Err(Error::Corrupted(format!(
                "no open record of the object at {object} at offset {record}"
            )));
        }
        self.free(record, opener)?;
        self.free_if_unopened(object)
    }

    /// How many open records refer to each object.
    pub(crate) fn open_counts(&self) -> Result<HashMap<u64, u64>> {
        let mut counts = HashMap::new();
        walk(self, |b, size, w| {
            if w & USED != 0 {
                if let Some(object) = self.record_target(b, size)? {
                    *counts.entry(object).or_insert(0) += 1;
                }
            }
            Ok(())
        })?;
        Ok(counts)
    }

    /// Frees the object at `object` if it is an orphan no open record refers to.
    pub(crate) fn free_if_unopened(&self, object: u64) -> Result<()> {
        let b = self.used_block(object)?;
        if self.owner_of(b)? != ORPHAN_OWNER {
            return Ok(());
        }
        if !self.open_counts()?.contains_key(&object) {
            self.free(object, ORPHAN_OWNER)?;
        }
        Ok(())
    }

    /// Frees every orphan no open record refers to (after dead openers' records went).
    /// Returns how many blocks and bytes were freed.
    pub(crate) fn sweep_orphans(&self) -> Result<(u64, u64)> {
        let counts = self.open_counts()?;
        let mut orphans = Vec::new();
        walk(self, |b, size, w| {
            if w & USED != 0
                && self.owner_of(b)? == ORPHAN_OWNER
                && !counts.contains_key(&(b + HDR))
            {
                orphans.push((b + HDR, size));
            }
            Ok(())
        })?;
        let mut freed = (0, 0);
        for (at, size) in orphans {
            self.free(at, ORPHAN_OWNER)?;
            freed = (freed.0 + 1, freed.1 + size);
        }
        Ok(freed)
    }
}
