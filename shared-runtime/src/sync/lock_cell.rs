//! The part of a lock that lives in the arena, and the handle every clone shares.

use std::fmt;
use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use crate::arena::{Allocation, Arena};
use crate::sync::lock::LockGuard;
use crate::sys::futex::{Acquired, FutexLock};
use crate::sys::process::current_pid;
use crate::Result;

/// A lock in shared memory: the robust futex lock word, plus what `Debug` shows and the
/// poison flag. 24 bytes (48 of arena with the block header).
#[repr(C)]
pub(crate) struct LockCell {
    lock: FutexLock,
    /// Process id of the holder, 0 when free (informational: written by the holder).
    owner: AtomicI32,
    /// How many times the holder has acquired it (at most 1 for `Lock`).
    depth: AtomicU32,
    /// A holder panicked while holding it; the next acquirer is told.
    poisoned: AtomicU32,
    _reserved: AtomicU32,
}

/// The process-local handle of a lock; clones of `Lock`/`RLock` share one.
#[derive(Clone)]
pub(crate) struct LockCore {
    alloc: Arc<Allocation>,
    recursive: bool,
}

/// What acquiring found when the lock was already this thread's.
enum Reentry {
    /// An `RLock`: one level deeper.
    Deeper,
    /// A `Lock`: it would never be released.
    Deadlock,
}

impl LockCore {
    pub(crate) fn new_in(arena: &Arena, recursive: bool) -> Result<Self> {
        // The creating thread will most likely take the lock: if it cannot be identified,
        // say so now, as an error, rather than as a panic at the first `acquire`.
        arena.lock_identity()?;
        // A fresh block is zeroed: an unlocked lock word, no owner, depth 0, not poisoned.
        let alloc = arena.alloc(size_of::<LockCell>(), align_of::<LockCell>())?;
        Ok(LockCore {
            alloc: Arc::new(alloc),
            recursive,
        })
    }

    #[inline]
    fn cell(&self) -> &LockCell {
        // SAFETY: the allocation holds a LockCell (all zeroes is a valid, unlocked one) for
        // as long as `self.alloc` lives. Every field is an atomic, so a shared reference is
        // sound even while other threads and processes use the lock.
        unsafe { &*self.alloc.ptr().cast::<LockCell>() }
    }

    pub(crate) fn same_as(&self, other: &LockCore) -> bool {
        Arc::ptr_eq(&self.alloc, &other.alloc)
    }

    pub(crate) fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// The calling thread's identity in this lock's arena, for the acquire functions, whose
    /// std-shaped results have no room for an [`Error`](crate::Error).
    #[track_caller]
    #[inline]
    fn identity(&self) -> u64 {
        self.arena()
            .lock_identity()
            .unwrap_or_else(|e| panic!("cannot take a lock: {e}"))
    }

    /// Whether this thread holds the lock already, and what that means.
    #[inline]
    fn reentry(&self, me: u64) -> Option<Reentry> {
        (self.cell().lock.holder() == me).then_some(if self.recursive {
            Reentry::Deeper
        } else {
            Reentry::Deadlock
        })
    }

    #[inline]
    fn enter(&self, how: Acquired) -> LockResult<LockGuard<'_>> {
        let c = self.cell();
        // Only the holder writes these fields, so plain loads and stores suffice (atomics
        // only because other threads and processes may read them for `Debug`).
        let depth = if how == Acquired::OwnerDied {
            0
        } else {
            c.depth.load(Relaxed)
        };
        // Only a re-entry can be this deep (a fresh acquisition starts from 0), so the lock
        // is this thread's and stays held by its earlier guards: refusing leaves it as it
        // was. Wrapping instead would let the next release unlock under live guards.
        let Some(deeper) = depth.checked_add(1) else {
            panic!(
                "RLock re-entered more than {} times by one thread",
                u32::MAX
            );
        };
        c.depth.store(deeper, Relaxed);
        let mut poisoned = false;
        if depth == 0 {
            c.owner.store(current_pid(), Relaxed);
            if c.poisoned.load(Relaxed) != 0 {
                c.poisoned.store(0, Relaxed);
                poisoned = true;
            }
        }
        // SAFETY: the lock was just acquired (or re-entered) by this thread; the guard
        // releases one level of it, once.
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

    pub(crate) fn lock(&self) -> LockResult<LockGuard<'_>> {
        let me = self.identity();
        match self.reentry(me) {
            Some(Reentry::Deeper) => self.enter(Acquired::Clean),
            Some(Reentry::Deadlock) => panic!(
                "deadlock: this thread already holds this Lock, which is not re-entrant \
                 (use an RLock to acquire it again while holding it)"
            ),
            None => {
                let how = self
                    .cell()
                    .lock
                    .lock(me, None)
                    .expect("an unbounded wait succeeds");
                self.enter(how)
            }
        }
    }

    pub(crate) fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
        let me = self.identity();
        match self.reentry(me) {
            Some(Reentry::Deeper) => self.enter_try(Some(Acquired::Clean)),
            // For the non-blocking forms, a `Lock` this thread holds simply "would block".
            Some(Reentry::Deadlock) => Err(TryLockError::WouldBlock),
            None => self.enter_try(self.cell().lock.try_lock(me)),
        }
    }

    pub(crate) fn try_lock_for(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        let me = self.identity();
        match self.reentry(me) {
            Some(Reentry::Deeper) => self.enter_try(Some(Acquired::Clean)),
            Some(Reentry::Deadlock) => Err(TryLockError::WouldBlock),
            None => {
                let deadline = Instant::now().checked_add(timeout);
                self.enter_try(self.cell().lock.lock(me, deadline))
            }
        }
    }

    /// Called by the guard, on the holding thread, to release one level.
    #[inline]
    pub(crate) fn leave(&self) {
        let c = self.cell();
        // A guard that crossed a fork (moved into a child's closure) releases nothing: the
        // lock is the parent thread's (the child's thread has another identity), and only
        // that thread's copy of the guard may release it. The identity is cached since the
        // lock was taken, except in a `vfork` child, which caches nothing and asks again.
        let me = match self.arena().cached_lock_identity() {
            Some(me) => me,
            None => match self.arena().lock_identity() {
                Ok(me) => me,
                Err(_) => return,
            },
        };
        if c.lock.holder() != me {
            return;
        }
        if std::thread::panicking() {
            c.poisoned.store(1, Relaxed);
        }
        let depth = c.depth.load(Relaxed);
        c.depth.store(depth.saturating_sub(1), Relaxed);
        if depth <= 1 {
            c.owner.store(0, Relaxed);
            // SAFETY: called only from a guard's drop, on the thread that holds the lock,
            // and this was its last level.
            unsafe { c.lock.unlock() }
        }
    }

    /// Overwrites the recorded re-entry depth.
    ///
    /// # Safety
    /// The calling thread must hold the lock (the depth is the holder's to write), and the
    /// guards it drops afterwards must not release the lock while another still lives.
    pub(crate) unsafe fn set_depth(&self, depth: u32) {
        self.cell().depth.store(depth, Relaxed);
    }

    pub(crate) fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.cell();
        let owner = c.owner.load(Relaxed);
        let mut d = f.debug_struct(name);
        d.field("owner", &(owner != 0).then_some(owner));
        if self.recursive {
            d.field("depth", &c.depth.load(Relaxed));
        }
        d.field("poisoned", &(c.poisoned.load(Relaxed) != 0))
            .finish()
    }
}
