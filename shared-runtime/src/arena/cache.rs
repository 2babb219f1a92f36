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
//! atomic read-modify-write. Taken out, it is first claimed ([`TAKING`], another atomic
//! read-modify-write that succeeds only on a block still marked cached, and the owner word
//! must still name this process), then its payload is zeroed, then the mark is replaced by
//! those of its new use. So a handle naming a cached block (a stale one, or a forged one)
//! is refused (`Heap::used_block` reports it freed; a data handle refuses any tag, a lock
//! handle needs `LOCK_BLOCK`), it cannot be adopted (its owner word names this process,
//! and it is tagged), nothing is ever zeroed but a block this process found in its cache,
//! and a block comes out of the cache with only the marks of the use it is taken for,
//! never a stale lock, record or kind mark. Records (`RECORD_BLOCK`) are never cached.
//!
//! # Forks
//! The stacks record the `process_key` of the process that filled them. A forked child
//! inherits a copy whose blocks are its parent's: the first time the child uses the cache
//! it finds another key and forgets the copy (without freeing anything: the blocks are the
//! parent's, which keeps using them).
//!
//! # Who caches
//! Only processes that give their cache back when they end: the process that made an
//! arena handle family (its last handle gives the cache back when dropped), and for the
//! global arena the process that created it (an `exit` handler gives it back when it calls
//! `exit` or returns from `main`) and the children run by [`Process`](crate::Process) (given
//! back before the child ends, whatever `f` did: the cache is first closed for good, so a
//! thread still freeing caches nothing after the drain). A child forked any other way (`fork`
//! then `_exit`, say) caches nothing: it could end without giving anything back. A killed
//! process leaves its cached blocks to `Arena::reclaim_dead`, like its objects. A caching
//! process that replaces its program (`exec`) keeps its cached blocks, and its slot of the
//! table, for as long as the new program runs (the process is alive: nothing may free
//! them); calling `Arena::stats` first gives the blocks back. A process that finds the
//! table full takes over the slot of a process proven ended, freeing its cached blocks.
//!
//! # Memory held
//! A process keeps at most [`MAX_CACHED_BYTES`] (70 KiB) of one arena, or a 16th of the
//! arena's capacity if that is less. An allocation that finds the arena full gives this
//! process's own cache back and tries once more; the caches of other live processes are
//! out of its reach (at most that much each, 11 processes at most).
//!
//! # Truthful counters
//! Cached blocks are counted as used blocks of this process by the arena's counters; the
//! arena's table of caches (one slot per caching process) says how many, so `stats`
//! reports them apart from objects. The owner counts each block in as it caches it and
//! out as it takes it, or frees it while giving its cache back, so a process killed
//! half-way leaves a slot that counts what is still cached, give or take one block (`take`
//! counts a block out only once it is re-marked); after a process died holding the
//! allocator's lock, and in `stats`, the slots of ended processes are recounted from their
//! blocks' tags (`Arena::recount_dead_caches`). `check` and `reclaim_dead` do
//! not use the table: they walk the heap, and a block tagged `CACHED` (or [`TAKING`]) is
//! no object. `stats`, `check` and `reclaim_dead` first give this process's cached blocks
//! back (`Arena::flush_cache`), keeping its slot; `Arena::objects` lists named objects
//! only and ignores caches. Other processes' cached blocks, live or ended (until
//! `reclaim_dead` or a process taking over the slot frees them), show as `cached_blocks`.

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

/// The bit of a [`Class`] that marks a slab slot rather than a cache class.
const SLOT_CLASS: u8 = 0x80;

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

    /// Whether a block's first word `w` is that of a block of this class being taken out
    /// of its owner's cache ([`TAKING`]).
    #[inline]
    fn is_taking_block(w: u64, class: Class) -> bool {
        w & USED != 0
            && w & !FLAGS == class.block()
            && w & (RECORD_BLOCK | LOCK_BLOCK | KIND_TAG) == TAKING
    }

    /// Claims the block whose first word is `header` for taking it out of the cache: turns
    /// its mark from [`CACHED`] to [`TAKING`], if it is a cached block of this class. One
    /// atomic read-modify-write, made *before* the payload is zeroed, so that nothing is
    /// ever zeroed but a block this call found cached.
    pub(crate) fn claim_cached(header: &AtomicU64, class: Class) -> bool {
        header
            .fetch_update(Acquire, Relaxed, |w| {
                Class::is_cached_block(w, class).then_some(w | TAKING)
            })
            .is_ok()
    }

    /// Puts back the [`CACHED`] mark of a block claimed by [`claim_cached`](Self::claim_cached)
    /// that turned out not to be this process's (its owner word names another).
    pub(crate) fn unclaim_cached(header: &AtomicU64, class: Class) -> bool {
        header
            .fetch_update(Release, Relaxed, |w| {
                Class::is_taking_block(w, class).then_some(w & !LOCK_BLOCK)
            })
            .is_ok()
    }

    /// Replaces the [`TAKING`] mark of the block whose first word is `header` with `marks`
    /// (0, `LOCK_BLOCK` or a kind tag); one atomic read-modify-write, released after the
    /// caller zeroed the payload.
    pub(crate) fn unmark_cached(header: &AtomicU64, class: Class, marks: u64) -> bool {
        header
            .fetch_update(Release, Relaxed, |w| {
                Class::is_taking_block(w, class).then_some(w & !(KIND_TAG | LOCK_BLOCK) | marks)
            })
            .is_ok()
    }

    fn index(self) -> usize {
        self.0 as usize
    }

    /// Not a cache class: the mark of an object in a slab slot of list `i` (stride and
    /// marks, `slab.rs`), freed by its owner without the lock (`Arena::free_slot`).
    #[inline]
    pub(crate) fn slot(i: usize) -> Class {
        Class(SLOT_CLASS | i as u8)
    }

    /// The slab list of a slot's mark (see [`slot`](Self::slot)).
    #[inline]
    pub(crate) fn slot_index(self) -> Option<usize> {
        (self.0 & SLOT_CLASS != 0).then_some((self.0 & !SLOT_CLASS) as usize)
    }
}

/// The mark of a cached block that its owner is taking out (claimed, being zeroed):
/// [`CACHED`] with `LOCK_BLOCK`, a combination no other block has. Still refused by every
/// handle (`Heap::used_block` refuses the `CACHED` tag), never cached or taken again, and
/// freed uncounted by `reclaim_dead` if its owner dies meanwhile.
pub(crate) const TAKING: u64 = CACHED | LOCK_BLOCK;

/// No slot of the arena's table is held.
const NO_SLOT: usize = usize::MAX;

/// The most bytes one process keeps in its cache of one arena: 128 blocks of each of the
/// 7 classes (70 KiB); an arena smaller than 16 times that gets a 16th of its capacity.
pub(crate) const MAX_CACHED_BYTES: u64 = DEPTH as u64 * (7 * MIN_BLOCK + 21 * GRAIN);
const _: () = assert!(MAX_CACHED_BYTES == 71_680);

/// Frees that find no slot of the arena's table free (every one held by a live process)
/// before this process looks again.
const CLAIM_RETRY: u16 = 1024;

struct Stacks {
    /// The `process_key` of the process these blocks belong to (0: none yet).
    key: u64,
    /// The arena's `CacheSlot` that counts these blocks, `NO_SLOT` if none is held (then
    /// nothing is cached).
    slot: usize,
    len: [u8; STACKS],
    /// Bytes of the blocks in the stacks, headers included (at most the cache's budget).
    bytes: u64,
    /// Frees left before this process, holding no slot, looks for one again.
    retry: u16,
    slots: [[u64; DEPTH]; STACKS],
}

/// See the module documentation.
pub(crate) struct BlockCache {
    busy: AtomicBool,
    /// Set for good by [`close`](Self::close): nothing is cached, taken or claimed after.
    closed: AtomicBool,
    /// The most bytes kept (see [`MAX_CACHED_BYTES`]).
    budget: u64,
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
    /// An empty cache for an arena of `capacity` bytes.
    pub(crate) fn new(capacity: u64) -> Self {
        BlockCache {
            busy: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            budget: (capacity / 16).min(MAX_CACHED_BYTES),
            stacks: UnsafeCell::new(Stacks {
                key: 0,
                slot: NO_SLOT,
                len: [0; STACKS],
                bytes: 0,
                retry: 0,
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
            stacks.bytes = 0;
            stacks.retry = 0;
        }
        let r = f(stacks);
        self.busy.store(false, Release);
        Some(r)
    }

    /// A cached block's payload offset of class `class`, taken out of the cache and made
    /// ready for its new use by `ready` (which claims, zeroes and re-marks it, and says
    /// whether that worked); `slots` is the arena's table.
    #[inline]
    pub(crate) fn take(
        &self,
        class: Class,
        slots: &[AtomicU64],
        ready: impl FnOnce(u64) -> bool,
    ) -> Option<u64> {
        if self.closed.load(Acquire) {
            return None;
        }
        self.with_stacks(|s| {
            let i = class.index();
            let n = s.len[i] as usize;
            let slot = slots.get(s.slot)?;
            if n == 0 {
                return None;
            }
            s.len[i] = (n - 1) as u8;
            s.bytes -= class.block();
            let offset = s.slots[i][n - 1];
            let ok = ready(offset);
            // Counted out only once `ready` has re-marked the block (or given up on it),
            // by this thread, which holds the stacks (one writer of the slot at a time): a
            // process killed before that leaves a block that its slot counts as cached and
            // whose tag says cached (`CACHED` or `TAKING`), which `stats`, `check` and
            // `reclaim_dead` all then treat as cached, not as an object. Killed between the
            // re-marking and this count, it leaves one block counted both ways.
            count(slot, -1, class);
            ok.then_some(offset)
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
        let budget = self.budget;
        if self.closed.load(Acquire) {
            return Put::Refused;
        }
        self.with_stacks(|s| {
            // Checked again with the stacks held: a put that got them after `close` (and so
            // after the drain that follows it) keeps nothing.
            if self.closed.load(Acquire) {
                return Put::Refused;
            }
            let Some(slot) = slots.get(s.slot) else {
                if s.retry > 0 {
                    s.retry -= 1;
                    return Put::Refused;
                }
                s.retry = CLAIM_RETRY;
                return Put::NoSlot;
            };
            let i = class.index();
            let n = s.len[i] as usize;
            if n == DEPTH || s.bytes + class.block() > budget || !Class::mark_cached(header, class)
            {
                return Put::Refused;
            }
            count(slot, 1, class);
            s.slots[i][n] = payload;
            s.len[i] = (n + 1) as u8;
            s.bytes += class.block();
            Put::Kept
        })
        .unwrap_or(Put::Refused)
    }

    /// Takes a slot of the arena's table for this process's cache (owner tag `owner`), if
    /// it has none: a free one, else one whose owner `ended` says has ended, after `take_back`
    /// freed that owner's cached blocks. Called with the allocator's lock held, which guards
    /// the slots' `owner` words.
    pub(crate) fn claim(
        &self,
        slots: &[AtomicU64],
        owner: u32,
        mut ended: impl FnMut(u32) -> bool,
        take_back: impl FnOnce(u32) -> crate::Result<()>,
    ) -> crate::Result<()> {
        self.with_stacks(|s| {
            if s.slot != NO_SLOT || owner == 0 || self.closed.load(Acquire) {
                return Ok(());
            }
            let free = slots.iter().position(|x| slot_owner(x.load(Relaxed)) == 0);
            let i = match free {
                Some(i) => i,
                None => {
                    let stale = slots.iter().position(|x| {
                        let o = slot_owner(x.load(Relaxed));
                        o != owner && ended(o)
                    });
                    let Some(i) = stale else { return Ok(()) };
                    // Its blocks are freed first: if that fails, the slot keeps counting them.
                    take_back(slot_owner(slots[i].load(Relaxed)))?;
                    i
                }
            };
            slots[i].store(u64::from(owner), Relaxed);
            s.slot = i;
            Ok(())
        })
        .unwrap_or(Ok(()))
    }

    /// Closes this cache for good (in this process; a child forked after also finds it
    /// closed, and caches nothing either): later frees go to the arena, allocations never
    /// look here, no slot is claimed. Called before the last [`drain`](Self::drain) of a
    /// process that ends, so that a thread still freeing cannot cache anything after it.
    pub(crate) fn close(&self) {
        self.closed.store(true, Release);
    }

    /// Waits, at most `patience`, until no thread of this process is inside the cache.
    /// Called after [`close`](Self::close) and before taking the allocator's lock for the
    /// last drain: a thread inside then leaves after one `take` or `put` (each refuses a
    /// closed cache, and a take ends without waiting for anything), but it may be
    /// descheduled there for longer than [`drain`](Self::drain)'s few yields under the lock
    /// last, and the whole cache then stayed behind. A copy inherited through fork from
    /// a thread that was inside stays busy for good: the wait then ends at `patience`.
    pub(crate) fn wait_idle(&self, patience: std::time::Duration) {
        let deadline = std::time::Instant::now() + patience;
        while self.busy.load(Acquire) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
    }

    /// Whether this process holds a slot of the arena's table or any cached block
    /// (`false` too if another thread of it is using the cache right now).
    pub(crate) fn holds_any(&self) -> bool {
        self.with_stacks(|s| s.slot != NO_SLOT || s.len.iter().any(|&n| n != 0))
            .unwrap_or(false)
    }

    /// Gives every cached block back through `free` (called with the allocator's lock
    /// held, for each block's payload offset), counting each out of this process's slot of
    /// the arena's table as soon as it is freed, so that a process killed half-way leaves
    /// a slot that counts exactly the blocks still cached (give or take the one being
    /// freed); then gives the slot up if `release`. Waits a little for another thread of
    /// this process that is using the cache (and does nothing if it stays busy: a child
    /// forked while a thread of its parent held it, whose copy then holds only the
    /// parent's blocks anyway).
    pub(crate) fn drain(
        &self,
        slots: &[AtomicU64],
        release: bool,
        mut free: impl FnMut(u64) -> crate::Result<()>,
    ) -> crate::Result<()> {
        for _ in 0..1000 {
            let got = self.with_stacks(|s| {
                let slot = slots.get(s.slot);
                for i in 0..STACKS {
                    let class = Class(i as u8);
                    while s.len[i] > 0 {
                        let n = s.len[i] as usize - 1;
                        s.len[i] = n as u8;
                        s.bytes -= class.block();
                        let freed = free(s.slots[i][n]);
                        if let Some(slot) = slot {
                            count(slot, -1, class);
                        }
                        freed?;
                    }
                }
                if let Some(slot) = slot {
                    // Nothing cached: counts another process may have damaged are reset.
                    let owner = slot.load(Relaxed) & OWNER_MASK;
                    if release {
                        slot.store(0, Relaxed);
                        s.slot = NO_SLOT;
                    } else {
                        slot.store(owner, Relaxed);
                    }
                }
                Ok(())
            });
            if let Some(done) = got {
                return done;
            }
            std::thread::yield_now();
        }
        Ok(())
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

/// A slot word for `owner` counting `blocks` blocks of `bytes` bytes (clipped to the
/// fields' widths: wrong counts, never a carry into the owner).
pub(crate) fn slot_word(owner: u32, blocks: u64, bytes: u64) -> u64 {
    u64::from(owner)
        | (blocks & BLOCKS_MASK) << BLOCKS_SHIFT
        | ((bytes / GRAIN) & UNITS_MASK) << UNITS_SHIFT
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
        let cache = BlockCache::new(1 << 30);
        let c = Class::of(8, 8).unwrap();
        assert_eq!(cache.put(c, 64, &used(c, 0), &slots), Put::NoSlot);
        assert_eq!(
            cache.put(c, 64, &used(c, 0), &slots),
            Put::Refused,
            "retried later"
        );
        cache.claim(&slots, 77, |_| false, |_| Ok(())).unwrap();
        assert_eq!(slot_owner(slots[0].load(Relaxed)), 77);
        assert_eq!(cache.take(c, &slots, |_| true), None);
        for i in 0..DEPTH as u64 {
            assert_eq!(cache.put(c, 64 + i * 32, &used(c, 0), &slots), Put::Kept);
        }
        assert_eq!(cache.put(c, 1 << 20, &used(c, 0), &slots), Put::Refused);
        assert_eq!(
            slot_counts(slots[0].load(Relaxed)),
            (DEPTH as u64, DEPTH as u64 * 32)
        );
        assert_eq!(
            cache.take(c, &slots, |_| true),
            Some(64 + (DEPTH as u64 - 1) * 32)
        );
        let (blocks, bytes) = slot_counts(slots[0].load(Relaxed));
        assert_eq!((blocks, bytes), (DEPTH as u64 - 1, (DEPTH as u64 - 1) * 32));
        let mut freed = Vec::new();
        let slot = &slots[0];
        cache
            .drain(&slots, false, |p| {
                // Each block is counted out as it is freed.
                let (blocks, _) = slot_counts(slot.load(Relaxed));
                assert_eq!(blocks as usize, DEPTH - 1 - freed.len());
                freed.push(p);
                Ok(())
            })
            .unwrap();
        assert_eq!(freed.len(), DEPTH - 1);
        assert_eq!(slots[0].load(Relaxed), 77, "kept, counting nothing");
        assert_eq!(cache.put(c, 64, &used(c, 0), &slots), Put::Kept);
        let mut freed = Vec::new();
        cache
            .drain(&slots, true, |p| {
                freed.push(p);
                Ok(())
            })
            .unwrap();
        assert_eq!(freed, [64]);
        assert_eq!(slots[0].load(Relaxed), 0);
    }

    #[test]
    fn a_cached_block_loses_its_marks_and_takes_those_of_its_next_use() {
        let slots: Vec<AtomicU64> = (0..1).map(|_| AtomicU64::new(0)).collect();
        let cache = BlockCache::new(1 << 30);
        cache.claim(&slots, 77, |_| false, |_| Ok(())).unwrap();
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
        // Taken out for an Event: claimed first (still refused by handles, neither cached
        // nor taken again), then the tag is the Event's, nothing else of the lock.
        assert!(!Class::unmark_cached(&lock, c, event), "not claimed yet");
        assert!(Class::claim_cached(&lock, c));
        assert_eq!(tag_code(lock.load(Relaxed)), CACHED_CODE);
        assert!(!Class::claim_cached(&lock, c), "claimed once only");
        assert_eq!(cache.put(c, 64, &lock, &slots), Put::Refused);
        assert!(Class::unclaim_cached(&lock, c), "given back: cached again");
        assert!(Class::claim_cached(&lock, c));
        assert!(Class::unmark_cached(&lock, c, event));
        let w = lock.load(Relaxed);
        assert_eq!((w & LOCK_BLOCK, w & KIND_TAG), (0, event));
        assert!(!Class::unmark_cached(&lock, c, 0), "not cached any more");
        // A tagged block comes back as a lock block with no tag.
        let tagged = used(c, event);
        assert_eq!(cache.put(c, 128, &tagged, &slots), Put::Kept);
        assert!(Class::claim_cached(&tagged, c));
        assert!(Class::unmark_cached(&tagged, c, LOCK_BLOCK));
        assert_eq!(tagged.load(Relaxed) & (KIND_TAG | LOCK_BLOCK), LOCK_BLOCK);
    }

    #[test]
    fn a_small_arena_caches_a_16th_of_its_capacity_and_a_full_table_is_retried_late() {
        let slots: Vec<AtomicU64> = (0..2).map(|_| AtomicU64::new(0)).collect();
        let cache = BlockCache::new(64 * 1024);
        cache.claim(&slots, 5, |_| false, |_| Ok(())).unwrap();
        let c = Class::of(112, 16).unwrap();
        let kept = (0..100)
            .filter(|&i| cache.put(c, 64 + i * 128, &used(c, 0), &slots) == Put::Kept)
            .count();
        assert_eq!(kept as u64, 4096 / c.block());
        // A full table: a slot of an ended owner is taken over once its blocks are freed.
        let other = BlockCache::new(1 << 30);
        slots[1].store(6, Relaxed);
        let mut taken_back = Vec::new();
        other
            .claim(
                &slots,
                7,
                |o| o == 99,
                |o| {
                    taken_back.push(o);
                    Ok(())
                },
            )
            .unwrap();
        assert!(
            !other.holds_any() && taken_back.is_empty(),
            "nobody ended: no slot"
        );
        other
            .claim(
                &slots,
                7,
                |o| o == 6,
                |o| {
                    taken_back.push(o);
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(
            (taken_back, slot_owner(slots[1].load(Relaxed))),
            (vec![6], 7)
        );
        assert!(other.holds_any());
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
