//! `Synchronized<O, L>`: a shared object paired with the lock that guards it.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::sync::{LockResult, PoisonError};

use crate::arena::Arena;
use crate::raw::{RawArray, RawValue};
use crate::sync::guard::SyncGuard;
use crate::sync::lock::{LockGuard, RLock, SharedLock};
use crate::sys::liveness::current_tid;
use crate::{Result, SharedType};

/// A shared object paired with a process-shared lock (ctypes' synchronized wrapper).
///
/// Made by [`Value`]/[`Array`] constructors or by [`synchronized`]. Every accessor takes the
/// lock once; [`lock`](Synchronized::lock) holds it for longer work.
/// [`getobj`](Self::getobj) and [`getlock`](Self::getlock) give the parts, as in Python.
///
/// ```
/// use shared_runtime::{Lock, RawValue, Synchronized};
///
/// let v = shared_runtime::synchronized(RawValue::new(1u8)?, Some(Lock::new()?))?;
/// assert_eq!(v.getobj().get(), 1);
/// let _held = v.getlock().lock().unwrap();
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct Synchronized<O, L = RLock> {
    obj: O,
    lock: L,
    /// Thread id of a thread of this process that has the data borrowed (a guard alive or
    /// an `update` running), 0 if none. Re-entering through an `RLock` must not create a
    /// second `&mut` to the same data.
    borrowed_by: AtomicI32,
}

/// A [`Value`]: one shared value guarded by a lock (an [`RLock`] unless chosen).
pub type Value<T, L = RLock> = Synchronized<RawValue<T>, L>;
/// An [`Array`]: a shared array guarded by a lock (an [`RLock`] unless chosen).
pub type Array<T, L = RLock> = Synchronized<RawArray<T>, L>;

mod sealed {
    pub trait Sealed {}
}

/// A raw shared object that can be [`synchronized`]: [`RawValue`] or [`RawArray`].
pub trait SharedObject: sealed::Sealed {
    /// The arena the object lives in.
    fn arena(&self) -> &Arena;
    /// Whether this process owns the object: then this handle is the only one to its
    /// memory in this process, which a lock's guard relies on.
    #[doc(hidden)]
    fn owned_here(&self) -> bool;
}

impl<T: SharedType> sealed::Sealed for RawValue<T> {}
impl<T: SharedType> SharedObject for RawValue<T> {
    fn arena(&self) -> &Arena {
        RawValue::arena(self)
    }
    fn owned_here(&self) -> bool {
        RawValue::owned_here(self)
    }
}
impl<T: SharedType> sealed::Sealed for RawArray<T> {}
impl<T: SharedType> SharedObject for RawArray<T> {
    fn arena(&self) -> &Arena {
        RawArray::arena(self)
    }
    fn owned_here(&self) -> bool {
        RawArray::owned_here(self)
    }
}

/// Wraps `obj` with `lock`, or with a fresh lock in the object's arena when `lock` is
/// `None` (ctypes' `synchronized(obj, lock=None)`). With `None`, name the lock type, as in
/// `synchronized::<_, RLock>(obj, None)` or through the variable's type.
///
/// # Errors
/// [`Error::NotOwned`](crate::Error::NotOwned) if this process does not own `obj` (a view
/// opened by name or from a borrowed handle: several such views of one object could each
/// be wrapped, and their guards would alias); as [`RLock::new`] when a fresh lock must be
/// made.
///
/// ```
/// use shared_runtime::{synchronized, RawArray, RLock, Value};
///
/// let a = synchronized::<_, RLock>(RawArray::from_slice(&[1, 2])?, None)?;
/// a.update(0, |x| *x += 10);
/// assert_eq!(a.to_vec(), [11, 2]);
/// let v: Value<f64> = synchronized(shared_runtime::RawValue::new(0.5)?, None)?;
/// assert_eq!(v.get(), 0.5);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub fn synchronized<O: SharedObject, L: SharedLock>(
    obj: O,
    lock: Option<L>,
) -> Result<Synchronized<O, L>> {
    if !obj.owned_here() {
        return Err(crate::Error::NotOwned);
    }
    let lock = match lock {
        Some(lock) => lock,
        None => L::new_in(obj.arena())?,
    };
    Ok(Synchronized::from_parts(obj, lock))
}

/// The lock of a synchronized object, held, with its data marked borrowed by this thread.
pub(crate) struct Held<'a> {
    // Field order matters: the mark is cleared while the lock is still held (cleared after
    // the release, it could erase the mark of the next holder).
    _borrow: Borrow<'a>,
    _lock: LockGuard<'a>,
}

/// Marks a synchronized object's data as borrowed by the current thread; clears it on drop.
pub(crate) struct Borrow<'a> {
    flag: &'a AtomicI32,
}

impl Drop for Borrow<'_> {
    fn drop(&mut self) {
        self.flag.store(0, Relaxed);
    }
}

impl<O, L: SharedLock> Synchronized<O, L> {
    pub(crate) fn from_parts(obj: O, lock: L) -> Self {
        Synchronized {
            obj,
            lock,
            borrowed_by: AtomicI32::new(0),
        }
    }

    /// The wrapped raw object (ctypes' `get_obj()`). Its accessors do not take the lock.
    ///
    /// # Panics
    /// If this thread holds a guard of this object (from `lock()`): the raw accessors
    /// would write behind the guard's reference.
    ///
    /// ```
    /// let v = shared_runtime::Value::new(3i32)?;
    /// assert_eq!(v.getobj().get(), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "get_obj")]
    #[track_caller]
    pub fn getobj(&self) -> &O {
        // The raw object's accessors ignore the lock: used while this thread holds a guard
        // of the same object, they would write behind the guard's reference.
        assert!(
            self.borrowed_by.load(Relaxed) != current_tid(),
            "getobj() while this thread holds a guard of the same object: use the guard"
        );
        &self.obj
    }

    /// The raw object, for the accessors that take the lock themselves.
    pub(crate) fn obj(&self) -> &O {
        &self.obj
    }

    /// The lock (ctypes' `get_lock()`).
    ///
    /// ```
    /// use shared_runtime::{Lock, SharedLock, Value};
    /// let lock = Lock::new()?;
    /// let v = Value::with_lock(1u8, lock.clone())?;
    /// assert!(v.getlock().same_as(&lock));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "get_lock")]
    pub fn getlock(&self) -> &L {
        &self.lock
    }

    /// Splits into the raw object and the lock.
    ///
    /// ```
    /// let (raw, lock) = shared_runtime::Value::new(5u16)?.into_parts();
    /// assert_eq!(raw.get(), 5);
    /// # drop(lock);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn into_parts(self) -> (O, L) {
        (self.obj, self.lock)
    }

    /// Takes the lock, ignoring poison (the convenience accessors report nothing; use
    /// `acquire` to learn that a holder died), and marks the data borrowed by this thread.
    pub(crate) fn lock_and_borrow(&self) -> Held<'_> {
        let lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let borrow = self.borrow();
        Held {
            _borrow: borrow,
            _lock: lock,
        }
    }

    /// Like `lock_and_borrow`, also saying whether the lock was poisoned.
    pub(crate) fn acquire_and_borrow(&self) -> (LockGuard<'_>, Borrow<'_>, bool) {
        let (guard, poisoned) = match self.lock.lock() {
            Ok(g) => (g, false),
            Err(p) => (p.into_inner(), true),
        };
        (guard, self.borrow(), poisoned)
    }

    /// Builds the guard `lock` returns, from the data's address.
    pub(crate) fn guard<T: ?Sized>(&self, data: *mut T) -> LockResult<SyncGuard<'_, T>> {
        let data = NonNull::new(data).expect("shared objects are never at address 0");
        let (lock, borrow, poisoned) = self.acquire_and_borrow();
        // SAFETY: the lock guard and the borrow mark are this object's, held by this thread,
        // and `data` (the caller passes the wrapped object's memory) lives as long as `self`.
        let guard = unsafe { SyncGuard::new(data, borrow, lock) };
        if poisoned {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// Marks the data borrowed. Called with the lock held, so only this thread of this
    /// process can be here; a mark already set by this thread means re-entry.
    fn borrow(&self) -> Borrow<'_> {
        let me = current_tid();
        assert!(
            self.borrowed_by.load(Relaxed) != me,
            "this shared object is already borrowed by this thread (a guard from lock() \
             or an update() is in progress): use that guard instead of re-entering"
        );
        self.borrowed_by.store(me, Relaxed);
        Borrow {
            flag: &self.borrowed_by,
        }
    }
}

impl<O: fmt::Debug, L: SharedLock> fmt::Debug for Synchronized<O, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Synchronized");
        if self.borrowed_by.load(Relaxed) == current_tid() {
            d.field("obj", &format_args!("<borrowed by this thread>"));
        } else {
            d.field("obj", &self.obj);
        }
        d.field("lock", &self.lock).finish()
    }
}
