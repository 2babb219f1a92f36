//! `Lock` and `RLock`: one process-shared, robust lock type, re-entrant or not by type.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{LockResult, TryLockResult};
use std::time::Duration;

use crate::arena::Arena;
use crate::sync::lock_cell::{tid_of, LockCore, Taker, UNWINDING};
use crate::sync::poison::{HoldsLock, Poison, WaitParts};
use crate::Result;

/// Proof that a lock is held; releases it when dropped.
///
/// Returned by [`Lock::lock`] and [`RLock::lock`] (and their `try_` forms). A guard cannot
/// be sent to another thread: the thread that acquired a lock must release it. If the
/// thread starts panicking while holding the guard, the lock is marked poisoned and every
/// later acquirer is told until [`clear_poison`](GenericLock::clear_poison), as with
/// `std::sync::Mutex` (a guard taken while the thread was already unwinding, in a
/// destructor, poisons nothing).
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
#[doc(alias = "release")]
pub struct LockGuard<'a> {
    core: &'a LockCore,
    /// The identity the lock was taken with, for the release.
    me: u64,
    /// The release key read when the lock was taken (`sys::process::release_key`): the
    /// release's one check that it runs in the process that took the lock, and may be a
    /// plain store. Its [`UNWINDING`] bit says whether the thread was already unwinding
    /// when it took this level: then its release during that unwinding is no sign of a
    /// half-done critical section (std's rule), e.g. a lock used inside a destructor that
    /// runs while an unrelated panic unwinds. (One word for both: a guard's every field is
    /// a register the caller keeps, or spills, for as long as the guard lives.)
    key: u64,
    /// Not `Send`: the lock word names the acquiring thread, which alone may release it.
    _not_send: PhantomData<*const ()>,
}

impl<'a> LockGuard<'a> {
    /// # Safety
    /// The calling thread must have just acquired `core`'s lock (one level of it) as
    /// `taker.me`, and read `taker` on this thread (`taker.key` may be 0: the release then
    /// checks everything afresh).
    #[inline]
    pub(crate) unsafe fn new(core: &'a LockCore, taker: Taker) -> Self {
        LockGuard {
            core,
            me: taker.me,
            key: taker.key
                | if std::thread::panicking() {
                    UNWINDING
                } else {
                    0
                },
            _not_send: PhantomData,
        }
    }

    /// The lock this guard holds, and the identity it was taken with (for a condition
    /// wait, which releases and retakes it under the same guard).
    pub(crate) fn parts(&self) -> (&'a LockCore, u64) {
        (self.core, self.me)
    }

    /// The id of the thread that took the lock (the borrow mark of `Synchronized`).
    #[inline]
    pub(crate) fn tid(&self) -> i32 {
        tid_of(self.me)
    }
}

impl Drop for LockGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.core.leave(self.me, self.key);
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl HoldsLock for LockGuard<'_> {
    fn poison(guard: &Self) -> Option<Poison> {
        guard.core.poison()
    }
    fn wait_parts(guard: &Self, _: crate::sync::Token) -> WaitParts<'_> {
        (guard, None)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Whether a [`GenericLock`] lets the thread that holds it acquire it again: the type
/// parameter that makes it a [`Lock`] ([`NonReentrant`]) or an [`RLock`] ([`Reentrant`]).
/// Sealed.
///
/// ```
/// use shared_runtime::{GenericLock, Reentrancy, Reentrant};
///
/// fn reenters<K: Reentrancy>(_: &GenericLock<K>) -> bool {
///     K::REENTRANT
/// }
/// assert!(reenters(&shared_runtime::RLock::new()?));
/// assert!(!<shared_runtime::NonReentrant as Reentrancy>::REENTRANT);
/// # let _: Option<Reentrant> = None;
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub trait Reentrancy: sealed::Sealed + Send + Sync + 'static {
    /// Whether the holding thread may acquire the lock again.
    const REENTRANT: bool;
    /// The lock's name in `Debug` output: `"Lock"` or `"RLock"`.
    const NAME: &'static str;
}

/// The [`Reentrancy`] of a [`Lock`]: acquiring it again on the thread that holds it panics
/// (a certain deadlock) instead of hanging. A marker type; it has no values.
///
/// ```
/// use shared_runtime::{GenericLock, Lock, NonReentrant};
/// let lock: GenericLock<NonReentrant> = Lock::new()?;
/// # drop(lock);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug)]
pub enum NonReentrant {}

/// The [`Reentrancy`] of an [`RLock`]: the thread that holds it may acquire it again, and
/// it is released when every guard is dropped. A marker type; it has no values.
///
/// ```
/// use shared_runtime::{GenericLock, RLock, Reentrant};
/// let lock: GenericLock<Reentrant> = RLock::new()?;
/// # drop(lock);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug)]
pub enum Reentrant {}

impl sealed::Sealed for NonReentrant {}
impl Reentrancy for NonReentrant {
    const REENTRANT: bool = false;
    const NAME: &'static str = "Lock";
}
impl sealed::Sealed for Reentrant {}
impl Reentrancy for Reentrant {
    const REENTRANT: bool = true;
    const NAME: &'static str = "RLock";
}

/// A process-shared, robust lock; [`Lock`] and [`RLock`] are its two kinds, chosen by `K`.
/// Use those names: this type exists so that both are written once.
///
/// The lock is a few dozen bytes of an [`Arena`], not a file descriptor or a mapping, so
/// millions of them are fine. Clones name the same lock, in this process and in forked
/// children.
///
/// It is *robust*: if its holder dies (a panic that aborts, `exit`, even `SIGKILL`), the
/// next acquirer gets it, inside a [`PoisonError`](std::sync::PoisonError) that says the
/// protected data may be half-updated (take the guard with `into_inner()`), and the lock
/// works normally afterwards. No waiter is left blocked on a dead holder: waiters check the
/// holder's liveness every 50 ms. A thread that panics while holding it also poisons it, as
/// with std's `Mutex`. Poison is sticky, as std's is: every later `lock()` is told, until
/// [`clear_poison`](Self::clear_poison); [`poison`](Self::poison) says who poisoned it and
/// how.
///
/// ```
/// use shared_runtime::{Lock, Process, RawValue};
///
/// let lock = Lock::new()?;
/// let n = RawValue::new(0u64)?;
/// let (lock2, n2) = (lock.clone(), n.clone());
/// let child = Process::start(move || {
///     for _ in 0..1000 {
///         let _g = lock2.lock().unwrap();
///         n2.set(n2.get() + 1);
///     }
/// })?;
/// for _ in 0..1000 {
///     let _g = lock.lock().unwrap();
///     n.set(n.get() + 1);
/// }
/// child.join()?;
/// assert_eq!(n.get(), 2000);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct GenericLock<K: Reentrancy> {
    core: LockCore,
    _kind: PhantomData<fn() -> K>,
}

/// A process-shared, non-recursive lock (ctypes' `Lock`): a [`GenericLock`] that the
/// thread holding it cannot acquire again (that panics with a message instead of hanging).
///
/// ```
/// use shared_runtime::Lock;
///
/// let lock = Lock::new()?;
/// let g = lock.lock().unwrap();
/// assert!(lock.try_lock().is_err()); // even on this thread: it would deadlock
/// drop(g);
/// assert!(format!("{lock:?}").starts_with("Lock {"));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub type Lock = GenericLock<NonReentrant>;

/// A process-shared, recursive lock (ctypes' `RLock`): the thread that holds it may acquire
/// it again, and it is released when every guard is dropped. The default lock of
/// [`Value`](crate::Value) and [`Array`](crate::Array).
///
/// ```
/// let r = shared_runtime::RLock::new()?;
/// let a = r.lock().unwrap();
/// let b = r.lock().unwrap(); // same thread: fine
/// assert!(format!("{r:?}").contains("depth: 2"));
/// drop((b, a));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub type RLock = GenericLock<Reentrant>;

impl<K: Reentrancy> GenericLock<K> {
    /// A new lock in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full, or
    /// [`Error::ThreadIdentity`](crate::Error::ThreadIdentity) if the calling thread cannot
    /// be identified as a holder (no free file descriptor to read its start time).
    ///
    /// ```
    /// let (a, b) = (shared_runtime::Lock::new()?, shared_runtime::RLock::new()?);
    /// # drop((a, b));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::new_in(Arena::try_global()?)
    }

    /// A new lock in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let lock = shared_runtime::RLock::new_in(&arena)?;
    /// # drop(lock);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Ok(GenericLock {
            core: LockCore::new_in(arena)?,
            _kind: PhantomData,
        })
    }

    pub(crate) fn from_core(core: LockCore) -> Self {
        GenericLock {
            core,
            _kind: PhantomData,
        }
    }

    pub(crate) fn core(&self) -> &LockCore {
        &self.core
    }

    /// Blocks until this thread holds the lock.
    ///
    /// # Errors
    /// A [`PoisonError`](std::sync::PoisonError) holding the guard if the lock is poisoned:
    /// a holder died or panicked while holding it, and nobody has called
    /// [`clear_poison`](Self::clear_poison) since (the lock *is* held). `?` turns it into
    /// [`Error::Poisoned`](crate::Error::Poisoned), releasing the lock.
    ///
    /// # Panics
    /// If this thread's identity, which the lock records as its holder, cannot be
    /// established (`/proc` is mounted but unreadable: see
    /// [`Error::ThreadIdentity`](crate::Error::ThreadIdentity); creating the lock or any
    /// lock on the same thread first reports it as an error instead); if a `Lock` is
    /// acquired again by the thread holding it (a certain deadlock); if an `RLock` is
    /// re-entered more than `u32::MAX` times.
    ///
    /// ```
    /// let lock = shared_runtime::Lock::new()?;
    /// {
    ///     let _g = lock.lock()?; // `?`: a poisoned lock is an `Error::Poisoned`
    ///     // ... work under the lock ...
    /// } // released here
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "acquire")]
    #[inline(always)]
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        self.core.lock::<K>()
    }

    /// Takes the lock if it is free right now (Python's `acquire(blocking=False)`).
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`](std::sync::TryLockError::WouldBlock) if another
    /// thread or process holds it (or, for a `Lock`, this thread); `Poisoned` as in
    /// [`lock`](Self::lock).
    ///
    /// # Panics
    /// As [`try_lock_for`](Self::try_lock_for).
    ///
    /// ```
    /// let lock = shared_runtime::Lock::new()?;
    /// let g = lock.try_lock().unwrap();
    /// assert!(lock.try_lock().is_err());
    /// # drop(g);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "acquire")]
    pub fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
        self.core.try_lock::<K>()
    }

    /// Waits at most `timeout` (on the monotonic clock) for the lock (Python's
    /// `acquire(timeout=...)`).
    ///
    /// # Errors
    /// `WouldBlock` if the time ran out; `Poisoned` as in [`lock`](Self::lock).
    ///
    /// # Panics
    /// As [`lock`](Self::lock), except that a `Lock` this thread holds already is
    /// `WouldBlock`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = shared_runtime::RLock::new()?;
    /// let g = lock.try_lock_for(Duration::from_millis(10)).unwrap();
    /// # drop(g);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "acquire")]
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        self.core.try_lock_for::<K>(timeout)
    }

    /// Whether the lock is poisoned: a holder died or panicked while holding it since the
    /// last [`clear_poison`](Self::clear_poison). While it is, every acquisition returns its
    /// guard inside a [`PoisonError`](std::sync::PoisonError).
    ///
    /// ```
    /// let lock = shared_runtime::Lock::new()?;
    /// assert!(!lock.is_poisoned());
    /// let _ = std::panic::catch_unwind(|| {
    ///     let _g = lock.lock();
    ///     panic!("while holding the lock");
    /// });
    /// assert!(lock.is_poisoned());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.core.is_poisoned()
    }

    /// Why the lock is poisoned — how the holder ended and its process id, where known — or
    /// `None` if it is not.
    ///
    /// ```
    /// use shared_runtime::{Lock, PoisonCause};
    ///
    /// let lock = Lock::new()?;
    /// assert_eq!(lock.poison(), None);
    /// let _ = std::panic::catch_unwind(|| {
    ///     let _g = lock.lock();
    ///     panic!("while holding the lock");
    /// });
    /// let p = lock.poison().unwrap();
    /// assert_eq!((p.pid, p.cause), (Some(std::process::id() as i32), PoisonCause::Panicked));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn poison(&self) -> Option<crate::Poison> {
        self.core.poison()
    }

    /// A snapshot of the lock — holder (pid, tid, alive or dead), depth, poison — for
    /// diagnostics. Reading it never takes or changes the lock.
    ///
    /// ```
    /// let lock = shared_runtime::RLock::new()?;
    /// let (_a, _b) = (lock.lock()?, lock.lock()?);
    /// assert_eq!(lock.state().depth, 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn state(&self) -> crate::LockState {
        self.core.state()
    }

    /// Clears the poison: acquisitions succeed plainly again. Call it once the data the
    /// lock guards has been checked or repaired (std's `Mutex::clear_poison`). Any thread
    /// or process may call it, holding the lock or not.
    ///
    /// ```
    /// let lock = shared_runtime::Lock::new()?;
    /// let _ = std::panic::catch_unwind(|| {
    ///     let _g = lock.lock();
    ///     panic!("while holding the lock");
    /// });
    /// let g = lock.lock().unwrap_err().into_inner(); // told...
    /// drop(g);
    /// assert!(lock.lock().is_err()); // ...and told again: poison is sticky
    /// lock.clear_poison();
    /// assert!(lock.lock().is_ok());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn clear_poison(&self) {
        self.core.clear_poison()
    }

    /// Whether `self` and `other` name the same shared lock.
    ///
    /// ```
    /// let a = shared_runtime::Lock::new()?;
    /// assert!(a.same_as(&a.clone()));
    /// assert!(!a.same_as(&shared_runtime::Lock::new()?));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn same_as(&self, other: &Self) -> bool {
        self.core.same_as(&other.core)
    }

    /// Sets the re-entry depth recorded in the lock, for tests of the overflow check.
    ///
    /// # Safety
    /// The calling thread must hold the lock, and must not release it more times than it
    /// acquired it, whatever depth is set.
    #[doc(hidden)]
    pub unsafe fn set_depth_for_tests(&self, depth: u32) {
        // SAFETY: forwarded to the caller.
        unsafe { self.core.set_depth(depth) }
    }
}

/// Clones name the same shared lock.
///
/// ```
/// let a = shared_runtime::Lock::new()?;
/// let b = a.clone();
/// let _g = a.lock().unwrap();
/// assert!(b.try_lock().is_err());
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<K: Reentrancy> Clone for GenericLock<K> {
    fn clone(&self) -> Self {
        GenericLock {
            core: self.core.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K: Reentrancy> fmt::Debug for GenericLock<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug(K::NAME, K::REENTRANT, f)
    }
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
    #[doc(alias = "acquire")]
    fn lock(&self) -> LockResult<LockGuard<'_>>;
    /// Takes the lock only if it is free now; see [`Lock::try_lock`].
    fn try_lock(&self) -> TryLockResult<LockGuard<'_>>;
    /// Waits at most `timeout`; see [`Lock::try_lock_for`].
    fn try_lock_for(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>>;
    /// Whether the lock is poisoned; see [`Lock::is_poisoned`].
    fn is_poisoned(&self) -> bool;
    /// Why the lock is poisoned; see [`Lock::poison`].
    fn poison(&self) -> Option<Poison>;
    /// Clears the poison; see [`Lock::clear_poison`].
    fn clear_poison(&self);
    /// Whether `self` and `other` name the same shared lock.
    fn same_as(&self, other: &Self) -> bool;
    /// The arena the lock lives in.
    fn arena(&self) -> &Arena;
    /// The offset of the lock cell.
    #[doc(hidden)]
    fn lock_offset(&self, _: crate::sync::Token) -> u64;
}

impl<K: Reentrancy> sealed::Sealed for GenericLock<K> {}

impl<K: Reentrancy> SharedLock for GenericLock<K> {
    fn new_in(arena: &Arena) -> Result<Self> {
        GenericLock::new_in(arena)
    }
    #[inline(always)]
    fn lock(&self) -> LockResult<LockGuard<'_>> {
        GenericLock::lock(self)
    }
    fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
        GenericLock::try_lock(self)
    }
    fn try_lock_for(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        GenericLock::try_lock_for(self, timeout)
    }
    fn is_poisoned(&self) -> bool {
        GenericLock::is_poisoned(self)
    }
    fn poison(&self) -> Option<Poison> {
        GenericLock::poison(self)
    }
    fn clear_poison(&self) {
        GenericLock::clear_poison(self)
    }
    fn lock_offset(&self, _: crate::sync::Token) -> u64 {
        self.core().allocation().offset()
    }
    fn same_as(&self, other: &Self) -> bool {
        GenericLock::same_as(self, other)
    }
    fn arena(&self) -> &Arena {
        self.core.arena()
    }
}
