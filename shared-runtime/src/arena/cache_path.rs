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

use crate::arena::cache::{Class, Put};
use crate::arena::header::ArenaHeader;
use crate::arena::{heap, Allocation, Arena, ArenaRef, GLOBAL};
use crate::sys::process::process_key;
use crate::Result;

impl Arena {
    /// Allocates `size` zeroed bytes aligned to `align` (at most `MAX_ALIGN`, checked by
    /// the caller), owned by the calling process, the block's first word marked with
    /// `marks` (0, `heap::LOCK_BLOCK` or a `heap::kind_tag`): from this process's cache if
    /// it holds a block of the size, from the allocator otherwise.
    #[inline]
    pub(crate) fn alloc_marked(&self, size: u64, align: u64, marks: u64) -> Result<Allocation> {
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
        Ok(Allocation::new(ArenaRef::of(self), offset).cached_as(class))
    }

    /// The cache class of a block of `size` bytes aligned to `align`, if this process
    /// caches such blocks of this arena.
    #[inline]
    fn cache_class(&self, size: u64, align: u64) -> Option<Class> {
        let class = Class::of(size, align)?;
        let inner = &self.inner;
        (inner.cache_anywhere.load(Relaxed) || inner.cache_by == process_key()).then_some(class)
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

    /// A block of class `class` from this process's cache, zeroed and marked with `marks`.
    #[inline]
    fn take_cached(&self, class: Class, marks: u64) -> Option<u64> {
        let offset = self.inner.cache.take(class, self.cache_slots())?;
        let header = self.header_word(offset);
        if !Class::is_cached_block(header.load(Relaxed), class) {
            // Another process wrote over the block's header: leave the block (it stays
            // this process's until `reclaim_dead` frees it after this process has ended).
            return None;
        }
        let words = self.base().wrapping_add(offset as usize).cast::<u64>();
        // At most 14 words: stored one by one rather than through a call to `memset`.
        for i in 0..(class.payload() / 8) as usize {
            // SAFETY: the block is a used block of this process of exactly `class.block()`
            // bytes (checked just above), inside the mapping and exposed here (see
            // `header_word`), its payload 16-aligned; it is marked cached, so no handle opens
            // it, and no handle of this process still uses it (its object was dropped).
            unsafe { words.add(i).write_volatile(0) };
        }
        // Published after the zeroes: a handle opened once the marks are there finds the
        // object zeroed (unlocked and unpoisoned, for a lock cell).
        Class::unmark_cached(header, class, marks).then_some(offset)
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
                        self.inner.cache.claim(&h.state().cache_slots, me);
                        Ok(())
                    });
                }
                Put::Refused => {}
            }
        }
        let me = self.owner_tag();
        self.with_heap(|h| h.free(payload, me))
    }

    /// Gives every block of this process's cache back to the allocator (held as `h`),
    /// keeping its slot of the arena's table unless `release`.
    pub(crate) fn flush_cache_and(&self, h: &heap::Heap<'_>, release: bool) -> Result<()> {
        if let Some(blocks) = self.inner.cache.drain(&h.state().cache_slots, release) {
            let me = self.owner_tag();
            for payload in blocks {
                h.free(payload, me)?;
            }
        }
        Ok(())
    }

    /// Gives every block of this process's cache back, keeping its slot (before counting).
    pub(crate) fn flush_cache(&self, h: &heap::Heap<'_>) -> Result<()> {
        self.flush_cache_and(h, false)
    }

    /// Flushes this process's cache of the global arena, if there is one: called when a
    /// child run by [`Process`](crate::Process) ends, so that its freed objects are free
    /// in the arena when its parent learns that it has ended.
    pub(crate) fn flush_global_cache() {
        let published = GLOBAL.load(Acquire);
        if !published.is_null() {
            // SAFETY: a non-null pointer came from `Box::into_raw` in `try_global` and is
            // never freed.
            let global = unsafe { &*published };
            if !global.inner.cache.holds_any() {
                return;
            }
            // Nobody to report a failure to: the blocks then stay this process's, and are
            // reclaimed as a dead process's.
            let _ = global.with_heap(|h| global.flush_cache_and(h, true));
        }
    }
}
