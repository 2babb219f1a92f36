//! Checking the allocator's invariants, and rebuilding its state after a crash.

use crate::arena::heap::{
    bin_index, tag_code, Heap, BINS, CACHED_CODE, HDR, NBINS, PREV_USED, PUNCHED, USED,
};
use crate::arena::slab::SLAB_CODE;
use crate::{Error, Result};

/// What [`Arena::check`](crate::Arena::check) found: the heap's blocks, all verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapReport {
    /// Blocks in use by objects (not counting `cached_blocks`).
    pub used_blocks: u64,
    /// Bytes of blocks in use by objects, headers included.
    pub used_bytes: u64,
    /// Free blocks (reusable holes below the high-water mark).
    pub free_blocks: u64,
    /// Bytes of free blocks.
    pub free_bytes: u64,
    /// Bytes from the heap's start to its high-water mark:
    /// `used_bytes + cached_bytes + free_bytes + slab_spare_bytes`.
    pub heap_bytes: u64,
    /// Blocks of freed small objects that other processes keep in their caches (see
    /// [`ArenaStats::cached_blocks`](crate::arena::ArenaStats::cached_blocks)): used blocks
    /// that hold no object, as their tags say. The calling process gives its own back
    /// before checking.
    pub cached_blocks: u64,
    /// Bytes of those blocks, headers included.
    pub cached_bytes: u64,
    /// Slabs of small objects (see [`ArenaStats::slabs`](crate::arena::ArenaStats::slabs)):
    /// their used slots count in `used_blocks` and `used_bytes` as `stats` counts them.
    pub slabs: u64,
    /// Bytes of slabs holding no object (not counted in `used_bytes`):
    /// `heap_bytes = used_bytes + cached_bytes + free_bytes + slab_spare_bytes`.
    pub slab_spare_bytes: u64,
}

fn broken(what: String) -> Error {
    Error::Corrupted(what)
}

/// One pass over the block chain: each block's offset, size and header word.
pub(crate) fn walk(h: &Heap<'_>, mut f: impl FnMut(u64, u64, u64) -> Result<()>) -> Result<()> {
    let st = h.state();
    let (mut b, top) = (st.start.get(), st.top.get());
    while b < top {
        let size = h.size_of(b)?;
        f(b, size, h.word(b))?;
        b += size;
    }
    if b != top {
        return Err(broken(format!(
            "the last block ends at {b}, past the heap's end {top}"
        )));
    }
    Ok(())
}

/// Verifies every invariant listed in `heap.rs`.
pub(crate) fn verify(h: &Heap<'_>) -> Result<HeapReport> {
    let st = h.state();
    h.slab_map_checked()?;
    let mut r = HeapReport {
        used_blocks: 0,
        used_bytes: 0,
        free_blocks: 0,
        free_bytes: 0,
        heap_bytes: 0,
        cached_blocks: 0,
        cached_bytes: 0,
        slabs: 0,
        slab_spare_bytes: 0,
    };
    // The used blocks as the allocator's counters count them (a slab is one).
    let (mut raw_blocks, mut raw_bytes) = (0, 0);
    let mut prev_used = true;
    walk(h, |b, size, w| {
        if (w & PREV_USED != 0) != prev_used {
            return Err(broken(format!(
                "block {b}: PREV_USED flag disagrees with its neighbour"
            )));
        }
        if w & USED != 0 {
            h.owner_of(b)?;
            (raw_blocks, raw_bytes) = (raw_blocks + 1, raw_bytes + size);
            prev_used = true;
            if let Some(spare) = h.check_slab_metadata(b, size, w)? {
                r.slab_spare_bytes += spare;
                return Ok(());
            }
            if tag_code(w) == SLAB_CODE {
                if !h.is_slab_block(b) {
                    return Err(broken(format!("block {b} is tagged as a slab but is none")));
                }
                let (used, bytes) = h.verify_slab(b + HDR)?;
                r.slabs += 1;
                r.used_blocks += used;
                r.used_bytes += bytes;
                r.slab_spare_bytes += size - bytes;
                return Ok(());
            }
            // A block kept in a process's cache of freed blocks holds no object: its tag,
            // not the table of caches, says so.
            if tag_code(w) == CACHED_CODE {
                r.cached_blocks += 1;
                r.cached_bytes += size;
            } else {
                r.used_blocks += 1;
                r.used_bytes += size;
            }
            return Ok(());
        }
        if !prev_used {
            return Err(broken(format!(
                "block {b}: two free blocks in a row were not merged"
            )));
        }
        if h.word(b + size - 8) != size {
            return Err(broken(format!("block {b}: footer disagrees with header")));
        }
        // Freed memory is zero: allocation relies on it.
        let payload_end = b + size - 8;
        let mut off = b + 24;
        while off < payload_end {
            if h.word(off) != 0 {
                return Err(broken(format!("free block {b}: byte {off} is not zero")));
            }
            off += 8;
        }
        r.free_blocks += 1;
        r.free_bytes += size;
        prev_used = false;
        Ok(())
    })?;
    if !prev_used {
        return Err(broken(
            "the block before the heap's end is free but was not merged".into(),
        ));
    }
    r.heap_bytes = st.top.get() - st.start.get();
    let (used_blocks, used_bytes) = (raw_blocks, raw_bytes);
    if used_bytes + r.free_bytes != r.heap_bytes {
        return Err(broken(format!(
            "used {used_bytes} + free {} != heap {} bytes",
            r.free_bytes, r.heap_bytes
        )));
    }
    if (used_blocks, used_bytes) != (st.used_blocks.get(), st.used_bytes.get()) {
        return Err(broken(format!(
            "counters say {} blocks / {} bytes in use, the heap holds {used_blocks} / \
             {used_bytes}",
            st.used_blocks.get(),
            st.used_bytes.get(),
        )));
    }
    let mut listed = 0;
    if (BINS..NBINS).any(|i| st.bitmap[i / 64].get() & (1 << (i % 64)) != 0) {
        return Err(broken(
            "the bitmap marks a bin no block size reaches".into(),
        ));
    }
    for i in 0..BINS {
        let mut b = st.bins[i].get();
        let nonempty = st.bitmap[i / 64].get() & (1 << (i % 64)) != 0;
        if nonempty != (b != 0) {
            return Err(broken(format!("bin {i}: bitmap disagrees with the list")));
        }
        let mut prev = 0;
        while b != 0 {
            let b_ok = h.block(b)?;
            let w = h.word(b_ok);
            let size = h.size_of(b_ok)?;
            if w & USED != 0 || bin_index(size) != i || h.word(b_ok + 16) != prev {
                return Err(broken(format!("bin {i}: block {b} is listed wrongly")));
            }
            listed += 1;
            if listed > r.free_blocks {
                return Err(broken(
                    "the free lists hold more blocks than the heap".into(),
                ));
            }
            prev = b;
            b = h.word(b_ok + 8);
        }
    }
    if listed != r.free_blocks {
        return Err(broken(format!(
            "{} free blocks but {listed} listed",
            r.free_blocks
        )));
    }
    // The unused tail reads as zero (spot-check its first bytes).
    let tail_end = (st.top.get() + 4096).min(st.committed.get());
    let mut off = st.top.get();
    while off < tail_end {
        if h.word(off) != 0 {
            return Err(broken(format!("unused tail: byte {off} is not zero")));
        }
        off += 8;
    }
    Ok(r)
}

/// Rebuilds the free lists, flags and counters from the chain of block sizes, after a
/// process died holding the arena's lock. Blocks marked used stay used (their owners may be
/// alive); free neighbours are merged, free memory is zeroed again, and the unused tail is
/// scrubbed.
pub(crate) fn rebuild(h: &Heap<'_>) -> Result<()> {
    let st = h.state();
    for bin in &st.bins {
        bin.set(0);
    }
    for w in &st.bitmap {
        w.set(0);
    }
    let (mut used_blocks, mut used_bytes) = (0, 0);
    let mut frees: Vec<(u64, u64)> = Vec::new(); // merged free runs
    let mut prev_used = true;
    walk(h, |b, size, w| {
        if w & USED != 0 {
            used_blocks += 1;
            used_bytes += size;
            // One read-modify-write: the owner of a cached block may change its other
            // flags meanwhile (`cache.rs`).
            h.set_prev_used(b, prev_used);
            prev_used = true;
        } else {
            match frees.last_mut() {
                Some((start, len)) if !prev_used && *start + *len == b => *len += size,
                _ => frees.push((b, size)),
            }
            prev_used = false;
        }
        Ok(())
    })?;
    st.used_blocks.set(used_blocks);
    st.used_bytes.set(used_bytes);
    let top = st.top.get();
    if let Some(&(start, len)) = frees.last() {
        if start + len == top {
            frees.pop();
            st.top.set(start);
        }
    }
    h.scrub_tail(st.top.get(), st.committed.get());
    for (start, len) in frees {
        // Pages of the run may have been punched: mark it so they are reserved again
        // before reuse (reserving a page that is present costs little).
        // The run becomes one block first (a single store), so that the chain stays
        // walkable however far this loop gets; then its interior is cleared.
        h.set_word(start, len | PREV_USED | PUNCHED);
        h.zero_payload(start, start + HDR, start + len);
        h.set_word(start + 8, 0);
        h.set_word(start + len - 8, len);
        h.insert(start, len)?;
    }
    Ok(())
}
