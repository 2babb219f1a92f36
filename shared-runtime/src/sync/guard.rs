//! `SyncGuard`: the lock of a synchronized object, held, with access to its data.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::sync::lock::LockGuard;
use crate::sync::synchronized::Borrow;

/// The lock of a [`Synchronized`](crate::Synchronized) object, held, giving plain access to
/// its data: derefs to `T` for a [`Value`](crate::Value), to `[T]` for an
/// [`Array`](crate::Array). Any amount of work can be done under one acquisition; the lock
/// is released when the guard is dropped.
///
/// While it lives, the object's own `get`/`set`/`update` panic on this thread (like a
/// `RefCell` already borrowed): use the guard.
///
/// ```
/// let a = shared_runtime::Array::from_slice(&[3, 1, 2])?;
/// {
///     let mut g = a.acquire().unwrap();
///     g.sort();
///     g[0] *= 10;
/// }
/// assert_eq!(a.to_vec(), [10, 2, 3]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SyncGuard<'a, T: ?Sized> {
    data: NonNull<T>,
    // Field order matters: the borrow mark is cleared before the lock is released.
    _borrow: Borrow<'a>,
    _lock: LockGuard<'a>,
    _data: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> SyncGuard<'a, T> {
    /// # Safety
    /// `lock` must be the object's lock, held by this thread; `borrow` must mark the object
    /// as borrowed by this thread; `data` must point to the object's memory, valid for `'a`.
    pub(crate) unsafe fn new(data: NonNull<T>, borrow: Borrow<'a>, lock: LockGuard<'a>) -> Self {
        SyncGuard {
            data,
            _borrow: borrow,
            _lock: lock,
            _data: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for SyncGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the object's lock is held by this thread, so no other thread or
        // well-behaved process touches the memory, and the borrow mark stops this thread
        // from reaching it another way; the memory outlives 'a (the object is borrowed) and
        // any bytes are a valid T (SharedType).
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for SyncGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference handed out.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SyncGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
