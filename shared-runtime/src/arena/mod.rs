//! The shared arena: one memory mapping that never moves, and an allocator whose state
//! lives inside it.
//!
//! Beside [`Arena`] itself (also at the crate root), this module holds what an arena
//! reports — [`ArenaStats`], [`HeapReport`], [`Reclaimed`], and for inspectors
//! [`SegmentInfo`] and [`Snapshot`] — and its constants
//! ([`ARENA_ENV`], [`MAX_ALIGN`]).

mod allocation;
mod bins;
mod cache;
pub(crate) mod check;
pub(crate) mod crash;
pub(crate) mod header;
pub(crate) mod heap;
mod heap_lock;
mod kind;
mod kinds;
mod listing;
mod named;
mod namespace;
mod objects;
pub(crate) mod opened;
mod reclaim;
mod records;
pub(crate) mod registry;
mod snapshot;
pub(crate) mod stats;
mod tags;

use std::fmt;
use std::sync::atomic::{
    AtomicBool, AtomicPtr,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use std::sync::Arc;

use crate::sys::memory::{page_size, physical_memory, SharedMemory};
use crate::sys::process::process_key;
use crate::{Error, Result};

pub(crate) use allocation::{Allocation, MappedPtr};
pub(crate) use cache::{slot_counts, slot_owner, Class};
use cache::{BlockCache, BlockKind, Put};
pub use check::HeapReport;
use header::{min_capacity, ArenaHeader};
pub(crate) use kind::LOCK_CELL;
pub(crate) use kind::{data_offset, QUEUE_HEADER};
pub use kind::{LockKind, NamedObject, ObjectKind};
#[doc(hidden)]
pub use kind::{Parts, Shape};
pub use listing::ObjectInfo;
pub use named::ARENA_ENV;
pub(crate) use namespace::mark_renewed;
pub use reclaim::Reclaimed;
pub use snapshot::{SegmentInfo, Snapshot};
pub use stats::ArenaStats;

/// The largest alignment an object may ask for: arenas are page-aligned in every process.
pub const MAX_ALIGN: usize = 4096;

struct ArenaInner {
    mem: SharedMemory,
    page: u64,
    /// The shared-memory name of a named arena.
    name: Option<String>,
    /// The process that unlinks the name when its last handle goes (the creator, as a
    /// `process_key`, so a descendant that reuses its pid does not), or 0.
    unlink_by: u64,
    /// The creator's pid namespace as the header said when this handle was made (a
    /// private copy: the hot path reads no shared memory for it, and a later foreign write
    /// cannot change this process's verdict), 0 if unknown.
    creator_pidns: u64,
    /// This process's freed small blocks (see `cache.rs`).
    cache: BlockCache,
    /// The `process_key` of the process that made this handle family: the only one that
    /// caches freed blocks, unless `cache_anywhere`.
    cache_by: u64,
    /// Set for the global arena, whose cache every process uses (and flushes when a
    /// child run by `Process` ends).
    cache_anywhere: AtomicBool,
}

impl Drop for ArenaInner {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            if self.unlink_by == process_key() {
                crate::sys::memory::unlink_if_same(name, &self.mem);
            }
        }
    }
}

/// A region of shared memory that typed objects are allocated from.
///
/// An arena is one `MAP_SHARED` mapping of a sparse memory file, created once and never
/// moved, so every process forked after its creation sees the same bytes at the same
/// address. Pages are paid for only when they are allocated; the capacity is an upper
/// bound, not a reservation. The allocator's state (free lists, counters) is stored in the
/// arena itself, behind a robust process-shared lock, so an object allocated by any process
/// of a forked family is valid in all of them.
///
/// `Arena` is a cheap handle: clones refer to the same arena, and the mapping lives until
/// the last handle (including those held by objects allocated from it) is dropped.
///
/// # Safety
/// Any process that shares the arena may write any of its bytes at any time. The crate
/// never exposes that memory as a plain reference except under a lock or exclusive
/// ownership; see [`guide::safety`](crate::guide::safety).
///
/// ```
/// use shared_runtime::{Arena, RawValue};
///
/// let arena = Arena::with_capacity(1 << 20)?;
/// let v = RawValue::new_in(&arena, 42u64)?;
/// assert_eq!(v.get(), 42);
/// assert_eq!(arena.stats()?.live_allocations, 1);
/// drop(v);
/// assert_eq!(arena.stats()?.live_allocations, 0);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct Arena {
    inner: Arc<ArenaInner>,
}

impl Arena {
    /// Creates an arena that can hold up to `capacity` bytes (rounded up to whole pages).
    ///
    /// Nothing is reserved up front but the first megabyte; the rest is taken from the
    /// system as objects are allocated.
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`] if `capacity` cannot even hold the arena's header, or
    /// [`Error::Os`] if the system refuses the memory file or the mapping.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(64 * 1024)?;
    /// assert_eq!(arena.capacity(), 64 * 1024);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn with_capacity(capacity: u64) -> Result<Arena> {
        let capacity = checked_capacity(capacity)?;
        let mem = SharedMemory::create_anonymous("shared-runtime-arena", capacity)?;
        Arena::initialise(mem, None)
    }

    /// Sets up a header in fresh memory and wraps it.
    fn initialise(mem: SharedMemory, name: Option<String>) -> Result<Arena> {
        let first = mem.len().min(1 << 20);
        mem.reserve(0, first)?;
        // 0 when it can never be read: nobody is then told apart from the creator.
        let pidns = crate::sys::liveness::creator_pid_namespace().map_err(|e| Error::Os {
            call: "reading this process's pid namespace (pidfd_open)",
            source: e.into(),
        })?;
        // SAFETY: the memory is fresh and nobody else can see it yet (a named segment was
        // created with O_EXCL a moment ago and holds no valid header for openers yet).
        unsafe { header::init(&mem, first, pidns) };
        let unlink_by = if name.is_some() { process_key() } else { 0 };
        Ok(Arena::wrap(mem, name, unlink_by))
    }

    fn wrap(mem: SharedMemory, name: Option<String>, unlink_by: u64) -> Arena {
        let page = page_size() as u64;
        // SAFETY: every caller has initialised or validated the header, which lies at the
        // start of the mapping, before wrapping it.
        let creator_pidns = unsafe { &*mem.base().cast::<ArenaHeader>() }.creator_pidns();
        Arena {
            inner: Arc::new(ArenaInner {
                mem,
                page,
                name,
                unlink_by,
                creator_pidns,
                cache: BlockCache::new(),
                cache_by: process_key(),
                cache_anywhere: AtomicBool::new(false),
            }),
        }
    }

    /// The arena every constructor without `_in` allocates from, created on first use.
    ///
    /// Its capacity is the machine's physical memory (the mapping is sparse: only
    /// allocated pages cost anything), or as much of it as the process may map (under an
    /// address-space limit, `ulimit -v`, it halves the size until the mapping fits, down
    /// to 16 MiB). Create it before forking, as [`Process::start`](crate::Process::start)
    /// does, so parent and children share it.
    ///
    /// # Panics
    /// If the arena cannot be created (see [`try_global`](Self::try_global), which every
    /// constructor uses and which reports that as an error instead).
    ///
    /// ```
    /// let a = shared_runtime::Arena::global();
    /// assert!(a.capacity() > 0);
    /// ```
    pub fn global() -> &'static Arena {
        Arena::try_global().unwrap_or_else(|e| panic!("cannot create the global shared arena: {e}"))
    }

    /// The [global arena](Self::global), created on first use; an error if it cannot be
    /// (a later call tries again).
    ///
    /// # Errors
    /// [`Error::Os`] if no memory file can be created (no free descriptor, say) or not even
    /// 16 MiB can be mapped.
    ///
    /// ```
    /// let a = shared_runtime::Arena::try_global()?;
    /// assert!(a.same_as(shared_runtime::Arena::global()));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn try_global() -> Result<&'static Arena> {
        // Not a `OnceLock`: no lock (a `Once` is one) may be held while creating, or a child
        // forked meanwhile would wait forever for a thread it does not have. Threads that
        // race each create one; the first published wins and the others drop theirs.
        let published = GLOBAL.load(Acquire);
        if !published.is_null() {
            // SAFETY: a non-null pointer came from `Box::into_raw` below and is never freed.
            return Ok(unsafe { &*published });
        }
        let mut capacity = physical_memory();
        let arena = loop {
            match Arena::with_capacity(capacity) {
                Err(Error::Os {
                    call: "mmap",
                    source,
                }) if source.raw_os_error() == Some(libc::ENOMEM) && capacity > 32 << 20 => {
                    capacity /= 2;
                }
                other => break other?,
            }
        };
        let mine = Box::into_raw(Box::new(arena));
        match GLOBAL.compare_exchange(std::ptr::null_mut(), mine, AcqRel, Acquire) {
            Ok(_) => {
                // SAFETY: published: never freed, so the reference is valid for 'static.
                let global = unsafe { &*mine };
                // Only the published arena is marked (see `ArenaRef`).
                global.inner.cache_anywhere.store(true, Relaxed);
                Ok(global)
            }
            Err(first) => {
                // SAFETY: `mine` was never published; this is its only owner.
                drop(unsafe { Box::from_raw(mine) });
                // SAFETY: as for `published` above.
                Ok(unsafe { &*first })
            }
        }
    }

    /// The most bytes this arena can hold.
    pub fn capacity(&self) -> u64 {
        self.inner.mem.len()
    }

    /// Whether two handles name the same arena.
    ///
    /// ```
    /// let a = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// assert!(a.same_as(&a.clone()));
    /// assert!(!a.same_as(shared_runtime::Arena::global()));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn same_as(&self, other: &Arena) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    #[inline]
    pub(crate) fn creator_pidns(&self) -> u64 {
        self.inner.creator_pidns
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.inner.mem.base()
    }

    pub(crate) fn header(&self) -> &ArenaHeader {
        // SAFETY: the header was initialised in `with_capacity` and lives as long as the
        // mapping; the only field reached through this shared reference is the mutex, which
        // is an `UnsafeCell` used through pthread calls (the heap state is reached through a
        // raw pointer while the lock is held).
        unsafe { &*self.base().cast::<ArenaHeader>() }
    }

    /// Allocates `size` zeroed bytes aligned to `align`, owned by the calling process.
    pub(crate) fn alloc(&self, size: usize, align: usize) -> Result<Allocation> {
        if align > MAX_ALIGN {
            return Err(Error::Alignment {
                align,
                max: MAX_ALIGN,
            });
        }
        let (size, align) = (size as u64, align as u64);
        let class = self.cache_class(size, align, BlockKind::Data);
        let offset = match class.and_then(|c| self.take_cached(c)) {
            Some(offset) => offset,
            None => self.with_heap(|h| h.alloc(size, align, self.owner_tag()))?,
        };
        Ok(Allocation::new(ArenaRef::of(self), offset).cached_as(class))
    }

    /// Allocates a zeroed lock cell owned by the calling process, its block marked as a
    /// lock (`heap::LOCK_BLOCK`) so that only such blocks are opened as locks by handle.
    /// A cached lock cell keeps its mark (`cache.rs`).
    pub(crate) fn alloc_lock_cell(&self) -> Result<Allocation> {
        let class = self.cache_class(LOCK_CELL, 8, BlockKind::LockCell);
        let cached = class.and_then(|c| self.take_cached(c));
        let offset = match cached {
            Some(offset) => offset,
            None => self.with_heap(|h| {
                let at = h.alloc(LOCK_CELL, 8, self.owner_tag())?;
                let b = at - heap::HDR;
                h.set_word(b, h.word(b) | heap::LOCK_BLOCK);
                Ok(at)
            })?,
        };
        Ok(Allocation::new(ArenaRef::of(self), offset).cached_as(class))
    }

    /// The cache class of a block of `size` bytes aligned to `align`, if this process
    /// caches such blocks of this arena.
    #[inline]
    fn cache_class(&self, size: u64, align: u64, kind: BlockKind) -> Option<Class> {
        let class = Class::of(size, align, kind)?;
        let inner = &self.inner;
        (inner.cache_anywhere.load(Relaxed) || inner.cache_by == process_key()).then_some(class)
    }

    /// A block of class `class` from this process's cache, zeroed.
    #[inline]
    fn take_cached(&self, class: Class) -> Option<u64> {
        let offset = self.inner.cache.take(class, self.cache_slots())?;
        // SAFETY: the offset was put in the cache by this process (the cache is
        // process-local and forgets what a parent process put) as the payload of a used
        // block it owns, handed out by this arena's allocator below its exposed prefix, so
        // it lies inside the mapping.
        let words = unsafe { self.base().add(offset as usize) }.cast::<u64>();
        // At most 14 words: stored one by one rather than through a call to `memset`.
        for i in 0..(class.payload() / 8) as usize {
            // SAFETY: the block holds at least `class.payload()` bytes of 16-aligned
            // payload (its class says so); it is no object's now, so no handle of this
            // process reads or writes it meanwhile.
            unsafe { words.add(i).write_volatile(0) };
        }
        Some(offset)
    }

    /// The arena's table of what processes hold in their caches: atomics, read and
    /// written without the allocator's lock (see `cache.rs`).
    fn cache_slots(&self) -> &[std::sync::atomic::AtomicU64] {
        let header = self.base().cast::<ArenaHeader>();
        // SAFETY: the header lies at the start of the mapping, which lives as long as
        // `self`; only the table's atomics are referenced, not the `Cell`s of the heap
        // state, which only the allocator lock's holder touches.
        unsafe { &*std::ptr::addr_of!((*header).heap.cache_slots) }
    }

    /// Frees the used block at `payload`, owned by the calling process and allocated as
    /// `class` (see `Allocation`), or keeps it in this process's cache.
    pub(crate) fn free_owned(&self, payload: u64, class: Option<Class>) -> Result<()> {
        if let Some(class) = class.filter(|&c| self.is_block_of(payload, c)) {
            match self.inner.cache.put(class, payload, self.cache_slots()) {
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

    /// Whether the used block at `payload` (one this process owns) is exactly a block of
    /// `class`: its size, and its lock-cell mark. A block handed out whole because its
    /// remainder was too small to split is larger, and is freed instead of cached.
    fn is_block_of(&self, payload: u64, class: Class) -> bool {
        // SAFETY: `payload` was handed out by this arena's allocator to this process, so
        // its header word lies inside the mapping, 8-aligned; it is read atomically, as
        // the allocator writes it (a neighbour's free may change its flags meanwhile).
        let word = unsafe {
            std::sync::atomic::AtomicU64::from_ptr(
                self.base()
                    .add((payload - heap::HDR) as usize)
                    .cast::<u64>(),
            )
        }
        .load(Relaxed);
        word & heap::USED != 0
            && word & !heap::FLAGS == class.block()
            && (word & heap::LOCK_BLOCK != 0) == class.lock_cells()
            && word & heap::RECORD_BLOCK == 0
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

    /// Counters of the allocator.
    ///
    /// # Errors
    /// Only if the arena's lock cannot be taken or its state is corrupted.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// let before = arena.stats()?;
    /// let a = shared_runtime::RawArray::<u8>::zeroed_in(&arena, 1000)?;
    /// let after = arena.stats()?;
    /// assert_eq!(after.allocations, before.allocations + 1);
    /// assert!(after.bytes_in_use >= before.bytes_in_use + 1000);
    /// # drop(a);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn stats(&self) -> Result<ArenaStats> {
        self.with_heap(|h| {
            self.flush_cache(h)?;
            Ok(ArenaStats::read(h))
        })
    }

    /// Walks every block of the allocator and checks its invariants (blocks tile the heap
    /// with no gap or overlap, free + used = heap bytes, free lists agree with the blocks,
    /// freed memory is zero). Meant for tests and for diagnosing a damaged arena.
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming the first broken invariant.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// let report = arena.check()?;
    /// assert_eq!(report.used_blocks, 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn check(&self) -> Result<HeapReport> {
        self.with_heap(|h| {
            self.flush_cache(h)?;
            check::verify(h)
        })
    }
}

/// The global arena, once published (see `Arena::try_global`).
static GLOBAL: AtomicPtr<Arena> = AtomicPtr::new(std::ptr::null_mut());

/// A handle of an arena kept by an object: a clone of it, or nothing for the global arena,
/// which lives as long as the process (this saves the two atomic reference-count updates
/// of a clone on every allocation and free of a small object).
pub(crate) struct ArenaRef(Option<Arena>);

impl ArenaRef {
    /// A reference to `arena`.
    #[inline]
    pub(crate) fn of(arena: &Arena) -> Self {
        if arena.inner.cache_anywhere.load(Relaxed) {
            ArenaRef(None)
        } else {
            ArenaRef(Some(arena.clone()))
        }
    }
}

impl Clone for ArenaRef {
    fn clone(&self) -> Self {
        ArenaRef(self.0.clone())
    }
}

impl std::ops::Deref for ArenaRef {
    type Target = Arena;

    #[inline]
    fn deref(&self) -> &Arena {
        match &self.0 {
            Some(arena) => arena,
            None => {
                let published = GLOBAL.load(Acquire);
                // SAFETY: `None` is only made (in `of`) for an arena whose `cache_anywhere`
                // is set, which only `try_global` does, for the arena it then publishes
                // (one that loses the race is never handed out); `GLOBAL` is set once and
                // the arena behind it is never freed. The flag is stored after `GLOBAL`
                // was set, and the `of` that saw it ran in this process (it is
                // process-local), so this load finds the pointer set.
                unsafe { &*published }
            }
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // The last handle of this process: its cached blocks go back to the arena, which
        // other processes may still use. (Two threads dropping the last two handles at
        // once may both skip this: the blocks then stay this process's, reclaimed as a
        // dead process's once it ends.)
        if Arc::strong_count(&self.inner) == 1
            && self.inner.cache_by == process_key()
            && self.inner.cache.holds_any()
        {
            let _ = self.with_heap(|h| self.flush_cache_and(h, true));
        }
    }
}

/// Rounds a requested capacity to whole pages, refusing what cannot hold an arena.
fn checked_capacity(capacity: u64) -> Result<u64> {
    if capacity < min_capacity() {
        return Err(Error::InvalidCapacity {
            capacity,
            reason: "too small to hold the arena header and one object",
        });
    }
    capacity
        .checked_next_multiple_of(page_size() as u64)
        .ok_or(Error::InvalidCapacity {
            capacity,
            reason: "larger than the address space",
        })
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("base", &self.base())
            .field("capacity", &self.capacity())
            .field("name", &self.inner.name)
            .finish()
    }
}
