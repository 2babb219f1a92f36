//! `Event`: a process-shared flag that processes can wait for, as Python's
//! `multiprocessing.Event`.

use std::fmt;
use std::sync::atomic::{
    AtomicU32,
    Ordering::{AcqRel, Acquire},
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::arena::{Allocation, Arena, ObjectKind, LOCK_CELL};
use crate::sys::futex_word::{wait_while_equal, wake_all};
use crate::Result;

/// Bit 0 of the word: the flag. Bits 1..32: how many times it was set (wrapping).
const SET: u32 = 1;

/// A process-shared event (Python's `multiprocessing.Event`): a flag that starts unset,
/// that any process can [`set`](Self::set) and [`clear`](Self::clear), and that processes
/// can [`wait`](Self::wait) for.
///
/// It is one 32-bit word of an [`Arena`] (in a 24-byte block), not a file descriptor.
/// Clones name the same event, in this process and in forked children; it can be named
/// ([`Arena::create`], [`open`](Arena::open)) and handed over by
/// [`handle`](Self::handle). The word holds the flag and a count of the times it was set;
/// a waiter sleeps (a futex wait, in any process) until the word changes, so a `set` that
/// happens between a waiter's check and its sleep is never lost, and a waiter released by
/// a `set` returns `true` even if another process clears the flag before it runs (as in
/// Python).
///
/// Nothing is held while waiting, so a process that dies never leaves the event in a bad
/// state: a waiter whose only setter died simply waits on (use
/// [`wait_timeout`](Self::wait_timeout) to bound it).
///
/// ```
/// use shared_runtime::{Event, Process};
///
/// let ready = Event::new()?;
/// let r = ready.clone();
/// let child = Process::start(move || r.set())?;
/// ready.wait(); // returns once the child has set it
/// assert!(ready.is_set());
/// assert!(format!("{ready:?}").starts_with("Event { set: true"));
/// child.join()?;
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    alloc: Arc<Allocation>,
}

impl Event {
    /// A new, unset event in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full, or the
    /// errors of [`Arena::try_global`].
    ///
    /// ```
    /// let e = shared_runtime::Event::new()?;
    /// assert!(!e.is_set());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::new_in(Arena::try_global()?)
    }

    /// A new, unset event in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let e = shared_runtime::Event::new_in(&arena)?;
    /// assert!(!e.is_set());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<Self> {
        // A fresh block is zeroed: an unset event. The same size as a named one's.
        let alloc = arena.alloc_tagged(LOCK_CELL as usize, 8, ObjectKind::Event)?;
        Ok(Event::from_alloc(Arc::new(alloc)))
    }

    /// The event whose word starts `alloc` (a named or handed-over event's block).
    pub(crate) fn from_alloc(alloc: Arc<Allocation>) -> Self {
        Event { alloc }
    }

    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        &self.alloc
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the allocation holds at least LOCK_CELL bytes, 8-aligned, mapped for as
        // long as `self.alloc` lives; its first 4 bytes are the event word (all bit patterns
        // are valid) and are only ever accessed atomically, by every process.
        unsafe { &*self.alloc.ptr().cast::<AtomicU32>() }
    }

    /// The arena the event lives in.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let e = shared_runtime::Event::new_in(&arena)?;
    /// assert_eq!(e.arena().id(), arena.id());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// Sets the flag and wakes every waiter, in every process. Setting a set event does
    /// nothing.
    ///
    /// ```
    /// let e = shared_runtime::Event::new()?;
    /// e.set();
    /// e.set();
    /// assert!(e.is_set());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn set(&self) {
        let raised = self.word().fetch_update(AcqRel, Acquire, |w| {
            (w & SET == 0).then(|| w.wrapping_add(2) | SET)
        });
        if raised.is_ok() {
            wake_all(self.word());
        }
    }

    /// Clears the flag: later waiters sleep until the next [`set`](Self::set).
    ///
    /// ```
    /// let e = shared_runtime::Event::new()?;
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn clear(&self) {
        self.word().fetch_and(!SET, AcqRel);
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// let e = shared_runtime::Event::new()?;
    /// assert!(!e.is_set());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.word().load(Acquire) & SET != 0
    }

    /// Blocks until the flag is set (returns at once if it is). Spurious wake-ups are
    /// absorbed: it returns only after a `set`.
    ///
    /// ```
    /// let e = shared_runtime::Event::new()?;
    /// e.set();
    /// e.wait();
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Blocks until the flag is set or `timeout` has passed (on the monotonic clock):
    /// `true` if it was set (even if cleared again since), `false` on timeout (Python's
    /// `wait(timeout)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let e = shared_runtime::Event::new()?;
    /// assert!(!e.wait_timeout(Duration::from_millis(1)));
    /// e.set();
    /// assert!(e.wait_timeout(Duration::from_millis(1)));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        // A timeout too long for the clock is no timeout.
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let word = self.word();
        let start = word.load(Acquire);
        if start & SET != 0 {
            return true;
        }
        loop {
            // The flag was clear at `start`, and only a `set` changes such a word (a
            // `clear` leaves it as it is): any change is a set since we began.
            if word.load(Acquire) != start {
                return true;
            }
            let nap = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return false,
                },
            };
            wait_while_equal(word, start, nap);
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.word().load(Acquire);
        f.debug_struct("Event")
            .field("set", &(w & SET != 0))
            .field("times_set", &(w >> 1))
            .finish()
    }
}
