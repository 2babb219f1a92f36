//! `Queue<T>`: a bounded multi-producer, multi-consumer queue of `T` in an arena, as
//! Python's `multiprocessing.Queue` but with items copied, never pickled.

mod error;
pub(crate) mod hook;
mod ring;
mod wait;

use std::fmt;
use std::mem::align_of;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::arena::{Allocation, Arena, ObjectKind};
use crate::sys::futex_word::wake_all;
use crate::{Error, Result, SharedType};

pub use error::{PopError, PushError};
#[cfg(feature = "test-hooks")]
pub use hook::{set_queue_hook, QueueStep};
use ring::Ring;
pub(crate) use ring::{block_bytes, init_header, slots_at};
use wait::{nap, soon, Patience, CLOSE_LOCK_WAIT};

/// A bounded queue of `T` shared between processes (Python's `multiprocessing.Queue`,
/// bounded): any process may [`push`](Self::push) and [`pop`](Self::pop); items are
/// copied in and out of `capacity` slots in an [`Arena`], first in, first out.
///
/// It is one block of the arena: a robust lock, the ring's counters and the slots. Clones
/// name the same queue, in this process and in forked children; it can be named
/// ([`Arena::create`], [`open`](Arena::open)) and handed over by
/// [`handle`](Self::handle). The process that made it with [`new`](Self::new) owns the
/// block: keep a handle of it alive while others use the queue.
///
/// [`push`](Self::push) waits while the queue is full and [`pop`](Self::pop) while it is
/// empty; the `try_` forms never wait for room or items (and at most 1 ms for the lock),
/// the `_timeout` forms wait at most so long. [`close`](Self::close) ends it: pushes fail
/// from then on, pops drain what is left and then say so.
///
/// # Waiting
/// A waiter sleeps on a futex word that the push, pop or close it waits for changes and
/// wakes; it is not a polling loop, but an idle waiter still wakes every 50 ms to look
/// again, so that it never depends on another process being alive: a lock holder that
/// died is taken over (robust lock), and a change whose maker died before its wake-up is
/// seen at the next look. Waiting for the lock itself is a lock's wait: a holder that
/// cannot be proven dead counts as alive ("cannot tell" means alive) and `push`/`pop`
/// wait for it, with no bound. That includes a lock word that another process overwrote
/// with a value naming a process this one cannot check (of another pid namespace, say):
/// `push` and `pop` then wait until the word is freed; `try_push`/`try_pop` say
/// `Full`/`Empty` after 1 ms, the `_timeout` forms time out, and `close` closes without
/// the lock after 50 ms.
///
/// # Errors
/// Every push and pop reports a queue it cannot use, rather than panicking:
/// [`Error::Corrupted`] for a header out of bounds or a lock word that names the calling
/// thread (the queue never takes its lock twice, so that is another process's write),
/// and the reason when the calling thread cannot get the identity it locks with (a thread
/// whose first lock finds no free file descriptor, say); `push`/`pop` as `Err`, the other
/// forms as [`PushError::Failed`] (the item handed back) or [`PopError::Failed`].
/// `close` cannot fail: what keeps it from the lock makes it close without the lock.
///
/// # Panics
/// No method panics on what another process wrote into the queue's block.
///
/// # Processes that die
/// Every push and pop happens under the queue's lock: a push copies the item into the
/// free slot, then publishes it with one store of the tail; a pop copies the oldest item
/// out, then removes it with one store of the head. A process killed in the middle of a
/// push leaves its item **fully out** (never seen by anyone); killed in the middle of a
/// pop, before its store of the head, the item stays **fully in** (the next pop gets it:
/// at-least-once delivery). A consumer killed **after** that store, with the item copied
/// out to it but not yet returned, has consumed the item: nobody else gets it (in that
/// window delivery is at-most-once). Either way the next process to take the lock takes
/// it over, checks the ring's bounds and goes on.
///
/// ```
/// use shared_runtime::{Process, Queue};
///
/// let q = Queue::<u64>::new(8)?;
/// let producer = {
///     let q = q.clone();
///     Process::start(move || {
///         for i in 1..=100 {
///             q.push(i).unwrap();
///         }
///         q.close();
///     })?
/// };
/// let mut sum = 0;
/// while let Some(i) = q.pop()? {
///     sum += i;
/// }
/// assert_eq!(sum, 5050);
/// producer.join()?;
/// assert!(format!("{q:?}").contains("closed: true"));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct Queue<T> {
    ring: Arc<Ring<T>>,
}

// By hand: a derive would ask `T: Clone` of the handle, which copies no item.
impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: Arc::clone(&self.ring),
        }
    }
}

impl<T: SharedType> Queue<T> {
    /// A new, empty queue of `capacity` items in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidQueueCapacity`] for a capacity of 0, or as [`new_in`](Self::new_in).
    ///
    /// ```
    /// let q = shared_runtime::Queue::<f64>::new(4)?;
    /// assert_eq!((q.capacity(), q.len()), (4, 0));
    /// assert!(shared_runtime::Queue::<f64>::new(0).is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new(capacity: usize) -> Result<Self> {
        check_capacity(capacity)?;
        Self::new_in(Arena::try_global()?, capacity)
    }

    /// A new, empty queue of `capacity` items in `arena`.
    ///
    /// # Errors
    /// [`Error::InvalidQueueCapacity`] for a capacity of 0 or one whose slots overflow,
    /// [`Error::OutOfMemory`] if the arena is too full.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let q = shared_runtime::Queue::<[u8; 16]>::new_in(&arena, 100)?;
    /// assert_eq!(q.arena().id(), arena.id());
    /// assert!(shared_runtime::Queue::<u64>::new_in(&arena, usize::MAX).is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new_in(arena: &Arena, capacity: usize) -> Result<Self> {
        check_capacity(capacity)?;
        let bytes = block_bytes::<T>(capacity as u64)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or(Error::InvalidQueueCapacity {
                capacity: capacity as u64,
                reason: "its slots would not fit in an address space",
            })?;
        // Whoever makes the queue will most likely push: an unidentifiable thread is told
        // now, as an error, not by a panic at the first push.
        arena.lock_identity()?;
        // A fresh block is zeroed: an unlocked lock, head = tail = 0, open.
        let block = arena.alloc_tagged(bytes, align_of::<T>().max(8), ObjectKind::Queue)?;
        let block = Arc::new(block);
        // SAFETY: the block was just allocated with `block_bytes::<T>(capacity)` bytes
        // (more than the header), aligned to `align_of::<T>().max(8)`, and nobody else
        // knows it yet.
        unsafe { init_header(block.ptr(), capacity as u64) };
        // SAFETY: as above.
        Ok(unsafe { Queue::from_block(block, capacity as u64) })
    }

    /// The queue in `block`.
    ///
    /// # Safety
    /// `block` holds at least `block_bytes::<T>(capacity)` bytes, aligned to
    /// `align_of::<T>().max(8)`, for as long as it lives.
    pub(crate) unsafe fn from_block(block: Arc<Allocation>, capacity: u64) -> Self {
        // SAFETY: forwarded to the caller.
        let ring = unsafe { Ring::new(block, capacity) };
        Queue {
            ring: Arc::new(ring),
        }
    }

    /// The capacity recorded in the queue's header (by its creator; another process may
    /// have overwritten it).
    pub(crate) fn stored_capacity(&self) -> u64 {
        self.ring.state().capacity.load(Relaxed)
    }

    /// The block (starting with the queue's lock cell).
    pub(crate) fn block(&self) -> &Arc<Allocation> {
        self.ring.block()
    }

    /// The arena the queue lives in.
    ///
    /// ```
    /// let q = shared_runtime::Queue::<u8>::new(1)?;
    /// assert_eq!(q.arena().id(), shared_runtime::Arena::global().id());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn arena(&self) -> &Arena {
        self.ring.block().arena()
    }

    /// How many items the queue holds at most.
    ///
    /// ```
    /// assert_eq!(shared_runtime::Queue::<u8>::new(3)?.capacity(), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    /// How many items the queue holds: a snapshot, which other processes may change as
    /// soon as it is taken (Python's `qsize()`).
    ///
    /// ```
    /// let q = shared_runtime::Queue::new(3)?;
    /// q.push(1u8)?;
    /// q.push(2)?;
    /// assert_eq!(q.len(), 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.ring.len() as usize
    }

    /// Whether the queue holds no item (a snapshot, as [`len`](Self::len)).
    ///
    /// ```
    /// let q = shared_runtime::Queue::new(1)?;
    /// assert!(q.is_empty());
    /// q.push(0u8)?;
    /// assert!(!q.is_empty());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue was [`close`](Self::close)d.
    ///
    /// ```
    /// let q = shared_runtime::Queue::<u8>::new(1)?;
    /// assert!(!q.is_closed());
    /// q.close();
    /// assert!(q.is_closed());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.ring.state().closed.load(Relaxed) != 0
    }

    /// Pushes `item`, waiting while the queue is full, and for the lock as long as its
    /// holder is alive or cannot be proven dead (see [`Queue`]'s `# Waiting`).
    ///
    /// # Errors
    /// [`Error::QueueClosed`] if the queue is (or gets, while waiting) closed: the item
    /// was not pushed. [`Error::Corrupted`] if another process overwrote the queue's
    /// header or lock word, or the reason this thread cannot lock (see [`Queue`]'s
    /// `# Errors`).
    ///
    /// ```
    /// let q = shared_runtime::Queue::new(2)?;
    /// q.push('a' as u32)?;
    /// q.close();
    /// assert!(matches!(q.push(0), Err(shared_runtime::Error::QueueClosed)));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn push(&self, item: T) -> Result<()> {
        self.push_with(item, Patience::Forever)
            .map_err(|e| match e {
                PushError::Closed(_) => Error::QueueClosed,
                PushError::Failed(_, e) => e,
                PushError::Full(_) | PushError::Timeout(_) => {
                    unreachable!("an unbounded push neither gives up nor times out")
                }
            })
    }

    /// Pushes `item` if there is room now. It never waits for room, and waits at most
    /// 1 ms for the queue's lock (held by a pusher or popper for one copy): a lock still
    /// busy then (its holder stopped, slow, or not provably dead) is reported as `Full`
    /// (or `Closed` if the queue is closed), as Python's `put(block=False)` does.
    ///
    /// # Errors
    /// The item back in a [`PushError`]: `Full` (no room, or the lock busy for 1 ms),
    /// `Closed`, or `Failed` for a queue it cannot use (see [`Queue`]'s `# Errors`).
    ///
    /// ```
    /// use shared_runtime::{PushError, Queue};
    /// let q = Queue::new(1)?;
    /// assert!(q.try_push(1u16).is_ok());
    /// assert!(matches!(q.try_push(2), Err(PushError::Full(2))));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn try_push(&self, item: T) -> std::result::Result<(), PushError<T>> {
        self.push_with(item, Patience::Never)
    }

    /// Pushes `item`, waiting at most `timeout` (the lock's wait included) for room.
    ///
    /// # Errors
    /// The item back in a [`PushError`]: `Timeout`, `Closed`, or `Failed` for a damaged
    /// queue.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shared_runtime::{PushError, Queue};
    /// let q = Queue::new(1)?;
    /// q.push_timeout(1u8, Duration::from_millis(1)).unwrap();
    /// let full = q.push_timeout(2, Duration::from_millis(1));
    /// assert!(matches!(full, Err(PushError::Timeout(2))));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn push_timeout(
        &self,
        item: T,
        timeout: Duration,
    ) -> std::result::Result<(), PushError<T>> {
        self.push_with(item, Patience::after(timeout))
    }

    fn push_with(&self, item: T, patience: Patience) -> std::result::Result<(), PushError<T>> {
        let ring = &*self.ring;
        loop {
            let mut held = match ring.lock(patience.lock_deadline()) {
                Ok(Some(held)) => held,
                // The lock stayed busy: closed is final, so say it if it is known.
                Ok(None) if self.is_closed() => return Err(PushError::Closed(item)),
                Ok(None) => return Err(gave_up_push(patience, item)),
                Err(e) => return Err(PushError::Failed(item, e)),
            };
            if held.is_closed() {
                return Err(PushError::Closed(item));
            }
            if !held.is_full() {
                let wake = held.push(&item);
                drop(held);
                if wake {
                    wake_all(&ring.state().not_empty);
                }
                return Ok(());
            }
            if patience.is_over() {
                return Err(gave_up_push(patience, item));
            }
            // `None`: closed meanwhile, without the lock (see `close`): look again.
            let Some(seen) = held.sleep_as_pusher() else {
                continue;
            };
            drop(held);
            let s = ring.state();
            nap(&s.not_full, seen, &s.push_waiters, patience.deadline());
        }
    }

    /// Pops the oldest item, waiting while the queue is empty; `Ok(None)` once the queue
    /// is closed and empty (every item pushed before the close is popped first). It waits
    /// for the lock as long as its holder is alive or cannot be proven dead (see
    /// [`Queue`]'s `# Waiting`).
    ///
    /// # Errors
    /// [`Error::Corrupted`] if another process overwrote the queue's header or lock word,
    /// or the reason this thread cannot lock (see [`Queue`]'s `# Errors`).
    ///
    /// ```
    /// let q = shared_runtime::Queue::new(2)?;
    /// q.push(1i32)?;
    /// q.push(2)?;
    /// q.close();
    /// assert_eq!(q.pop()?, Some(1));
    /// assert_eq!(q.pop()?, Some(2));
    /// assert_eq!(q.pop()?, None);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn pop(&self) -> Result<Option<T>> {
        match self.pop_with(Patience::Forever) {
            Ok(item) => Ok(Some(item)),
            Err(PopError::Closed) => Ok(None),
            Err(PopError::Failed(e)) => Err(e),
            Err(PopError::Empty | PopError::Timeout) => {
                unreachable!("an unbounded pop neither gives up nor times out")
            }
        }
    }

    /// Pops the oldest item if there is one now. It never waits for an item, and waits at
    /// most 1 ms for the queue's lock (held by a pusher or popper for one copy): a lock
    /// still busy then (its holder stopped, slow, or not provably dead) is reported as
    /// `Empty`, as Python's `get(block=False)` does; try again later.
    ///
    /// # Errors
    /// [`PopError::Empty`] (open and empty, or the lock busy for 1 ms),
    /// [`PopError::Closed`] (closed and empty), or `Failed` for a queue it cannot use (see
    /// [`Queue`]'s `# Errors`).
    ///
    /// ```
    /// use shared_runtime::{PopError, Queue};
    /// let q = Queue::<u8>::new(1)?;
    /// assert!(matches!(q.try_pop(), Err(PopError::Empty)));
    /// q.push(5)?;
    /// assert_eq!(q.try_pop().unwrap(), 5);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn try_pop(&self) -> std::result::Result<T, PopError> {
        self.pop_with(Patience::Never)
    }

    /// Pops the oldest item, waiting at most `timeout` (the lock's wait included) for one.
    ///
    /// # Errors
    /// [`PopError::Timeout`], [`PopError::Closed`] (closed and empty), or `Failed` for a
    /// damaged queue.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shared_runtime::{PopError, Queue};
    /// let q = Queue::<u8>::new(1)?;
    /// let empty = q.pop_timeout(Duration::from_millis(1));
    /// assert!(matches!(empty, Err(PopError::Timeout)));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn pop_timeout(&self, timeout: Duration) -> std::result::Result<T, PopError> {
        self.pop_with(Patience::after(timeout))
    }

    fn pop_with(&self, patience: Patience) -> std::result::Result<T, PopError> {
        let ring = &*self.ring;
        loop {
            let mut held = match ring.lock(patience.lock_deadline()) {
                Ok(Some(held)) => held,
                Ok(None) => return Err(gave_up_pop(patience)),
                Err(e) => return Err(PopError::Failed(e)),
            };
            if !held.is_empty() {
                let (item, wake) = held.pop();
                drop(held);
                if wake {
                    wake_all(&ring.state().not_full);
                }
                return Ok(item);
            }
            if held.is_closed() {
                return Err(PopError::Closed);
            }
            if patience.is_over() {
                return Err(gave_up_pop(patience));
            }
            let Some(seen) = held.sleep_as_popper() else {
                continue;
            };
            drop(held);
            let s = ring.state();
            nap(&s.not_empty, seen, &s.pop_waiters, patience.deadline());
        }
    }

    /// Closes the queue, for every process: pushes fail with [`Error::QueueClosed`] from
    /// now on (waiting pushers too), pops drain the items left and then return `None`
    /// (waiting poppers too). Closing again does nothing. (Python's `close()` only closes
    /// the caller's end; this closes the queue, like a channel whose senders are gone.)
    ///
    /// It never waits long: it takes the lock if it gets it within 50 ms; if not (a holder
    /// stopped or not provably dead, garbage in the lock word), or if this thread cannot
    /// lock at all, or the header is damaged, it closes without the lock, which is safe: a
    /// push already past its check under the lock then completes as one made before the
    /// close, and every waiter is woken either way.
    ///
    /// ```
    /// let q = shared_runtime::Queue::new(4)?;
    /// q.push(9u8)?;
    /// q.close();
    /// assert!(q.push(10).is_err());
    /// assert_eq!(q.pop()?, Some(9));
    /// assert_eq!(q.pop()?, None);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn close(&self) {
        let ring = &*self.ring;
        match ring.lock(Some(soon(CLOSE_LOCK_WAIT))) {
            Ok(Some(held)) => held.close(),
            // The lock still busy (a stopped or unprovably dead holder, garbage in its
            // word), no identity to take it with, or a damaged header: the flag and the
            // words are set without the lock, which is safe (see `Ring::mark_closed`), so
            // that no waiter sleeps on and nothing more is pushed.
            Ok(None) | Err(_) => ring.mark_closed(),
        }
        let s = ring.state();
        wake_all(&s.not_empty);
        wake_all(&s.not_full);
    }
}

/// What a push that stopped waiting says: `Full` for `try_push`, `Timeout` otherwise.
fn gave_up_push<T>(patience: Patience, item: T) -> PushError<T> {
    match patience {
        Patience::Never => PushError::Full(item),
        Patience::Until(_) | Patience::Forever => PushError::Timeout(item),
    }
}

/// What a pop that stopped waiting says: `Empty` for `try_pop`, `Timeout` otherwise.
fn gave_up_pop(patience: Patience) -> PopError {
    match patience {
        Patience::Never => PopError::Empty,
        Patience::Until(_) | Patience::Forever => PopError::Timeout,
    }
}

fn check_capacity(capacity: usize) -> Result<()> {
    if capacity == 0 {
        return Err(Error::InvalidQueueCapacity {
            capacity: 0,
            reason: "a queue holds at least one item",
        });
    }
    Ok(())
}

impl<T: SharedType> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ring.debug(f)
    }
}
