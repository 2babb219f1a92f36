//! The arena header at offset 0: what identifies an arena and how it is checked.

use std::ptr::addr_of;

use crate::arena::heap::{HeapState, GRAIN, MIN_BLOCK};
use crate::sys::futex::FutexLock;
use crate::sys::liveness;
use crate::sys::memory::SharedMemory;
use crate::{Error, Result};

/// "shctypes", little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"shctypes");
/// Bumped whenever the header or block format changes (4: an object's lock cell counts its
/// sleepers and packs its poison record into 32 bits; small objects live in slabs of slots).
pub(crate) const VERSION: u32 = 4;

/// What sits at offset 0 of every arena.
#[repr(C)]
pub(crate) struct ArenaHeader {
    magic: u64,
    version: u32,
    _reserved: u32,
    capacity: u64,
    /// A random number naming this arena in handles.
    id: u64,
    /// The creating process and when it started (so a reused pid is not mistaken for it):
    /// `Arena::remove_stale_segments` removes named segments whose creator is gone.
    creator_pid: i64,
    creator_start: u64,
    /// The creator's pid namespace (inode of `/proc/self/ns/pid`), 0 if unknown: thread
    /// ids in lock words mean something only in that namespace.
    creator_pidns: u64,
    /// The allocator's lock: a futex lock word, holding no address (see `sys::futex`).
    pub(crate) lock: FutexLock,
    pub(crate) heap: HeapState,
}

/// Where the first block starts: after the header, on a cache line.
pub(crate) fn heap_start() -> u64 {
    (std::mem::size_of::<ArenaHeader>() as u64).next_multiple_of(64)
}

/// The smallest arena: a header and one small object.
pub(crate) fn min_capacity() -> u64 {
    heap_start() + 2 * MIN_BLOCK + GRAIN
}

fn random_id() -> u64 {
    let mut id = [0u8; 8];
    if !crate::sys::random::fill(&mut id) {
        // No entropy source: a mix of time, pid and address is unique enough for an id.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ (u64::from(std::process::id()) << 32) ^ (id.as_ptr() as u64);
    }
    u64::from_ne_bytes(id)
}

/// Writes a fresh header into `mem`, which must be new, zeroed and not yet shared.
///
/// # Safety
/// No other thread or process may access `mem` during the call.
pub(crate) unsafe fn init(mem: &SharedMemory, first_reserved: u64, creator_pidns: u64) {
    let header = mem.base().cast::<ArenaHeader>();
    // SAFETY: the caller guarantees exclusive access; the mapping is page-aligned and
    // larger than the header (checked by the callers against `min_capacity`).
    unsafe {
        (*header).version = VERSION;
        (*header).capacity = mem.len();
        (*header).id = random_id();
        let pid = crate::sys::process::current_pid();
        (*header).creator_pid = i64::from(pid);
        // 0 when unknown: `remove_stale_segments` then never removes this segment.
        (*header).creator_start = liveness::process_start_time(pid).unwrap_or(0);
        (*header).creator_pidns = creator_pidns;
        // The lock word and the rest of the heap state are zero, as the fresh file is: a
        // free lock, empty bins.
        let heap = &(*header).heap;
        heap.start.set(heap_start());
        heap.top.set(heap_start());
        heap.committed.set(first_reserved);
        // The magic number goes last: a process opening the segment by name meanwhile
        // sees either no arena or a complete one.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        std::ptr::addr_of_mut!((*header).magic).write_volatile(MAGIC);
    }
}

fn invalid(name: &str, reason: String) -> Error {
    Error::InvalidSegment {
        name: name.to_string(),
        reason,
    }
}

/// Checks that `mem` (opened by name, so written by someone else) holds an arena of ours
/// and that the scalars everything else relies on are in bounds.
pub(crate) fn validate(mem: &SharedMemory, name: &str) -> Result<()> {
    // SAFETY: `base` is the start of a mapping of `mem.len()` bytes that lives as long as
    // `mem`, borrowed for the whole call.
    unsafe { validate_at(mem.base(), mem.len(), name) }
}

/// [`validate`] for the mapping of `len` bytes at `base` (read-only ones included: it only
/// reads).
///
/// # Safety
/// `base` is the page-aligned start of a mapping of `len` readable bytes that stays mapped
/// during the call.
pub(crate) unsafe fn validate_at(base: *const u8, len: u64, name: &str) -> Result<()> {
    if len < min_capacity() {
        return Err(invalid(
            name,
            format!("only {len} bytes: too small to be an arena"),
        ));
    }
    let header = base.cast::<ArenaHeader>();
    // SAFETY: the mapping holds at least `min_capacity()` bytes, more than the header; the
    // reads are volatile because another process may write these words at any time (such
    // a race can only produce a wrong value, which the checks below then reject).
    let magic = unsafe { addr_of!((*header).magic).read_volatile() };
    // Pairs with the release fence before the creator writes the magic number.
    std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
    // SAFETY: as above.
    let (version, capacity) = unsafe {
        (
            addr_of!((*header).version).read_volatile(),
            addr_of!((*header).capacity).read_volatile(),
        )
    };
    if magic != MAGIC {
        return Err(invalid(
            name,
            format!("magic number {magic:#018x} is not an arena's"),
        ));
    }
    if version != VERSION {
        return Err(invalid(
            name,
            format!("format version {version}, this build reads {VERSION}"),
        ));
    }
    if capacity != len {
        return Err(invalid(
            name,
            format!("header says {capacity} bytes but the segment has {len} (truncated?)"),
        ));
    }
    // SAFETY: as above.
    let pidns = unsafe { addr_of!((*header).creator_pidns).read_volatile() };
    if let Some(mine) = liveness::pid_namespace() {
        if pidns != 0 && pidns != mine {
            return Err(invalid(
                name,
                format!(
                    "created in another pid namespace ({pidns}, this process is in {mine}): \
                     thread ids there name other threads here, so a lock whose holder died \
                     could not be told from one whose holder runs"
                ),
            ));
        }
    }
    // SAFETY: as above; the heap state is inside the header.
    let heap = unsafe { &*addr_of!((*header).heap) };
    check_state(heap, len).map_err(|e| invalid(name, e))
}

/// The allocator's scalars are in bounds: `start <= top <= committed <= len`, and every bin
/// head is zero or a block offset below `top`.
pub(crate) fn check_state(st: &HeapState, len: u64) -> Result<(), String> {
    let (start, top, committed) = (st.start.get(), st.top.get(), st.committed.get());
    if start != heap_start()
        || top < start
        || top % GRAIN != 0
        || top > committed
        || committed > len
    {
        return Err(format!(
            "heap bounds start {start}, top {top}, reserved {committed} do not fit {len} bytes"
        ));
    }
    Ok(())
}

/// Who made an arena, as its header says (nothing checked but the reads).
pub(crate) struct Identity {
    pub(crate) id: u64,
    pub(crate) creator_pid: i64,
    pub(crate) creator_start: u64,
    pub(crate) creator_pidns: u64,
}

/// Reads the identity words of the header at `base`, volatile (another process may write
/// them meanwhile: a torn value is only a wrong answer).
///
/// # Safety
/// `base` is the start of at least `size_of::<ArenaHeader>()` readable mapped bytes.
pub(crate) unsafe fn identity_at(base: *const u8) -> Identity {
    let h = base.cast::<ArenaHeader>();
    // SAFETY: every field lies inside the header, which the caller says is mapped.
    unsafe {
        Identity {
            id: addr_of!((*h).id).read_volatile(),
            creator_pid: addr_of!((*h).creator_pid).read_volatile(),
            creator_start: addr_of!((*h).creator_start).read_volatile(),
            creator_pidns: addr_of!((*h).creator_pidns).read_volatile(),
        }
    }
}

impl Identity {
    /// Whether the creator runs, under the proof-of-death rules of `sys::liveness`:
    /// `Dead` only with proof, `Unknown` for a pid that cannot be judged here.
    pub(crate) fn creator_status(&self) -> crate::HolderStatus {
        use crate::HolderStatus::{Alive, Dead, Unknown};
        let Ok(pid) = i32::try_from(self.creator_pid) else {
            return Unknown;
        };
        if pid <= 0 || liveness::in_other_pid_namespace(self.creator_pidns) {
            return Unknown;
        }
        let start = (self.creator_start != 0).then_some(self.creator_start);
        if liveness::process_ended(pid, start) {
            Dead
        } else {
            Alive
        }
    }
}

impl ArenaHeader {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The creator's pid namespace, 0 if unknown.
    pub(crate) fn creator_pidns(&self) -> u64 {
        // SAFETY: a field of the header, which lives as long as `self`; read volatile
        // because another process may write it (a wrong value only changes a verdict
        // towards "foreign", where nobody is proven dead).
        unsafe { std::ptr::addr_of!(self.creator_pidns).read_volatile() }
    }

    /// Whether the process that created the arena has provably ended (see
    /// `sys::liveness`); a pid reused by another process counts as ended when the creator's
    /// start time is known.
    pub(crate) fn creator_is_gone(&self) -> bool {
        let Ok(pid) = i32::try_from(self.creator_pid) else {
            return false;
        };
        if liveness::in_other_pid_namespace(self.creator_pidns()) {
            return false; // its pid names another process here
        }
        let start = (self.creator_start != 0).then_some(self.creator_start);
        liveness::process_ended(pid, start)
    }
}

/// Where the arena's lock word lies in the header (for fault-injection tests), and where
/// the heap starts.
///
/// ```
/// let (lock_at, lock_len, heap_start) = shared_runtime::test_hooks::layout_for_tests();
/// assert!(lock_at + lock_len <= heap_start as usize);
/// ```
#[cfg(feature = "test-hooks")]
pub fn layout_for_tests() -> (usize, usize, u64) {
    (
        std::mem::offset_of!(ArenaHeader, lock),
        std::mem::size_of::<FutexLock>(),
        heap_start(),
    )
}
