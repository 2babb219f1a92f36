//! The allocator's lock: a futex lock word in the arena header, taken around every
//! operation on the allocator's shared state.
//!
//! It holds no address (see `sys::futex`), so a damaged segment cannot make this process
//! follow one. A holder that dies is noticed by the next waiter within `futex::POLL` and the
//! allocator is rebuilt from its block chain. A lock word naming a thread whose death cannot
//! be proven (a live holder, or garbage written by another process naming some unrelated
//! live thread) is waited on for at most the allocator's *patience*, then the operation
//! fails with [`Error::AllocatorBusy`]: never taken from a holder that may be alive, and
//! never waited on forever.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::arena::heap::Heap;
use crate::arena::{check, header, Arena};
use crate::sys::futex::{Acquired, FutexLock};
use crate::{Error, Result};

/// How long an allocator operation waits for the lock, in nanoseconds.
static PATIENCE_NS: AtomicU64 = AtomicU64::new(30_000_000_000);

impl Arena {
    /// Sets how long allocator operations of this process, in every arena, wait for an
    /// arena's allocator lock before failing with [`Error::AllocatorBusy`] (30 s unless
    /// changed). Operations hold the lock for microseconds, or for as long as the system
    /// takes to reserve or release the pages of a large object, so the wait is reached only
    /// if a holder hangs, or if a damaged segment names a live thread that never releases.
    ///
    /// ```
    /// use std::time::Duration;
    /// shared_runtime::Arena::set_allocator_patience(Duration::from_secs(5));
    /// let v = shared_runtime::RawValue::new(1u8)?; // uncontended: no wait at all
    /// # shared_runtime::Arena::set_allocator_patience(Duration::from_secs(30));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn set_allocator_patience(patience: Duration) {
        let nanos = u64::try_from(patience.as_nanos()).unwrap_or(u64::MAX);
        PATIENCE_NS.store(nanos, Relaxed);
    }

    /// Runs `f` on the allocator with the arena's lock held. If the previous holder died
    /// in the middle of an operation, the allocator is rebuilt from its block chain first.
    ///
    /// # Errors
    /// [`Error::ThreadIdentity`] if this thread cannot be identified;
    /// [`Error::AllocatorBusy`] if the lock stays held, by a holder not proven dead, for
    /// the allocator's patience; [`Error::Corrupted`] if the state is damaged.
    pub(crate) fn with_heap<R>(&self, f: impl FnOnce(&Heap<'_>) -> Result<R>) -> Result<R> {
        let lock = &self.header().lock;
        let me = self.lock_identity()?;
        if lock.holder() == me {
            // The crate never calls the allocator from inside `f`, so another process wrote
            // this thread's identity there: waiting on ourselves would never end.
            return Err(Error::Corrupted(
                "the allocator's lock names this thread as its holder, which it is not".into(),
            ));
        }
        // The free lock is taken without reading the clock (a `clock_gettime` can cost more
        // than the whole allocation): the deadline is only needed if we have to wait.
        let how = match lock.take(me) {
            Ok(()) => Acquired::Clean,
            Err(_) => {
                let patience = Duration::from_nanos(PATIENCE_NS.load(Relaxed));
                let Some(how) = lock.lock_slow(me, Instant::now().checked_add(patience)) else {
                    return Err(Error::AllocatorBusy {
                        holder: lock.holder(),
                        waited: patience,
                    });
                };
                how
            }
        };
        struct Unlock<'a>(&'a FutexLock);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // SAFETY: constructed only right after `lock()` succeeded on this thread,
                // and dropped on the same thread.
                unsafe { self.0.unlock() }
            }
        }
        let _unlock = Unlock(lock);
        let heap = Heap {
            mem: &self.inner.mem,
            page: self.inner.page,
            arena: self,
        };
        // A holder proven dead may have left the heap half-updated: say so in the arena
        // at once (the header is in the always-accessible first page), so that if anything
        // below fails and this call returns early, the next holder still rebuilds.
        if matches!(how, Acquired::OwnerDied { .. }) {
            heap.state().rebuilding.set(1);
        }
        // Everything else the allocator reads is checked as it is read; these scalars bound
        // those checks, so they are checked first (another process may have damaged them).
        header::check_state(heap.state(), self.capacity()).map_err(Error::Corrupted)?;
        // Another process may have grown the heap past what this one can touch yet: every
        // block, and everything the allocator reads or scrubs, lies below `committed`.
        heap.mem.expose(heap.state().committed.get())?;
        // A rebuild that was itself interrupted is redone: the flag lives in the arena.
        let st = heap.state();
        if st.rebuilding.get() != 0 {
            check::rebuild(&heap)?;
            st.rebuilding.set(0);
            // The holder may have been giving its cache back: its slot then counts what
            // its blocks' tags say is still cached. Only counters of `stats`: a failure
            // (garbage in the heap, which `check` reports) must not fail this operation,
            // nor every later one.
            let _ = self.recount_dead_caches(&heap);
        }
        f(&heap)
    }

    /// Takes this arena's allocator lock for the calling thread, as an allocation does, and
    /// keeps it until [`release_allocator_lock_for_tests`](Self::release_allocator_lock_for_tests)
    /// (for tests of what other threads and processes then see).
    ///
    /// # Errors
    /// As any allocation.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn hold_allocator_lock_for_tests(&self) -> Result<()> {
        let me = self.lock_identity()?;
        match self.header().lock.lock(me, None) {
            Some(_) => Ok(()),
            None => unreachable!("an unbounded wait ends holding the lock"),
        }
    }

    /// Releases what [`hold_allocator_lock_for_tests`](Self::hold_allocator_lock_for_tests)
    /// took.
    ///
    /// # Safety
    /// The calling thread must hold this arena's allocator lock, taken by that function.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub unsafe fn release_allocator_lock_for_tests(&self) {
        // SAFETY: forwarded to the caller.
        unsafe { self.header().lock.unlock() }
    }

    /// Whether some thread holds this arena's allocator lock right now.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn allocator_lock_held_for_tests(&self) -> bool {
        self.header().lock.holder() != 0
    }
}
