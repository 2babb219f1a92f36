//! A process-local cache of freed small blocks, one per arena handle family (it lives in
//! the arena's process-local part, `ArenaInner`).
//!
//! Freeing a small block (a 32 to 128-byte block: a `RawValue` of a small type, a lock
//! cell, a `Value` made with its own lock, an unnamed `Event`...) puts its offset on a
//! stack of its size class instead of giving it back to the arena; allocating a block of
//! that size, for any use, pops it. Neither takes the arena's process-shared
//! allocator lock: the stacks are guarded by a process-local flag that is only ever
//! *tried* (a thread that finds it busy goes to the arena, as if the cache were empty), so
//! no thread ever waits for it and a child forked while another thread held it simply
//! never uses its copy.
//!
//! # Why it is crash-safe
//! A cached block stays a *used* block of the arena, owned by this process's owner tag,
//! exactly as while its object was alive: if the process dies, `Arena::reclaim_dead` frees
//! it like any object the process leaked; nothing else can allocate it meanwhile, so it is
//! never handed out twice and never lost.
//!
//! # Why a cached block is no object
//! Put in the cache, the block's first word loses the marks of what it held (`LOCK_BLOCK`,
//! a `KIND_TAG`) and gets the tag [`CACHED`](crate::arena::heap::CACHED) instead, in one
//! atomic read-modify-write; taken out, its payload is zeroed, then the tag is replaced by
//! the marks of its new use. So a handle naming a cached block (a stale one, or a forged
//! one) is refused (`Heap::used_block` reports it freed; a data handle refuses any tag, a
//! lock handle needs `LOCK_BLOCK`), it cannot be adopted (its owner word names this
//! process, and it is tagged), and a block comes out of the cache with only the marks of
//! the use it is taken for, never a stale lock, record or kind mark. Records
//! (`RECORD_BLOCK`) are never cached.
//!
//! # Forks
//! The stacks record the `process_key` of the process that filled them. A forked child
//! inherits a copy whose blocks are its parent's: the first time the child uses the cache
//! it finds another key and forgets the copy (without freeing anything: the blocks are the
//! parent's, which keeps using them).
//!
//! # Truthful counters
//! Cached blocks are counted as used blocks of this process by the arena. So that what a
//! process observes reflects its own frees, `stats`, `check`, `objects` and `reclaim_dead`
//! first give this process's cached blocks back to the arena (`Arena::flush_cache`); so do
//! the last handle of the arena in this process and the end of a child run by `Process`.
//! Another live process's cached blocks show as in use by that process.

use std::cell::UnsafeCell;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

use crate::arena::heap::{
    tag_code, CACHED, CACHED_CODE, FLAGS, GRAIN, HDR, KIND_TAG, LOCK_BLOCK, MIN_BLOCK,
    RECORD_BLOCK, USED,
};
use crate::sys::process::process_key;

/// Cached block sizes: 32, 48, ..., 128 bytes (for any use: the marks are set on taking).
const CLASSES: usize = 7;
const STACKS: usize = CLASSES;
/// Blocks kept per stack; a free that finds its stack full goes to the arena.
const DEPTH: usize = 128;

/// A size class of cached block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Class(u8);

impl Class {
    /// The class of a block the arena would make for `size` bytes aligned to `align`, if
    /// blocks of that size are cached.
    #[inline]
    pub(crate) fn of(size: u64, align: u64) -> Option<Class> {
        if align > GRAIN || size > MIN_BLOCK + (CLASSES as u64 - 1) * GRAIN - HDR {
            return None;
        }
        let need = ((size + HDR + GRAIN - 1) & !(GRAIN - 1)).max(MIN_BLOCK);
        Some(Class(((need - MIN_BLOCK) / GRAIN) as u8))
    }

    /// Payload bytes of a block of this class.
    #[inline]
    pub(crate) fn payload(self) -> u64 {
        self.block() - HDR
    }

    /// Bytes of a block of this class, header included.
    #[inline]
    pub(crate) fn block(self) -> u64 {
        MIN_BLOCK + u64::from(self.0) * GRAIN
    }

    /// Whether a block's first word `w` is that of a used block of exactly this class
    /// made for an object (data, a lock, an unnamed synchronization object): one that may
    /// be cached. A block handed out whole because its remainder was too small to split is
    /// larger, and is freed instead; a record is never cached.
    #[inline]
    fn is_object_block(w: u64, class: Class) -> bool {
        w & USED != 0
            && w & !FLAGS == class.block()
            && w & RECORD_BLOCK == 0
            && tag_code(w) != CACHED_CODE
    }

    /// Whether a block's first word `w` is that of a cached block of this class.
    #[inline]
    pub(crate) fn is_cached_block(w: u64, class: Class) -> bool {
        w & USED != 0
            && w & !FLAGS == class.block()
            && w & (RECORD_BLOCK | LOCK_BLOCK) == 0
            && tag_code(w) == CACHED_CODE
    }

    /// Marks the block whose first word is `header` as cached (see the module
    /// documentation), if it is an object's block of this class; one atomic
    /// read-modify-write, so a concurrent `Heap::set_prev_used` is kept.
    fn mark_cached(header: &AtomicU64, class: Class) -> bool {
        header
            .fetch_update(Release, Relaxed, |w| {
                Class::is_object_block(w, class).then_some(w & !(LOCK_BLOCK | KIND_TAG) | CACHED)
            })
            .is_ok()
    }

    /// Replaces the cached mark of the block whose first word is `header` with `marks`
    /// (0, `LOCK_BLOCK` or a kind tag), if it is a cached block of this class; one atomic
    /// read-modify-write, released after the caller zeroed the payload.
    pub(crate) fn unmark_cached(header: &AtomicU64, class: Class, marks: u64) -> bool {
        header
            .fetch_update(Release, Relaxed, |w| {
                Class::is_cached_block(w, class).then_some(w & !KIND_TAG | marks)
            })
            .is_ok()
    }

    fn index(self) -> usize {
        self.0 as usize
    }
}

/// No slot of the arena's table is held.
const NO_SLOT: usize = usize::MAX;

struct Stacks {
    /// The `process_key` of the process these blocks belong to (0: none yet).
    key: u64,
    /// The arena's `CacheSlot` that counts these blocks, `NO_SLOT` if none is held (then
    /// nothing is cached).
    slot: usize,
    len: [u8; STACKS],
    slots: [[u64; DEPTH]; STACKS],
}

/// See the module documentation.
pub(crate) struct BlockCache {
    busy: AtomicBool,
    stacks: UnsafeCell<Stacks>,
}

// SAFETY: `stacks` is only reached by `with_stacks`, by the one thread that turned `busy`
// from false to true (an acquire CAS, released by a release store), so no two threads ever
// touch it at once; its contents are plain integers, meaningful in any thread.
unsafe impl Sync for BlockCache {}

// A panic cannot leave the stacks half-updated for another user: the code that runs with
// the flag held does not panic, and if it did, the flag would stay set and every later
// use would find the cache busy and go to the arena. (Keeps `Arena` `RefUnwindSafe`.)
impl std::panic::RefUnwindSafe for BlockCache {}

impl BlockCache {
    pub(crate) fn new() -> Self {
        BlockCache {
            busy: AtomicBool::new(false),
            stacks: UnsafeCell::new(Stacks {
                key: 0,
                slot: NO_SLOT,
                len: [0; STACKS],
                slots: [[0; DEPTH]; STACKS],
            }),
        }
    }

    /// Runs `f` on this process's stacks, if no other thread has them (`None` if one does).
    #[inline]
    fn with_stacks<R>(&self, f: impl FnOnce(&mut Stacks) -> R) -> Option<R> {
        if self
            .busy
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_err()
        {
            return None;
        }
        let me = process_key();
        // SAFETY: the CAS above made this thread the only one inside (see `impl Sync`).
        let stacks = unsafe { &mut *self.stacks.get() };
        if stacks.key != me {
            // A fresh cache, or a copy inherited through fork: the parent's blocks.
            stacks.key = me;
            stacks.slot = NO_SLOT;
            stacks.len = [0; STACKS];
        }
        let r = f(stacks);
        self.busy.store(false, Release);
        Some(r)
    }

    /// A cached block's payload offset of class `class`, taken out of the cache; `slots`
    /// is the arena's table.
    #[inline]
    pub(crate) fn take(&self, class: Class, slots: &[AtomicU64]) -> Option<u64> {
        self.with_stacks(|s| {
            let i = class.index();
            let n = s.len[i] as usize;
            let slot = slots.get(s.slot)?;
            if n == 0 {
                return None;
            }
            s.len[i] = (n - 1) as u8;
            // Counted out after it left the stack: a process killed in between leaves a
            // block counted as cached that it no longer holds as one, which `reclaim_dead`
            // then frees as cached rather than as an object.
            count(slot, -1, class);
            Some(s.slots[i][n - 1])
        })
        .flatten()
    }

    /// Keeps the payload offset of a block of class `class` this process owns and no
    /// longer uses, whose first word is `header`, marking it cached.
    #[inline]
    pub(crate) fn put(
        &self,
        class: Class,
        payload: u64,
        header: &AtomicU64,
        slots: &[AtomicU64],
    ) -> Put {
        self.with_stacks(|s| {
            let Some(slot) = slots.get(s.slot) else {
                return Put::NoSlot;
            };
            let i = class.index();
            let n = s.len[i] as usize;
            if n == DEPTH || !Class::mark_cached(header, class) {
                return Put::Refused;
            }
            count(slot, 1, class);
            s.slots[i][n] = payload;
            s.len[i] = (n + 1) as u8;
            Put::Kept
        })
        .unwrap_or(Put::Refused)
    }

    /// Takes a free slot of the arena's table for this process's cache (owner tag
    /// `owner`), if it has none. Called with the allocator's lock held, which guards the
    /// slots' `owner` words.
    pub(crate) fn claim(&self, slots: &[AtomicU64], owner: u32) {
        self.with_stacks(|s| {
            if s.slot != NO_SLOT || owner == 0 {
                return;
            }
            if let Some(i) = slots.iter().position(|x| slot_owner(x.load(Relaxed)) == 0) {
                slots[i].store(u64::from(owner), Relaxed);
                s.slot = i;
            }
        });
    }

    /// Whether this process holds a slot of the arena's table or any cached block
    /// (`false` too if another thread of it is using the cache right now).
    pub(crate) fn holds_any(&self) -> bool {
        self.with_stacks(|s| s.slot != NO_SLOT || s.len.iter().any(|&n| n != 0))
            .unwrap_or(false)
    }

    /// Takes every cached block out, and gives up the slot of the arena's table if
    /// `release` (called with the allocator's lock held; the caller frees the blocks),
    /// waiting a little for
    /// another thread of this process that is using the cache (`None` if it stays busy: a
    /// child forked while a thread of its parent held it, whose copy then holds only the
    /// parent's blocks anyway).
    pub(crate) fn drain(&self, slots: &[AtomicU64], release: bool) -> Option<Vec<u64>> {
        for _ in 0..1000 {
            let got = self.with_stacks(|s| {
                let mut all = Vec::new();
                for (len, slots) in s.len.iter_mut().zip(&s.slots) {
                    all.extend_from_slice(&slots[..*len as usize]);
                    *len = 0;
                }
                if let Some(slot) = slots.get(s.slot) {
                    let owner = slot.load(Relaxed) & OWNER_MASK;
                    if release {
                        slot.store(0, Relaxed);
                        s.slot = NO_SLOT;
                    } else {
                        slot.store(owner, Relaxed);
                    }
                }
                all
            });
            if got.is_some() {
                return got;
            }
            std::thread::yield_now();
        }
        None
    }
}

/// What [`BlockCache::put`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Put {
    /// The block is in the cache.
    Kept,
    /// The cache is full or busy: free the block.
    Refused,
    /// This process holds no slot of the arena's table yet: free the block, and claim one.
    NoSlot,
}

// A slot of the arena's table (`HeapState::cache_slots`) is one word: the owner tag of the
// process that holds it (0: free) in bits 0..32, the number of blocks it has cached in
// bits 32..44 (at most `STACKS * DEPTH` = 896), and their bytes / 16 in bits 44..60 (at
// most 896 * 128 / 16 = 7168). Its owner changes only with the allocator's lock held; the
// counts are written by the owner alone, one thread at a time (see `with_stacks`).
const OWNER_MASK: u64 = 0xffff_ffff;
const BLOCKS_SHIFT: u32 = 32;
const BLOCKS_MASK: u64 = 0xfff;
const UNITS_SHIFT: u32 = 44;
const UNITS_MASK: u64 = 0xffff;
const _: () = assert!((STACKS * DEPTH) as u64 <= BLOCKS_MASK);
const _: () = assert!((STACKS * DEPTH * 128 / 16) as u64 <= UNITS_MASK);

/// The owner tag recorded in a slot word, 0 if the slot is free.
pub(crate) fn slot_owner(word: u64) -> u32 {
    (word & OWNER_MASK) as u32
}

/// The blocks and bytes a slot word counts.
pub(crate) fn slot_counts(word: u64) -> (u64, u64) {
    (
        word >> BLOCKS_SHIFT & BLOCKS_MASK,
        (word >> UNITS_SHIFT & UNITS_MASK) * GRAIN,
    )
}

/// Counts one block of `class` in (`delta` 1) or out (-1) of the slot: a load and a store,
/// no read-modify-write instruction (one writer at a time). Garbage written there by
/// another process gives wrong counts, never a carry into the owner.
#[inline]
fn count(slot: &AtomicU64, delta: i64, class: Class) {
    let word = slot.load(Relaxed);
    let (blocks, units) = (
        (word >> BLOCKS_SHIFT & BLOCKS_MASK).wrapping_add_signed(delta) & BLOCKS_MASK,
        (word >> UNITS_SHIFT & UNITS_MASK)
            .wrapping_add_signed(delta * (class.block() / GRAIN) as i64)
            & UNITS_MASK,
    );
    slot.store(
        word & OWNER_MASK | blocks << BLOCKS_SHIFT | units << UNITS_SHIFT,
        Relaxed,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::heap::{kind_tag, PREV_USED};
    use crate::arena::ObjectKind;

    #[test]
    fn classes_cover_small_blocks_only() {
        let c = Class::of(4, 4).unwrap();
        assert_eq!(c.payload(), 16);
        assert_eq!(Class::of(17, 8).unwrap().payload(), 32);
        assert_eq!(Class::of(112, 16).unwrap().payload(), 112);
        assert_eq!(Class::of(113, 16), None);
        assert_eq!(Class::of(8, 32), None);
        assert_eq!(Class::of(24, 8), Class::of(20, 16));
    }

    /// A fresh used block's first word of class `c`, with `marks`.
    fn used(c: Class, marks: u64) -> AtomicU64 {
        AtomicU64::new(c.block() | USED | PREV_USED | marks)
    }

    #[test]
    fn a_stack_returns_what_was_put_and_refuses_past_its_depth() {
        let slots: Vec<AtomicU64> = (0..2).map(|_| AtomicU64::new(0)).collect();
        let cache = BlockCache::new();
        let c = Class::of(8, 8).unwrap();
        assert_eq!(cache.put(c, 64, &used(c, 0), &slots), Put::NoSlot);
        cache.claim(&slots, 77);
        assert_eq!(slot_owner(slots[0].load(Relaxed)), 77);
        assert_eq!(cache.take(c, &slots), None);
        for i in 0..DEPTH as u64 {
            assert_eq!(cache.put(c, 64 + i * 32, &used(c, 0), &slots), Put::Kept);
        }
        assert_eq!(cache.put(c, 1 << 20, &used(c, 0), &slots), Put::Refused);
        assert_eq!(
            slot_counts(slots[0].load(Relaxed)),
            (DEPTH as u64, DEPTH as u64 * 32)
        );
        assert_eq!(cache.take(c, &slots), Some(64 + (DEPTH as u64 - 1) * 32));
        let (blocks, bytes) = slot_counts(slots[0].load(Relaxed));
        assert_eq!((blocks, bytes), (DEPTH as u64 - 1, (DEPTH as u64 - 1) * 32));
        assert_eq!(cache.drain(&slots, false).unwrap().len(), DEPTH - 1);
        assert_eq!(slots[0].load(Relaxed), 77, "kept, counting nothing");
        assert_eq!(cache.put(c, 64, &used(c, 0), &slots), Put::Kept);
        assert_eq!(cache.drain(&slots, true).unwrap(), [64]);
        assert_eq!(slots[0].load(Relaxed), 0);
    }

    #[test]
    fn a_cached_block_loses_its_marks_and_takes_those_of_its_next_use() {
        let slots: Vec<AtomicU64> = (0..1).map(|_| AtomicU64::new(0)).collect();
        let cache = BlockCache::new();
        cache.claim(&slots, 77);
        let c = Class::of(40, 8).unwrap();
        let event = kind_tag(ObjectKind::Event);
        let lock = used(c, LOCK_BLOCK);
        assert_eq!(cache.put(c, 64, &lock, &slots), Put::Kept);
        let w = lock.load(Relaxed);
        assert_eq!((w & LOCK_BLOCK, tag_code(w)), (0, CACHED_CODE));
        assert_eq!(w & (USED | PREV_USED), USED | PREV_USED, "other flags kept");
        // Cached once only; a record, a block of another size, a free block never.
        assert_eq!(cache.put(c, 64, &lock, &slots), Put::Refused);
        assert_eq!(
            cache.put(c, 96, &used(c, RECORD_BLOCK), &slots),
            Put::Refused
        );
        let other = Class::of(8, 8).unwrap();
        assert_eq!(cache.put(c, 96, &used(other, 0), &slots), Put::Refused);
        let free = AtomicU64::new(c.block() | PREV_USED);
        assert_eq!(cache.put(c, 96, &free, &slots), Put::Refused);
        // Taken out for an Event: the tag is the Event's, nothing else of the lock.
        assert!(Class::unmark_cached(&lock, c, event));
        let w = lock.load(Relaxed);
        assert_eq!((w & LOCK_BLOCK, w & KIND_TAG), (0, event));
        assert!(!Class::unmark_cached(&lock, c, 0), "not cached any more");
        // A tagged block comes back as a lock block with no tag.
        let tagged = used(c, event);
        assert_eq!(cache.put(c, 128, &tagged, &slots), Put::Kept);
        assert!(Class::unmark_cached(&tagged, c, LOCK_BLOCK));
        assert_eq!(tagged.load(Relaxed) & (KIND_TAG | LOCK_BLOCK), LOCK_BLOCK);
    }

    #[test]
    fn garbage_counts_never_carry_into_the_owner() {
        let slot = AtomicU64::new(5 | BLOCKS_MASK << BLOCKS_SHIFT | UNITS_MASK << UNITS_SHIFT);
        let c = Class::of(100, 8).unwrap();
        count(&slot, 1, c);
        assert_eq!(slot_owner(slot.load(Relaxed)), 5);
        let slot = AtomicU64::new(9);
        count(&slot, -1, c);
        assert_eq!(slot_owner(slot.load(Relaxed)), 9);
    }
}
