//! `Place`: a typed location in shared memory — a whole object, an array element, or a
//! field of a shared struct — read and written without copying what surrounds it.

mod access;
mod has_place;

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

pub use access::{Access, Held, Locked, Unlocked};
pub use has_place::HasPlace;

use crate::SharedType;

/// A `T` somewhere in shared memory: a whole shared object, an element of a shared array,
/// or a field of a shared struct, with the access mode `A` of the container it came from.
///
/// A place never hands out a reference into shared memory: [`get`](Self::get) copies the
/// `T` out, [`set`](Self::set) copies one in (never writing padding), and
/// [`update`](Self::update) runs a closure on a copy and writes it back. On a synchronized
/// container ([`Locked`]) each of these takes the lock once; on a raw one ([`Unlocked`]) it
/// is a relaxed atomic copy, sound but possibly torn by a concurrent writer; through a guard
/// ([`Held`]) the lock is already held.
///
/// Places are what `#[derive(SharedStruct)]`'s field accessors are made of: `v.x()` reads
/// only field `x`, and `v.inner_place()` is the place of a nested struct, whose own fields
/// are reached the same way. A place is `Copy`, and its methods take it by value, so that
/// they come before any field accessor of the same name (a field called `get` is still
/// read with `PointFields::get(place)`).
///
/// ```
/// use shared_runtime::{Array, SharedStruct};
///
/// #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// let a = Array::from_slice(&[Point { x: 1.0, y: 2.0 }, Point { x: 3.0, y: 4.0 }])?;
/// let p = a.at(1); // the place of element 1; no lock taken yet
/// p.set_y(40.0); // one acquisition of the lock, writes only `y`
/// assert_eq!(p.x(), 3.0);
/// assert_eq!(p.get(), Point { x: 3.0, y: 40.0 });
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct Place<'a, T, A> {
    ptr: NonNull<T>,
    access: A,
    _borrow: PhantomData<&'a T>,
}

// SAFETY: a place is a shared borrow of a container, made exclusive (or not) by `A`: sending
// it to another thread is sending `&RawValue<T>` (every access is atomic) or
// `&Synchronized<..>` (every access takes the lock), both `Send` when `T` is `Sync`; a
// `Held` place is not `Send`, because `Held` is not.
unsafe impl<T: Send + Sync, A: Access + Send> Send for Place<'_, T, A> {}
// SAFETY: as for `Send`: operations through `&Place` are the container's `&self` operations.
unsafe impl<T: Send + Sync, A: Access + Sync> Sync for Place<'_, T, A> {}

impl<T, A: Copy> Clone for Place<'_, T, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, A: Copy> Copy for Place<'_, T, A> {}

impl<'a, T: SharedType, A: Access> Place<'a, T, A> {
    /// # Safety
    /// `ptr` must point to an aligned `T` in shared memory that stays valid for `'a`, that
    /// no live Rust reference points into, and that `access` makes as exclusive as its type
    /// promises (for [`Held`], this thread holds the object's lock and nothing else reaches
    /// the memory for `'a`).
    pub(crate) unsafe fn new(ptr: *mut T, access: A) -> Self {
        Place {
            ptr: NonNull::new(ptr).expect("shared objects are never at address 0"),
            access,
            _borrow: PhantomData,
        }
    }

    /// The address of the `T` (for the atomic operations of an unlocked integer place).
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    fn copy_out(&self) -> T {
        // SAFETY: `new`'s contract: the pointer is valid and aligned for `'a` and other
        // accesses are atomic or locked out, so a relaxed atomic copy is race-free; any bytes
        // are a valid `T` (`SharedType`).
        unsafe { atomic_memcpy::atomic_load(self.ptr.as_ptr(), Ordering::Relaxed).assume_init() }
    }

    fn copy_in(&self, value: &T) {
        // SAFETY: as in `copy_out`; `store` writes every field with relaxed atomics, no padding.
        unsafe { T::store(value, self.ptr.as_ptr()) }
    }

    /// Reads the value: one relaxed atomic copy, under the lock if the container has one.
    ///
    /// # Panics
    /// For a [`Locked`] place, if this thread already has the object borrowed (inside its
    /// `update`, or while a guard from its `lock()` lives); for an [`Unlocked`] one, if this
    /// thread holds a guard of the object (a raw handle of a synchronized object).
    ///
    /// ```
    /// use shared_runtime::place::HasPlace;
    /// let v = shared_runtime::Value::new(2.5f32)?;
    /// assert_eq!(v.place().get(), 2.5);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn get(self) -> T {
        self.access.with(|| self.copy_out())
    }

    /// Writes the value (never its padding), under the lock if the container has one.
    ///
    /// # Panics
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let a = shared_runtime::RawArray::<u16>::zeroed(3)?;
    /// a.at(2).set(7);
    /// assert_eq!(a.to_vec(), [0, 0, 7]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn set(self, value: T) {
        self.access.with(|| self.copy_in(&value))
    }

    /// Runs `f` on a copy of the value and writes the copy back, returning what `f` returns.
    /// On a [`Locked`] place this is one acquisition of the lock: a read-modify-write no
    /// other process can interleave with. On an [`Unlocked`] one it is a racy
    /// read-then-write, and a concurrent update may be lost.
    ///
    /// # Panics
    /// As [`get`](Self::get), and if `f` panics (a lock is then marked poisoned; nothing is
    /// written).
    ///
    /// ```
    /// let a = shared_runtime::Array::from_slice(&[10u32, 20])?;
    /// let old = a.at(0).update(|v| std::mem::replace(v, *v + 1));
    /// assert_eq!((old, a.to_vec()), (10, vec![11, 20]));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn update<R>(self, f: impl FnOnce(&mut T) -> R) -> R {
        self.access.with(|| {
            let mut value = self.copy_out();
            let result = f(&mut value);
            self.copy_in(&value);
            result
        })
    }

    /// The place of a part of this value.
    ///
    /// # Safety
    /// `f` must return a pointer to a `U` that lies entirely inside the `T` it is given and
    /// is aligned for `U`, computed without reading or writing memory.
    unsafe fn project<U: SharedType>(self, f: impl FnOnce(*mut T) -> *mut U) -> Place<'a, U, A> {
        // SAFETY: the caller promises the part lies inside this `T` and is aligned, so it
        // inherits everything `new` needed: validity for `'a`, no references into it, and
        // the same exclusion (`access` is the container's, unchanged).
        unsafe { Place::new(f(self.ptr.as_ptr()), self.access) }
    }
}

/// The place of the `U` that starts `offset` bytes into `place`'s `T`: how the field
/// accessors of `#[derive(SharedStruct)]` reach a field (`offset` is its `offset_of!`).
///
/// Safe whatever `offset` it is given: it checks that the `U` lies inside the `T` and is
/// aligned, and every bit pattern is a valid `U` (a [`SharedType`]), so a place that
/// overlaps other fields or padding reads and writes only valid values. So the code the
/// derive generates holds no `unsafe` block of its own, and cannot be made to dereference
/// a pointer of its caller's choosing (even when `#[shared(crate = ..)]` points its paths at
/// other items).
///
/// # Panics
/// If the `U` would not lie inside the `T`, or would be misaligned (never for a field's
/// `offset_of!`).
///
/// ```
/// use shared_runtime::place::HasPlace;
/// use shared_runtime::RawValue;
/// use shared_runtime::__private_v1::project_field;
///
/// let v = RawValue::new([1u32, 2])?;
/// let second = project_field::<_, u32, _>(v.place(), 4);
/// assert_eq!(second.get(), 2);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[doc(hidden)]
#[track_caller]
pub fn project_field<'a, T: SharedType, U: SharedType, A: Access>(
    place: Place<'a, T, A>,
    offset: usize,
) -> Place<'a, U, A> {
    let inside = offset
        .checked_add(std::mem::size_of::<U>())
        .is_some_and(|end| end <= std::mem::size_of::<T>());
    assert!(
        inside,
        "a {}-byte part at offset {offset} does not lie inside the {} bytes of `{}`",
        std::mem::size_of::<U>(),
        std::mem::size_of::<T>(),
        T::LAYOUT.name,
    );
    let ptr = place.ptr.as_ptr().wrapping_byte_add(offset).cast::<U>();
    assert!(
        ptr.is_aligned(),
        "a part at offset {offset} of `{}` is not aligned for `{}`",
        T::LAYOUT.name,
        U::LAYOUT.name,
    );
    // SAFETY: checked above: the `U` lies inside the `T` (so inside the place's memory, valid
    // for `'a`) and is aligned; every bit pattern of those bytes is a valid `U`, and a `U`
    // written there leaves valid bytes for every `T` (`SharedType`); `wrapping_byte_add`
    // reads nothing; the access mode is the container's, unchanged.
    unsafe { place.project(|_| ptr) }
}

impl<'a, T: SharedType, A: Access, const N: usize> Place<'a, [T; N], A> {
    /// The place of element `index` of an array value, such as an array field of a shared
    /// struct. Takes no lock.
    ///
    /// # Panics
    /// If `index >= N`, naming both, like slice indexing.
    ///
    /// ```
    /// use shared_runtime::Value;
    /// use shared_runtime::place::HasPlace;
    /// let v = Value::new([[0u8; 2]; 3])?;
    /// v.place().at(2).at(1).set(9);
    /// assert_eq!(v.get(), [[0, 0], [0, 0], [0, 9]]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn at(self, index: usize) -> Place<'a, T, A> {
        assert!(
            index < N,
            "index out of bounds: the len is {N} but the index is {index}"
        );
        // SAFETY: element `index < N` of a `[T; N]` lies inside it and is aligned for `T`;
        // `wrapping_add` reads nothing.
        unsafe { self.project(|p| p.cast::<T>().wrapping_add(index)) }
    }
}

impl<T: SharedType, A: Access + fmt::Debug> fmt::Debug for Place<'_, T, A> {
    /// Names the type and the access mode; reading the value would take a lock.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Place")
            .field("type", &T::LAYOUT.name)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}
