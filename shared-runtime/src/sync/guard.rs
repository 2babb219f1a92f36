//! `SyncGuard`: the lock of a synchronized object, held, with access to its data.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::sync::lock::LockGuard;
use crate::sync::poison::{HoldsLock, Poison, WaitParts};
use crate::sync::synchronized::Borrow;
use crate::{Held, Place, SharedType};

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
///     let mut g = a.lock().unwrap();
///     g.sort();
///     g[0] *= 10;
/// }
/// assert_eq!(a.to_vec(), [10, 2, 3]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[doc(alias = "release")]
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
    #[inline]
    pub(crate) unsafe fn new(data: NonNull<T>, borrow: Borrow<'a>, lock: LockGuard<'a>) -> Self {
        SyncGuard {
            data,
            _borrow: borrow,
            _lock: lock,
            _data: PhantomData,
        }
    }
}

impl<T: SharedType> SyncGuard<'_, T> {
    /// The [`Place`] of the guarded value, for a derived struct's field accessors (or
    /// `get`/`set`/`update`) without locking again: `SyncGuard::place(&mut g).set_x(1.0)`.
    /// An associated function, so that it never hides a method of the value.
    ///
    /// The place borrows the guard mutably: the guard's `&T` (from `Deref`) cannot live
    /// while the place writes. Plain field access through the guard (`g.x`, `g.x = 1.0`)
    /// works too.
    ///
    /// ```
    /// use shared_runtime::{Lock, SharedStruct, SyncGuard, Value};
    ///
    /// #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
    /// #[repr(C)]
    /// struct Point {
    ///     x: f64,
    ///     y: f64,
    /// }
    ///
    /// // A non-reentrant lock: locking it again on this thread would panic.
    /// let v = Value::with_lock(Point { x: 1.0, y: 2.0 }, Lock::new()?)?;
    /// let mut g = v.lock().unwrap();
    /// let p = SyncGuard::place(&mut g);
    /// p.set_x(p.y() * 10.0); // no second acquisition
    /// g.y += 1.0;
    /// drop(g);
    /// assert_eq!(v.get(), Point { x: 20.0, y: 3.0 });
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn place(this: &mut Self) -> Place<'_, T, Held> {
        // SAFETY: the guard's pointer is the object's aligned `T`, valid while the guard
        // lives; this thread holds the lock and has the object marked borrowed, and the
        // place borrows the guard mutably, so no reference from `Deref` lives while it does.
        unsafe { Place::new(this.data.as_ptr(), Held::new()) }
    }
}

impl<T: SharedType> SyncGuard<'_, [T]> {
    /// The [`Place`] of element `index` of the guarded array, without locking again; see
    /// [`SyncGuard::place`]. Indexing the guard (`g[i]`, `g[i].x = 1.0`) works too.
    ///
    /// # Panics
    /// If `index >= len`, naming both, like slice indexing.
    ///
    /// ```
    /// use shared_runtime::{Array, SyncGuard};
    /// let a = Array::from_slice(&[[1u8, 2], [3, 4]])?;
    /// let mut g = a.lock().unwrap();
    /// SyncGuard::at(&mut g, 1).at(0).update(|b| *b *= 10);
    /// drop(g);
    /// assert_eq!(a.to_vec(), [[1, 2], [30, 4]]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn at(this: &mut Self, index: usize) -> Place<'_, T, Held> {
        let len = this.data.len();
        assert!(
            index < len,
            "index out of bounds: the len is {len} but the index is {index}"
        );
        // SAFETY: as in `place`, for element `index < len` of the guarded slice, which is
        // inside it (so `add` stays in bounds) and aligned for `T`.
        unsafe { Place::new(this.data.as_ptr().cast::<T>().add(index), Held::new()) }
    }
}

impl<T: ?Sized> HoldsLock for SyncGuard<'_, T> {
    fn poison(guard: &Self) -> Option<Poison> {
        HoldsLock::poison(&guard._lock)
    }
    fn wait_parts(guard: &Self, _: crate::sync::Token) -> WaitParts<'_> {
        (&guard._lock, Some(guard._borrow.mark()))
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

/// Only for a type without padding bytes (every primitive, and every struct whose fields
/// fill it): `*guard = v` copies all of `v`, and the padding of a local value is
/// uninitialised bytes (stack garbage) that must not reach memory other processes read. For
/// a padded struct, using `DerefMut` is a compile error (raised when the program is built)
/// that names the alternatives: [`SyncGuard::place`] (`.set(v)`, the derived field
/// accessors) or the object's `set`/`update`, which write field by field.
impl<T: SharedType> DerefMut for SyncGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        const { assert!(!T::LAYOUT.has_padding(), "{}", PADDED) };
        // SAFETY: as in `deref`; `&mut self` makes this the only reference handed out.
        unsafe { self.data.as_mut() }
    }
}

/// Only for elements without padding bytes, as for a single value: `guard[i] = v` would
/// copy `v`'s padding into shared memory. Use [`SyncGuard::at`] for padded elements.
impl<T: SharedType> DerefMut for SyncGuard<'_, [T]> {
    fn deref_mut(&mut self) -> &mut [T] {
        const { assert!(!T::LAYOUT.has_padding(), "{}", PADDED) };
        // SAFETY: as in `deref`; `&mut self` makes this the only reference handed out.
        unsafe { self.data.as_mut() }
    }
}

const PADDED: &str = "this shared type has padding bytes, so a guard of it has no `DerefMut`: \
    `*guard = v` or `guard[i] = v` would copy the uninitialised padding of `v` into shared \
    memory; write through `SyncGuard::place(&mut guard)` / `SyncGuard::at(&mut guard, i)` \
    (`.set(v)`, or the derived field accessors such as `.set_x(v)`), or the object's \
    `set`/`update`, which never write padding";

impl<T: ?Sized + fmt::Debug> fmt::Debug for SyncGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
