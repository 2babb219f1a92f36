//! Why a lock is poisoned, and `?` on lock results.

use std::fmt;
use std::sync::{PoisonError, TryLockError};

use crate::Error;

/// How the holder that poisoned a lock ended.
///
/// ```
/// use shared_runtime::{Lock, PoisonCause};
///
/// let lock = Lock::new()?;
/// let _ = std::panic::catch_unwind(|| {
///     let _g = lock.lock();
///     panic!("while holding the lock");
/// });
/// assert_eq!(lock.poison().map(|p| p.cause), Some(PoisonCause::Panicked));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PoisonCause {
    /// A thread panicked while holding the lock (it started unwinding while holding a
    /// guard, which was dropped during the unwind).
    Panicked,
    /// The holding process ended without releasing the lock (killed, `exit`, an abort);
    /// the next taker recovered it.
    Died,
    /// A thread ended without releasing the lock while its process lived on (a guard
    /// leaked with `mem::forget` on a thread that then returned); the next taker
    /// recovered it. Reported when the holder's process was seen alive at the recovery
    /// (it is the recovering process, or `/proc` shows it running); otherwise `Died`.
    ThreadDied,
    /// The lock's record holds a value this version does not know (written by another
    /// version of the crate, or by a foreign writer of the shared memory), or was cleared
    /// between the acquisition and the question.
    Unknown,
}

/// Why a lock is poisoned: how its holder ended and, where known, that holder's process id.
///
/// Given by [`Lock::poison`](crate::Lock::poison) (and [`RLock`](crate::RLock)'s,
/// [`Synchronized`](crate::Synchronized)'s) and by [`HoldsLock::poison`] on a guard; its
/// `Display` is the sentence [`Error::Poisoned`] prints.
///
/// ```
/// use shared_runtime::{Poison, PoisonCause};
///
/// let p = Poison { pid: Some(4242), cause: PoisonCause::Died };
/// assert_eq!(p.to_string(), "process 4242 died while holding it");
/// let p = Poison { pid: Some(4242), cause: PoisonCause::ThreadDied };
/// assert_eq!(p.to_string(), "a thread of process 4242 ended while holding it");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Poison {
    /// Process id of the holder that poisoned the lock, `None` if unknown (a holder that
    /// died between taking the lock and recording itself).
    pub pid: Option<i32>,
    /// How that holder ended.
    pub cause: PoisonCause,
}

impl fmt::Display for Poison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cause == PoisonCause::ThreadDied {
            return match self.pid {
                Some(pid) => write!(f, "a thread of process {pid} ended while holding it"),
                None => f.write_str("a thread of an unknown process ended while holding it"),
            };
        }
        match self.pid {
            Some(pid) => write!(f, "process {pid}")?,
            None => f.write_str("a holder whose process id is unknown")?,
        }
        f.write_str(match self.cause {
            PoisonCause::Panicked => " panicked while holding it",
            PoisonCause::Died => " died while holding it",
            PoisonCause::ThreadDied | PoisonCause::Unknown => " poisoned it (how is not recorded)",
        })
    }
}

mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for crate::LockGuard<'_> {}
impl<T: ?Sized> sealed::Sealed for crate::SyncGuard<'_, T> {}

/// A guard of a process-shared lock ([`LockGuard`](crate::LockGuard) or
/// [`SyncGuard`](crate::SyncGuard)), which can say why its lock is poisoned. Sealed.
///
/// It is what lets `?` turn a [`PoisonError`] or [`TryLockError`] into an [`Error`] that
/// names the holder: see [`Error::Poisoned`].
///
/// ```
/// use shared_runtime::{HoldsLock, Lock, PoisonCause};
///
/// let lock = Lock::new()?;
/// let _ = std::panic::catch_unwind(|| {
///     let _g = lock.lock();
///     panic!("while holding the lock");
/// });
/// let err = lock.lock().unwrap_err();
/// let poison = HoldsLock::poison(err.get_ref()).unwrap();
/// assert_eq!(poison.pid, Some(std::process::id() as i32));
/// assert_eq!(poison.cause, PoisonCause::Panicked);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub trait HoldsLock: sealed::Sealed {
    /// Why the guard's lock is poisoned, `None` if it is not. An associated function (call
    /// it as `HoldsLock::poison(&guard)`), so that it never hides a method of the data a
    /// `SyncGuard` derefs to.
    fn poison(guard: &Self) -> Option<Poison>;

    /// The lock guard inside, and a `SyncGuard`'s borrow mark: what a
    /// [`Condition`](crate::Condition) wait releases and retakes. Crate-internal.
    #[doc(hidden)]
    fn wait_parts(guard: &Self, _: crate::sync::Token) -> WaitParts<'_>;
}

/// What [`HoldsLock::wait_parts`] gives.
#[doc(hidden)]
pub type WaitParts<'g> = (
    &'g crate::LockGuard<'g>,
    Option<&'g std::sync::atomic::AtomicI32>,
);

/// `?` on [`lock()`](crate::Lock::lock) results: the poison becomes [`Error::Poisoned`],
/// naming the holder that poisoned the lock.
///
/// The guard inside the `PoisonError` is dropped by the conversion, so **the lock is
/// released**: a caller that wants to repair the data keeps the guard instead
/// (`err.into_inner()`).
///
/// ```
/// use shared_runtime::{Error, Value};
///
/// fn bump(v: &Value<u32>) -> shared_runtime::Result<u32> {
///     let mut g = v.lock()?;
///     *g += 1;
///     Ok(*g)
/// }
///
/// let v = Value::new(0u32)?;
/// assert_eq!(bump(&v)?, 1);
/// let _ = std::panic::catch_unwind(|| {
///     let _g = v.lock();
///     panic!("while holding the lock");
/// });
/// assert!(matches!(bump(&v), Err(Error::Poisoned { .. })));
/// assert!(v.getlock().try_lock().is_err_and(|e| matches!(
///     e,
///     std::sync::TryLockError::Poisoned(_) // free again (still poisoned)
/// )));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<G: HoldsLock> From<PoisonError<G>> for Error {
    fn from(err: PoisonError<G>) -> Self {
        // Read while the lock is still held, so that no other holder changes the record.
        let guard = err.into_inner();
        let poison = HoldsLock::poison(&guard).unwrap_or(Poison {
            pid: None,
            cause: PoisonCause::Unknown,
        });
        drop(guard);
        Error::Poisoned {
            pid: poison.pid,
            cause: poison.cause,
        }
    }
}

/// `?` on [`try_lock()`](crate::Lock::try_lock) and
/// [`try_lock_for()`](crate::Lock::try_lock_for) results: `WouldBlock` becomes
/// [`Error::WouldBlock`], poison [`Error::Poisoned`] (releasing the lock, as the
/// [`PoisonError`] conversion does).
///
/// ```
/// use std::time::Duration;
/// use shared_runtime::{Error, Lock};
///
/// fn quick(lock: &Lock) -> shared_runtime::Result<()> {
///     let _g = lock.try_lock_for(Duration::from_millis(1))?;
///     Ok(())
/// }
///
/// let lock = Lock::new()?;
/// quick(&lock)?;
/// let other = lock.clone();
/// let held = lock.lock().unwrap();
/// // Another thread finds it taken.
/// let r = std::thread::spawn(move || quick(&other)).join().unwrap();
/// assert!(matches!(r, Err(Error::WouldBlock)));
/// drop(held);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<G: HoldsLock> From<TryLockError<G>> for Error {
    fn from(err: TryLockError<G>) -> Self {
        match err {
            TryLockError::WouldBlock => Error::WouldBlock,
            TryLockError::Poisoned(p) => p.into(),
        }
    }
}
