//! The process's side of slabs (`slab.rs`): claiming a slot without any lock, freeing one's
//! own slot without any lock, and the process-local hints of which slabs to claim in.
//!
//! A claimer pins the slab (one compare-and-swap of its state word, which must still carry
//! the slab's canary, not be closing, and have room in its counts), claims a free slot
//! (compare-and-swap of its owner word from 0 to the caller's owner tag), then unpins it
//! and counts the claim in one read-modify-write. A sweeper (`Heap::sweep_slabs`, with the
//! allocator's lock) closes a slab only by a compare-and-swap that finds no pin, so no slot
//! is ever claimed in a slab being freed; the claimer's offset may be stale (the slab freed
//! since, by any process), which the slab map (`slab_map.rs`) reveals, checked before
//! and again after the pin: every word is read and checked before anything is written.

use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use std::sync::Mutex;

use crate::arena::header::heap_start;
use crate::arena::heap::{tag_code, FLAGS, HDR, LOCK_BLOCK, RECORD_BLOCK, USED};
use crate::arena::slab::{
    check_word, marks_of, slots, CLAIMS, CLAIMS_LIMIT, CLOSING, LISTS, MARK_KINDS, PIN, PINS,
    SLAB_BLOCK, SLAB_CODE, SLAB_HEADER, SLAB_OWNER, SLAB_PAYLOAD, STRIDES,
};
use crate::arena::slab_map::bit_of;
use crate::arena::tags::canary_for;
use crate::arena::{heap, Arena};
use crate::sys::process::process_key;
use crate::{Error, Result};

/// Slabs this process has claimed in, per (stride, marks): process-local hints only (every
/// offset is checked again before use).
pub(crate) struct SlabHints {
    /// The `process_key` of the process these hints are of: a forked child starts afresh
    /// (its own slabs, as it has its own cache), whatever it inherited.
    key: AtomicU64,
    /// The slab to claim in first.
    current: [AtomicU64; LISTS],
    /// The slot index to try first in it.
    next: [AtomicU32; LISTS],
    /// Every slab this process found or carved, per list, and where the next search
    /// starts; only ever locked with the allocator's lock held, and only *tried* (a child
    /// forked while another thread held it never waits for it).
    known: Mutex<Vec<(Vec<u64>, usize)>>,
}

impl SlabHints {
    pub(crate) fn new() -> Self {
        SlabHints {
            key: AtomicU64::new(process_key()),
            current: std::array::from_fn(|_| AtomicU64::new(0)),
            next: std::array::from_fn(|_| AtomicU32::new(0)),
            known: Mutex::new(vec![(Vec::new(), 0); LISTS]),
        }
    }
}

impl SlabHints {
    /// Forgets the hints a forked child inherited: it claims in slabs of its own.
    #[cold]
    fn forget_parents(&self) {
        for c in &self.current {
            c.store(0, Relaxed);
        }
        for n in &self.next {
            n.store(0, Relaxed);
        }
        // A list locked by a thread the child does not have stays locked: the child then
        // never uses it (`refill` only tries it).
        if let Ok(mut known) = self.known.try_lock() {
            for (slabs, cursor) in known.iter_mut() {
                slabs.clear();
                *cursor = 0;
            }
        }
        self.key.store(process_key(), Relaxed);
    }
}

/// Slabs a refill looks at before carving a new one.
const SEARCH: usize = 4;

impl Arena {
    /// The atomic word at `off` of this arena's mapping.
    #[inline]
    fn word64(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.inner.mem.exposed());
        // SAFETY: `off` lies inside a slab this process found under the allocator's lock
        // (`refill`), so inside the prefix it exposed then, which never shrinks (or its
        // parent did, before forking: the mapping is inherited), or is a word of the slab
        // map that `slab_published` checked lies inside that prefix; 8-aligned; the
        // mapping lives as long as `self`. Every access to slab and map words is atomic.
        unsafe { AtomicU64::from_ptr(self.base().add(off as usize).cast()) }
    }

    /// The atomic owner or payload word at `off` (4-aligned) of this arena's mapping.
    #[inline]
    fn word32(&self, off: u64) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.inner.mem.exposed());
        // SAFETY: as in `word64`.
        unsafe { AtomicU32::from_ptr(self.base().add(off as usize).cast()) }
    }

    /// Whether the slab map (`slab_map.rs`) marks `s` as a slab's payload, read without
    /// the lock: the map's offset comes from the heap state and is only used inside the
    /// heap and the prefix this process exposed (garbage there gives a wrong answer, never
    /// an access outside the mapping).
    #[inline]
    fn slab_published(&self, s: u64) -> bool {
        let m = self.header().heap.slab_map.load(Acquire);
        let (word, bit) = bit_of(s);
        let at = m.wrapping_add(word);
        m >= heap_start()
            && at % 8 == 0
            && at
                .checked_add(8)
                .is_some_and(|end| end <= self.inner.mem.exposed())
            && self.word64(at).load(Acquire) & bit != 0
    }

    /// Claims a free slot of stride index `si` marked `mi` (`slab::mark_index`) for the
    /// calling process; its payload is zero. `None` if no slab could be had (the arena is
    /// full): the caller makes an ordinary block.
    #[inline]
    pub(crate) fn alloc_slot(&self, si: usize, mi: usize) -> Result<Option<u64>> {
        let list = si * MARK_KINDS + mi;
        if self.inner.slabs.key.load(Relaxed) != process_key() {
            self.inner.slabs.forget_parents();
        }
        let s = self.inner.slabs.current[list].load(Acquire);
        if s != 0 {
            if let Some(at) = self.claim_in(s, list) {
                return Ok(Some(at));
            }
        }
        self.alloc_slot_slow(list)
    }

    #[cold]
    fn alloc_slot_slow(&self, list: usize) -> Result<Option<u64>> {
        for _ in 0..3 {
            let s = match self.with_heap(|h| self.refill(h, list)) {
                Ok(s) => s,
                Err(Error::OutOfMemory { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            // A slab taken up afresh is searched from its first slot.
            self.inner.slabs.next[list].store(0, Relaxed);
            self.inner.slabs.current[list].store(s, Release);
            if let Some(at) = self.claim_in(s, list) {
                return Ok(Some(at));
            }
        }
        // Other threads took every slot of three slabs meanwhile: an ordinary block.
        Ok(None)
    }

    /// A slab of `list` with a free slot (the allocator held as `h`): one this process
    /// knows, or a new one.
    fn refill(&self, h: &heap::Heap<'_>, list: usize) -> Result<u64> {
        let (stride, marks) = (STRIDES[list / MARK_KINDS], marks_of(list % MARK_KINDS));
        let usable = |s: u64| {
            h.slab_around(s) == Some(s)
                && h.slab(s)
                    .is_ok_and(|slab| slab.stride == stride && slab.marks == marks)
        };
        let roomy = |s: u64| {
            let state = h.atomic64(s).load(SeqCst);
            state & CLOSING == 0
                && state & CLAIMS < CLAIMS_LIMIT
                && (0..slots(stride)).any(|i| {
                    h.atomic32(s + SLAB_HEADER + i * stride + stride - 4)
                        .load(Relaxed)
                        == 0
                })
        };
        let mut known = self.inner.slabs.known.try_lock().ok();
        if let Some((slabs, cursor)) = known.as_deref_mut().map(|k| &mut k[list]) {
            for _ in 0..SEARCH {
                if slabs.is_empty() {
                    break;
                }
                let i = *cursor % slabs.len();
                let s = slabs[i];
                if !usable(s) {
                    slabs.swap_remove(i);
                    continue;
                }
                *cursor = i + 1;
                h.fold_claims(s);
                if roomy(s) {
                    return Ok(s);
                }
            }
        }
        let s = h.carve_slab(stride, marks)?;
        if let Some(k) = known.as_deref_mut() {
            k[list].0.push(s);
        }
        Ok(s)
    }

    /// Claims a slot in the slab at `s` (a hint: checked before anything is written) for
    /// `list`, without any lock.
    #[inline]
    fn claim_in(&self, s: u64, list: usize) -> Option<u64> {
        let (stride, marks) = (STRIDES[list / MARK_KINDS], marks_of(list % MARK_KINDS));
        let id = self.header().id();
        let b = s - HDR;
        // The block must still be a slab, as the slab map says (its bit is cleared before
        // any process frees a slab): read, never written, until the pin succeeds.
        if !self.slab_published(s) {
            return None;
        }
        let w = self.word64(b).load(Relaxed);
        if w & USED == 0
            || w & !FLAGS != SLAB_BLOCK
            || tag_code(w) != SLAB_CODE
            || w & (LOCK_BLOCK | RECORD_BLOCK) != 0
            || self.word64(b + 8).load(Relaxed) != u64::from(SLAB_OWNER) | canary_for(id, b) << 32
        {
            return None;
        }
        let canary = canary_for(id, s);
        let state = self.word64(s);
        let mut now = state.load(SeqCst);
        loop {
            if now >> 32 != canary
                || now & CLOSING != 0
                || now & PINS == PINS
                || now & CLAIMS >= CLAIMS_LIMIT
            {
                return None;
            }
            match state.compare_exchange_weak(now, now + PIN, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        // Pinned: the slab cannot be freed. It must still be in the map (a sweeper may have
        // freed it between the check above and the pin) and its header of this list.
        if !self.slab_published(s)
            || self.word64(s + 8).load(Relaxed) != stride
            || self.word64(s + 16).load(Relaxed) != marks
            || self.word64(s + 24).load(Relaxed) != check_word(canary, stride, marks)
        {
            state.fetch_sub(PIN, SeqCst);
            return None;
        }
        let me = self.owner_tag();
        let n = slots(stride);
        let hint = &self.inner.slabs.next[list];
        let first = u64::from(hint.load(Relaxed)).min(n);
        let slot_at = |i: u64| s + SLAB_HEADER + i * stride;
        // From the hint to the end, then from the start (no division on this path).
        let found = (first..n).chain(0..first).find(|&i| {
            let owner = self.word32(slot_at(i) + stride - 4);
            owner.load(Relaxed) == 0 && owner.compare_exchange(0, me, SeqCst, Relaxed).is_ok()
        });
        match found {
            Some(i) => {
                // Zeroed again now that it is ours, while the slab is still pinned: a free
                // slot is zeroed when freed, but another process's stale view of the freed
                // object (opened by handle, or kept past `reclaim_dead`) may have written
                // into it since, and a fresh object must not start held, set or non-zero
                // (the block cache zeroes a block it takes out for the same reason). At
                // most 60 bytes, only in the claiming process.
                for k in 0..(stride - 4) / 4 {
                    self.word32(slot_at(i) + 4 * k).store(0, Relaxed);
                }
                // Unpinned and counted in one step (its release orders the zeroes before
                // any later use of the slot by another thread that learns of it).
                state.fetch_add(1u64.wrapping_sub(PIN), SeqCst);
                hint.store((i + 1) as u32, Relaxed);
                Some(slot_at(i))
            }
            None => {
                state.fetch_sub(PIN, SeqCst);
                None
            }
        }
    }

    /// Frees this process's slot at `payload` (of list `list`) without any lock: zeroes
    /// its payload, then marks it free.
    #[inline]
    pub(crate) fn free_slot(&self, payload: u64, list: usize) -> Result<()> {
        let stride = STRIDES[list / MARK_KINDS];
        let owner = self.word32(payload + stride - 4);
        if owner.load(Relaxed) != self.owner_tag() {
            // Written over by another process: leaked rather than zeroed.
            return Err(Error::Corrupted(format!(
                "the slot at offset {payload} is no longer this process's"
            )));
        }
        for k in 0..(stride - 4) / 4 {
            self.word32(payload + 4 * k).store(0, Relaxed);
        }
        // Published after the zeroes: the next claimer finds the payload zero.
        owner.store(0, Release);
        // The next claim in this slab starts at the slot just freed (its lines are warm).
        let s = payload & !(SLAB_BLOCK - 1);
        if self.inner.slabs.current[list].load(Relaxed) == s {
            let i = (payload - s - SLAB_HEADER) / stride;
            self.inner.slabs.next[list].store(i as u32, Relaxed);
        }
        Ok(())
    }

    /// Frees the object at `payload`, owned by this process, that carries no class (an
    /// object taken over with `from_offset_in`): a slot or a block (the allocator held).
    pub(crate) fn free_adopted(&self, h: &heap::Heap<'_>, payload: u64) -> Result<()> {
        let me = self.owner_tag();
        match h.slot(payload)? {
            Some(slot) => {
                if slot.owner != me {
                    return Err(Error::Corrupted(format!(
                        "the slot at offset {payload} is not this process's"
                    )));
                }
                h.zero_slot(slot.slab, slot.index);
                h.atomic32(slot.slab.owner_at(slot.index)).store(0, Release);
                Ok(())
            }
            None => h.free(payload, me),
        }
    }
}

/// Slab payloads are whole pages inside the heap (checked by the format's constants).
const _: () = assert!(SLAB_PAYLOAD + HDR == SLAB_BLOCK && SLAB_BLOCK.is_power_of_two());
