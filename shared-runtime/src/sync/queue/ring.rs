//! The queue's block and what is done to it under its lock: the header (a lock cell, then
//! the ring state), the slots after it, and the two locked operations, copy in then
//! publish, copy out then publish.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Arc;
use std::time::Instant;

use crate::arena::{data_offset, Allocation, MappedPtr, ObjectKind, LOCK_CELL, QUEUE_HEADER};
use crate::sync::lock::LockGuard;
use crate::sync::queue::hook::{self, QueueStep};
use crate::sync::LockCore;
use crate::{Error, Result, SharedType};

/// The ring state, right after the lock cell. Every field is an atomic: another process
/// may write anything here, and nothing read from it is ever followed or used unchecked.
#[repr(C)]
pub(super) struct State {
    /// How many items were ever popped (monotonic; written under the lock).
    pub(super) head: AtomicU64,
    /// How many items were ever pushed (monotonic; written under the lock).
    pub(super) tail: AtomicU64,
    /// The capacity the queue was made with (checked against the opener's at every lock).
    pub(super) capacity: AtomicU64,
    /// Bumped under the lock by every push and by `close`: poppers sleep on it.
    pub(super) not_empty: AtomicU32,
    /// Bumped under the lock by every pop and by `close`: pushers sleep on it.
    pub(super) not_full: AtomicU32,
    /// 1 once closed.
    pub(super) closed: AtomicU32,
    /// How many poppers sleep (a hint: a popper that dies asleep leaves it one too high,
    /// which costs a needless wake-up, never a lost one).
    pub(super) pop_waiters: AtomicU32,
    /// How many pushers sleep (a hint, as `pop_waiters`).
    pub(super) push_waiters: AtomicU32,
}

const _: () = assert!(LOCK_CELL as usize + size_of::<State>() <= QUEUE_HEADER as usize);

/// Where the slots of a queue of `T` start in its block.
pub(crate) fn slots_at<T>() -> u64 {
    data_offset(ObjectKind::Queue, align_of::<T>() as u64)
}

/// Bytes of the block of a queue of `capacity` elements of `T`, `None` on overflow.
pub(crate) fn block_bytes<T>(capacity: u64) -> Option<u64> {
    capacity
        .checked_mul(size_of::<T>() as u64)?
        .checked_add(slots_at::<T>())
}

/// Writes the capacity into the header of a fresh queue block (the rest of a zeroed
/// header is an empty, open queue with its lock free).
///
/// # Safety
/// `block` is the 8-aligned start of a block of at least `QUEUE_HEADER` bytes that no
/// other thread or process uses yet.
pub(crate) unsafe fn init_header(block: *mut u8, capacity: u64) {
    // SAFETY: the state lies within the first QUEUE_HEADER bytes (asserted above), at an
    // 8-aligned offset; all its fields are atomics.
    let state = unsafe { &*block.add(LOCK_CELL as usize).cast::<State>() };
    state.capacity.store(capacity, Relaxed);
}

/// This process's view of one queue: its lock, its state and its slots.
pub(super) struct Ring<T> {
    lock: LockCore,
    state: MappedPtr<State>,
    slots: MappedPtr<T>,
    /// The capacity this process was told (by its creator, the directory or a handle,
    /// each checked against the block's size): the only capacity ever used for addressing.
    capacity: u64,
    _items: PhantomData<fn(T) -> T>,
}

impl<T: SharedType> Ring<T> {
    /// The ring in `block`, a block starting with a lock cell, the state after it.
    ///
    /// # Safety
    /// `block` holds at least `block_bytes::<T>(capacity)` bytes, aligned to
    /// `align_of::<T>().max(8)`, for as long as it lives.
    pub(super) unsafe fn new(block: Arc<Allocation>, capacity: u64) -> Self {
        let base = block.ptr();
        // SAFETY: by the caller's contract the block holds the header (LOCK_CELL bytes of
        // lock cell, then the state, within QUEUE_HEADER <= slots_at) and the slots, so
        // both addresses are inside it; 8-aligned (and T-aligned for the slots) because the
        // block is and the offsets are multiples of those alignments.
        let (state, slots) = unsafe {
            (
                base.add(LOCK_CELL as usize).cast::<State>(),
                base.add(slots_at::<T>() as usize).cast::<T>(),
            )
        };
        Ring {
            lock: LockCore::from_alloc(block),
            state: MappedPtr::new(NonNull::new(state).expect("inside a mapping")),
            slots: MappedPtr::new(NonNull::new(slots).expect("inside a mapping")),
            capacity,
            _items: PhantomData,
        }
    }

    pub(super) fn block(&self) -> &Arc<Allocation> {
        self.lock.allocation()
    }

    pub(super) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(super) fn state(&self) -> &State {
        // SAFETY: `state` points into the block `self.lock` keeps alive (see `new`); every
        // field is an atomic, valid for any bits and for concurrent use by any process.
        unsafe { self.state.get().as_ref() }
    }

    /// A lock-free snapshot of the number of items, clamped to `[0, capacity]` (garbage in
    /// the header gives a wrong but bounded answer).
    pub(super) fn len(&self) -> u64 {
        let s = self.state();
        // Head first: the tail read after it is at least the tail of that instant.
        let head = s.head.load(Acquire);
        let tail = s.tail.load(Acquire);
        tail.saturating_sub(head).min(self.capacity)
    }

    /// Takes the lock, waiting until `deadline` (`None`: as long as it takes; the lock is
    /// robust, so a dead holder is taken over within its poll). `Ok(None)` on timeout.
    ///
    /// A lock taken over from a dead holder is poisoned; the ring is consistent at every
    /// instant (a push or pop publishes with one store, after its copy), so once its
    /// bounds are checked the poison is cleared: the dead holder's item in flight is simply
    /// out (a push) or still in (a pop).
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the header breaks `head <= tail <= head + capacity` or
    /// names another capacity (written by a foreign or buggy process); the lock is then
    /// released, and a poison left as it was. [`Error::Corrupted`] too if the lock word
    /// names the calling thread (nothing here takes the lock twice), and the reason if the
    /// thread cannot get the identity it locks with (see `LockCore::lock_unnested`).
    pub(super) fn lock(&self, deadline: Option<Instant>) -> Result<Option<Held<'_, T>>> {
        let (guard, poisoned) = match self.lock.lock_unnested(deadline)? {
            None => return Ok(None),
            Some(Ok(g)) => (g, false),
            Some(Err(p)) => (p.into_inner(), true),
        };
        let s = self.state();
        let (head, tail) = (s.head.load(Relaxed), s.tail.load(Relaxed));
        let stored = s.capacity.load(Relaxed);
        let fits = tail >= head
            && tail - head <= self.capacity
            && stored == self.capacity
            && self.capacity != 0;
        if !fits {
            drop(guard);
            return Err(Error::Corrupted(format!(
                "the queue at offset {} has head {head}, tail {tail} and capacity {stored} \
                 (opened with capacity {}): its header was overwritten",
                self.block().offset(),
                self.capacity
            )));
        }
        if poisoned {
            self.lock.clear_poison();
        }
        Ok(Some(Held {
            ring: self,
            _guard: guard,
            head,
            tail,
        }))
    }

    /// The slot of item number `n` (pushed `n`-th, ever).
    fn slot(&self, n: u64) -> *mut T {
        // `% capacity` keeps every index in bounds whatever `n` is; capacity > 0 (checked
        // by every constructor).
        let i = (n % self.capacity) as usize;
        // SAFETY: `i < capacity`, and the block holds `capacity` slots from `slots` (see
        // `new`), so the address is inside the block.
        unsafe { self.slots.get().as_ptr().add(i) }
    }

    pub(super) fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("closed", &(self.state().closed.load(Relaxed) != 0))
            .finish()
    }
}

/// The queue's lock, held, with the bounds read (and checked) under it.
pub(super) struct Held<'a, T: SharedType> {
    ring: &'a Ring<T>,
    _guard: LockGuard<'a>,
    head: u64,
    tail: u64,
}

impl<T: SharedType> Held<'_, T> {
    pub(super) fn is_full(&self) -> bool {
        self.tail - self.head >= self.ring.capacity
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    pub(super) fn is_closed(&self) -> bool {
        self.ring.state().closed.load(Relaxed) != 0
    }

    /// Copies `item` into the next free slot, then publishes it (`tail + 1`, one store)
    /// and bumps `not_empty`. Returns whether poppers sleep (to wake once unlocked).
    /// The queue must not be full.
    pub(super) fn push(&mut self, item: &T) -> bool {
        debug_assert!(!self.is_full());
        let slot = self.ring.slot(self.tail);
        // SAFETY: `slot` is a free slot of the block, `size_of::<T>()` bytes, which no
        // popper reads while the lock is held and `tail` does not cover it.
        unsafe { hook::tear(slot.cast::<u8>(), size_of::<T>()) };
        hook::at(QueueStep::PushCopying);
        // SAFETY: `slot` is an aligned slot of the block (see `Ring::slot`), outside
        // `[head, tail)`, so no popper reads it until the store of `tail` below; the store
        // is made of atomic writes, so a foreign process writing it too is a race on
        // values only.
        unsafe { T::store(item, slot) };
        let s = self.ring.state();
        self.tail = self.tail.wrapping_add(1);
        s.tail.store(self.tail, Release);
        s.not_empty.fetch_add(1, Release);
        s.pop_waiters.load(Relaxed) != 0
    }

    /// Copies the oldest item out, then publishes its removal (`head + 1`, one store) and
    /// bumps `not_full`. Returns the item and whether pushers sleep. The queue must not be
    /// empty.
    pub(super) fn pop(&mut self) -> (T, bool) {
        debug_assert!(!self.is_empty());
        let slot = self.ring.slot(self.head);
        // SAFETY: `slot` is an aligned slot of the block inside `[head, tail)`, written by a
        // completed push; read with atomic loads (a foreign writer races on values only),
        // and every bit pattern is a valid `T` (`SharedType`).
        let item = unsafe { atomic_memcpy::atomic_load(slot, Relaxed).assume_init() };
        hook::at(QueueStep::PopCopying);
        let s = self.ring.state();
        self.head = self.head.wrapping_add(1);
        s.head.store(self.head, Release);
        s.not_full.fetch_add(1, Release);
        (item, s.push_waiters.load(Relaxed) != 0)
    }

    /// Counts the caller as a sleeping pusher and gives the `not_full` word to sleep on
    /// (read under the lock: any pop after the unlock changes it, so no wake-up is lost);
    /// `None`, counting nobody, if the queue turns out closed (see [`Self::seq_then_open`]).
    pub(super) fn sleep_as_pusher(&self) -> Option<u32> {
        let s = self.ring.state();
        let seen = self.seq_then_open(&s.not_full)?;
        s.push_waiters.fetch_add(1, Relaxed);
        Some(seen)
    }

    /// Counts the caller as a sleeping popper and gives the `not_empty` word to sleep on,
    /// as [`sleep_as_pusher`](Self::sleep_as_pusher).
    pub(super) fn sleep_as_popper(&self) -> Option<u32> {
        let s = self.ring.state();
        let seen = self.seq_then_open(&s.not_empty)?;
        s.pop_waiters.fetch_add(1, Relaxed);
        Some(seen)
    }

    /// The sequence word `word`, read **before** the closed flag, which must still be
    /// clear. A `close` that gave up on the lock ([`Ring::mark_closed`] without it) stores
    /// the flag, then bumps the words: a sleeper that read the word before the bump is
    /// woken by it; one that read it after (an acquire load, pairing with the bump's
    /// release) then sees the flag here, and does not sleep at all.
    fn seq_then_open(&self, word: &AtomicU32) -> Option<u32> {
        let seen = word.load(Acquire);
        (!self.is_closed()).then_some(seen)
    }

    /// Marks the queue closed (see [`Ring::mark_closed`]).
    pub(super) fn close(&self) {
        self.ring.mark_closed();
    }
}

impl<T: SharedType> Ring<T> {
    /// Marks the queue closed and bumps both sequence words, under the lock or without it
    /// (a `close` that could not take the lock). Without it this is still safe: the three
    /// words are atomics whose values are never used to address anything, the flag is
    /// stored before the bumps (see `Held::seq_then_open`: no sleeper misses it), and a
    /// push that found the queue open under the lock before the flag was stored completes
    /// as a push made before the close. Its item is not lost: a popper that saw the flag
    /// under the lock before that pusher took it makes the pusher see the flag too (the
    /// lock orders their loads of it), and a popper after it finds the item.
    pub(super) fn mark_closed(&self) {
        let s = self.state();
        s.closed.store(1, Release);
        s.not_empty.fetch_add(1, Release);
        s.not_full.fetch_add(1, Release);
    }
}
