//! Counters of an arena's allocator.

use std::sync::atomic::Ordering::Relaxed;

use crate::arena::heap::Heap;
use crate::arena::slab::SLAB_BLOCK;
use crate::arena::{slot_counts, slot_owner};
use crate::Result;

/// A snapshot of an arena's allocator counters, from [`Arena::stats`](crate::Arena::stats).
///
/// ```
/// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
/// let s = arena.stats()?;
/// assert_eq!(s.capacity, 1 << 20);
/// assert_eq!((s.bytes_in_use, s.live_allocations), (0, 0));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// The most bytes the arena can hold.
    pub capacity: u64,
    /// Bytes of blocks in use by objects, headers included (blocks kept in processes'
    /// caches of freed small blocks are not: see `cached_bytes`). Small objects are slots
    /// of slabs (4096-byte blocks of equal slots): every slab holding at least one object
    /// counts whole, its free slots included (a `RawValue<i32>` takes an 8-byte slot, 506
    /// to a slab).
    pub bytes_in_use: u64,
    /// Bytes the heap spans (used and free blocks), from its start to its high-water mark.
    pub heap_bytes: u64,
    /// The heap's high-water mark (in 1 MiB steps): bytes reserved from the system on a
    /// size-limited file system (a named segment on `/dev/shm`); on an unlimited one (every
    /// unnamed arena) pages in this span are paid for only once touched.
    pub reserved_bytes: u64,
    /// Objects currently allocated.
    pub live_allocations: u64,
    /// Blocks of freed small objects that other processes keep in their caches for their
    /// next allocations (the calling process gives its own back before counting), at most
    /// 70 KiB per process (or a 16th of the capacity). They stay allocated to their
    /// process; a process that ended without giving them back (killed) still counts here
    /// until [`reclaim_dead`](crate::Arena::reclaim_dead) frees them (or a new caching
    /// process takes its place in the table). They are not counted in `live_allocations`.
    pub cached_blocks: u64,
    /// Bytes of those blocks, headers included (not counted in `bytes_in_use`).
    pub cached_bytes: u64,
    /// Slabs of small objects (4096-byte blocks of equal slots) in the heap.
    pub slabs: u64,
    /// Bytes of slabs holding no object (not counted in `bytes_in_use`): such a slab is
    /// given back to the heap by `stats`, `check`, `reclaim_dead`, or when an allocation
    /// finds the arena full, unless a claimer is inside it at that moment.
    pub slab_spare_bytes: u64,
    /// Allocations made since the arena was created.
    pub allocations: u64,
    /// Frees made since the arena was created.
    pub frees: u64,
}

impl ArenaStats {
    pub(crate) fn read(h: &Heap<'_>) -> Result<Self> {
        let st = h.state();
        let (used_blocks, used_bytes) = (st.used_blocks.get(), st.used_bytes.get());
        let (blocks, bytes) = cached(h);
        let c = h.slab_census()?;
        let slab_bytes = c.slabs * SLAB_BLOCK;
        // The slab map (`slab_map.rs`) is one used block, no object: spare slab bytes.
        let map = h.slab_map_bytes();
        let (slab_blocks, slab_bytes_all) = (c.slabs + u64::from(map > 0), slab_bytes + map);
        let claims = st.slot_allocations.get().wrapping_add(c.claims);
        // Objects and cached blocks together, as the heap holds them (a slab is no object,
        // its used slots are); the table's counts (garbage there gives wrong counts) are
        // capped by them, so that the two always add up to what `check` finds.
        let all_blocks = used_blocks.saturating_sub(slab_blocks) + c.used;
        let all_bytes = used_bytes.saturating_sub(slab_bytes_all) + c.used_bytes;
        let (blocks, bytes) = (blocks.min(all_blocks), bytes.min(all_bytes));
        Ok(ArenaStats {
            capacity: h.mem.len(),
            bytes_in_use: all_bytes - bytes,
            heap_bytes: st.top.get() - st.start.get(),
            reserved_bytes: st.committed.get(),
            live_allocations: all_blocks - blocks,
            cached_blocks: blocks,
            cached_bytes: bytes,
            slabs: c.slabs,
            slab_spare_bytes: slab_bytes.saturating_sub(c.used_bytes) + map,
            allocations: st.allocations.get().wrapping_add(claims),
            // Every slot claimed and no longer in use was freed.
            frees: st.frees.get().wrapping_add(claims.saturating_sub(c.used)),
        })
    }
}

/// The blocks and bytes that processes' caches of freed small blocks hold, as their slots
/// of the arena's table say, at most what the heap's counters count as used. Counts
/// another process writes as it goes: garbage there gives wrong counts, never an overflow.
pub(crate) fn cached(h: &Heap<'_>) -> (u64, u64) {
    let st = h.state();
    let (mut blocks, mut bytes) = (0u64, 0u64);
    for word in st.cache_slots.iter().map(|s| s.load(Relaxed)) {
        if slot_owner(word) != 0 {
            let (b, n) = slot_counts(word);
            (blocks, bytes) = (blocks + b, bytes + n);
        }
    }
    (
        blocks.min(st.used_blocks.get()),
        bytes.min(st.used_bytes.get()),
    )
}
