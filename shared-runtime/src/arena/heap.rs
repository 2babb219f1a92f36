//! The allocator: boundary-tag blocks with segregated free lists, all stored in the arena.
//!
//! Everything here runs with the arena's robust mutex held (see `arena::Arena::heap`), so
//! the bookkeeping words need no ordering; they are still read and written as relaxed
//! atomics (plain moves on x86-64), because the owner of a cached block changes its first
//! word without the lock (`cache.rs`): that is why a neighbour's `PREV_USED` bit is
//! changed with an atomic read-modify-write ([`Heap::set_prev_used`]), which cannot undo
//! the owner's concurrent change. Offsets, never pointers,
//! are stored, so the state means the same thing in every process that maps the arena.
//!
//! # Block format (all offsets and sizes are multiples of [`GRAIN`])
//! ```text
//! used block:  [size|flags][owner pid][payload ...................................]
//! free block:  [size|flags][next free][prev free][zeroes ...............][size]
//!               word 0      word 1     word 2                              footer
//! ```
//! `flags` are [`USED`], [`PREV_USED`] (the block before this one is in use, so there is no
//! footer to read), [`PUNCHED`] (some pages of this free block were returned to the OS
//! and must be reserved again before they are handed out, where pages are reserved),
//! [`LOCK_BLOCK`] (this used block is an unnamed lock cell) and, in a high bit of the word, [`RECORD_BLOCK`] (this
//! used block is an open record), and in six high bits [`KIND_TAG`] (the kind of the unnamed
//! synchronization object made in this used block; all six set, [`CACHED`]: the block's
//! object was freed and its owner keeps the block in its cache, `cache.rs`). All marks are
//! cleared when the block is freed.
//!
//! # Invariants (checked by `check::verify`)
//! 1. Blocks tile `[start, top)` exactly; `[top, committed)` is zero and never handed out;
//!    `[0, committed)` is accessible in every process while it holds the lock.
//! 2. No two free blocks are adjacent, and the block before `top` is never free.
//! 3. Every free block is in exactly the bin of its size, and its payload is zero except its
//!    links and footer: freed memory is zeroed when freed, so allocation never has to.
//! 4. `PREV_USED` of every block tells the truth about its predecessor.
//!
//! Every change to the chain of block sizes is one aligned 8-byte store, ordered with
//! compiler fences, so a process killed at any instruction leaves a walkable chain; the
//! free lists and counters are then rebuilt from it by `check::rebuild`.

use std::cell::Cell;
use std::sync::atomic::{compiler_fence, AtomicU64, Ordering};

pub(crate) use crate::arena::bins::bin_index;
use crate::arena::ArenaHeader;
use crate::sys::memory::SharedMemory;
use crate::{Error, Result};

/// Allocation granularity and block alignment.
pub(crate) const GRAIN: u64 = 16;
/// Bytes of block header before every payload.
pub(crate) const HDR: u64 = 16;
/// Smallest block: header plus two free-list links (the footer then overlaps nothing).
pub(crate) const MIN_BLOCK: u64 = 32;
pub(crate) const USED: u64 = 1;
pub(crate) const PREV_USED: u64 = 2;
pub(crate) const PUNCHED: u64 = 4;
/// In a used block: it holds a lock cell made by `Arena::alloc_lock_cell`, so a handle may
/// name it as a lock (no user data ever sits in it). Cleared when the block is freed.
pub(crate) const LOCK_BLOCK: u64 = 8;
/// In a used block: it is an open record (see `records.rs`), so it is never opened as data
/// by handle and only a block so marked counts as a record. A high bit, as the four low
/// ones are taken; no block size comes near it. Cleared when the block is freed.
pub(crate) const RECORD_BLOCK: u64 = 1 << 62;
/// In a used block: the [`ObjectKind`](crate::arena::ObjectKind) code of the unnamed
/// synchronization object made in it (`Arena::alloc_tagged`), 0 for any other block, so
/// that a handle of such a kind opens only a block made as that kind, and a data handle
/// never opens one (`handle::resolve`). Six high bits; cleared when the block is freed.
pub(crate) const KIND_TAG: u64 = 0x3f << KIND_TAG_SHIFT;
/// The lowest bit of [`KIND_TAG`].
pub(crate) const KIND_TAG_SHIFT: u32 = 56;
/// The [`KIND_TAG`] bits of a block made for an unnamed object of `kind`.
pub(crate) fn kind_tag(kind: crate::arena::ObjectKind) -> u64 {
    // Every code is below 64 (`ObjectKind::code`).
    u64::from(kind.code()) << KIND_TAG_SHIFT & KIND_TAG
}

/// The kind code a used block's first word `w` is tagged with (0: untagged).
pub(crate) fn tag_code(w: u64) -> u32 {
    ((w & KIND_TAG) >> KIND_TAG_SHIFT) as u32
}

/// The [`KIND_TAG`] code of a used block whose object was freed and whose owner keeps it in
/// its cache of freed small blocks (`cache.rs`): no kind's code, so no handle opens it, and
/// [`Heap::used_block`] reports it as freed. Set and cleared by the owner without the lock.
pub(crate) const CACHED_CODE: u32 = 0x3f;
/// The [`KIND_TAG`] bits of a cached block (see [`CACHED_CODE`]).
pub(crate) const CACHED: u64 = KIND_TAG;

/// Every flag bit of a block's first word; the rest is the block's size.
pub(crate) const FLAGS: u64 = (GRAIN - 1) | RECORD_BLOCK | KIND_TAG;
/// Number of free-list bins in the format (the bitmap's bits).
pub(crate) const NBINS: usize = 128;
/// Bins that block sizes reach: `bin_index(u64::MAX) + 1`. The words of the others hold
/// cache slots (`HeapState::cache_slots`); the format and its version stay as they were.
pub(crate) const BINS: usize = 117;
/// Free runs at least this large have their whole pages returned to the OS.
pub(crate) const PUNCH_MIN: u64 = 256 * 1024;
/// The never-used tail is reserved from the OS in steps of this many bytes.
const COMMIT_STEP: u64 = 1 << 20;

/// The allocator's state, stored in the arena header.
///
/// Fields are `Cell`s: the state is only ever reached through a shared reference made
/// while the arena lock is held, by one thread at a time.
#[repr(C)]
pub(crate) struct HeapState {
    pub(crate) start: Cell<u64>,
    pub(crate) top: Cell<u64>,
    pub(crate) committed: Cell<u64>,
    pub(crate) used_bytes: Cell<u64>,
    pub(crate) used_blocks: Cell<u64>,
    pub(crate) allocations: Cell<u64>,
    pub(crate) frees: Cell<u64>,
    pub(crate) bitmap: [Cell<u64>; NBINS / 64],
    /// List heads of the bins that block sizes reach (`bin_index` of the largest size).
    pub(crate) bins: [Cell<u64>; BINS],
    /// The words of the bins no block size reaches, which hold what processes keep in
    /// their caches of freed small blocks (see `cache.rs`): one packed word per process
    /// (handle family), written without the lock.
    pub(crate) cache_slots: [AtomicU64; NBINS - BINS],
    /// Payload offset of the newest named-object entry, 0 if none (see `registry.rs`).
    pub(crate) registry: Cell<u64>,
    /// Non-zero while `check::rebuild` runs: if its process dies too, the next one redoes it.
    pub(crate) rebuilding: Cell<u64>,
    /// Slab slots claimed (see `slab.rs`), as folded in from the slabs' state words when
    /// they are closed; the claims a live slab still counts are added when reading.
    pub(crate) slot_allocations: Cell<u64>,
    /// Payload offset of the slab map (`slab_map.rs`): one bit per page of the arena, set
    /// where a slab's payload starts; 0 until the first slab is carved. Read without the
    /// lock by claimers, so atomic. (It fits in the header's padding: the heap's start is
    /// unchanged.)
    pub(crate) slab_map: AtomicU64,
}

/// Adds `delta` to a counter.
pub(crate) fn bump(c: &Cell<u64>, delta: i64) {
    c.set(c.get().wrapping_add_signed(delta));
}

fn page_up(x: u64, page: u64) -> u64 {
    x.div_ceil(page) * page
}

fn page_down(x: u64, page: u64) -> u64 {
    x / page * page
}

/// Orders one bookkeeping store before the next, so that a process killed between them
/// leaves a state `check::rebuild` understands (x86-64 keeps stores in program order; the
/// fence stops the compiler from reordering them).
pub(crate) fn step() {
    compiler_fence(Ordering::SeqCst);
    crate::arena::crash::tick();
}

/// The allocator, borrowed while the arena's lock is held.
pub(crate) struct Heap<'a> {
    pub(crate) mem: &'a SharedMemory,
    pub(crate) page: u64,
    /// The arena handle whose lock is held: its process-local cache is given back when an
    /// allocation finds the arena full (`Heap::alloc`, in `cache_path.rs`).
    pub(crate) arena: &'a crate::arena::Arena,
}

impl Heap<'_> {
    pub(crate) fn base(&self) -> *mut u8 {
        self.mem.base()
    }

    pub(crate) fn state(&self) -> &HeapState {
        // SAFETY: the header sits at offset 0 of the mapping, initialised when the arena was
        // created, and lives as long as `self.mem`. A `Heap` exists only while the arena lock
        // is held by this thread, so no other thread or process touches the state meanwhile;
        // all mutation goes through `Cell`s, which a shared reference permits.
        unsafe { &(*self.base().cast::<ArenaHeader>()).heap }
    }

    /// Reads the bookkeeping word at `off`.
    pub(crate) fn word(&self, off: u64) -> u64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.mem.len());
        // SAFETY: callers only pass offsets of words inside `[start, committed)` (checked by
        // `block` for anything read from shared state), which are mapped and 8-aligned.
        // Atomic (a plain `mov` on x86-64): a cached block's header is read by its owner
        // without the lock (`cache.rs`) while a neighbour's free may update its flags.
        unsafe { AtomicU64::from_ptr(self.base().add(off as usize).cast::<u64>()) }
            .load(Ordering::Relaxed)
    }

    pub(crate) fn set_word(&self, off: u64, value: u64) {
        debug_assert!(off % 8 == 0 && off + 8 <= self.mem.len());
        // SAFETY: as in `word`.
        unsafe { AtomicU64::from_ptr(self.base().add(off as usize).cast::<u64>()) }
            .store(value, Ordering::Relaxed)
    }

    /// Sets (`on`) or clears the [`PREV_USED`] bit of the block at `b`, which may be a used
    /// block of another process: one atomic read-modify-write, so that a concurrent change
    /// of the block's other flags by its owner without the lock (`cache.rs` marks and
    /// unmarks a cached block) is never undone.
    pub(crate) fn set_prev_used(&self, b: u64, on: bool) {
        debug_assert!(b % 8 == 0 && b + 8 <= self.mem.len());
        // SAFETY: as in `word`.
        let w = unsafe { AtomicU64::from_ptr(self.base().add(b as usize).cast::<u64>()) };
        if on {
            w.fetch_or(PREV_USED, Ordering::Relaxed);
        } else {
            w.fetch_and(!PREV_USED, Ordering::Relaxed);
        }
    }

    /// Zeroes `[from, to)`.
    fn memzero(&self, from: u64, to: u64) {
        if to > from {
            // SAFETY: the range lies inside the mapping (callers stay below `committed`) and
            // belongs to a free block or the unused tail, which no one else reads or writes.
            unsafe {
                self.base()
                    .add(from as usize)
                    .write_bytes(0, (to - from) as usize)
            }
        }
    }

    /// Zeroes the payload `[from, to)` of a free block that ends at `to`: its whole interior
    /// pages are returned to the OS when the run is large, the rest is written. The block's
    /// header words and footer are left alone. Returns whether pages were punched.
    pub(crate) fn zero_payload(&self, block: u64, from: u64, to: u64) -> bool {
        let (a, b) = (
            page_up(block + MIN_BLOCK, self.page),
            page_down(to - 8, self.page),
        );
        if to - from >= PUNCH_MIN && b > a && a >= from && self.mem.punch_hole(a, b - a) {
            self.memzero(from, a);
            self.memzero(b, to);
            true
        } else {
            self.memzero(from, to);
            false
        }
    }

    /// Validates a block offset read from shared state.
    pub(crate) fn block(&self, off: u64) -> Result<u64> {
        let st = self.state();
        if off < st.start.get() || off % GRAIN != 0 || off.saturating_add(MIN_BLOCK) > st.top.get()
        {
            return Err(Error::Corrupted(format!(
                "block offset {off} outside the heap [{}, {})",
                st.start.get(),
                st.top.get()
            )));
        }
        Ok(off)
    }

    /// The size of the block at `b`, validated against the heap's end.
    pub(crate) fn size_of(&self, b: u64) -> Result<u64> {
        let size = self.word(b) & !FLAGS;
        if size < MIN_BLOCK || b.saturating_add(size) > self.state().top.get() {
            return Err(Error::Corrupted(format!(
                "block at {b} has impossible size {size}"
            )));
        }
        Ok(size)
    }

    /// Cuts a fresh block of `size` bytes off the never-used tail, reserving its pages
    /// where the file system needs that (see `SharedMemory::reserve`): on the global arena's
    /// memfd nothing is reserved or written, and the block's untouched pages read as zero.
    fn carve(&self, size: u64) -> Result<u64> {
        let cap = self.mem.len();
        let st = self.state();
        let b = st.top.get();
        let end = b
            .checked_add(size)
            .filter(|&e| e <= cap)
            .ok_or(Error::OutOfMemory {
                requested: size,
                available: cap - b,
                capacity: cap,
            })?;
        let committed = st.committed.get();
        if end > committed {
            let want = page_up(end, COMMIT_STEP).min(cap);
            // Every process makes `[0, committed)` accessible before it touches the heap
            // (`Arena::with_heap`); this one goes first.
            self.mem.expose(want)?;
            if self.mem.reserve(committed, want - committed).is_err() {
                let exact = page_up(end, self.page).min(cap);
                self.mem.reserve(committed, exact - committed)?;
                st.committed.set(exact);
            } else {
                st.committed.set(want);
            }
        }
        self.set_word(b, size | PREV_USED);
        step();
        st.top.set(end);
        Ok(b)
    }

    /// Allocates `size` bytes aligned to `align` for process `owner`; returns the payload's
    /// offset. The payload is zero. (Once: `Heap::alloc` retries after giving this
    /// process's cache back.)
    pub(crate) fn alloc_once(&self, size: u64, align: u64, owner: u32) -> Result<u64> {
        let need = size
            .checked_add(HDR + GRAIN - 1)
            .map(|n| (n & !(GRAIN - 1)).max(MIN_BLOCK))
            .ok_or(Error::OutOfMemory {
                requested: size,
                available: self.mem.len() - self.state().top.get(),
                capacity: self.mem.len(),
            })?;
        let extra = if align > GRAIN { align + MIN_BLOCK } else { 0 };
        let ask = need.checked_add(extra).ok_or(Error::OutOfMemory {
            requested: size,
            available: self.mem.len() - self.state().top.get(),
            capacity: self.mem.len(),
        })?;
        let mut b = match self.take_free(ask)? {
            Some(b) => b,
            None => self.carve(ask)?,
        };
        let w = self.word(b);
        if w & PUNCHED != 0 {
            // Some pages were given back to the OS: reserve every page this allocation will
            // write (its headers, the tail's header, the payload) before writing any.
            let end = (b + ask + MIN_BLOCK).min(b + (w & !FLAGS));
            let (from, to) = (page_down(b, self.page), page_up(end, self.page));
            if let Err(e) = self.mem.reserve(from, to - from) {
                // Back to its bin as it is (free, never marked as `owner`'s: see `place`).
                self.release(b, false)?;
                return Err(e);
            }
        }
        if align > GRAIN {
            let mut s = (b + HDR).next_multiple_of(align) - HDR;
            if s != b && s - b < MIN_BLOCK {
                s += align;
            }
            if s != b {
                // Split off the front [b, s) and give it back.
                let w = self.word(b);
                let total = w & !FLAGS;
                // The aligned part is marked used so that giving back the front does not
                // merge the two again; `place` finishes it.
                // (Owner first, so that a crash right here leaves a block a dead process owns.)
                self.set_word(s + 8, self.tag(s, owner));
                self.set_word(s, (total - (s - b)) | (w & PUNCHED) | USED);
                step();
                // The front stays free (in no bin until `release` lists it), never marked
                // as `owner`'s: a crash before it is listed leaves a free block that
                // `check::rebuild` lists, not a second block of the dead process for
                // `reclaim_dead` to free as one more of its objects.
                self.set_word(b, (s - b) | (w & (PREV_USED | PUNCHED)));
                step();
                self.release(b, false)?;
                b = s;
            }
        }
        self.place(b, need, owner)?;
        let st = self.state();
        bump(&st.used_bytes, (self.word(b) & !FLAGS) as i64);
        bump(&st.used_blocks, 1);
        bump(&st.allocations, 1);
        Ok(b + HDR)
    }

    /// Marks the unlinked free block `b` used for `need` bytes, returning any tail.
    fn place(&self, b: u64, need: u64, owner: u32) -> Result<()> {
        let w = self.word(b);
        let size = w & !FLAGS;
        let mut tail = None;
        if size - need >= MIN_BLOCK {
            // The tail starts out free but unlisted: a crash leaves two free neighbours,
            // which `check::rebuild` merges.
            let r = b + need;
            self.set_word(r, (size - need) | (w & PUNCHED) | PREV_USED);
            step();
            tail = Some(r);
        } else {
            let next = b + size;
            if next < self.state().top.get() {
                self.set_prev_used(next, true);
            }
        }
        let own = if tail.is_some() { need } else { size };
        // The payload is zero except the free links and footer of the block it was.
        self.set_word(b + 16, 0);
        if tail.is_none() {
            self.set_word(b + size - 8, 0);
        }
        self.set_word(b + 8, self.tag(b, owner));
        self.set_word(b, own | (w & PREV_USED) | USED);
        step();
        if let Some(r) = tail {
            // The tail's bytes are part of a zeroed free run except its old footer, which
            // is exactly where its own footer goes. It stays free until `release` lists
            // it: marked used and `owner`'s meanwhile, a crash there would leave the dead
            // process a second block, which `reclaim_dead` would free as one more of its
            // objects.
            self.release(r, false)?;
        }
        Ok(())
    }

    /// Frees the used block whose payload is at `payload`, owned by `owner`.
    pub(crate) fn free(&self, payload: u64, owner: u32) -> Result<()> {
        if payload < HDR {
            return Err(Error::Corrupted(format!(
                "no object starts at offset {payload}"
            )));
        }
        let b = self.block(payload - HDR)?;
        let w = self.word(b);
        let size = self.size_of(b)?;
        if w & USED == 0 {
            return Err(Error::Corrupted(format!("double free of the block at {b}")));
        }
        let recorded = self.owner_of(b)?;
        if recorded != owner {
            return Err(Error::Corrupted(format!(
                "block at {b} belongs to process {recorded}, not {owner}"
            )));
        }
        self.release(b, true)?;
        let st = self.state();
        bump(&st.used_bytes, -(size as i64));
        bump(&st.used_blocks, -1);
        bump(&st.frees, 1);
        Ok(())
    }

    /// Turns the block at `b` (marked used, or free but in no bin: the front or tail just
    /// split off an allocation, whose predecessor is used) into listed free space,
    /// coalescing it with free neighbours or the unused tail. `dirty`: its payload may hold
    /// data.
    pub(crate) fn release(&self, b: u64, dirty: bool) -> Result<()> {
        // Validated here, where it is used, rather than trusted from the caller's earlier
        // read: the word lives in memory other processes can write.
        let size = self.size_of(b)?;
        let w = self.word(b);
        if w & !FLAGS != size {
            return Err(Error::Corrupted(format!(
                "block at {b} changed size while freed"
            )));
        }
        let mut punched = w & PUNCHED;
        // Free first, then clear the owner tag: a used block is never seen without its tag.
        self.set_word(b, size | (w & (PREV_USED | PUNCHED)));
        step();
        self.set_word(b + 8, 0);
        let (mut start, end0) = (b, b + size);
        let mut start_flags = w & PREV_USED;
        if w & PREV_USED == 0 {
            let p = self.block(b.wrapping_sub(self.word(b - 8)))?;
            let pw = self.word(p);
            if pw & USED != 0 || self.size_of(p)? + p != b {
                return Err(Error::Corrupted(format!("bad footer before block {b}")));
            }
            self.unlink(p)?;
            start = p;
            start_flags = pw & PREV_USED;
            punched |= pw & PUNCHED;
        }
        let top = self.state().top.get();
        if end0 == top {
            // Give the whole run back to the unused tail, which must read as zero.
            self.state().top.set(start);
            step();
            self.scrub_tail(start, top);
            return Ok(());
        }
        if dirty && self.zero_payload(b, b + HDR, end0) {
            punched = PUNCHED;
        }
        let mut end = end0;
        let nw = self.word(end0);
        if nw & USED == 0 {
            let nsize = self.size_of(end0)?;
            self.unlink(end0)?;
            end = end0 + nsize;
            punched |= nw & PUNCHED;
        } else {
            self.set_prev_used(end0, false);
        }
        self.set_word(start, (end - start) | start_flags | punched);
        step();
        // Words of absorbed blocks are now payload of the merged block: zero them.
        if start != b {
            self.set_word(b - 8, 0);
            self.set_word(b, 0);
        }
        if end != end0 {
            self.set_word(end0, 0);
            self.set_word(end0 + 8, 0);
            self.set_word(end0 + 16, 0);
        }
        if punched == 0 && end - start >= PUNCH_MIN && self.zero_payload(start, start + HDR, end) {
            self.set_word(start, self.word(start) | PUNCHED);
        }
        self.set_word(end - 8, end - start);
        self.insert(start, end - start)
    }

    /// Zeroes `[from, to)`, which was just returned to the unused tail, handing whole pages
    /// back to the OS (and lowering `committed` to match) when the run is large.
    pub(crate) fn scrub_tail(&self, from: u64, to: u64) {
        let st = self.state();
        let keep = page_up(from, self.page);
        let committed = st.committed.get();
        if to - from >= PUNCH_MIN && committed > keep && self.mem.punch_hole(keep, committed - keep)
        {
            self.memzero(from, keep.min(to));
            st.committed.set(keep);
        } else {
            self.memzero(from, to);
        }
    }
}
