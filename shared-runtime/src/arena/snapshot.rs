//! Looking at a named arena without touching it: a read-only mapping, a summary of its
//! header, and a private copy of its bookkeeping for inspectors (`shared-inspect`).
//!
//! Nothing here writes the segment, takes its locks or makes open records: the segment is
//! mapped `PROT_READ` and every word is read atomically, checked, and copied into private
//! memory, where the ordinary (checking) code of the allocator and the directory reads it.

use std::mem::offset_of;
use std::time::Duration;

use crate::arena::check::HeapReport;
use crate::arena::header::{self, heap_start, identity_at, ArenaHeader};
use crate::arena::heap::{tag_code, HeapState, FLAGS, GRAIN, HDR, MIN_BLOCK};
use crate::arena::slab::SLAB_CODE;
use crate::arena::{Arena, ArenaStats, ObjectInfo};
use crate::sync::{Holder, HolderStatus};
use crate::sys::memory::{page_size, segment_names, SharedMemory};
use crate::sys::readonly::ReadOnlySegment;
use crate::{Error, Result};

/// What a named segment's header says, read through a read-only mapping after the same
/// checks [`Arena::open_segment`] makes (see [`Arena::segment_info`]).
///
/// ```
/// use shared_runtime::{Arena, HolderStatus};
/// let name = format!("doc-info-{}", std::process::id());
/// let arena = Arena::create_segment(&name, 1 << 20)?;
/// let info = Arena::segment_info(&name)?;
/// assert_eq!((info.capacity, info.id), (arena.capacity(), arena.id()));
/// assert_eq!(info.creator_pid, Some(std::process::id() as i32));
/// assert_eq!(info.creator, HolderStatus::Alive);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment's name (without the leading `/`).
    pub name: String,
    /// Its size in bytes: the arena's capacity.
    pub capacity: u64,
    /// The arena's id (see [`Arena::id`]).
    pub id: u64,
    /// The process that created it, as the header records it (`None` if not a valid pid).
    pub creator_pid: Option<i32>,
    /// Whether that process still runs, by the rules a lock holder is judged by: `Dead`
    /// only with proof (a reused pid counts as dead when the start time is recorded),
    /// `Unknown` when nothing can be proven here.
    pub creator: HolderStatus,
}

/// A private copy of a named arena's bookkeeping, taken without writing the arena: the
/// header, the start of every block (directory entries, lock cells, open records) and the
/// free blocks' footers (see [`Arena::snapshot_segment`]). Objects' data past their first
/// 512 bytes is not copied.
///
/// ```
/// use shared_runtime::{Arena, Value};
/// let name = format!("doc-snapshot-{}", std::process::id());
/// let arena = Arena::create_segment(&name, 1 << 20)?;
/// let _hits = arena.create::<Value<u64>>("hits", 7)?;
/// let snap = Arena::snapshot_segment(&name)?;
/// assert_eq!(snap.objects()?[0].label, "Value<u64, RLock>");
/// assert_eq!(snap.stats()?.live_allocations, arena.stats()?.live_allocations);
/// assert!(snap.settled() && snap.allocator_holder().is_none());
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct Snapshot {
    info: SegmentInfo,
    copy: Arena,
    allocator: Option<Holder>,
    settled: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("info", &self.info)
            .field("allocator", &self.allocator)
            .field("settled", &self.settled)
            .finish()
    }
}

/// Bytes copied from the start of every block: its header and the start of its payload,
/// enough for a directory entry, a lock cell or an open record.
const HEAD: u64 = HDR + 512;
const _: () = assert!(std::mem::size_of::<crate::arena::registry::Entry>() as u64 + HDR <= HEAD);
/// How many copies are tried before one taken while the allocator was busy is accepted.
const TRIES: u32 = 20;

const LOCK_AT: u64 = offset_of!(ArenaHeader, lock) as u64;
const fn state_word(field: usize) -> u64 {
    (offset_of!(ArenaHeader, heap) + field) as u64
}
const TOP_AT: u64 = state_word(offset_of!(HeapState, top));
const ALLOCATIONS_AT: u64 = state_word(offset_of!(HeapState, allocations));
const FREES_AT: u64 = state_word(offset_of!(HeapState, frees));
const REBUILDING_AT: u64 = state_word(offset_of!(HeapState, rebuilding));

fn open_checked(name: &str) -> Result<ReadOnlySegment> {
    crate::arena::named::check_name(name)?;
    let ro = ReadOnlySegment::open(name)?;
    // SAFETY: `ro` maps `ro.len()` readable bytes from its page-aligned base while borrowed.
    unsafe { header::validate_at(ro.base(), ro.len(), name) }?;
    Ok(ro)
}

fn info_of(ro: &ReadOnlySegment, name: &str) -> SegmentInfo {
    // SAFETY: `ro` was validated, so it is larger than a header.
    let id = unsafe { identity_at(ro.base()) };
    SegmentInfo {
        name: name.to_string(),
        capacity: ro.len(),
        id: id.id,
        creator_pid: i32::try_from(id.creator_pid).ok().filter(|&p| p > 0),
        creator: id.creator_status(),
    }
}

impl Arena {
    /// The names of the POSIX shared-memory segments on this machine (the entries of
    /// `/dev/shm`), sorted; arenas of this crate and other programs' segments alike.
    ///
    /// # Errors
    /// [`Error::Os`] if `/dev/shm` cannot be listed.
    ///
    /// ```
    /// let name = format!("doc-names-{}", std::process::id());
    /// let _a = shared_runtime::Arena::create_segment(&name, 1 << 20)?;
    /// assert!(shared_runtime::Arena::segment_names()?.contains(&name));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn segment_names() -> Result<Vec<String>> {
        let mut names = segment_names()?;
        names.sort();
        Ok(names)
    }

    /// Reads a named arena's header summary through a read-only mapping: nothing is
    /// written, no lock taken, the segment is not opened as an arena.
    ///
    /// # Errors
    /// As [`open_segment`](Self::open_segment): [`Error::NotFound`],
    /// [`Error::InvalidSegment`] (not an arena, truncated, damaged header, another pid
    /// namespace's), [`Error::InvalidName`], [`Error::Os`] (no permission, say).
    ///
    /// ```
    /// let err = shared_runtime::Arena::segment_info("no-such-arena-here").unwrap_err();
    /// assert!(matches!(err, shared_runtime::Error::NotFound { .. }));
    /// ```
    pub fn segment_info(name: &str) -> Result<SegmentInfo> {
        let ro = open_checked(name)?;
        Ok(info_of(&ro, name))
    }

    /// Copies a named arena's bookkeeping into private memory without writing the arena
    /// (see [`Snapshot`]). Copies taken while another process was in the middle of an
    /// allocator operation are retried; if the allocator stays busy (a hung holder, or
    /// one that died holding it), the last copy is taken anyway and its free lists and
    /// counters are rebuilt from its blocks ([`Snapshot::settled`] is then `false`).
    ///
    /// # Errors
    /// As [`segment_info`](Self::segment_info), and [`Error::Corrupted`] if the block
    /// chain is damaged (or kept changing under every copy).
    ///
    /// ```
    /// let err = shared_runtime::Arena::snapshot_segment("no-such-arena-here").unwrap_err();
    /// assert!(matches!(err, shared_runtime::Error::NotFound { .. }));
    /// ```
    pub fn snapshot_segment(name: &str) -> Result<Snapshot> {
        let ro = open_checked(name)?;
        let info = info_of(&ro, name);
        let mut tries = 0;
        loop {
            tries += 1;
            let last = tries == TRIES;
            match copy_once(&ro, last) {
                Ok(Some((mem, allocator, settled))) => {
                    return Ok(Snapshot {
                        info,
                        copy: Arena::wrap(mem, None, 0),
                        allocator,
                        settled,
                    })
                }
                Err(e) if last => return Err(e),
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}

impl Snapshot {
    /// The segment's header summary.
    ///
    /// ```
    /// let name = format!("doc-snap-info-{}", std::process::id());
    /// let arena = shared_runtime::Arena::create_segment(&name, 1 << 20)?;
    /// let snap = shared_runtime::Arena::snapshot_segment(&name)?;
    /// assert_eq!((snap.info().name.as_str(), snap.info().id), (name.as_str(), arena.id()));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn info(&self) -> &SegmentInfo {
        &self.info
    }

    /// Who held the arena's allocator lock when the copy was taken (`None`: nobody).
    pub fn allocator_holder(&self) -> Option<Holder> {
        self.allocator
    }

    /// Whether the copy was taken with the allocator idle and unchanged throughout; if not,
    /// its free lists and counters were rebuilt from its blocks.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// The allocator's counters (see [`Arena::stats`]).
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the copied state is damaged.
    pub fn stats(&self) -> Result<ArenaStats> {
        self.copy.stats()
    }

    /// Every named object (see [`Arena::objects`]); lock holders are judged against the
    /// processes running now.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the copied directory is damaged.
    pub fn objects(&self) -> Result<Vec<ObjectInfo>> {
        self.copy.objects()
    }

    /// The block walk of [`Arena::check`], over the copy.
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming the first broken invariant.
    ///
    /// ```
    /// let name = format!("doc-snap-check-{}", std::process::id());
    /// let arena = shared_runtime::Arena::create_segment(&name, 1 << 20)?;
    /// let _v = arena.create::<shared_runtime::RawValue<u8>>("v", 1)?;
    /// let snap = shared_runtime::Arena::snapshot_segment(&name)?;
    /// assert_eq!(snap.check()?.used_blocks, arena.check()?.used_blocks);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn check(&self) -> Result<HeapReport> {
        self.copy.check()
    }
}

/// One copy: `None` if the allocator was busy or changed meanwhile (unless `accept`).
fn copy_once(ro: &ReadOnlySegment, accept: bool) -> Result<Option<CopyOut>> {
    let word = |off: u64| {
        ro.load(off)
            .ok_or_else(|| Error::Corrupted(format!("offset {off} is outside the segment")))
    };
    let before = (word(LOCK_AT)?, word(ALLOCATIONS_AT)?, word(FREES_AT)?);
    let ranges = plan(ro, word(TOP_AT)?)?;
    let len = ro.len();
    let mem = SharedMemory::create_anonymous("shared-runtime-snapshot", len)?;
    // The ranges ascend: the last one ends the copy.
    mem.expose(ranges.last().map_or(0, |r| r.1))?;
    reserve(&mem, &ranges)?;
    for &(from, to) in &ranges {
        for off in (from..to).step_by(8) {
            let w = word(off)?;
            // SAFETY: `off` is an 8-aligned offset below `len` (inside the segment, checked
            // by `word`), so inside the copy, whose page was reserved above; the copy is
            // private to this process and not yet shared with any thread.
            unsafe { mem.base().add(off as usize).cast::<u64>().write(w) };
        }
    }
    let after = (word(LOCK_AT)?, word(ALLOCATIONS_AT)?, word(FREES_AT)?);
    let settled = before.0 == 0 && before == after;
    if !settled && !accept {
        return Ok(None);
    }
    let held = [before.0, after.0].into_iter().find(|&w| w != 0);
    let allocator = held.map(|w| Holder::of(w & !crate::sys::futex::WAITERS, 0));
    let fix = |off: u64, value: u64| {
        // SAFETY: a word of the copied header (below `heap_start`, reserved), private.
        unsafe { mem.base().add(off as usize).cast::<u64>().write(value) }
    };
    // The copy's lock is free; a copy that may be half-way through an operation is rebuilt
    // from its blocks by the first reader, as after a crash.
    fix(LOCK_AT, 0);
    if !settled {
        fix(REBUILDING_AT, 1);
    }
    Ok(Some((mem, allocator, settled)))
}

type CopyOut = (SharedMemory, Option<Holder>, bool);

/// The byte ranges to copy: the header, then the head and footer of every block, walking
/// the chain with every size checked.
fn plan(ro: &ReadOnlySegment, top: u64) -> Result<Vec<(u64, u64)>> {
    let start = heap_start();
    if top < start || top % GRAIN != 0 || top > ro.len() {
        return Err(Error::Corrupted(format!(
            "the heap's end {top} is outside [{start}, {}]",
            ro.len()
        )));
    }
    let mut ranges = vec![(0, start)];
    let mut b = start;
    while b < top {
        let w = ro.load(b).unwrap_or(0);
        let size = w & !FLAGS;
        if size < MIN_BLOCK || size > top - b {
            return Err(Error::Corrupted(format!(
                "block at {b} has impossible size {size} (damaged, or changing as it was read)"
            )));
        }
        // A slab's objects are its payload: copied whole (owner words and all).
        let head = if tag_code(w) == SLAB_CODE { size } else { HEAD };
        ranges.push((b, b + size.min(head)));
        if size > HEAD {
            ranges.push((b + size - 8, b + size));
        }
        b += size;
    }
    Ok(ranges)
}

/// Reserves the pages the copy of `ranges` (ascending) writes, merging neighbours.
fn reserve(mem: &SharedMemory, ranges: &[(u64, u64)]) -> Result<()> {
    let page = page_size() as u64;
    let mut pending: Option<(u64, u64)> = None;
    for &(from, to) in ranges {
        let (a, z) = (
            from / page * page,
            (to.div_ceil(page) * page).min(mem.len()),
        );
        pending = match pending {
            Some((pa, pz)) if a <= pz => Some((pa, pz.max(z))),
            Some((pa, pz)) => {
                mem.reserve(pa, pz - pa)?;
                Some((a, z))
            }
            None => Some((a, z)),
        };
    }
    if let Some((a, z)) = pending {
        mem.reserve(a, z - a)?;
    }
    Ok(())
}
