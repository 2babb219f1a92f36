//! The slab map: which pages of the arena start the payload of a slab (`slab.rs`).
//!
//! A slab used to be recognised by the 16 bytes before its page looking like a slab's
//! block header; but those bytes may belong to the block before the page (a data array
//! whose owner can write anything there with safe code), and a slab's own header words are
//! computable by anyone who knows the arena id. The map is metadata no object's data can
//! overlap: one bit per 4096-byte page of the whole capacity, in a block of its own
//! ([`SLAB_MAP_OWNER`]'s, tagged [`SLAB_CODE`] so that no handle opens it), whose offset is
//! in the heap state (`HeapState::slab_map`). A bit is set, with the allocator's lock held,
//! once a carved slab is complete, and cleared before a slab is freed; claimers read it
//! without the lock (atomic loads). So an offset lies in a slab only where the map says so,
//! and a claimer's hint of a slab freed since (by any process) fails the bit.
//!
//! The map is allocated with the first slab, and covers the whole capacity
//! (`capacity / 32768` bytes: 32 bytes for a 1 MiB arena, 512 KiB for 16 GiB, of which only
//! the pages holding set bits are ever touched). It is not an object: it counts in
//! `slab_spare_bytes`, not in `bytes_in_use` or `allocations`.

use std::sync::atomic::Ordering::SeqCst;

use crate::arena::check::walk;
use crate::arena::heap::{bump, step, tag_code, Heap, FLAGS, HDR, LOCK_BLOCK, RECORD_BLOCK, USED};
use crate::arena::slab::{SLAB_BLOCK, SLAB_CODE, SLAB_HEADER, SLAB_OWNER, SLAB_TAG};
use crate::Result;

/// The owner tag of the slab map's block: no process's (it has `FOREIGN_OWNER` set, and
/// differs from the directory's, the orphans' and the slabs' tags).
pub(crate) const SLAB_MAP_OWNER: u32 = u32::MAX - 3;

/// Payload bytes of the slab map of an arena of `capacity` bytes.
pub(crate) fn map_bytes(capacity: u64) -> u64 {
    (capacity / SLAB_BLOCK).div_ceil(64).max(1) * 8
}

/// The map word (offset from the map's start) and bit of the page starting at `s`.
#[inline]
pub(crate) fn bit_of(s: u64) -> (u64, u64) {
    let page = s / SLAB_BLOCK;
    (8 * (page / 64), 1 << (page % 64))
}

impl Heap<'_> {
    /// The slab map's payload offset, if the heap state names a sound map block.
    pub(crate) fn slab_map(&self) -> Option<u64> {
        let st = self.state();
        let m = st.slab_map.load(SeqCst);
        let need = map_bytes(self.mem.len());
        if m % 16 != 0 || m < st.start.get() + HDR || m + need > st.top.get() {
            return None;
        }
        self.is_slab_map_block(m - HDR).then_some(m)
    }

    /// The slab map's payload offset, `None` if there is none yet; an error if the heap
    /// state's map word is neither 0 nor a sound map block's offset. The word only ever
    /// holds one or the other (published once the map is complete, set to 0 before it is
    /// freed), so anything else is damage: it is reported, never taken as "no map", which
    /// would make the real map a stray to free, a second map to carve, and every slab
    /// unrecognised.
    pub(crate) fn slab_map_checked(&self) -> Result<Option<u64>> {
        let word = self.state().slab_map.load(SeqCst);
        if word == 0 {
            return Ok(None);
        }
        match self.slab_map() {
            Some(m) => Ok(Some(m)),
            None => Err(crate::Error::Corrupted(format!(
                "the heap state's slab map offset {word} names no slab map (damaged header)"
            ))),
        }
    }

    /// Whether the block at `b` is a slab map's: used, tagged [`SLAB_CODE`], owned by
    /// [`SLAB_MAP_OWNER`], large enough, and the one the heap state names.
    pub(crate) fn is_slab_map_block(&self, b: u64) -> bool {
        let w = self.word(b);
        let st = self.state();
        w & USED != 0
            && tag_code(w) == SLAB_CODE
            && w & (RECORD_BLOCK | LOCK_BLOCK) == 0
            && (w & !FLAGS) >= map_bytes(self.mem.len()) + HDR
            && b + (w & !FLAGS) <= st.top.get()
            && self.word(b + 8) == self.tag(b, SLAB_MAP_OWNER)
            && st.slab_map.load(SeqCst) == b + HDR
    }

    /// Bytes of the slab map's block, 0 if there is none.
    pub(crate) fn slab_map_bytes(&self) -> u64 {
        self.slab_map().map_or(0, |m| self.word(m - HDR) & !FLAGS)
    }

    /// Whether the map says a slab's payload starts at `s`.
    pub(crate) fn slab_bit(&self, s: u64) -> bool {
        let Some(m) = self.slab_map() else {
            return false;
        };
        let (word, bit) = bit_of(s);
        s % SLAB_BLOCK == 0 && self.atomic64(m + word).load(SeqCst) & bit != 0
    }

    /// Sets or clears the bit of the slab at `s` in the map `m`.
    pub(crate) fn set_slab_bit(&self, m: u64, s: u64, on: bool) {
        let (word, bit) = bit_of(s);
        let w = self.atomic64(m + word);
        if on {
            w.fetch_or(bit, SeqCst);
        } else {
            w.fetch_and(!bit, SeqCst);
        }
        step();
    }

    /// The slab map, allocated if there is none yet (the lock held).
    pub(crate) fn ensure_slab_map(&self) -> Result<u64> {
        if let Some(m) = self.slab_map_checked()? {
            return Ok(m);
        }
        let m = self.alloc(map_bytes(self.mem.len()), 16, SLAB_MAP_OWNER)?;
        // The map is no object.
        bump(&self.state().allocations, -1);
        step();
        let b = m - HDR;
        self.set_word(b, self.word(b) | SLAB_TAG);
        step();
        // Published last: a process killed before this leaves a block of
        // `SLAB_MAP_OWNER` the heap state does not name, which `free_slab_strays` frees.
        self.state().slab_map.store(m, SeqCst);
        step();
        Ok(m)
    }

    /// Frees the slab map if it marks no slab (the last one was just freed), so that an
    /// arena whose small objects are all gone shrinks back to nothing; returns the bytes
    /// given back. Unpublished first: a process killed before the free leaves a map block
    /// the heap state does not name, which `free_slab_strays` frees. A claimer that read
    /// the old offset just before finds its slab's bit clear, or, if the map's memory was
    /// handed out again meanwhile, checks the map again once pinned (see `claim_in`).
    pub(crate) fn free_idle_slab_map(&self) -> Result<u64> {
        let Some(m) = self.slab_map_checked()? else {
            return Ok(0);
        };
        let words = map_bytes(self.mem.len()) / 8;
        if (0..words).any(|i| self.atomic64(m + 8 * i).load(SeqCst) != 0) {
            return Ok(0);
        }
        let size = self.word(m - HDR) & !FLAGS;
        self.state().slab_map.store(0, SeqCst);
        step();
        self.free(m, SLAB_MAP_OWNER)?;
        bump(&self.state().frees, -1);
        Ok(size)
    }

    /// Whether the used block `b` (header word `w`) is what a carver or a sweeper killed
    /// half-way left, and may be freed: a map block the heap state does not name, or a
    /// block of [`SLAB_OWNER`] (tagged or not) that the map does not mark as a slab and
    /// whose slots (its first [`SLAB_BLOCK`] bytes past a slab's header) are zero: no slot
    /// was ever claimed in it (a larger block is one a carver was trimming). A
    /// block of [`SLAB_OWNER`] that the map marks, or that holds data, is left alone
    /// (`check` reports it).
    fn is_slab_stray(&self, b: u64, size: u64, w: u64) -> bool {
        let code = tag_code(w);
        if w & USED == 0 || w & (LOCK_BLOCK | RECORD_BLOCK) != 0 || (code != 0 && code != SLAB_CODE)
        {
            return false;
        }
        match self.owner_of(b) {
            Ok(SLAB_MAP_OWNER) => {
                self.state().slab_map.load(SeqCst) != b + HDR && self.map_block_is_blank(b, size)
            }
            Ok(SLAB_OWNER) => {
                let s = b + HDR;
                // Only a slab's first `SLAB_BLOCK` bytes hold slots: past them lies what
                // a carver killed in `trim_slab_block` left, the remainder's header word
                // written before the slab block was shrunk.
                !self.slab_bit(s)
                    && (s + SLAB_HEADER..b + size.min(SLAB_BLOCK))
                        .step_by(8)
                        .all(|o| self.word(o) == 0)
            }
            _ => false,
        }
    }

    /// Whether the map block at `b` (`size` bytes) marks no slab. A map the heap state
    /// does not name is blank if a process was killed making or freeing it (it is
    /// published before any bit is set, and freed only once every bit is clear).
    fn map_block_is_blank(&self, b: u64, size: u64) -> bool {
        let end = (b + HDR + map_bytes(self.mem.len())).min(b + size);
        (b + HDR..end).step_by(8).all(|o| self.word(o) == 0)
    }

    /// Frees what carvers and sweepers killed half-way left (see `is_slab_stray`); returns
    /// the bytes given back. A damaged map word (see `slab_map_checked`), or a map block
    /// the heap state does not name but that marks slabs (the real map, its word lost),
    /// is reported and nothing is freed: the real map (and empty slabs) would look like
    /// strays.
    pub(crate) fn free_slab_strays(&self) -> Result<u64> {
        self.slab_map_checked()?;
        let mut strays = Vec::new();
        walk(self, |b, size, w| {
            if w & USED != 0
                && tag_code(w) == SLAB_CODE
                && self.owner_of(b).ok() == Some(SLAB_MAP_OWNER)
                && self.state().slab_map.load(SeqCst) != b + HDR
                && !self.map_block_is_blank(b, size)
            {
                return Err(crate::Error::Corrupted(format!(
                    "block {b} is a slab map marking slabs, but the heap state names                      another (damaged header)"
                )));
            }
            if self.is_slab_stray(b, size, w) {
                strays.push((b, size));
            }
            Ok(())
        })?;
        let mut freed = 0;
        for (b, size) in strays {
            let owner = self.owner_of(b)?;
            self.free(b + HDR, owner)?;
            // Neither was an object.
            bump(&self.state().frees, -1);
            freed += size;
        }
        Ok(freed)
    }

    /// What `check` says of the used block `b` (header word `w`) that holds no object of
    /// a process: `Some(spare bytes)` for the slab map, an error for a block of a slab's or
    /// the map's owner that is neither a slab nor the map (a stray `free_slab_strays` left
    /// because it may hold objects, or damage), `None` for any other block.
    pub(crate) fn check_slab_metadata(&self, b: u64, size: u64, w: u64) -> Result<Option<u64>> {
        if tag_code(w) == SLAB_CODE && self.is_slab_map_block(b) {
            return Ok(Some(size));
        }
        match self.owner_of(b)? {
            SLAB_OWNER | SLAB_MAP_OWNER if !self.is_slab_block(b) => {
                Err(crate::Error::Corrupted(format!(
                    "block {b} belongs to the slab allocator but is neither a slab nor the \
                     slab map (damaged, or a slab whose tag was lost: left in place)"
                )))
            }
            _ => Ok(None),
        }
    }
}
