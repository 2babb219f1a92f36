//! How a [`Place`](crate::Place) makes each of its operations exclusive: not at all (raw
//! containers), by taking the object's lock (synchronized ones), or because a guard already
//! holds it.

use std::fmt;
use std::marker::PhantomData;

use crate::arena::Allocation;
use crate::sync::{SharedLock, SharedObject, Synchronized};

mod sealed {
    pub trait Sealed {}
}

/// How the operations of a [`Place`](crate::Place) are made exclusive: [`Unlocked`],
/// [`Locked`] or [`Held`]. Sealed: a place's soundness depends on it.
///
/// Generic code over any container of a shared struct names it through
/// [`HasPlace::Access`](crate::place::HasPlace::Access):
///
/// ```
/// use shared_runtime::{RawValue, Value};
/// use shared_runtime::place::{Access, HasPlace, Place};
///
/// fn double<'a, C: HasPlace<'a, u32>>(c: C) {
///     let place: Place<'a, u32, C::Access> = c.place();
///     place.update(|v| *v *= 2);
/// }
/// let (raw, locked) = (RawValue::new(4u32)?, Value::new(5u32)?);
/// double(&raw);
/// double(&locked);
/// assert_eq!((raw.get(), locked.get()), (8, 10));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub trait Access: sealed::Sealed + Copy {
    /// Runs `f` with the exclusion this mode provides (for [`Locked`], inside one
    /// acquisition of the lock, marking the object borrowed), and returns what it returns.
    /// Used by [`Place`](crate::Place)'s operations; not useful on its own.
    #[doc(hidden)]
    #[track_caller]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R;
}

/// Access to a raw container ([`RawValue`](crate::RawValue),
/// [`RawArray`](crate::RawArray)): no lock, each read and write is one relaxed atomic copy,
/// sound but possibly torn by a concurrent writer, and `update` is not atomic. Like the
/// container's own accessors, each operation panics if this thread holds a guard of the
/// object (it would bypass the guard's exclusive reference).
///
/// ```
/// use shared_runtime::RawValue;
/// use shared_runtime::place::{HasPlace, Place, Unlocked};
/// let v = RawValue::new(1i64)?;
/// let p: Place<'_, i64, Unlocked<'_>> = v.place();
/// p.set(2);
/// assert_eq!(v.get(), 2);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Unlocked<'a> {
    /// The container's allocation, whose borrow mark every operation checks.
    alloc: &'a Allocation,
}

impl<'a> Unlocked<'a> {
    pub(crate) fn new(alloc: &'a Allocation) -> Self {
        Unlocked { alloc }
    }
}

impl fmt::Debug for Unlocked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unlocked").finish_non_exhaustive()
    }
}

impl sealed::Sealed for Unlocked<'_> {}
impl Access for Unlocked<'_> {
    #[track_caller]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        self.alloc.assert_not_borrowed_here();
        f()
    }
}

/// Access to a synchronized container ([`Value`](crate::Value), [`Array`](crate::Array)):
/// every operation takes the object's lock once, and panics instead of aliasing if this
/// thread already has the object borrowed (a guard from `lock()`, or an `update` in
/// progress).
///
/// ```
/// use shared_runtime::{Array, RawArray, RLock};
/// use shared_runtime::place::{Locked, Place};
/// let a = Array::from_slice(&[1.0f64, 2.0])?;
/// let p: Place<'_, f64, Locked<'_, RawArray<f64>, RLock>> = a.at(1);
/// p.update(|x| *x *= 10.0); // one acquisition of the lock
/// assert_eq!(a.to_vec(), [1.0, 20.0]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct Locked<'a, O, L> {
    sync: &'a Synchronized<O, L>,
}

impl<'a, O, L> Locked<'a, O, L> {
    pub(crate) fn new(sync: &'a Synchronized<O, L>) -> Self {
        Locked { sync }
    }
}

impl<O, L> Clone for Locked<'_, O, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<O, L> Copy for Locked<'_, O, L> {}

impl<O, L: SharedLock> fmt::Debug for Locked<'_, O, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locked")
            .field("lock", self.sync.getlock())
            .finish()
    }
}

impl<O, L> sealed::Sealed for Locked<'_, O, L> {}
impl<O: SharedObject, L: SharedLock> Access for Locked<'_, O, L> {
    #[track_caller]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        let _held = self.sync.lock_and_borrow();
        f()
    }
}

/// Access through a [`SyncGuard`](crate::SyncGuard): the lock is already held by this
/// thread, so operations run directly, without locking again. Not `Send`: the place must
/// stay on the thread that holds the lock.
///
/// ```
/// use shared_runtime::{SyncGuard, Value};
/// use shared_runtime::place::{Held, Place};
/// let v = Value::new([1u8, 2, 3])?;
/// let mut g = v.lock().unwrap();
/// let p: Place<'_, [u8; 3], Held> = SyncGuard::place(&mut g);
/// p.at(2).set(30);
/// drop(g);
/// assert_eq!(v.get(), [1, 2, 30]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Held {
    /// Not `Send` or `Sync`, like the lock guard it comes from.
    _not_send: PhantomData<*const ()>,
}

impl Held {
    pub(crate) fn new() -> Self {
        Held {
            _not_send: PhantomData,
        }
    }
}

impl sealed::Sealed for Held {}
impl Access for Held {
    #[track_caller]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}
