//! `RawValue<T>`: one shared value, no lock.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::arena::{Allocation, Arena};
use crate::{Result, SharedType};

/// One value of type `T` in shared memory, without a lock (ctypes' `RawValue`).
///
/// Reads and writes are racy but sound: each is a relaxed atomic copy, so a value written by
/// another process at the same moment may be seen *torn* (partly old, partly new) for types
/// wider than a machine word, exactly as with ctypes. Use [`Value`](crate::Value) when a
/// read-modify-write must not lose updates.
///
/// The value is freed when the handle is dropped by the process that created it; a forked
/// child dropping its copy frees nothing.
///
/// ```
/// use shared_runtime::{Process, RawValue};
///
/// let x = RawValue::new(1.0f64 / 3.0)?;
/// Process::scope(|s| s.start(|| x.set(x.get() * 3.0))?.join())?;
/// assert_eq!(x.get(), 1.0);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct RawValue<T: SharedType> {
    /// Shared by every clone of this handle in this process; the block is freed (by its
    /// owner) when the last clone is dropped.
    alloc: Arc<Allocation>,
    _type: PhantomData<T>,
}

impl<T: SharedType> RawValue<T> {
    /// A new shared value holding `value`, in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full.
    ///
    /// ```
    /// let v = shared_runtime::RawValue::new(7u16)?;
    /// assert_eq!(v.get(), 7);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Self> {
        Self::new_in(Arena::try_global()?, value)
    }

    /// [`new`](Self::new) in the given arena.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let v = shared_runtime::RawValue::new_in(&arena, -3i8)?;
    /// assert_eq!(v.get(), -3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new_in(arena: &Arena, value: T) -> Result<Self> {
        let v = Self::zeroed_in(arena)?;
        v.set_unchecked(value); // a fresh object: nobody has it borrowed
        Ok(v)
    }

    /// A new shared value with every byte zero, in the global arena.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// assert_eq!(shared_runtime::RawValue::<f32>::zeroed()?.get(), 0.0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed() -> Result<Self> {
        Self::zeroed_in(Arena::try_global()?)
    }

    /// [`zeroed`](Self::zeroed) in the given arena.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// assert_eq!(shared_runtime::RawValue::<u64>::zeroed_in(&arena)?.get(), 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn zeroed_in(arena: &Arena) -> Result<Self> {
        // Fresh arena memory is zero (the allocator zeroes what it frees).
        let alloc = arena.alloc(size_of::<T>(), align_of::<T>())?;
        Ok(RawValue::from_arc(alloc))
    }

    /// Wraps a shared block already holding a `T`.
    pub(crate) fn from_arc(alloc: Arc<Allocation>) -> Self {
        RawValue {
            alloc,
            _type: PhantomData,
        }
    }

    /// The allocation every clone of this handle shares.
    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        &self.alloc
    }

    pub(crate) fn as_ptr(&self) -> *mut T {
        self.alloc.ptr().cast::<T>()
    }

    /// Reads the value (a relaxed atomic copy; may be torn by a concurrent writer).
    ///
    /// # Panics
    /// If this thread holds a guard of this very object (the raw handle of a
    /// [`Value`](crate::Value), from `getobj()` or a clone of it, while `lock()`'s guard
    /// lives): the access would bypass the guard's exclusive reference. Use the guard.
    ///
    /// ```
    /// let v = shared_runtime::RawValue::new([1u8, 2, 3])?;
    /// assert_eq!(v.get(), [1, 2, 3]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    #[inline]
    pub fn get(&self) -> T {
        self.assert_not_borrowed_here();
        self.get_unchecked()
    }

    /// Panics if the calling thread has this value borrowed through a lock guard. Inline,
    /// only the load of the mark and its test against 0 (nobody): the thread's id is looked
    /// up out of line, when some thread has it borrowed.
    #[track_caller]
    #[inline(always)]
    fn assert_not_borrowed_here(&self) {
        if self.alloc.borrow_mark().load(Ordering::Relaxed) != 0 {
            marked(&self.alloc);
        }
    }

    /// [`get`](Self::get) without the borrow check, for `Synchronized`, which reads under
    /// its own lock (with the mark set by itself).
    #[inline]
    pub(crate) fn get_unchecked(&self) -> T {
        // SAFETY: the allocation holds a `T`-sized, `T`-aligned block that lives as long as
        // `self`; other writers use atomics or are other processes, so the relaxed atomic
        // copy is race-free; any bytes read form a valid `T` because `SharedType` promises
        // every bit pattern is valid.
        unsafe { atomic_memcpy::atomic_load(self.as_ptr(), Ordering::Relaxed).assume_init() }
    }

    /// Writes the value (a relaxed atomic copy; a concurrent reader may see it torn).
    ///
    /// # Panics
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let v = shared_runtime::RawValue::new(1i64)?;
    /// v.set(-9);
    /// assert_eq!(v.get(), -9);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    #[inline]
    pub fn set(&self, value: T) {
        self.assert_not_borrowed_here();
        self.set_unchecked(value)
    }

    /// [`set`](Self::set) without the borrow check (see [`load`](Self::load)).
    #[inline]
    pub(crate) fn set_unchecked(&self, value: T) {
        // SAFETY: as in `load`; `store` writes with relaxed atomics.
        unsafe { T::store(&value, self.as_ptr()) }
    }

    /// The arena the value lives in.
    ///
    /// ```
    /// let v = shared_runtime::RawValue::new(0u8)?;
    /// assert!(v.arena().same_as(shared_runtime::Arena::try_global()?));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// The value's byte offset in its arena: the same in every process that maps it.
    ///
    /// ```
    /// let v = shared_runtime::RawValue::new(0u8)?;
    /// assert!(v.offset() > 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn offset(&self) -> u64 {
        self.alloc.offset()
    }

    /// Gives up this process's ownership without freeing the value, and returns its offset,
    /// so that another process of the family (or this one) can take it over with
    /// [`from_offset_in`](Self::from_offset_in). Until then, nobody frees it.
    ///
    /// # Errors
    /// [`Error::Corrupted`](crate::Error::Corrupted) if the arena's record of the value was
    /// damaged, or if this process is not its owner (a forked child's copy of its parent's
    /// value).
    /// [`Error::StillCloned`](crate::Error::StillCloned) if other clones of this handle are alive.
    /// [`Error::SharesBlock`](crate::Error::SharesBlock) for the data of a
    /// [`Value`](crate::Value) made with its own lock (from `into_parts`), which shares one
    /// block with that lock.
    ///
    /// ```
    /// use shared_runtime::{Arena, RawValue};
    ///
    /// let off = RawValue::new(99u32)?.into_offset()?;
    /// let v = RawValue::<u32>::from_offset_in(Arena::try_global()?, off)?;
    /// assert_eq!(v.get(), 99);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn into_offset(self) -> Result<u64> {
        crate::raw::unshare(self.alloc)?.detach()
    }

    /// Takes over a value given up with [`into_offset`](Self::into_offset): the calling
    /// process becomes its owner and frees it on drop. If this process already has a view
    /// of the block as data (opened from a borrowed handle), that view's handle becomes the
    /// owner and is the one returned: they are clones.
    ///
    /// # Errors
    /// [`Error::Corrupted`](crate::Error::Corrupted) if no value was given up at `offset`,
    /// if it was already taken over, if the block there is too small or misaligned for
    /// a `T`, or if it was made for a lock or a synchronization object;
    /// [`Error::AlreadyOpen`](crate::Error::AlreadyOpen) if this process has the block open
    /// as another kind of object.
    ///
    /// ```
    /// let v = shared_runtime::RawValue::new(1u8)?;
    /// // Still owned: it cannot be taken over.
    /// assert!(shared_runtime::RawValue::<u8>::from_offset_in(v.arena(), v.offset()).is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_offset_in(arena: &Arena, offset: u64) -> Result<Self> {
        let alloc = Allocation::adopt(arena, offset, size_of::<T>(), align_of::<T>())?;
        Ok(RawValue::from_arc(alloc))
    }
}

/// The rest of `RawValue::assert_not_borrowed_here`, when the value is marked borrowed by
/// some thread of this process: panics if it is this one.
#[cold]
#[inline(never)]
#[track_caller]
fn marked(alloc: &Allocation) {
    alloc.assert_not_borrowed_here();
}

/// Another handle to the same shared object (no copy is made): cheap, like cloning an
/// `Arc`. The object is freed when its owning process drops the last clone.
///
/// ```
/// use shared_runtime::{Process, RawValue};
///
/// let n = RawValue::new(0u32)?;
/// let n2 = n.clone(); // the same shared value
/// Process::start(move || n2.set(7))?.join()?;
/// assert_eq!(n.get(), 7);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<T: SharedType> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            alloc: Arc::clone(&self.alloc),
            _type: PhantomData,
        }
    }
}

impl<T: SharedType + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.alloc.borrowed_here() {
            // Reading would bypass this thread's own guard (and `get` would panic).
            return f
                .debug_tuple("RawValue")
                .field(&format_args!("<borrowed by this thread>"))
                .finish();
        }
        f.debug_tuple("RawValue")
            .field(&self.get_unchecked())
            .finish()
    }
}
