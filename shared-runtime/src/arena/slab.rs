//! Slabs: small objects packed into 4096-byte blocks, one owner word per slot.
//!
//! A slab is one used heap block of [`SLAB_BLOCK`] bytes whose payload is 4096-aligned
//! (the block starts 16 bytes before a page boundary, so consecutive slabs tile the heap),
//! tagged with the kind code [`SLAB_CODE`] and owned by [`SLAB_OWNER`], an owner tag no
//! process has (it carries the foreign bit: `reclaim_dead` never frees it as a dead
//! process's object, and no handle opens it: `Heap::used_block` refuses it).
//!
//! ```text
//! payload (4080 bytes, at 4096k):
//!   [state][stride][marks][check] [slot 0 ......... owner][slot 1 ......... owner] ...
//!    word 0  word 1  word 2 word 3  <- stride bytes ->
//! ```
//! - `state` (atomic): the slab's canary in the high 32 bits (a function of the arena and
//!   the payload offset, so a stale offset of a freed slab is recognised), then
//!   [`CLOSING`], a count of claimers inside ([`PIN`]s) and a count of slots claimed since
//!   the allocator last folded it into its counters (`HeapState::slot_allocations`).
//! - `stride` (one of [`STRIDES`]) and `marks` (what every slot holds: data, a lock
//!   block's [`LOCK_BLOCK`], a synchronization object's [`KIND_TAG`]) never change while
//!   the slab lives; `check` is a hash of them and the canary. The slot count and where
//!   slots start are derived from the stride, never stored, so a garbage header is
//!   detected ([`Error::Corrupted`]) rather than followed.
//! - Each slot is `stride` bytes: the object's payload (at most `stride - 4` bytes, at
//!   the slot's start), then its 4-byte owner word ([`FREE`], a process's owner tag,
//!   [`DETACHED`], or [`RECLAIMING`] with the reclaimer's tag). A free slot's payload is
//!   zero: freeing zeroes it before storing [`FREE`] (release), so claiming never zeroes.
//!
//! Claiming (`slab_path.rs`) and freeing a slot take no lock; carving and freeing slabs,
//! reclaiming dead owners' slots and counting happen here, with the allocator's lock held.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use crate::arena::heap::{
    bump, kind_tag, step, tag_code, Heap, FLAGS, HDR, KIND_TAG, KIND_TAG_SHIFT, LOCK_BLOCK,
    MIN_BLOCK, PREV_USED, PUNCHED, RECORD_BLOCK, USED,
};
use crate::arena::namespace::FOREIGN_OWNER;
use crate::arena::ObjectKind;
use crate::{Error, Result};

/// The [`KIND_TAG`] code of a slab block (no object kind has it; `CACHED_CODE` is 0x3f).
pub(crate) const SLAB_CODE: u32 = 0x3e;
/// The [`KIND_TAG`] bits of a slab block.
pub(crate) const SLAB_TAG: u64 = (SLAB_CODE as u64) << KIND_TAG_SHIFT;
/// The owner tag of every slab block: no process's (it has [`FOREIGN_OWNER`] set, and
/// differs from the directory's and the orphans' tags).
pub(crate) const SLAB_OWNER: u32 = u32::MAX - 2;
/// Bytes of a slab block, header included.
pub(crate) const SLAB_BLOCK: u64 = 4096;
/// Payload bytes of a slab.
pub(crate) const SLAB_PAYLOAD: u64 = SLAB_BLOCK - HDR;
/// Bytes of a slab's own header (state, stride, marks, check), before its first slot.
pub(crate) const SLAB_HEADER: u64 = 32;
/// Slot sizes, owner word included: a slot holds up to `stride - 4` payload bytes,
/// aligned to [`slot_align`]`(stride)`.
pub(crate) const STRIDES: [u64; 7] = [8, 16, 24, 32, 40, 48, 64];
/// Distinct slot marks a slab may carry: data, a lock block, six synchronization kinds.
pub(crate) const MARK_KINDS: usize = 8;
/// Process-local lists of slabs: one per (stride, marks).
pub(crate) const LISTS: usize = STRIDES.len() * MARK_KINDS;

/// Owner word of a free slot.
pub(crate) const FREE: u32 = 0;
/// Owner word of a slot given up by `into_offset`, waiting to be taken over (no pid
/// reaches bit 29, and owner tags are pids, with [`FOREIGN_OWNER`] for foreign ones).
pub(crate) const DETACHED: u32 = 1 << 29;
/// Owner-word bit of a slot being freed by `reclaim_dead` (the rest: the reclaimer).
pub(crate) const RECLAIMING: u32 = 1 << 31;
/// Largest pid an owner tag can hold (Linux's `PID_MAX_LIMIT`).
const PID_LIMIT: u32 = 1 << 22;

/// `state`: the slab is being freed; nothing may be claimed in it.
pub(crate) const CLOSING: u64 = 1 << 31;
/// `state`: one claimer inside the slab.
pub(crate) const PIN: u64 = 1 << 20;
/// `state`: the claimers-inside count.
pub(crate) const PINS: u64 = 0x7ff << 20;
/// `state`: the claimed-slots count.
pub(crate) const CLAIMS: u64 = PIN - 1;
/// A claimer pins a slab only while its claims count is below this, so that concurrent
/// claimers (at most `PINS / PIN` of them) can never carry it into the pins count.
pub(crate) const CLAIMS_LIMIT: u64 = CLAIMS - (PINS >> 20);

/// The alignment of every slot of `stride` (slots start 32 bytes into a page-aligned
/// payload): the largest power of two dividing the stride, at most 16.
pub(crate) const fn slot_align(stride: u64) -> u64 {
    let a = stride & stride.wrapping_neg();
    if a > 16 {
        16
    } else {
        a
    }
}

/// Slots in a slab of `stride`.
pub(crate) const fn slots(stride: u64) -> u64 {
    (SLAB_PAYLOAD - SLAB_HEADER) / stride
}

/// The stride index for an object of `size` bytes aligned to `align`, if slabs hold it.
#[inline]
pub(crate) fn stride_index(size: u64, align: u64) -> Option<usize> {
    STRIDES
        .iter()
        .position(|&s| size + 4 <= s && align <= slot_align(s))
}

/// The index of block marks `marks` among those slabs carry, if they do.
#[inline]
pub(crate) fn mark_index(marks: u64) -> Option<usize> {
    match marks {
        0 => Some(0),
        LOCK_BLOCK => Some(1),
        m if m & !KIND_TAG == 0 => {
            let code = tag_code(m);
            (10..=15).contains(&code).then(|| 2 + (code - 10) as usize)
        }
        _ => None,
    }
}

/// The block marks of mark index `i` (see [`mark_index`]).
pub(crate) fn marks_of(i: usize) -> u64 {
    match i {
        0 => 0,
        1 => LOCK_BLOCK,
        i => ObjectKind::from_code(10 + i as u32 - 2).map_or(0, kind_tag),
    }
}

/// The check word of a slab header.
pub(crate) fn check_word(canary: u64, stride: u64, marks: u64) -> u64 {
    (canary ^ stride.rotate_left(17) ^ marks.rotate_left(7)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Whether `w` is an owner word some slot may hold.
pub(crate) fn valid_owner(w: u32) -> bool {
    let pid = |t: u32| (1..PID_LIMIT).contains(&(t & !FOREIGN_OWNER));
    w == FREE || w == DETACHED || pid(w) || (w & RECLAIMING != 0 && pid(w & !RECLAIMING))
}

/// A slab, its header checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slab {
    /// Payload offset (4096-aligned).
    pub(crate) at: u64,
    pub(crate) stride: u64,
    pub(crate) marks: u64,
}

impl Slab {
    pub(crate) fn slots(self) -> u64 {
        slots(self.stride)
    }

    /// Offset of slot `i`.
    pub(crate) fn slot(self, i: u64) -> u64 {
        self.at + SLAB_HEADER + i * self.stride
    }

    /// Offset of slot `i`'s owner word.
    pub(crate) fn owner_at(self, i: u64) -> u64 {
        self.slot(i) + self.stride - 4
    }
}

/// A used slot, found from an object's offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotRef {
    pub(crate) slab: Slab,
    pub(crate) index: u64,
    /// Its owner word as read.
    pub(crate) owner: u32,
}

/// A slab's census: its slots in use and what they take.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Census {
    /// Slab blocks.
    pub(crate) slabs: u64,
    /// Slots in use (owned, detached, or being reclaimed).
    pub(crate) used: u64,
    /// Bytes of the slabs holding those slots: whole slabs, free slots included.
    pub(crate) used_bytes: u64,
    /// Claims not yet folded into the allocator's counters.
    pub(crate) claims: u64,
}

impl Heap<'_> {
    /// The 32-bit canary of the slab whose payload is at `s` (the state word's high half).
    pub(crate) fn slab_canary(&self, s: u64) -> u64 {
        self.canary(s)
    }

    /// The atomic 64-bit word at `off` (8-aligned, inside `[start, committed)`).
    pub(crate) fn atomic64(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.mem.len());
        // SAFETY: callers pass offsets inside a slab validated under the lock, which lies
        // in the committed prefix this process exposed (`with_heap`); the mapping lives as
        // long as `self.mem`; every access to these words is atomic.
        unsafe { AtomicU64::from_ptr(self.base().add(off as usize).cast()) }
    }

    /// The atomic 32-bit owner word at `off` (4-aligned, inside a validated slab).
    pub(crate) fn atomic32(&self, off: u64) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.mem.len());
        // SAFETY: as in `atomic64`.
        unsafe { AtomicU32::from_ptr(self.base().add(off as usize).cast()) }
    }

    /// Whether the block at `b` (inside the heap) is a slab block: used, 4096 bytes,
    /// tagged [`SLAB_CODE`], owned by [`SLAB_OWNER`] with the right canary, and marked in
    /// the slab map (`slab_map.rs`: the only part no object's data can forge).
    pub(crate) fn is_slab_block(&self, b: u64) -> bool {
        let w = self.word(b);
        w & USED != 0
            && w & !FLAGS == SLAB_BLOCK
            && tag_code(w) == SLAB_CODE
            && w & (RECORD_BLOCK | LOCK_BLOCK) == 0
            && self.word(b + 8) == self.tag(b, SLAB_OWNER)
            && self.slab_bit(b + HDR)
    }

    /// The slab payload `offset` lies in, if a slab block starts where it would.
    pub(crate) fn slab_around(&self, offset: u64) -> Option<u64> {
        let s = offset & !(SLAB_BLOCK - 1);
        let st = self.state();
        if s < st.start.get() + HDR || s + SLAB_PAYLOAD > st.top.get() {
            return None;
        }
        self.is_slab_block(s - HDR).then_some(s)
    }

    /// The checked header of the slab at `s` (a slab block's payload).
    pub(crate) fn slab(&self, s: u64) -> Result<Slab> {
        let (stride, marks, check) = (self.word(s + 8), self.word(s + 16), self.word(s + 24));
        let canary = self.slab_canary(s);
        let state = self.atomic64(s).load(SeqCst);
        if !STRIDES.contains(&stride)
            || mark_index(marks).is_none()
            || check != check_word(canary, stride, marks)
            || state >> 32 != canary
        {
            return Err(Error::Corrupted(format!(
                "the slab at offset {s} has a damaged header (stride {stride}, marks {marks:#x})"
            )));
        }
        Ok(Slab {
            at: s,
            stride,
            marks,
        })
    }

    /// The slot at exactly `offset`, if `offset` lies in a slab: `Ok(None)` if it does
    /// not; an error if it does but names no slot in use (the slab's header, a misaligned
    /// offset, a free slot, one being reclaimed, past the last slot).
    pub(crate) fn slot(&self, offset: u64) -> Result<Option<SlotRef>> {
        let Some(s) = self.slab_around(offset) else {
            return Ok(None);
        };
        let slab = self.slab(s)?;
        let rel = offset - s;
        if rel < SLAB_HEADER
            || (rel - SLAB_HEADER) % slab.stride != 0
            || (rel - SLAB_HEADER) / slab.stride >= slab.slots()
        {
            return Err(Error::Corrupted(format!(
                "no object starts at offset {offset}: it lies inside a slab but at no slot"
            )));
        }
        let index = (rel - SLAB_HEADER) / slab.stride;
        let owner = self.atomic32(slab.owner_at(index)).load(SeqCst);
        if owner == FREE {
            return Err(Error::Corrupted(format!(
                "no object at offset {offset}: its slot is free"
            )));
        }
        if owner & RECLAIMING != 0 {
            return Err(Error::Corrupted(format!(
                "no object at offset {offset}: its slot is being freed as a dead process's"
            )));
        }
        if !valid_owner(owner) {
            return Err(Error::Corrupted(format!(
                "the slot at offset {offset} has a garbage owner word {owner:#x}"
            )));
        }
        Ok(Some(SlotRef { slab, index, owner }))
    }

    /// Carves a new slab of stride `stride` for objects marked `marks`; returns its
    /// payload offset. The payload is zero (fresh heap memory always is).
    pub(crate) fn carve_slab(&self, stride: u64, marks: u64) -> Result<u64> {
        let map = self.ensure_slab_map()?;
        // Without the sweep `alloc` makes on a full heap: it would give back the map just
        // made (it marks no slab yet), and the slab's bit would then be set in freed
        // memory. Where no slab fits, the object becomes an ordinary block, whose
        // allocation sweeps.
        let made = self
            .alloc_once(SLAB_PAYLOAD, SLAB_BLOCK, SLAB_OWNER)
            .and_then(|s| self.trim_slab_block(s - HDR).map(|()| s));
        let s = match made {
            Ok(s) => s,
            Err(e) => {
                // No slab: a map just made for it is given back, so that a small object
                // that becomes an ordinary block instead (or fails) leaves the arena as a
                // failed allocation must, unchanged.
                self.free_idle_slab_map()?;
                return Err(e);
            }
        };
        debug_assert_eq!(s % SLAB_BLOCK, 0);
        // A slab is no object: its slots are counted instead.
        bump(&self.state().allocations, -1);
        let canary = self.slab_canary(s);
        self.set_word(s + 8, stride);
        self.set_word(s + 16, marks);
        self.set_word(s + 24, check_word(canary, stride, marks));
        self.atomic64(s).store(canary << 32, SeqCst);
        step();
        // Tagged last: a carver killed before this leaves a used block owned by
        // `SLAB_OWNER` without the tag, which `sweep_slabs` frees.
        let b = s - HDR;
        self.set_word(b, self.word(b) | SLAB_TAG);
        step();
        // Published in the map last: until then no process takes it for a slab, and a
        // carver killed before this leaves a block `free_slab_strays` frees.
        self.set_slab_bit(map, s, true);
        Ok(s)
    }

    /// Makes the block at `b`, just allocated for a slab, exactly [`SLAB_BLOCK`] bytes, as
    /// `is_slab_block` (and so `check`) requires: the allocator leaves a remainder too
    /// small for a block with the block it was cut from, so near the end of a full heap a
    /// slab's block came out larger (4160 bytes was seen). A remainder that can be a block
    /// is split off and freed (as `place` splits a tail: written free but unlisted first,
    /// then the slab block shrunk, then listed); one that cannot gives the whole block
    /// back and reports `OutOfMemory`, so the claimer makes an ordinary block instead.
    fn trim_slab_block(&self, b: u64) -> Result<()> {
        let w = self.word(b);
        let size = w & !FLAGS;
        if size == SLAB_BLOCK {
            return Ok(());
        }
        let st = self.state();
        let rest = size - SLAB_BLOCK;
        if rest < MIN_BLOCK {
            self.free(b + HDR, SLAB_OWNER)?;
            // Neither an object made nor one freed.
            bump(&st.allocations, -1);
            bump(&st.frees, -1);
            return Err(Error::OutOfMemory {
                requested: SLAB_BLOCK,
                available: rest,
                capacity: self.mem.len(),
            });
        }
        let r = b + SLAB_BLOCK;
        // Fresh heap memory is zero: so is the remainder, header word aside.
        self.set_word(r, rest | (w & PUNCHED) | PREV_USED);
        step();
        self.set_word(b, SLAB_BLOCK | (w & FLAGS));
        step();
        bump(&st.used_bytes, -(rest as i64));
        self.release(r, false)
    }

    /// Every slab block's payload offset, and every untagged block a carver left owned by
    /// [`SLAB_OWNER`] (as its block offset, in the second list).
    fn slab_blocks(&self) -> Result<(Vec<u64>, Vec<u64>)> {
        let (mut slabs, mut stray) = (Vec::new(), Vec::new());
        crate::arena::check::walk(self, |b, _, w| {
            if w & USED != 0 && tag_code(w) == SLAB_CODE {
                if self.is_slab_block(b) {
                    slabs.push(b + HDR);
                }
            } else if w & USED != 0
                && w & (KIND_TAG | LOCK_BLOCK | RECORD_BLOCK) == 0
                && self.owner_of(b).ok() == Some(SLAB_OWNER)
            {
                stray.push(b);
            }
            Ok(())
        })?;
        Ok((slabs, stray))
    }

    /// Frees every slab with no slot in use and no claimer inside (and blocks a carver
    /// killed half-way left): returns how many bytes went back to the heap.
    pub(crate) fn sweep_slabs(&self) -> Result<u64> {
        let mut freed = self.free_slab_strays()?;
        let (slabs, _) = self.slab_blocks()?;
        let mut left = slabs.len();
        for s in slabs {
            let Ok(slab) = self.slab(s) else {
                continue; // damaged: left for `check` to report
            };
            let state = self.atomic64(s);
            if !self.close_slab(s) {
                continue; // a claimer is inside
            }
            let busy = (0..slab.slots()).any(|i| self.atomic32(slab.owner_at(i)).load(SeqCst) != 0);
            if busy {
                state.store(self.slab_canary(s) << 32, SeqCst);
                continue;
            }
            // Out of the map first: no claimer's hint passes from here on (one killed
            // right after leaves a zero slab that `free_slab_strays` frees).
            if let Some(map) = self.slab_map() {
                self.set_slab_bit(map, s, false);
            }
            self.free(s, SLAB_OWNER)?;
            bump(&self.state().frees, -1);
            freed += SLAB_BLOCK;
            left -= 1;
        }
        if left == 0 {
            freed += self.free_idle_slab_map()?;
        }
        Ok(freed)
    }

    /// Folds the claims the state word of the slab at `s` counts into the allocator's
    /// counters (the lock held), so that a slab in constant use, whose count would reach
    /// [`CLAIMS_LIMIT`] and refuse every claimer until a sweep, stays usable. Claimers pin,
    /// unpin and count concurrently: one compare-and-swap, retried a few times, takes the
    /// count away exactly once or not at all.
    pub(crate) fn fold_claims(&self, s: u64) {
        let state = self.atomic64(s);
        for _ in 0..8 {
            let now = state.load(SeqCst);
            if now & CLAIMS == 0 || now & CLOSING != 0 {
                return;
            }
            if state
                .compare_exchange(now, now & !CLAIMS, SeqCst, SeqCst)
                .is_ok()
            {
                bump(&self.state().slot_allocations, (now & CLAIMS) as i64);
                step();
                return;
            }
        }
    }

    /// Frees the slots whose owners `ended` proves dead, and finishes those a reclaimer
    /// that died left marked [`RECLAIMING`]; `me` is the calling process's owner tag.
    /// Returns the objects and bytes freed.
    pub(crate) fn reclaim_slots(
        &self,
        me: u32,
        ended: &mut impl FnMut(u32) -> bool,
    ) -> Result<(u64, u64)> {
        let (slabs, _) = self.slab_blocks()?;
        let (mut objects, mut bytes) = (0, 0);
        for s in slabs {
            let Ok(slab) = self.slab(s) else {
                continue;
            };
            for i in 0..slab.slots() {
                let word = self.atomic32(slab.owner_at(i));
                let w = word.load(SeqCst);
                let redo = w & RECLAIMING != 0
                    && valid_owner(w)
                    && (w & !RECLAIMING == me || ended(w & !RECLAIMING));
                let dead = w != FREE
                    && w != DETACHED
                    && w & (RECLAIMING | FOREIGN_OWNER) == 0
                    && valid_owner(w)
                    && ended(w);
                if !redo && !dead {
                    continue;
                }
                if dead {
                    if word
                        .compare_exchange(w, RECLAIMING | me, SeqCst, SeqCst)
                        .is_err()
                    {
                        continue;
                    }
                    step();
                }
                self.zero_slot(slab, i);
                step();
                word.store(FREE, SeqCst);
                step();
                objects += 1;
                bytes += slab.stride;
            }
        }
        Ok((objects, bytes))
    }

    /// Zeroes the payload of slot `i` (not its owner word).
    pub(crate) fn zero_slot(&self, slab: Slab, i: u64) {
        let at = slab.slot(i);
        for k in 0..(slab.stride - 4) / 4 {
            self.atomic32(at + 4 * k).store(0, SeqCst);
        }
    }

    /// The census of every slab (the lock held): used slots, their bytes, pending claims.
    pub(crate) fn slab_census(&self) -> Result<Census> {
        let (slabs, _) = self.slab_blocks()?;
        let mut c = Census::default();
        for s in slabs {
            c.slabs += 1;
            let Ok(slab) = self.slab(s) else {
                continue;
            };
            let used = (0..slab.slots())
                .filter(|&i| self.atomic32(slab.owner_at(i)).load(SeqCst) != FREE)
                .count() as u64;
            if used > 0 {
                c.used += used;
                c.used_bytes += SLAB_BLOCK;
            }
            c.claims += self.atomic64(s).load(SeqCst) & CLAIMS;
        }
        Ok(c)
    }

    /// Checks that every free slot of `slab` is zero, with the slab closed meanwhile so
    /// that no slot is claimed (and written, and freed again) between reading its owner
    /// word and its payload; skipped if a claimer is inside (the slab cannot be closed).
    /// An owner frees its slot by zeroing it before storing [`FREE`] (release), so a slot
    /// read free (sequentially consistent) while no claim can happen reads zero.
    fn verify_free_slots(&self, slab: Slab) -> Result<()> {
        let state = self.atomic64(slab.at);
        // Closed as a sweeper closes (claims folded into the allocator's counters), so a
        // checker killed before reopening leaves what the next sweep finishes.
        if !self.close_slab(slab.at) {
            return Ok(());
        }
        let dirty = (0..slab.slots()).find(|&i| {
            let at = slab.slot(i);
            self.atomic32(slab.owner_at(i)).load(SeqCst) == FREE
                && (0..(slab.stride - 4) / 4).any(|k| self.atomic32(at + 4 * k).load(SeqCst) != 0)
        });
        state.store(self.slab_canary(slab.at) << 32, SeqCst);
        step();
        match dirty {
            Some(i) => Err(Error::Corrupted(format!(
                "slot {i} of the slab at {} is free but not zero",
                slab.at
            ))),
            None => Ok(()),
        }
    }

    /// Closes the slab at `s` for a sweep or a check (the lock held): a compare-and-swap
    /// of its state that requires no pin and folds its claim count into the allocator's
    /// counters. `true` if it is closed now, or was left closing by a holder of this lock
    /// that died (the caller finishes); `false` if a claimer is inside.
    fn close_slab(&self, s: u64) -> bool {
        let state = self.atomic64(s);
        let now = state.load(SeqCst);
        if now & CLOSING != 0 {
            return true;
        }
        if now & PINS != 0
            || state
                .compare_exchange(now, now & !CLAIMS | CLOSING, SeqCst, SeqCst)
                .is_err()
        {
            return false;
        }
        bump(&self.state().slot_allocations, (now & CLAIMS) as i64);
        step();
        true
    }

    /// Checks the slab at `s` for `check::verify`: its header, every owner word, and that
    /// free slots are zero. Returns its used slots and the bytes `stats` counts for them.
    pub(crate) fn verify_slab(&self, s: u64) -> Result<(u64, u64)> {
        let slab = self.slab(s)?;
        let mut used = 0;
        for i in 0..slab.slots() {
            let word = self.atomic32(slab.owner_at(i));
            let w = word.load(SeqCst);
            if !valid_owner(w) {
                return Err(Error::Corrupted(format!(
                    "slot {i} of the slab at {s} has a garbage owner word {w:#x}"
                )));
            }
            if w != FREE {
                used += 1;
            }
        }
        self.verify_free_slots(slab)?;
        let bytes = if used > 0 { SLAB_BLOCK } else { 0 };
        Ok((used, bytes))
    }
}
