//! The part of a lock that lives in the arena, and the handle every clone shares.

use std::fmt;
use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

use crate::arena::{Allocation, Arena};
use crate::sync::lock::LockGuard;
use crate::sys::mutex::{Acquired, MutexKind, RobustMutex};
use crate::sys::process::current_pid;
use crate::{Error, Result};

/// A lock in shared memory: a robust process-shared mutex plus what `Debug` shows and the
/// poison flag. 56 bytes.
#[repr(C)]
pub(crate) struct LockCell {
    mutex: RobustMutex,
    /// Process id of the holder, 0 when free (informational: written by the holder).
    owner: AtomicI32,
    /// How many times the holder has acquired it (1 for `Lock`).
    depth: AtomicU32,
    /// A holder panicked while holding it; the next acquirer is told.
    poisoned: AtomicU32,
    _reserved: AtomicU32,
}

/// The process-local handle of a lock; clones of `Lock`/`RLock` share one.
#[derive(Clone)]
pub(crate) struct LockCore {
    alloc: Arc<Allocation>,
}

impl LockCore {
    pub(crate) fn new_in(arena: &Arena, kind: MutexKind) -> Result<Self> {
        let alloc = arena.alloc(size_of::<LockCell>(), align_of::<LockCell>())?;
        let cell = alloc.ptr().cast::<LockCell>();
        // SAFETY: the block is fresh, zeroed (so the atomics read 0), large and aligned
        // enough for a LockCell, and no one else knows its offset yet.
        unsafe { RobustMutex::init(std::ptr::addr_of_mut!((*cell).mutex), kind)? };
        Ok(LockCore {
            alloc: Arc::new(alloc),
        })
    }

    fn cell(&self) -> &LockCell {
        // SAFETY: the allocation holds an initialised LockCell for as long as `self.alloc`
        // lives. Every field is an atomic or a pthread mutex (an UnsafeCell driven by pthread
        // calls), so a shared reference is sound even while other processes use the lock.
        unsafe { &*self.alloc.ptr().cast::<LockCell>() }
    }

    pub(crate) fn same_as(&self, other: &LockCore) -> bool {
        Arc::ptr_eq(&self.alloc, &other.alloc)
    }

    pub(crate) fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// An OS error from a lock call means the lock's memory is damaged or misused; it is
    /// not something a caller can handle through `LockResult`, so it is a panic that says so.
    fn fail(&self, e: Error) -> ! {
        if let Error::Os { source, .. } = &e {
            if source.raw_os_error() == Some(libc::EDEADLK) {
                panic!(
                    "deadlock: this thread already holds this Lock, which is not re-entrant \
                     (use an RLock to acquire it again while holding it)"
                );
            }
        }
        panic!("process-shared lock failed: {e}")
    }

    fn enter(&self, how: Acquired) -> LockResult<LockGuard<'_>> {
        let c = self.cell();
        // Only the holder writes these fields, so plain loads and stores suffice (atomics
        // only because other threads and processes may read them for `Debug`).
        let depth = if how == Acquired::OwnerDied {
            0
        } else {
            c.depth.load(Relaxed)
        };
        c.depth.store(depth + 1, Relaxed);
        let mut poisoned = false;
        if depth == 0 {
            c.owner.store(current_pid(), Relaxed);
            if c.poisoned.load(Relaxed) != 0 {
                c.poisoned.store(0, Relaxed);
                poisoned = true;
            }
        }
        // SAFETY: the mutex was just acquired by this thread; the guard releases it once.
        let guard = unsafe { LockGuard::new(self) };
        if how == Acquired::OwnerDied || poisoned {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    fn enter_try(&self, how: Option<Acquired>) -> TryLockResult<LockGuard<'_>> {
        match how {
            None => Err(TryLockError::WouldBlock),
            Some(how) => self.enter(how).map_err(TryLockError::Poisoned),
        }
    }

    pub(crate) fn acquire(&self) -> LockResult<LockGuard<'_>> {
        let how = self.cell().mutex.lock().unwrap_or_else(|e| self.fail(e));
        self.enter(how)
    }

    /// For the non-blocking forms, a `Lock` this thread already holds simply "would block".
    fn held_here(&self, r: Result<Option<Acquired>>) -> Option<Acquired> {
        match r {
            Ok(how) => how,
            Err(Error::Os { source, .. }) if source.raw_os_error() == Some(libc::EDEADLK) => None,
            Err(e) => self.fail(e),
        }
    }

    pub(crate) fn try_acquire(&self) -> TryLockResult<LockGuard<'_>> {
        let how = self.held_here(self.cell().mutex.try_lock());
        self.enter_try(how)
    }

    pub(crate) fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        let how = self.held_here(self.cell().mutex.lock_timeout(timeout));
        self.enter_try(how)
    }

    /// Called by the guard, on the holding thread, to release one level.
    pub(crate) fn leave(&self) {
        let c = self.cell();
        if std::thread::panicking() {
            c.poisoned.store(1, Relaxed);
        }
        let depth = c.depth.load(Relaxed);
        c.depth.store(depth.saturating_sub(1), Relaxed);
        if depth <= 1 {
            c.owner.store(0, Relaxed);
        }
        // SAFETY: called only from the guard's drop, on the thread that acquired the mutex.
        unsafe { c.mutex.unlock() }
    }

    pub(crate) fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.cell();
        let owner = c.owner.load(Relaxed);
        let mut d = f.debug_struct(name);
        d.field("owner", &(owner != 0).then_some(owner));
        if name == "RLock" {
            d.field("depth", &c.depth.load(Relaxed));
        }
        d.field("poisoned", &(c.poisoned.load(Relaxed) != 0))
            .finish()
    }
}
