//! Counters of an arena's allocator.

use crate::arena::heap::Heap;

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
    /// Bytes of blocks in use, headers included.
    pub bytes_in_use: u64,
    /// Bytes the heap spans (used and free blocks), from its start to its high-water mark.
    pub heap_bytes: u64,
    /// The heap's high-water mark (in 1 MiB steps): bytes reserved from the system on a
    /// size-limited file system (a named segment on `/dev/shm`); on an unlimited one (every
    /// unnamed arena) pages in this span are paid for only once touched.
    pub reserved_bytes: u64,
    /// Objects currently allocated.
    pub live_allocations: u64,
    /// Allocations made since the arena was created.
    pub allocations: u64,
    /// Frees made since the arena was created.
    pub frees: u64,
}

impl ArenaStats {
    pub(crate) fn read(h: &Heap<'_>) -> Self {
        let st = h.state();
        ArenaStats {
            capacity: h.mem.len(),
            bytes_in_use: st.used_bytes.get(),
            heap_bytes: st.top.get() - st.start.get(),
            reserved_bytes: st.committed.get(),
            live_allocations: st.used_blocks.get(),
            allocations: st.allocations.get(),
            frees: st.frees.get(),
        }
    }
}
