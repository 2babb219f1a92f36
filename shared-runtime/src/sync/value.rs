//! `Value<T, L>`: constructors and accessors of a synchronized shared value.

use std::sync::LockResult;

use crate::arena::Arena;
use crate::raw::RawValue;
use crate::sync::guard::SyncGuard;
use crate::sync::lock::{RLock, SharedLock};
use crate::sync::own_lock;
use crate::sync::synchronized::{Synchronized, Value};
use crate::{Result, SharedType};

impl<T: SharedType> Value<T, RLock> {
    /// [`new`](Synchronized::new) in `arena` (value and lock both, in one block).
    ///
    /// # Errors
    /// As [`new`](Synchronized::new).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// assert_eq!(shared_runtime::Value::new_in(&arena, 1.5f32)?.get(), 1.5);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new_in(arena: &Arena, value: T) -> Result<Self> {
        own_lock::value_in(arena, Some(value))
    }

    /// A new zeroed shared value with a fresh [`RLock`], in the global arena.
    ///
    /// # Errors
    /// As [`new`](Synchronized::new).
    ///
    /// ```
    /// assert_eq!(shared_runtime::Value::<u64>::zeroed()?.get(), 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed() -> Result<Self> {
        own_lock::value_in(Arena::try_global()?, None)
    }
}

impl<T: SharedType, L: SharedLock> Value<T, L> {
    /// [`with_lock`](Synchronized::with_lock), with the value in `arena`.
    ///
    /// # Errors
    /// As [`Synchronized::new`].
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let lock = shared_runtime::Lock::new_in(&arena)?;
    /// let v = shared_runtime::Value::with_lock_in(&arena, 9i64, lock)?;
    /// assert_eq!(v.get(), 9);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn with_lock_in(arena: &Arena, value: T, lock: L) -> Result<Self> {
        Synchronized::from_parts(RawValue::new_in(arena, value)?, lock)
    }

    /// Reads the value under the lock.
    ///
    /// # Panics
    /// If this thread already has the value borrowed (see [`SyncGuard`]).
    ///
    /// ```
    /// assert_eq!(shared_runtime::Value::new([1u8, 2])?.get(), [1, 2]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[inline]
    pub fn get(&self) -> T {
        let _held = self.lock_and_borrow();
        self.obj().get_unchecked()
    }

    /// Writes the value under the lock.
    ///
    /// # Panics
    /// If this thread already has the value borrowed (see [`SyncGuard`]).
    ///
    /// ```
    /// let v = shared_runtime::Value::new(0.0f64)?;
    /// v.set(2.5);
    /// assert_eq!(v.get(), 2.5);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[inline]
    pub fn set(&self, value: T) {
        let _held = self.lock_and_borrow();
        self.obj().set_unchecked(value)
    }

    /// Runs `f` on the value under one acquisition of the lock (a read-modify-write that
    /// no other process can interleave with), and returns what `f` returns.
    ///
    /// # Panics
    /// If this thread already has the value borrowed (see [`SyncGuard`]), or if `f` panics
    /// (the lock is then marked poisoned).
    ///
    /// ```
    /// let hits = shared_runtime::Value::new(0u32)?;
    /// let before = hits.update(|h| std::mem::replace(h, *h + 1));
    /// assert_eq!((before, hits.get()), (0, 1));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[inline]
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let _held = self.lock_and_borrow();
        let mut value = self.obj().get_unchecked();
        let result = f(&mut value);
        self.obj().set_unchecked(value);
        result
    }

    /// Holds the lock and gives a guard that derefs to the value, for any amount of work
    /// under one acquisition.
    ///
    /// # Errors
    /// A [`PoisonError`](std::sync::PoisonError) holding the guard if a previous holder died or panicked while
    /// holding the lock; the data may be half-updated.
    ///
    /// # Panics
    /// If this thread already has the value borrowed.
    ///
    /// ```
    /// let v = shared_runtime::Value::new(10i32)?;
    /// {
    ///     let mut g = v.lock().unwrap();
    ///     *g += 1;
    ///     *g *= 2;
    /// }
    /// assert_eq!(v.get(), 22);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "acquire")]
    #[inline]
    pub fn lock(&self) -> LockResult<SyncGuard<'_, T>> {
        self.guard(self.obj().as_ptr())
    }
}
