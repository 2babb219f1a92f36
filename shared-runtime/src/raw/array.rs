//! `RawArray<T>`: a fixed-length shared array, no lock.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::ops::{Bound, Range, RangeBounds};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::arena::{Allocation, Arena};
use crate::raw::racy;
use crate::{Error, Place, Result, SharedType, Unlocked};

/// A fixed-length array of `T` in shared memory, without a lock (ctypes' `RawArray`).
///
/// Element and bulk accesses are relaxed atomic copies: sound when other processes write
/// at the same time, but a concurrent write may be seen torn. Use
/// [`Array`](crate::Array) when updates must not be lost.
///
/// ```
/// use shared_runtime::{Process, RawArray};
///
/// let a = RawArray::from_slice(&[1, 2, 3])?;
/// Process::scope(|s| s.start(|| a.set(1, 20))?.join())?;
/// assert_eq!(a.to_vec(), [1, 20, 3]);
/// assert_eq!(a.get(3), None);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct RawArray<T: SharedType> {
    /// Shared by every clone of this handle in this process; the block is freed (by its
    /// owner) when the last clone is dropped.
    alloc: Arc<Allocation>,
    len: usize,
    _type: PhantomData<T>,
}

/// Bytes for `len` elements of `T`, or the error that says why not.
pub(crate) fn byte_len<T>(len: usize) -> Result<usize> {
    len.checked_mul(size_of::<T>())
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or(Error::SizeOverflow {
            count: len,
            elem_size: size_of::<T>(),
        })
}

/// Turns a range into `start..end`, panicking like slice indexing when it is out of bounds.
#[track_caller]
pub(crate) fn resolve(range: impl RangeBounds<usize>, len: usize) -> Range<usize> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1).expect("range start overflows usize"),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1).expect("range end overflows usize"),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    assert!(start <= end, "range starts at {start} but ends at {end}");
    assert!(
        end <= len,
        "range end index {end} out of range for array of length {len}"
    );
    start..end
}

impl<T: SharedType> RawArray<T> {
    /// A new array of `len` zeroed elements, in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::SizeOverflow`] if `len * size_of::<T>()` overflows,
    /// [`Error::OutOfMemory`] if the arena cannot hold it.
    ///
    /// ```
    /// let a = shared_runtime::RawArray::<f64>::zeroed(4)?;
    /// assert_eq!(a.to_vec(), [0.0; 4]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed(len: usize) -> Result<Self> {
        Self::zeroed_in(Arena::try_global()?, len)
    }

    /// [`zeroed`](Self::zeroed) in the given arena.
    ///
    /// # Errors
    /// As [`zeroed`](Self::zeroed).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// assert!(shared_runtime::RawArray::<u8>::zeroed_in(&arena, 1 << 20).is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed_in(arena: &Arena, len: usize) -> Result<Self> {
        let alloc = arena.alloc(byte_len::<T>(len)?, align_of::<T>())?;
        Ok(RawArray {
            alloc,
            len,
            _type: PhantomData,
        })
    }

    /// A new array holding a copy of `items`, in the global arena.
    ///
    /// # Errors
    /// As [`zeroed`](Self::zeroed).
    ///
    /// ```
    /// let a = shared_runtime::RawArray::from_slice(&[1.5f32, 2.5])?;
    /// assert_eq!(a.len(), 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<Self> {
        Self::from_slice_in(Arena::try_global()?, items)
    }

    /// [`from_slice`](Self::from_slice) in the given arena.
    ///
    /// # Errors
    /// As [`zeroed`](Self::zeroed).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let a = shared_runtime::RawArray::from_slice_in(&arena, &[7u64])?;
    /// assert_eq!(a.get(0), Some(7));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_slice_in(arena: &Arena, items: &[T]) -> Result<Self> {
        let a = Self::zeroed_in(arena, items.len())?;
        a.write_unchecked(0, items); // a fresh object: nobody has it borrowed
        Ok(a)
    }

    /// The allocation every clone of this handle shares.
    /// Wraps a shared block already holding `len` elements.
    pub(crate) fn from_arc(alloc: Arc<Allocation>, len: usize) -> Self {
        RawArray {
            alloc,
            len,
            _type: PhantomData,
        }
    }

    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        &self.alloc
    }

    pub(crate) fn as_ptr(&self) -> *mut T {
        self.alloc.ptr().cast::<T>()
    }

    /// The number of elements.
    ///
    /// ```
    /// assert_eq!(shared_runtime::RawArray::<i32>::zeroed(3)?.len(), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    ///
    /// ```
    /// assert!(shared_runtime::RawArray::<i32>::zeroed(0)?.is_empty());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `index`, or `None` if it is out of range.
    ///
    /// # Panics
    /// If this thread holds a guard of this very object (the raw handle of an
    /// [`Array`](crate::Array), from `getobj()` or a clone of it, while `lock()`'s guard
    /// lives): the access would bypass the guard's exclusive reference. Use the guard.
    /// Every accessor of a raw array checks this.
    ///
    /// ```
    /// let a = shared_runtime::RawArray::from_slice(&[4u8, 5])?;
    /// assert_eq!((a.get(1), a.get(2)), (Some(5), None));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn get(&self, index: usize) -> Option<T> {
        self.alloc.assert_not_borrowed_here();
        self.load_at(index)
    }

    /// [`get`](Self::get) without the borrow check, for `Synchronized`, which reads under
    /// its own lock (with the mark set by itself).
    pub(crate) fn load_at(&self, index: usize) -> Option<T> {
        if index >= self.len {
            return None;
        }
        // SAFETY: index < len, so the element lies inside the allocation, aligned for T;
        // the copy is a relaxed atomic one (see `RawValue::get`), and every bit pattern is a
        // valid T.
        Some(unsafe {
            atomic_memcpy::atomic_load(self.as_ptr().add(index), Ordering::Relaxed).assume_init()
        })
    }

    /// Sets element `index` to `value`.
    ///
    /// # Panics
    /// If `index >= len()`, with a message naming both, like slice indexing; as
    /// [`get`](Self::get) if this thread holds a guard of the object.
    ///
    /// ```
    /// let a = shared_runtime::RawArray::<i16>::zeroed(2)?;
    /// a.set(1, -4);
    /// assert_eq!(a.to_vec(), [0, -4]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn set(&self, index: usize, value: T) {
        self.alloc.assert_not_borrowed_here();
        self.store_at(index, value)
    }

    /// [`set`](Self::set) without the borrow check (see [`load_at`](Self::load_at)).
    #[track_caller]
    pub(crate) fn store_at(&self, index: usize, value: T) {
        self.check_index(index);
        // SAFETY: index < len (checked above); see `get`.
        unsafe { T::store(&value, self.as_ptr().add(index)) }
    }

    /// The [`Place`] of element `index`: read or write it, or one field of it (with a
    /// derived struct's accessors), without copying anything else. No lock: each access is
    /// a relaxed atomic copy.
    ///
    /// # Panics
    /// If `index >= len()`, with a message naming both, like slice indexing. Operations on
    /// the place panic as [`get`](Self::get) does if this thread holds a guard of the object.
    ///
    /// ```
    /// use shared_runtime::{RawArray, SharedStruct};
    ///
    /// #[derive(SharedStruct, Clone, Copy)]
    /// #[repr(C)]
    /// struct Point {
    ///     x: f64,
    ///     y: f64,
    /// }
    ///
    /// let a = RawArray::<Point>::zeroed(2)?;
    /// a.at(1).set_y(5.0);
    /// assert_eq!((a.at(0).y(), a.at(1).y()), (0.0, 5.0));
    /// a.at(0).set(Point { x: 1.0, y: 2.0 });
    /// assert_eq!(a.get(0).map(|p| p.x), Some(1.0));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn at(&self, index: usize) -> Place<'_, T, Unlocked<'_>> {
        self.check_index(index);
        // SAFETY: index < len (checked above), so the element is an aligned `T` inside the
        // allocation, which lives as long as `self`; a raw array never hands out references
        // into its memory, and `Unlocked` promises no exclusion (its operations check the
        // borrow mark, as `get`/`set` do).
        unsafe { Place::new(self.as_ptr().add(index), Unlocked::new(&self.alloc)) }
    }

    #[track_caller]
    pub(crate) fn check_index(&self, index: usize) {
        assert!(
            index < self.len,
            "index out of bounds: the len is {} but the index is {}",
            self.len,
            index
        );
    }

    /// A copy of every element.
    ///
    /// # Panics
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let a = shared_runtime::RawArray::from_slice(&[1u32, 2])?;
    /// assert_eq!(a.to_vec(), vec![1, 2]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn to_vec(&self) -> Vec<T> {
        self.read(..)
    }

    /// A copy of the elements in `range`.
    ///
    /// # Panics
    /// If the range is out of bounds, like slice indexing; as [`get`](Self::get).
    ///
    /// ```
    /// let a = shared_runtime::RawArray::from_slice(&[1, 2, 3, 4])?;
    /// assert_eq!(a.read(1..3), [2, 3]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn read(&self, range: impl RangeBounds<usize>) -> Vec<T> {
        self.alloc.assert_not_borrowed_here();
        self.read_unchecked(range)
    }

    /// [`read`](Self::read) without the borrow check (see [`load_at`](Self::load_at)).
    #[track_caller]
    pub(crate) fn read_unchecked(&self, range: impl RangeBounds<usize>) -> Vec<T> {
        let r = resolve(range, self.len);
        let n = r.len();
        let mut out: Vec<MaybeUninit<T>> = Vec::with_capacity(n);
        // SAFETY: `r` is inside the array, so the source range is inside the allocation; the
        // destination is the vector's spare capacity of exactly n elements; the copy reads
        // shared memory with relaxed atomics only. Afterwards every byte of the n elements is
        // initialised, and any bytes form a valid T (SharedType), so set_len and the
        // reinterpretation as Vec<T> are sound.
        unsafe {
            racy::load(
                self.as_ptr().add(r.start).cast::<u8>(),
                out.as_mut_ptr().cast::<u8>(),
                n * size_of::<T>(),
            );
            out.set_len(n);
            let mut out = std::mem::ManuallyDrop::new(out);
            Vec::from_raw_parts(out.as_mut_ptr().cast::<T>(), n, out.capacity())
        }
    }

    /// Copies `items` into the array starting at element `start`.
    ///
    /// # Panics
    /// If `start + items.len()` exceeds the length, like slice indexing; as
    /// [`get`](Self::get).
    ///
    /// ```
    /// let a = shared_runtime::RawArray::<u8>::zeroed(4)?;
    /// a.write(1, &[7, 8]);
    /// assert_eq!(a.to_vec(), [0, 7, 8, 0]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn write(&self, start: usize, items: &[T]) {
        self.alloc.assert_not_borrowed_here();
        self.write_unchecked(start, items)
    }

    /// [`write`](Self::write) without the borrow check (see [`load_at`](Self::load_at)).
    #[track_caller]
    pub(crate) fn write_unchecked(&self, start: usize, items: &[T]) {
        let end = start
            .checked_add(items.len())
            .expect("range end overflows usize");
        let r = resolve(start..end, self.len);
        if T::LAYOUT.has_padding() {
            for (i, item) in items.iter().enumerate() {
                // SAFETY: r.start + i < r.end <= len; see `set`.
                unsafe { T::store(item, self.as_ptr().add(r.start + i)) }
            }
        } else {
            // SAFETY: the destination range is inside the allocation; `T` has no padding, so
            // every source byte is initialised; the copy writes shared memory with relaxed
            // atomics only.
            unsafe {
                racy::store(
                    items.as_ptr().cast::<u8>(),
                    self.as_ptr().add(r.start).cast::<u8>(),
                    std::mem::size_of_val(items),
                )
            }
        }
    }

    /// The arena the array lives in.
    ///
    /// ```
    /// let a = shared_runtime::RawArray::<u8>::zeroed(1)?;
    /// assert!(a.arena().same_as(shared_runtime::Arena::try_global()?));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// The array's byte offset in its arena.
    ///
    /// ```
    /// let a = shared_runtime::RawArray::<u8>::zeroed(1)?;
    /// assert_eq!(a.offset() % 16, 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn offset(&self) -> u64 {
        self.alloc.offset()
    }

    /// Gives up ownership without freeing and returns the array's offset; see
    /// [`RawValue::into_offset`](crate::RawValue::into_offset).
    ///
    /// # Errors
    /// As [`RawValue::into_offset`](crate::RawValue::into_offset).
    ///
    /// ```
    /// use shared_runtime::{Arena, RawArray};
    /// let off = RawArray::from_slice(&[1u8, 2])?.into_offset()?;
    /// assert_eq!(RawArray::<u8>::from_offset_in(Arena::try_global()?, off, 2)?.to_vec(), [1, 2]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn into_offset(self) -> Result<u64> {
        crate::raw::unshare(self.alloc)?.detach()
    }

    /// Takes over an array of `len` elements given up with
    /// [`into_offset`](Self::into_offset).
    ///
    /// # Errors
    /// As [`RawValue::from_offset_in`](crate::RawValue::from_offset_in), and
    /// [`Error::SizeOverflow`] if `len` elements overflow.
    ///
    /// ```
    /// use shared_runtime::{Arena, RawArray};
    /// let off = RawArray::from_slice(&[1u8, 2])?.into_offset()?;
    /// // Asking for more elements than the block holds is refused.
    /// assert!(RawArray::<u8>::from_offset_in(Arena::try_global()?, off, 1 << 20).is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_offset_in(arena: &Arena, offset: u64, len: usize) -> Result<Self> {
        let alloc = Allocation::adopt(arena, offset, byte_len::<T>(len)?, align_of::<T>())?;
        Ok(RawArray {
            alloc,
            len,
            _type: PhantomData,
        })
    }
}

/// Another handle to the same shared object (no copy is made): cheap, like cloning an
/// `Arc`. The object is freed when its owning process drops the last clone.
///
/// ```
/// use shared_runtime::{Process, RawArray};
///
/// let a = RawArray::<u8>::zeroed(3)?;
/// let a2 = a.clone(); // the same shared array
/// Process::start(move || a2.set(2, 9))?.join()?;
/// assert_eq!(a.to_vec(), [0, 0, 9]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<T: SharedType> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            alloc: Arc::clone(&self.alloc),
            len: self.len,
            _type: PhantomData,
        }
    }
}

impl<T: SharedType + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.alloc.borrowed_here() {
            // Reading would bypass this thread's own guard (and `to_vec` would panic).
            return f
                .debug_tuple("RawArray")
                .field(&format_args!("<borrowed by this thread>"))
                .finish();
        }
        f.debug_tuple("RawArray")
            .field(&self.read_unchecked(..))
            .finish()
    }
}
