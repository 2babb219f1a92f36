//! `Lock` and `RLock`: process-shared, robust locks that live in the arena.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{LockResult, TryLockResult};
use std::time::Duration;

use crate::arena::Arena;
use crate::sync::lock_cell::LockCore;
use crate::Result;

/// Proof that a lock is held; releases it when dropped.
///
/// Returned by [`Lock::lock`] and [`RLock::lock`] (and their `try_`/`_timeout`
/// forms). A guard cannot be sent to another thread: the thread that acquired a lock must
/// release it. If the thread panics while holding the guard, the lock is marked poisoned and
/// the next acquirer is told, as with `std::sync::Mutex`.
///
/// ```
/// let lock = shared_runtime::Lock::new()?;
/// let guard = lock.lock().unwrap();
/// assert!(lock.try_lock().is_err()); // held
/// drop(guard);
/// assert!(lock.try_lock().is_ok());
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    core: &'a LockCore,
    /// Not `Send`: the lock word names the acquiring thread, which alone may release it.
    _not_send: PhantomData<*const ()>,
}

impl<'a> LockGuard<'a> {
    /// # Safety
    /// The calling thread must have just acquired `core`'s lock (one level of it).
    pub(crate) unsafe fn new(core: &'a LockCore) -> Self {
        LockGuard {
            core,
            _not_send: PhantomData,
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.core.leave();
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A lock that can guard a [`Synchronized`](crate::Synchronized) object: [`Lock`] or
/// [`RLock`]. Sealed: the wrappers rely on it excluding every other holder.
///
/// ```
/// use shared_runtime::{Lock, SharedLock};
///
/// fn locked_twice<L: SharedLock>(lock: &L) -> bool {
///     let _g = lock.lock().unwrap();
///     lock.try_lock().is_ok()
/// }
/// assert!(!locked_twice(&Lock::new()?));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub trait SharedLock: sealed::Sealed + Clone + Send + Sync + fmt::Debug + 'static {
    /// A new lock in `arena`.
    ///
    /// # Errors
    /// As [`Lock::new`].
    fn new_in(arena: &Arena) -> Result<Self>;
    /// Blocks until the lock is held; see [`Lock::lock`].
    fn lock(&self) -> LockResult<LockGuard<'_>>;
    /// Takes the lock only if it is free now; see [`Lock::try_lock`].
    fn try_lock(&self) -> TryLockResult<LockGuard<'_>>;
    /// Waits at most `timeout`; see [`Lock::try_lock_for`].
    fn try_lock_for(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>>;
    /// Whether `self` and `other` name the same shared lock.
    fn same_as(&self, other: &Self) -> bool;
    /// The arena the lock lives in.
    fn arena(&self) -> &Arena;
}

macro_rules! lock_type {
    ($name:ident, $recursive:expr, $what:literal, $example:literal) => {
        #[doc = $what]
        ///
        /// The lock is a few dozen bytes of an [`Arena`], not a file descriptor or a mapping,
        /// so millions of them are fine. Clones name the same lock, in this process and in
        /// forked children.
        ///
        /// It is *robust*: if its holder dies (a panic that aborts, `exit`, even `SIGKILL`),
        /// the next acquirer gets it, inside a [`PoisonError`](std::sync::PoisonError) that
        /// says the protected data may be half-updated (take the guard with
        /// `into_inner()`), and the lock works normally afterwards. No waiter is left
        /// blocked on a dead holder: waiters check the holder's liveness every 50 ms.
        /// (A thread that panics while holding it also poisons it, as with std's `Mutex`.)
        ///
        #[doc = $example]
        #[derive(Clone)]
        pub struct $name {
            core: LockCore,
        }

        impl $name {
            #[doc = concat!("A new `", stringify!($name), "` in the [global arena](Arena::global).")]
            ///
            /// # Errors
            /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full, or
            /// [`Error::ThreadIdentity`](crate::Error::ThreadIdentity) if the calling
            /// thread cannot be identified as a holder (no free file descriptor to read
            /// its start time).
            pub fn new() -> Result<Self> {
                Self::new_in(Arena::try_global()?)
            }

            #[doc = concat!("A new `", stringify!($name), "` in `arena`.")]
            ///
            /// # Errors
            /// As [`new`](Self::new).
            pub fn new_in(arena: &Arena) -> Result<Self> {
                Ok($name { core: LockCore::new_in(arena, $recursive)? })
            }

            /// Blocks until this thread holds the lock.
            ///
            /// # Errors
            /// A [`PoisonError`](std::sync::PoisonError) holding the guard if the previous
            /// holder died or panicked while holding the lock (the lock *is* held).
            ///
            /// # Panics
            /// If this thread's identity, which the lock records as its holder, cannot be
            /// established (`/proc` is mounted but unreadable: see
            /// [`Error::ThreadIdentity`](crate::Error::ThreadIdentity); creating the lock
            /// or any lock on the same thread first reports it as an error instead); if a
            /// `Lock` is acquired again by the thread holding it (a certain deadlock); if an
            /// `RLock` is re-entered more than `u32::MAX` times.
            pub fn lock(&self) -> LockResult<LockGuard<'_>> {
                self.core.lock()
            }

            /// Takes the lock if it is free right now.
            ///
            /// # Errors
            /// [`TryLockError::WouldBlock`](std::sync::TryLockError::WouldBlock) if another
            /// thread or process holds it; `Poisoned` as in [`lock`](Self::lock).
            ///
            /// # Panics
            /// As [`try_lock_for`](Self::try_lock_for).
            pub fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
                self.core.try_lock()
            }

            /// Waits at most `timeout` (on the monotonic clock) for the lock.
            ///
            /// # Errors
            /// `WouldBlock` if the time ran out; `Poisoned` as in [`lock`](Self::lock).
            ///
            /// # Panics
            /// As [`lock`](Self::lock), except that a `Lock` this thread holds
            /// already is `WouldBlock`.
            pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
                self.core.try_lock_for(timeout)
            }
        }

        impl $name {
            /// Sets the re-entry depth recorded in the lock, for tests of the overflow check.
            ///
            /// # Safety
            /// The calling thread must hold the lock, and must not release it more times
            /// than it acquired it, whatever depth is set.
            #[doc(hidden)]
            pub unsafe fn set_depth_for_tests(&self, depth: u32) {
                // SAFETY: forwarded to the caller.
                unsafe { self.core.set_depth(depth) }
            }
        }

        impl sealed::Sealed for $name {}

        impl SharedLock for $name {
            fn new_in(arena: &Arena) -> Result<Self> {
                $name::new_in(arena)
            }
            fn lock(&self) -> LockResult<LockGuard<'_>> {
                self.core.lock()
            }
            fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
                self.core.try_lock()
            }
            fn try_lock_for(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
                self.core.try_lock_for(timeout)
            }
            fn same_as(&self, other: &Self) -> bool {
                self.core.same_as(&other.core)
            }
            fn arena(&self) -> &Arena {
                self.core.arena()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.core.debug(stringify!($name), f)
            }
        }
    };
}

lock_type!(
    Lock,
    false,
    "A process-shared, non-recursive lock (ctypes' `Lock`).\n\nAcquiring it again on the \
     thread that holds it panics with a message instead of hanging.",
    "```\nuse shared_runtime::{Lock, Process, RawValue};\n\nlet lock = Lock::new()?;\nlet \
     n = RawValue::new(0u64)?;\nProcess::scope(|s| {\n    let child = s.start(|| {\n        \
     for _ in 0..1000 {\n            let _g = lock.lock().unwrap();\n            \
     n.set(n.get() + 1);\n        }\n    })?;\n    for _ in 0..1000 {\n        let _g = \
     lock.lock().unwrap();\n        n.set(n.get() + 1);\n    }\n    child.join()\n})?;\n\
     assert_eq!(n.get(), 2000);\n# Ok::<(), shared_runtime::Error>(())\n```"
);

lock_type!(
    RLock,
    true,
    "A process-shared, recursive lock (ctypes' `RLock`): the thread that holds it may \
     acquire it again, and it is released when every guard is dropped. The default lock of \
     [`Value`](crate::Value) and [`Array`](crate::Array).",
    "```\nlet r = shared_runtime::RLock::new()?;\nlet a = r.lock().unwrap();\nlet b = \
     r.lock().unwrap(); // same thread: fine\nassert!(format!(\"{r:?}\").contains(\"depth: \
     2\"));\ndrop((b, a));\n# Ok::<(), shared_runtime::Error>(())\n```"
);
