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
mod cache_path;
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
pub(crate) mod slab;
mod slab_map;
mod slab_path;
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

pub(crate) use allocation::{Allocation, Fresh, MappedPtr};

/// How many fresh blocks a maker of data takes before it gives up (`Arena::alloc`,
/// `sync::own_lock`). A block is refused when this process has a live handle of it that it
/// inherited from an ancestor (a copy of an object its parent has since freed, never
/// dropped here) and is then set aside, so each such block is refused once; more refusals
/// in a row than this means that most of the blocks this process is given are such.
pub(crate) const FRESH_TRIES: usize = 32;

/// The error of a maker of data refused [`FRESH_TRIES`] blocks in a row, the last at
/// `offset`, each named by a live copy of an ancestor's object.
pub(crate) fn fresh_blocks_refused(offset: u64) -> Error {
    Error::AlreadyOpen {
        offset,
        open_as: format!(
            "data (a copy of an object its parent process had there; the last of \
             {FRESH_TRIES} fresh blocks this process was given, all of them such)"
        ),
    }
}
use cache::BlockCache;
pub(crate) use cache::{slot_counts, slot_owner};
pub(crate) use cache_path::cache_global_blocks_here;
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
    /// Set for the global arena, whose cache is used by the process that created it and
    /// by the children run by `Process` (see `cache.rs`, "Who caches").
    cache_anywhere: AtomicBool,
    /// Which slabs this process claims small objects in (see `slab_path.rs`).
    slabs: slab_path::SlabHints,
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
        let capacity = mem.len();
        Arena {
            inner: Arc::new(ArenaInner {
                mem,
                page,
                name,
                unlink_by,
                creator_pidns,
                cache: BlockCache::new(capacity),
                cache_by: process_key(),
                cache_anywhere: AtomicBool::new(false),
                slabs: slab_path::SlabHints::new(),
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
    #[inline]
    pub fn try_global() -> Result<&'static Arena> {
        let published = GLOBAL.load(Acquire);
        if !published.is_null() {
            // SAFETY: a non-null pointer came from `Box::into_raw` in `make_global` and is
            // never freed.
            return Ok(unsafe { &*published });
        }
        Arena::make_global()
    }

    /// [`try_global`](Arena::try_global) the first time: creates the global arena.
    #[cold]
    #[inline(never)]
    fn make_global() -> Result<&'static Arena> {
        // Not a `OnceLock`: no lock (a `Once` is one) may be held while creating, or a child
        // forked meanwhile would wait forever for a thread it does not have. Threads that
        // race each create one; the first published wins and the others drop theirs.
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
                // This process caches its freed blocks, and gives them back when it exits
                // (`exit` or a return from `main`; see `cache.rs`, "Who caches").
                cache_global_blocks_here();
                crate::sys::process::at_exit(give_back_global_cache_at_exit);
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
    ///
    /// # Errors
    /// [`Error::AlreadyOpen`] if each of [`FRESH_TRIES`] blocks in a row was named by a
    /// live copy of an ancestor's object (`opened::inherited_live`).
    #[inline]
    pub(crate) fn alloc(&self, size: usize, align: usize) -> Result<Arc<Allocation>> {
        if align > MAX_ALIGN {
            return Err(Error::Alignment {
                align,
                max: MAX_ALIGN,
            });
        }
        let mut last = 0;
        for _ in 0..FRESH_TRIES {
            let block = self.alloc_marked(size as u64, align as u64, 0)?;
            let fresh = Allocation::fresh(self, block);
            last = block.offset;
            if !opened::inherited_live(self, block.offset)? {
                return Ok(fresh);
            }
            // A copy of an ancestor's object names this block (the ancestor has freed it
            // since): kept out of this process's use while that copy lives, and the next
            // block is another one (as `Value::new` does for its own blocks).
            opened::set_aside(self, fresh);
        }
        Err(fresh_blocks_refused(last))
    }

    /// Allocates `size` zeroed bytes (8-aligned, or `align` if more) owned by the calling
    /// process for an unnamed synchronization object of `kind`, the block's header tagged
    /// with the kind (`heap::KIND_TAG`) so that only a handle of that kind opens it.
    pub(crate) fn alloc_tagged(
        &self,
        size: usize,
        align: usize,
        kind: ObjectKind,
    ) -> Result<Allocation> {
        if align > MAX_ALIGN {
            return Err(Error::Alignment {
                align,
                max: MAX_ALIGN,
            });
        }
        let block = self.alloc_marked(size as u64, align.max(8) as u64, heap::kind_tag(kind))?;
        Ok(Allocation::new(ArenaRef::of(self), block.offset).cached_as(block.class))
    }

    /// Allocates a zeroed lock cell owned by the calling process, its block marked as a
    /// lock (`heap::LOCK_BLOCK`) so that only such blocks are opened as locks by handle.
    pub(crate) fn alloc_lock_cell(&self) -> Result<Arc<Allocation>> {
        self.alloc_lock_block(LOCK_CELL, 8)
    }

    /// Allocates a zeroed block of `size` bytes (at least a lock cell) aligned to `align`
    /// (at least 8), owned by the calling process, that starts with a lock cell: a lock, or
    /// the one block of a `Value`/`Array` made with its own lock (the cell, then the data).
    /// Marked as a lock (`heap::LOCK_BLOCK`) so that a handle may name it as one; data is
    /// never at its start.
    #[inline]
    pub(crate) fn alloc_lock_block(&self, size: u64, align: usize) -> Result<Arc<Allocation>> {
        if align > MAX_ALIGN {
            return Err(Error::Alignment {
                align,
                max: MAX_ALIGN,
            });
        }
        let (size, align) = (size.max(LOCK_CELL), align.max(8) as u64);
        let block = self.alloc_marked(size, align, heap::LOCK_BLOCK)?;
        Ok(Allocation::fresh(self, block))
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
            // An ended process's slot may be off by the block it was caching or taking
            // when it was killed (two words, not one atomic change): recounted from the
            // blocks' tags, as `check` counts them.
            let _ = self.recount_dead_caches(h);
            h.sweep_slabs()?;
            ArenaStats::read(h)
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
            h.sweep_slabs()?;
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

/// Run by `exit` in every process of the global arena's creator's image and its forks:
/// gives back the global cache of a process that holds one.
extern "C" fn give_back_global_cache_at_exit() {
    // Nothing may unwind out of an `extern "C"` function; the flush does not panic anyway.
    let _ = std::panic::catch_unwind(Arena::flush_global_cache);
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
