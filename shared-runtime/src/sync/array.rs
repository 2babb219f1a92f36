//! `Array<T, L>`: constructors and accessors of a synchronized shared array.

use std::ops::RangeBounds;
use std::sync::LockResult;

use crate::arena::Arena;
use crate::raw::RawArray;
use crate::sync::guard::SyncGuard;
use crate::sync::lock::{RLock, SharedLock};
use crate::sync::own_lock;
use crate::sync::synchronized::{Array, Synchronized};
use crate::{CChar, Locked, Place, Result, SharedType};

impl<T: SharedType> Array<T, RLock> {
    /// A new array of `len` zeroed elements guarded by a fresh [`RLock`], in the global
    /// arena (ctypes' `Array(typecode, size)`).
    ///
    /// # Errors
    /// [`Error::SizeOverflow`](crate::Error::SizeOverflow) if the byte size overflows,
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena cannot hold it.
    ///
    /// ```
    /// let a = shared_runtime::Array::<i32>::zeroed(10)?;
    /// assert_eq!(a.to_vec(), [0; 10]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed(len: usize) -> Result<Self> {
        Self::zeroed_in(Arena::try_global()?, len)
    }

    /// [`zeroed`](Self::zeroed) in `arena` (array and lock both, in one block).
    ///
    /// # Errors
    /// As [`zeroed`](Self::zeroed).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// assert_eq!(shared_runtime::Array::<u8>::zeroed_in(&arena, 3)?.len(), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed_in(arena: &Arena, len: usize) -> Result<Self> {
        own_lock::array_in(arena, len, None)
    }

    /// A new array holding a copy of `items`, guarded by a fresh [`RLock`], in the global
    /// arena (ctypes' `Array(typecode, initializer)`).
    ///
    /// # Errors
    /// As [`zeroed`](Self::zeroed).
    ///
    /// ```
    /// let a = shared_runtime::Array::from_slice(&[1.5f64, 2.5])?;
    /// assert_eq!(a.get(1), Some(2.5));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<Self> {
        Self::from_slice_in(Arena::try_global()?, items)
    }

    /// [`from_slice`](Self::from_slice) in `arena`.
    ///
    /// # Errors
    /// As [`zeroed`](Self::zeroed).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let a = shared_runtime::Array::from_slice_in(&arena, &[4u16])?;
    /// assert_eq!(a.to_vec(), [4]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_slice_in(arena: &Arena, items: &[T]) -> Result<Self> {
        own_lock::array_in(arena, items.len(), Some(items))
    }
}

impl<T: SharedType, L: SharedLock> Array<T, L> {
    /// A new zeroed array guarded by `lock`, in the global arena.
    ///
    /// # Errors
    /// As [`Array::zeroed`].
    ///
    /// ```
    /// let a = shared_runtime::Array::<u8, _>::zeroed_with_lock(2, shared_runtime::Lock::new()?)?;
    /// assert_eq!(a.len(), 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed_with_lock(len: usize, lock: L) -> Result<Self> {
        Self::zeroed_with_lock_in(Arena::try_global()?, len, lock)
    }

    /// [`zeroed_with_lock`](Self::zeroed_with_lock), with the array in `arena`.
    ///
    /// # Errors
    /// As [`Array::zeroed`].
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let lock = shared_runtime::RLock::new_in(&arena)?;
    /// assert!(shared_runtime::Array::<u8, _>::zeroed_with_lock_in(&arena, 0, lock)?.is_empty());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed_with_lock_in(arena: &Arena, len: usize, lock: L) -> Result<Self> {
        Synchronized::from_parts(RawArray::zeroed_in(arena, len)?, lock)
    }

    /// A new array holding a copy of `items`, guarded by `lock`, in the global arena.
    ///
    /// # Errors
    /// As [`Array::zeroed`].
    ///
    /// ```
    /// use shared_runtime::{Array, CChar, Lock};
    /// let lock = Lock::new()?;
    /// let s = Array::from_slice_with_lock(CChar::from_bytes(b"hi"), lock.clone())?;
    /// let n = Array::from_slice_with_lock(&[1, 2], lock)?;
    /// assert_eq!((s.value(), n.to_vec()), (b"hi".to_vec(), vec![1, 2]));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_slice_with_lock(items: &[T], lock: L) -> Result<Self> {
        Self::from_slice_with_lock_in(Arena::try_global()?, items, lock)
    }

    /// [`from_slice_with_lock`](Self::from_slice_with_lock), with the array in `arena`.
    ///
    /// # Errors
    /// As [`Array::zeroed`].
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let lock = shared_runtime::Lock::new_in(&arena)?;
    /// let a = shared_runtime::Array::from_slice_with_lock_in(&arena, &[7i8], lock)?;
    /// assert_eq!(a.get(0), Some(7));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_slice_with_lock_in(arena: &Arena, items: &[T], lock: L) -> Result<Self> {
        Synchronized::from_parts(RawArray::from_slice_in(arena, items)?, lock)
    }

    /// The number of elements (no lock needed: it never changes).
    ///
    /// ```
    /// assert_eq!(shared_runtime::Array::<u8>::zeroed(4)?.len(), 4);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.obj().len()
    }

    /// Whether the array has no elements.
    ///
    /// ```
    /// assert!(shared_runtime::Array::<u8>::zeroed(0)?.is_empty());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.obj().is_empty()
    }

    /// Element `index` under the lock, or `None` if out of range.
    ///
    /// ```
    /// let a = shared_runtime::Array::from_slice(&[5u8])?;
    /// assert_eq!((a.get(0), a.get(1)), (Some(5), None));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn get(&self, index: usize) -> Option<T> {
        let _held = self.lock_and_borrow();
        self.obj().load_at(index)
    }

    /// Sets element `index` under the lock.
    ///
    /// # Panics
    /// If `index >= len()` (naming both), or if this thread has the array borrowed.
    ///
    /// ```
    /// let a = shared_runtime::Array::<i32>::zeroed(2)?;
    /// a.set(1, -1);
    /// assert_eq!(a.to_vec(), [0, -1]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn set(&self, index: usize, value: T) {
        self.obj().check_index(index);
        let _held = self.lock_and_borrow();
        self.obj().store_at(index, value)
    }

    /// Runs `f` on element `index` under one acquisition of the lock, and returns what it
    /// returns.
    ///
    /// # Panics
    /// If `index >= len()` (naming both), if this thread has the array borrowed, or if `f`
    /// panics (the lock is then marked poisoned).
    ///
    /// ```
    /// let a = shared_runtime::Array::from_slice(&[1.5f64, 2.0])?;
    /// a.update(0, |x| *x = x.powi(2));
    /// assert_eq!(a.to_vec(), [2.25, 2.0]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn update<R>(&self, index: usize, f: impl FnOnce(&mut T) -> R) -> R {
        self.obj().check_index(index);
        let _held = self.lock_and_borrow();
        let mut value = self.obj().load_at(index).expect("index checked above");
        let result = f(&mut value);
        self.obj().store_at(index, value);
        result
    }

    /// The [`Place`] of element `index`: read or write it, or one field of it (with a
    /// derived struct's accessors), without copying anything else. Takes no lock itself;
    /// each operation on the place takes the array's lock once.
    ///
    /// # Panics
    /// If `index >= len()`, naming both, like slice indexing. Operations on the place panic
    /// if this thread has the array borrowed (see [`SyncGuard`]).
    ///
    /// ```
    /// use shared_runtime::{Array, SharedStruct};
    ///
    /// #[derive(SharedStruct, Clone, Copy)]
    /// #[repr(C)]
    /// struct Particle {
    ///     pos: [f32; 3],
    ///     mass: f32,
    /// }
    ///
    /// let a = Array::<Particle>::zeroed(4)?;
    /// a.at(3).set_mass(2.5); // one acquisition of the lock
    /// a.at(3).pos_place().at(0).set(-1.0);
    /// a.at(3).update_mass(|m| *m *= 2.0);
    /// assert_eq!((a.at(3).mass(), a.at(3).pos()), (5.0, [-1.0, 0.0, 0.0]));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn at(&self, index: usize) -> Place<'_, T, Locked<'_, RawArray<T>, L>> {
        self.obj().check_index(index);
        // SAFETY: index < len (checked above), so the element is an aligned `T` inside the
        // array's memory, which lives as long as `self`; references into that memory exist
        // only inside a guard or an `update`, which mark the array borrowed, and every
        // operation of a `Locked` place takes the lock and checks that mark first.
        unsafe { Place::new(self.obj().as_ptr().add(index), Locked::new(self)) }
    }

    /// A copy of every element, under the lock.
    ///
    /// ```
    /// assert_eq!(shared_runtime::Array::from_slice(&[1u8, 2])?.to_vec(), [1, 2]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.read(..)
    }

    /// A copy of the elements in `range`, under the lock.
    ///
    /// # Panics
    /// If the range is out of bounds, like slice indexing.
    ///
    /// ```
    /// let a = shared_runtime::Array::from_slice(&[1, 2, 3])?;
    /// assert_eq!(a.read(1..), [2, 3]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn read(&self, range: impl RangeBounds<usize>) -> Vec<T> {
        let raw = self.obj();
        let r = crate::raw::resolve(range, raw.len());
        let _held = self.lock_and_borrow();
        // SAFETY: the lock is held and the borrow mark set, so no one else reaches these
        // elements meanwhile (the same guarantee `lock()`'s guard relies on): a plain
        // copy, at memcpy speed, is race-free. The range is inside the array (checked by
        // `resolve`), aligned, and every bit pattern is a valid T.
        unsafe { std::slice::from_raw_parts(raw.as_ptr().add(r.start), r.len()).to_vec() }
    }

    /// Copies `items` in starting at element `start`, under the lock.
    ///
    /// # Panics
    /// If `start + items.len()` exceeds the length, like slice indexing.
    ///
    /// ```
    /// let a = shared_runtime::Array::<u8>::zeroed(3)?;
    /// a.write(1, &[8, 9]);
    /// assert_eq!(a.to_vec(), [0, 8, 9]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn write(&self, start: usize, items: &[T]) {
        let raw = self.obj();
        let end = start
            .checked_add(items.len())
            .expect("range end overflows usize");
        let r = crate::raw::resolve(start..end, raw.len());
        if T::LAYOUT.has_padding() {
            // Element by element, so that no uninitialised padding reaches shared memory.
            let _held = self.lock_and_borrow();
            raw.write_unchecked(start, items);
            return;
        }
        let _held = self.lock_and_borrow();
        // SAFETY: as in `read`; `T` has no padding, so every source byte is initialised,
        // and the destination range is inside the array.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), raw.as_ptr().add(r.start), r.len()) }
    }

    /// Holds the lock and gives a guard that derefs to the elements as a slice.
    ///
    /// # Errors
    /// A [`PoisonError`](std::sync::PoisonError) holding the guard if a previous holder
    /// died or panicked while holding the lock.
    ///
    /// # Panics
    /// If this thread already has the array borrowed.
    ///
    /// ```
    /// let a = shared_runtime::Array::from_slice(&[1, 2, 3])?;
    /// let total: i32 = a.lock().unwrap().iter().sum();
    /// assert_eq!(total, 6);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "acquire")]
    pub fn lock(&self) -> LockResult<SyncGuard<'_, [T]>> {
        let raw = self.obj();
        self.guard(std::ptr::slice_from_raw_parts_mut(raw.as_ptr(), raw.len()))
    }
}

impl<L: SharedLock> Array<CChar, L> {
    /// The bytes up to the first NUL, under the lock (ctypes' `.value`).
    ///
    /// ```
    /// let s = shared_runtime::Array::from_slice(shared_runtime::CChar::from_bytes(b"ab\0c"))?;
    /// assert_eq!(s.value(), b"ab");
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn value(&self) -> Vec<u8> {
        let _held = self.lock_and_borrow();
        self.obj().value_unchecked()
    }

    /// Stores `bytes`, NUL-terminated when there is room, under the lock.
    ///
    /// # Errors
    /// [`Error::TooLong`](crate::Error::TooLong) if `bytes` is longer than the array.
    ///
    /// ```
    /// let s = shared_runtime::Array::<shared_runtime::CChar>::zeroed(5)?;
    /// s.set_value(b"HELLO")?;
    /// assert!(s.set_value(b"HELLO!").is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn set_value(&self, bytes: &[u8]) -> Result<()> {
        let _held = self.lock_and_borrow();
        self.obj().set_value_unchecked(bytes)
    }

    /// Every byte, under the lock (ctypes' `.raw`).
    ///
    /// ```
    /// let s = shared_runtime::Array::<shared_runtime::CChar>::zeroed(2)?;
    /// assert_eq!(s.raw(), [0, 0]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn raw(&self) -> Vec<u8> {
        let _held = self.lock_and_borrow();
        self.obj().raw_unchecked()
    }

    /// Overwrites the first `bytes.len()` bytes, under the lock (ctypes' `.raw = ...`).
    ///
    /// # Errors
    /// [`Error::TooLong`](crate::Error::TooLong) if `bytes` is longer than the array.
    ///
    /// ```
    /// let s = shared_runtime::Array::<shared_runtime::CChar>::zeroed(2)?;
    /// s.set_raw(b"ok")?;
    /// assert_eq!(s.value(), b"ok");
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn set_raw(&self, bytes: &[u8]) -> Result<()> {
        let _held = self.lock_and_borrow();
        self.obj().set_raw_unchecked(bytes)
    }
}
