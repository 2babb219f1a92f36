//! One block of an arena, freed on drop by the process that owns it.

use std::ptr::null_mut;
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicI32, AtomicPtr, AtomicU64, AtomicU8,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use std::sync::Arc;

use crate::arena::cache::Class;
use crate::arena::heap::{tag_code, LOCK_BLOCK, RECORD_BLOCK};
use crate::arena::{opened, Arena, ArenaRef, ObjectKind};
use crate::sys::process::process_key;
use crate::Result;

/// An owned block of an arena: the arena handle keeps the mapping alive, the offset names
/// the payload. Only the owning process frees it; a forked child's copy of its parent's
/// `Allocation` frees nothing when dropped, and neither does a descendant that happens to
/// reuse the owner's pid (ownership is a `process_key`, not a bare pid).
pub(crate) struct Allocation {
    arena: ArenaRef,
    offset: u64,
    /// The payload's address in this process (`arena.base() + offset`, computed once: the
    /// hot path of every access follows this one pointer instead of three).
    ptr: MappedPtr<u8>,
    /// The `process_key` of the owning process, 0 if this handle owns nothing. Atomic:
    /// adopting a block that this process already has a handle of makes that handle the
    /// owner (see [`adopt`](Allocation::adopt)), while its clones may be in use.
    owner: AtomicU64,
    /// Process-local: the thread id of a thread of this process that has the block's data
    /// borrowed through a lock guard (see `Synchronized`), 0 if none. Here, so that every
    /// clone of a handle (they share this `Allocation`) sees one mark.
    borrowed_by: AtomicI32,
    /// The block this one is part of (a `Value`'s data, after its lock cell), kept alive
    /// as long as this part is.
    parent: Option<Arc<Allocation>>,
    /// The open records of a named object (set when one is made or adopted), null if none:
    /// a `Box` of them, set once, freed on drop. Kept out of line, so that the handle of
    /// every unnamed object (almost all of them) is small: it is allocated, written and
    /// freed with every `RawValue`/`Value` made and dropped.
    records: AtomicPtr<Records>,
    /// Whether this handle is in this process's map of opened objects (`opened.rs`), under
    /// its block's offset ([`block_offset`](Self::block_offset)): [`MAPPED`] (its slot is
    /// dropped with it) or 0.
    mapped: AtomicU8,
    /// The cache class of the block (see `cache.rs`), if the owner may keep it in its
    /// cache when done instead of freeing it.
    class: Option<Class>,
}

/// `Allocation::mapped` of a handle in the map of opened objects.
const MAPPED: u8 = 1;

/// The open records a handle of a named object closes when dropped.
#[derive(Default)]
struct Records {
    /// The payload offset of this process's open record of a named object (see
    /// `records.rs`), 0 if none; closed on drop by the process that made it.
    record: u64,
    /// The `process_key` of the process that made `record`.
    record_key: u64,
    /// A forked child's own open record of an object whose handle it inherited (the
    /// inherited `record` is its parent's), and the child's `process_key`.
    adopted: AtomicU64,
    adopted_key: AtomicU64,
}

/// An address inside an arena's mapping, kept beside the handle that keeps the mapping
/// alive. `Send + Sync` on its own, so that the structs holding one still get those traits
/// only when their other fields have them (no blanket `unsafe impl` on the holders).
pub(crate) struct MappedPtr<T>(NonNull<T>);

// By hand: a derive would ask `T: Clone`, and the pointee is never copied.
impl<T> Clone for MappedPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for MappedPtr<T> {}

impl<T> MappedPtr<T> {
    pub(crate) fn new(ptr: NonNull<T>) -> Self {
        MappedPtr(ptr)
    }

    #[inline]
    pub(crate) fn get(self) -> NonNull<T> {
        self.0
    }
}

// SAFETY: the pointer is an address in a `MAP_SHARED` mapping, which every thread of the
// process sees at the same address; it is only used to reach shared memory through
// atomics or under this crate's locks, exactly as `arena.base()` plus an offset would be.
// Dereferencing it is each holder's own `unsafe`, with its own proof.
unsafe impl<T> Send for MappedPtr<T> {}
// SAFETY: as above; sharing the address between threads shares nothing else.
unsafe impl<T> Sync for MappedPtr<T> {}

/// The payload at `offset` of `arena`, in this process.
fn payload(arena: &Arena, offset: u64) -> NonNull<u8> {
    // Every block is handed out or checked under `Arena::with_heap`, which first makes the
    // whole heap (`[0, committed)`) accessible in this process, and that never shrinks.
    debug_assert!(
        offset < arena.inner.mem.exposed(),
        "block past the exposed prefix"
    );
    // SAFETY: the offset was handed out by the allocator of this arena (or checked against
    // it by the caller that opened the block), so it lies inside the mapping, which the
    // arena handle stored next to this pointer keeps alive.
    let ptr = unsafe { arena.base().add(offset as usize) };
    NonNull::new(ptr).expect("a mapping is never at address 0")
}

/// The `Allocation` `make` makes, in an `Arc` allocated before it is made, so that it is
/// written once, in place (when `make` is inlined).
#[inline(always)]
fn in_arc(make: impl FnOnce() -> Allocation) -> Arc<Allocation> {
    // (`Arc::new_uninit` computes its layout in a call that is not inlined.)
    let mut arc = Arc::new(std::mem::MaybeUninit::<Allocation>::uninit());
    Arc::get_mut(&mut arc)
        .expect("a new Arc is unique")
        .write(make());
    // SAFETY: the `Allocation` was written just above.
    unsafe { arc.assume_init() }
}

/// A block the calling process has just allocated (`Arena::alloc_marked`): its payload
/// offset and its cache class.
#[derive(Clone, Copy)]
pub(crate) struct Fresh {
    pub(crate) offset: u64,
    pub(crate) class: Option<Class>,
}

impl Allocation {
    /// The handle of `block`, just allocated from `arena` by this process, made in place in
    /// its `Arc`: the `Arc`'s memory is allocated first, so the fields are stored once,
    /// where they stay (`Arc::new` of a value built before its allocation call copies it
    /// from the stack with wide loads of words just stored narrow, which stall).
    #[inline]
    pub(crate) fn fresh(arena: &Arena, block: Fresh) -> Arc<Allocation> {
        in_arc(|| Allocation::new(ArenaRef::of(arena), block.offset).cached_as(block.class))
    }

    /// [`part`](Self::part), made in place in its `Arc` (see [`fresh`](Self::fresh)).
    #[inline]
    pub(crate) fn part_arc(parent: Arc<Allocation>, at: u64) -> Arc<Allocation> {
        in_arc(|| Allocation::part(parent, at))
    }

    /// An allocation the calling process has just made.
    #[inline]
    pub(crate) fn new(arena: ArenaRef, offset: u64) -> Self {
        Allocation {
            ptr: MappedPtr::new(payload(&arena, offset)),
            arena,
            offset,
            owner: AtomicU64::new(process_key()),
            borrowed_by: AtomicI32::new(0),
            parent: None,
            records: AtomicPtr::new(null_mut()),
            mapped: AtomicU8::new(0),
            class: None,
        }
    }

    /// The same allocation, its block cached as `class` when freed.
    #[inline]
    pub(crate) fn cached_as(mut self, class: Option<Class>) -> Self {
        self.class = class;
        self
    }

    /// A named object's block, opened by this process with the open record at `record`.
    pub(crate) fn named(arena: Arena, offset: u64, record: u64) -> Self {
        let key = process_key();
        Allocation::make(ArenaRef::of(&arena), offset, 0, (record, key), None)
    }

    /// The part of `parent`'s block that starts `at` bytes into it.
    #[inline]
    pub(crate) fn part(parent: Arc<Allocation>, at: u64) -> Self {
        let (arena, offset) = (parent.arena.clone(), parent.offset + at);
        Allocation::make(arena, offset, 0, (0, 0), Some(parent))
    }

    #[inline]
    fn make(
        arena: ArenaRef,
        offset: u64,
        owner: u64,
        (record, record_key): (u64, u64),
        parent: Option<Arc<Allocation>>,
    ) -> Self {
        Allocation {
            ptr: MappedPtr::new(payload(&arena, offset)),
            arena,
            offset,
            owner: AtomicU64::new(owner),
            borrowed_by: AtomicI32::new(0),
            parent,
            records: AtomicPtr::new(if record != 0 || record_key != 0 {
                Box::into_raw(Box::new(Records {
                    record,
                    record_key,
                    ..Records::default()
                }))
            } else {
                null_mut()
            }),
            mapped: AtomicU8::new(0),
            class: None,
        }
    }

    /// Keeps `record`, an open record this process just made of this object, if this
    /// handle has none of this process's yet (it was inherited from the parent process).
    /// `false` if it has one: the caller closes `record`.
    pub(crate) fn adopt_record(&self, record: u64) -> bool {
        let holder = self.parent.as_deref().unwrap_or(self);
        let holder = holder.records_or_new();
        let me = process_key();
        let seen = holder.adopted_key.load(Relaxed);
        if holder.record_key == me || seen == me {
            return false;
        }
        if holder
            .adopted_key
            .compare_exchange(seen, me, Relaxed, Relaxed)
            .is_err()
        {
            return false; // another thread of this process adopted one first
        }
        holder.adopted.store(record, Relaxed);
        true
    }

    /// Notes that this handle is in the map of opened objects under `block`.
    pub(crate) fn set_mapped(&self, block: u64) {
        debug_assert_eq!(block, self.block_offset(), "mapped under another key");
        self.mapped.store(MAPPED, Relaxed);
    }

    /// The open records of this handle, if it has any.
    fn records(&self) -> Option<&Records> {
        let p = self.records.load(Acquire);
        // SAFETY: a non-null pointer here came from `Box::into_raw` (in `make`, or in
        // `records_or_new`, which stores it once, over null only); it is freed only by
        // `drop`, which has `&mut self`, so it lives at least as long as this `&self`.
        // The `Records` is only read here (its mutable fields are atomics).
        unsafe { p.as_ref() }
    }

    /// The open records of this handle, made empty if it has none yet.
    fn records_or_new(&self) -> &Records {
        if let Some(r) = self.records() {
            return r;
        }
        let new = Box::into_raw(Box::<Records>::default());
        match self
            .records
            .compare_exchange(null_mut(), new, AcqRel, Acquire)
        {
            // SAFETY: `new` is now this handle's (see `records`), valid until its drop.
            Ok(_) => unsafe { &*new },
            Err(first) => {
                // SAFETY: `new` came from `Box::into_raw` just above and was not stored: it
                // is freed once, here.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: `first`, non-null, was stored by another thread: as in `records`.
                unsafe { &*first }
            }
        }
    }

    /// The block this is a part of, if it is a part.
    pub(crate) fn parent(&self) -> Option<&Arc<Allocation>> {
        self.parent.as_ref()
    }

    /// A handle to a block this process does not own (a named object, or one opened from
    /// a handle): it never frees it.
    pub(crate) fn borrowed(arena: Arena, offset: u64) -> Self {
        let arena = ArenaRef::of(&arena);
        Allocation {
            ptr: MappedPtr::new(payload(&arena, offset)),
            arena,
            offset,
            owner: AtomicU64::new(0),
            borrowed_by: AtomicI32::new(0),
            parent: None,
            records: AtomicPtr::new(null_mut()),
            mapped: AtomicU8::new(0),
            class: None,
        }
    }

    /// Address of the payload in this process.
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.get().as_ptr()
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the calling process owns the block (so this is its only handle here).
    pub(crate) fn owned_here(&self) -> bool {
        let owner = self.owner.load(Relaxed);
        owner != 0 && owner == process_key()
    }

    /// Whether the calling process owns the object this handle is the data of: its own
    /// block, or the block it is a part of (the data of a `Value`/`Array` made with its own
    /// lock, after the lock cell). A named object's block is the directory's: not owned.
    pub(crate) fn object_owned_here(&self) -> bool {
        self.owned_here() || self.parent.as_ref().is_some_and(|p| p.owned_here())
    }

    /// The offset of the block holding this data: its own, or that of the block it is a
    /// part of. The key of the object in this process's map of opened objects.
    pub(crate) fn block_offset(&self) -> u64 {
        self.parent.as_ref().map_or(self.offset, |p| p.offset)
    }

    pub(crate) fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The process-local mark of the thread that has this block's data borrowed.
    pub(crate) fn borrow_mark(&self) -> &AtomicI32 {
        &self.borrowed_by
    }

    /// Panics if the calling thread has this block's data borrowed through a lock guard:
    /// called by every raw accessor, which would otherwise write (or read) behind the
    /// guard's `&mut`. Cheap: one relaxed load of a process-local word, and the thread's
    /// cached id only when some thread has the block borrowed.
    ///
    /// Only this thread ever writes its own id into the mark (and clears it before
    /// releasing the lock), so a mark equal to our id is never stale and never missed.
    #[inline]
    #[track_caller]
    pub(crate) fn assert_not_borrowed_here(&self) {
        if self.borrowed_here() {
            panic_borrowed_here();
        }
    }

    /// Whether the calling thread has this block's data borrowed through a lock guard.
    #[inline]
    pub(crate) fn borrowed_here(&self) -> bool {
        let mark = self.borrowed_by.load(Relaxed);
        mark != 0 && mark == crate::sys::liveness::current_tid()
    }

    /// Gives up ownership without freeing: the block stays allocated, marked as waiting for
    /// another process (or this one) to [`adopt`](Self::adopt) it. The arena handle is
    /// released as usual (the block is not: this handle no longer owns it).
    pub(crate) fn detach(mut self) -> Result<u64> {
        if self.parent.is_some() {
            return Err(crate::Error::SharesBlock {
                offset: self.offset,
            });
        }
        if !self.owned_here() {
            return Err(crate::Error::NotOwner {
                offset: self.offset,
            });
        }
        let me = self.arena.owner_tag();
        let offset = self.offset;
        self.arena.with_heap(|h| h.set_owner(offset, me, 0))?;
        *self.owner.get_mut() = 0;
        Ok(offset)
    }

    /// Takes ownership of a detached block whose payload is at `offset` and holds at least
    /// `size` bytes aligned to `align`: this process's one handle of it.
    ///
    /// Only a block given up as data is taken: never a lock cell, an open record or the
    /// block of an unnamed synchronization object (a forged "detached" owner word in one
    /// would otherwise make it data owned twice). If this process already has a handle of
    /// the block as data (a view opened from a borrowed handle, or inherited from its
    /// parent), that handle becomes the owner and is returned: a second, independent
    /// handle (with its own borrow mark) could write behind a guard of the first.
    pub(crate) fn adopt(
        arena: &Arena,
        offset: u64,
        size: usize,
        align: usize,
    ) -> Result<Arc<Self>> {
        let me = arena.owner_tag();
        arena.with_heap(|h| {
            let cap = h.payload_capacity(offset)?;
            if cap < size as u64 || offset % align as u64 != 0 {
                return Err(crate::Error::Corrupted(format!(
                    "the block at offset {offset} holds {cap} bytes, cannot hold {size} bytes \
                     aligned to {align}"
                )));
            }
            let word = h.object(offset)?.marks;
            let made_for = if word & LOCK_BLOCK != 0 {
                Some("a lock".to_string())
            } else if word & RECORD_BLOCK != 0 {
                Some("an open record of a named object".to_string())
            } else {
                match tag_code(word) {
                    0 => None,
                    code => Some(match ObjectKind::from_code(code) {
                        Some(k) => format!("an unnamed {k}"),
                        None => format!("an object of unknown kind code {code}"),
                    }),
                }
            };
            if let Some(what) = made_for {
                return Err(crate::Error::Corrupted(format!(
                    "the block at offset {offset} was made for {what}, not given up as data: \
                     it cannot be taken over"
                )));
            }
            h.set_owner(offset, 0, me)
        })?;
        // Not owned until the map says which handle owns it: a handle dropped on refusal
        // must not free the block.
        let fresh = Arc::new(Allocation::borrowed(arena.clone(), offset));
        match opened::adopt(arena, offset, fresh) {
            Ok(data) => {
                data.owner.store(process_key(), Relaxed);
                Ok(data)
            }
            Err(e) => {
                // Given back, as it was. If even that fails, the block stays this
                // process's, unused, until `Arena::reclaim_dead` frees it after this process
                // has ended: leaked, never owned twice.
                let _ = arena.with_heap(|h| h.set_owner(offset, me, 0));
                Err(e)
            }
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn panic_borrowed_here() -> ! {
    panic!(
        "this thread holds a guard of this object (from lock(), or an update() in \
         progress): use the guard; a raw access would bypass the guard's exclusive reference"
    )
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if self.owned_here() {
            // A failure here means the arena's bookkeeping was damaged by someone else; there
            // is nobody to report it to from a destructor, and leaking the block is the safe
            // outcome. `Arena::check` reports such damage.
            let _ = self.arena.free_owned(self.offset, self.class);
        }
        let records = std::mem::replace(self.records.get_mut(), null_mut());
        // SAFETY: non-null, it came from `Box::into_raw` and is owned by this handle alone
        // (see `records`); swapped out above, so it is freed once, here.
        let records = (!records.is_null()).then(|| unsafe { Box::from_raw(records) });
        if let Some(r) = &records {
            if r.record != 0 && r.record_key == process_key() {
                // As above: on failure the record (and a removed object) stays allocated.
                let (record, object) = (r.record, self.offset);
                let _ = self
                    .arena
                    .with_heap(|h| h.close_record(record, object, self.arena.owner_tag()));
                crate::arena::opened::forget(&self.arena, object);
            }
        }
        if self.mapped.load(Relaxed) == MAPPED {
            opened::forget(&self.arena, self.block_offset());
        }
        if let Some(r) = &records {
            let adopted = r.adopted.load(Relaxed);
            if adopted != 0 && r.adopted_key.load(Relaxed) == process_key() {
                let object = self.offset;
                let _ = self
                    .arena
                    .with_heap(|h| h.close_record(adopted, object, self.arena.owner_tag()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handle of every object is allocated, written and freed with it: kept small (an
    /// `Arc` of it is an 80-byte `malloc` chunk). A named object's records are out of line.
    #[test]
    fn the_handle_stays_small() {
        assert!(size_of::<Allocation>() <= 56, "{}", size_of::<Allocation>());
    }
}
