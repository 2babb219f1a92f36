//! The arena's side of the cache of freed small blocks (`cache.rs`): allocation that tries
//! the cache first, freeing into it, and giving its blocks back.
//!
//! A block in the cache stays a used block owned by this process, its kind marks replaced
//! by [`heap::CACHED`] (so no handle opens it and nothing adopts it); taking it out for a
//! new object zeroes its payload and gives it the new object's marks (none for data,
//! `LOCK_BLOCK` for a lock or a one-block locked value, a `KIND_TAG` for an unnamed
//! synchronization object). Both changes are one atomic read-modify-write of the block's
//! first word, made without the allocator's lock; the allocator changes that word of a used
//! block it does not own only through `Heap::set_prev_used`, also one read-modify-write,
//! so neither undoes the other.
//!
//! Only blocks this process allocated itself (under the lock, which first exposed the
//! arena's committed prefix in this process: `heap_lock.rs`) are ever cached, and a cached
//! block is used, so never punched: the lock-free paths touch only memory this process
//! already has accessible, and never reserve pages.

use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed},
};

use crate::arena::cache::{slot_owner, slot_word, Class, Put};
use crate::arena::check::walk;
use crate::arena::header::ArenaHeader;
use crate::arena::heap::{tag_code, CACHED_CODE, HDR, USED};
use crate::arena::namespace::FOREIGN_OWNER;
use crate::arena::registry::REGISTRY_OWNER;
use crate::arena::slab::{mark_index, stride_index, MARK_KINDS};
use crate::arena::{heap, Arena, Fresh, GLOBAL};
use crate::sys::liveness::process_ended;
use crate::sys::process::process_key;
use crate::{Error, Result};

/// The `process_key` of the process that caches freed blocks of the global arena: the one
/// that created it, or a child run by [`Process`](crate::Process) (set as it starts). A
/// child forked any other way inherits its parent's key, so never caches.
static GLOBAL_CACHER: AtomicU64 = AtomicU64::new(0);

/// Lets this process cache freed blocks of the global arena (it will give them back).
pub(crate) fn cache_global_blocks_here() {
    GLOBAL_CACHER.store(process_key(), Relaxed);
}

/// Frees the blocks that the process with owner tag `owner`, proven ended, left in its
/// cache (the allocator held as `h`): those of its used blocks marked cached.
fn free_cached_of(h: &heap::Heap<'_>, owner: u32) -> Result<()> {
    let mut cached = Vec::new();
    walk(h, |b, _, w| {
        // A block whose owner word is unreadable (garbage) is nobody's: skipped.
        if w & USED != 0 && tag_code(w) == CACHED_CODE && h.owner_of(b).ok() == Some(owner) {
            cached.push(b);
        }
        Ok(())
    })?;
    for b in cached {
        h.free(b + HDR, owner)?;
    }
    Ok(())
}

impl heap::Heap<'_> {
    /// Allocates `size` bytes aligned to `align` for process `owner` (see
    /// `Heap::alloc_once`). If the arena is full and this process's own cache of it holds
    /// blocks, they are given back and the allocation is tried once more. (Other
    /// processes' caches are out of reach: at most `MAX_CACHED_BYTES`, or a 16th of the
    /// capacity, each.) Every allocation under the lock goes through here: objects,
    /// named objects and their registry entries, open records.
    pub(crate) fn alloc(&self, size: u64, align: u64, owner: u32) -> Result<u64> {
        match self.alloc_once(size, align, owner) {
            Err(e @ Error::OutOfMemory { .. }) => {
                let flushed = self.arena.caches() && self.arena.inner.cache.holds_any();
                if flushed {
                    self.arena.flush_cache(self)?;
                }
                // Empty slabs (of every process) go back too.
                if self.sweep_slabs()? > 0 || flushed {
                    self.alloc_once(size, align, owner)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }
}

impl Arena {
    /// Allocates `size` zeroed bytes aligned to `align` (at most `MAX_ALIGN`, checked by
    /// the caller), owned by the calling process, the block's first word marked with
    /// `marks` (0, `heap::LOCK_BLOCK` or a `heap::kind_tag`): from this process's cache if
    /// it holds a block of the size, from the allocator otherwise. The caller makes the
    /// block's handle (`Allocation::fresh`) where it keeps it: a whole `Allocation` passed
    /// back through `Result`s was copied twice, and the copies stalled on the stores that
    /// had just made it.
    #[inline]
    pub(crate) fn alloc_marked(&self, size: u64, align: u64, marks: u64) -> Result<Fresh> {
        if crate::arena::crash::slabs_on() {
            if let (Some(si), Some(mi)) = (stride_index(size, align), mark_index(marks)) {
                if let Some(offset) = self.alloc_slot(si, mi)? {
                    let class = Some(Class::slot(si * MARK_KINDS + mi));
                    return Ok(Fresh { offset, class });
                }
            }
        }
        let class = self.cache_class(size, align);
        let offset = match class.and_then(|c| self.take_cached(c, marks)) {
            Some(offset) => offset,
            None => self.with_heap(|h| {
                let at = h.alloc(size, align, self.owner_tag())?;
                if marks != 0 {
                    // The block is this thread's alone (just allocated, the lock held).
                    let b = at - heap::HDR;
                    h.set_word(b, h.word(b) | marks);
                }
                Ok(at)
            })?,
        };
        Ok(Fresh { offset, class })
    }

    /// The cache class of a block of `size` bytes aligned to `align`, if this process
    /// caches such blocks of this arena.
    #[inline]
    fn cache_class(&self, size: u64, align: u64) -> Option<Class> {
        let class = Class::of(size, align)?;
        self.caches().then_some(class)
    }

    /// Whether this process caches freed blocks of this arena: only a process that gives
    /// its cache back when it ends (see `cache.rs`, "Who caches"): the one that made this
    /// handle family, or for the global arena the process that created it and the
    /// children run by [`Process`](crate::Process).
    #[inline]
    pub(crate) fn caches(&self) -> bool {
        let inner = &self.inner;
        let by = if inner.cache_anywhere.load(Relaxed) {
            GLOBAL_CACHER.load(Relaxed)
        } else {
            inner.cache_by
        };
        by == process_key()
    }

    /// The first word of the block whose payload is at `payload`, a block this process
    /// allocated from this arena (so inside its exposed prefix).
    #[inline]
    fn header_word(&self, payload: u64) -> &AtomicU64 {
        // SAFETY: `payload` was handed out by this arena's allocator to this process (the
        // callers only pass such offsets: see `take_cached` and `free_owned`), so its
        // header word lies inside the mapping, 8-aligned, and was exposed in this process
        // when it was allocated; the mapping lives as long as `self`. Every access to the
        // word is atomic (`Heap::word`, `Heap::set_word`, `Heap::set_prev_used`).
        unsafe { AtomicU64::from_ptr(self.base().add((payload - heap::HDR) as usize).cast()) }
    }

    /// The second word of the block whose payload is at `payload` (its owner tag and
    /// canary), a block this process allocated from this arena.
    #[inline]
    fn owner_word(&self, payload: u64) -> &AtomicU64 {
        // SAFETY: as in `header_word`: the block's header is its first two words, both
        // inside the mapping and exposed here; every access to them is atomic.
        unsafe { AtomicU64::from_ptr(self.base().add((payload - heap::HDR + 8) as usize).cast()) }
    }

    /// A block of class `class` from this process's cache, zeroed and marked with `marks`.
    #[inline]
    fn take_cached(&self, class: Class, marks: u64) -> Option<u64> {
        let slots = self.cache_slots();
        self.inner.cache.take(class, slots, |offset| {
            self.ready_cached(offset, class, marks)
        })
    }

    /// Makes the block at `offset`, just taken out of this process's cache, ready for a
    /// new use: claimed, zeroed, marked with `marks`. Whether that worked.
    #[inline]
    fn ready_cached(&self, offset: u64, class: Class, marks: u64) -> bool {
        let header = self.header_word(offset);
        // Claimed before anything is written: only a block still marked cached is zeroed.
        if !Class::claim_cached(header, class) {
            // Another process wrote over the block's header: leave the block (it stays
            // this process's until `reclaim_dead` frees it after this process has ended).
            return false;
        }
        // The owner word too must still name this process (it could only name another if
        // another process wrote it, or freed the block as a dead process's and it was
        // allocated and cached again: then it is that process's, and is left to it).
        let owner = self.owner_word(offset).load(Relaxed) as u32;
        if owner != self.owner_tag() {
            Class::unclaim_cached(header, class);
            return false;
        }
        let words = self.base().wrapping_add(offset as usize).cast::<u64>();
        // At most 14 words: stored one by one rather than through a call to `memset`.
        for i in 0..(class.payload() / 8) as usize {
            // SAFETY: the block is a used block of this process of exactly `class.block()`
            // bytes (claimed just above, its owner word checked), inside the mapping and
            // exposed here (see `header_word`), its payload 16-aligned; it is marked
            // cached, so no handle opens it, and no handle of this process still uses it
            // (its object was dropped).
            unsafe { words.add(i).write_volatile(0) };
        }
        // Published after the zeroes: a handle opened once the marks are there finds the
        // object zeroed (unlocked and unpoisoned, for a lock cell).
        Class::unmark_cached(header, class, marks)
    }

    /// The arena's table of what processes hold in their caches: atomics, read and
    /// written without the allocator's lock (see `cache.rs`).
    fn cache_slots(&self) -> &[AtomicU64] {
        let header = self.base().cast::<ArenaHeader>();
        // SAFETY: the header lies at the start of the mapping, which lives as long as
        // `self`; only the table's atomics are referenced, not the `Cell`s of the heap
        // state, which only the allocator lock's holder touches.
        unsafe { &*std::ptr::addr_of!((*header).heap.cache_slots) }
    }

    /// Frees the used block at `payload`, owned by the calling process and allocated as
    /// `class` (see `Allocation`), or keeps it in this process's cache.
    pub(crate) fn free_owned(&self, payload: u64, class: Option<Class>) -> Result<()> {
        if let Some(si) = class.and_then(Class::slot_index) {
            return self.free_slot(payload, si);
        }
        if let Some(class) = class {
            let header = self.header_word(payload);
            match self
                .inner
                .cache
                .put(class, payload, header, self.cache_slots())
            {
                Put::Kept => return Ok(()),
                Put::NoSlot => {
                    let me = self.owner_tag();
                    return self.with_heap(|h| {
                        h.free(payload, me)?;
                        // The block is freed: a slot not claimed (garbage in a stale
                        // owner's blocks) only means this process does not cache yet.
                        let _ = self.claim_slot(h, me);
                        Ok(())
                    });
                }
                Put::Refused => {}
            }
        }
        self.with_heap(|h| self.free_adopted(h, payload))
    }

    /// Takes a slot of the arena's table for this process's cache (the allocator held as
    /// `h`): a free one, or one of a process proven ended, whose cached blocks are then
    /// freed (so that processes that ended without giving their caches back never keep
    /// the others from caching).
    fn claim_slot(&self, h: &heap::Heap<'_>, me: u32) -> Result<()> {
        let foreign = self.foreign();
        let ended = |owner: u32| {
            !foreign && owner & FOREIGN_OWNER == 0 && owner != REGISTRY_OWNER && {
                i32::try_from(owner).is_ok_and(|pid| process_ended(pid, None))
            }
        };
        self.inner
            .cache
            .claim(&h.state().cache_slots, me, ended, |dead| {
                free_cached_of(h, dead)
            })
    }

    /// Sets the counts of every slot of the arena's table whose owner is proven ended to
    /// what the heap holds: its used blocks tagged as cached (the tags are authoritative;
    /// a process killed while giving its cache back leaves its slot's counts behind).
    /// Called after a rebuild, with the allocator's lock held as `h`. A cached block whose
    /// owner word is unreadable (garbage) is counted for nobody; if the heap cannot be
    /// walked, the slots are left as they were (only counters: see `with_heap`).
    pub(crate) fn recount_dead_caches(&self, h: &heap::Heap<'_>) -> Result<()> {
        if self.foreign() {
            return Ok(());
        }
        let slots = &h.state().cache_slots;
        let mut dead: Vec<(usize, u32, u64, u64)> = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            let owner = slot_owner(slot.load(Relaxed));
            let provably = owner != 0 && owner & FOREIGN_OWNER == 0 && owner != REGISTRY_OWNER;
            if provably && i32::try_from(owner).is_ok_and(|pid| process_ended(pid, None)) {
                dead.push((i, owner, 0, 0));
            }
        }
        if dead.is_empty() {
            return Ok(());
        }
        walk(h, |b, size, w| {
            if w & USED != 0 && tag_code(w) == CACHED_CODE {
                let Ok(owner) = h.owner_of(b) else {
                    return Ok(());
                };
                if let Some(d) = dead.iter_mut().find(|d| d.1 == owner) {
                    (d.2, d.3) = (d.2 + 1, d.3 + size);
                }
            }
            Ok(())
        })?;
        for (i, owner, blocks, bytes) in dead {
            slots[i].store(slot_word(owner, blocks, bytes), Relaxed);
        }
        Ok(())
    }

    /// Gives every block of this process's cache back to the allocator (held as `h`),
    /// keeping its slot of the arena's table unless `release`.
    pub(crate) fn flush_cache_and(&self, h: &heap::Heap<'_>, release: bool) -> Result<()> {
        let me = self.owner_tag();
        self.inner
            .cache
            .drain(&h.state().cache_slots, release, |payload| {
                h.free(payload, me)
            })
    }

    /// Gives every block of this process's cache back, keeping its slot (before counting).
    pub(crate) fn flush_cache(&self, h: &heap::Heap<'_>) -> Result<()> {
        self.flush_cache_and(h, false)
    }

    /// Closes this process's cache of the global arena for good, then gives its blocks
    /// and its slot back, if this process caches them: called when a child run by
    /// [`Process`](crate::Process) ends (so that its freed objects are free in the arena
    /// when its parent learns that it has ended), and by the `exit` handler. Closed first,
    /// so that a thread still freeing cannot cache anything after the drain; the drain
    /// then runs whatever `holds_any` says (which is `false` while another thread uses the
    /// cache). It takes the allocator's lock, waiting for it at most the allocator's
    /// patience.
    pub(crate) fn flush_global_cache() {
        let published = GLOBAL.load(Acquire);
        if !published.is_null() {
            // SAFETY: a non-null pointer came from `Box::into_raw` in `try_global` and is
            // never freed.
            let global = unsafe { &*published };
            if !global.caches() {
                return;
            }
            global.inner.cache.close();
            // A thread still freeing may be inside the cache: let it leave (bounded) before
            // the drain, which under the allocator's lock only yields a little.
            global
                .inner
                .cache
                .wait_idle(std::time::Duration::from_millis(100));
            // Nobody to report a failure to: the blocks then stay this process's, and are
            // reclaimed as a dead process's.
            let _ = global.with_heap(|h| global.flush_cache_and(h, true));
        }
    }
}
