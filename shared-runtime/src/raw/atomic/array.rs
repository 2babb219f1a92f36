//! Atomic operations on the elements of a `RawArray<I>` of an integer type: the same as
//! `RawValue<I>`'s, with the element's index first.

use std::sync::atomic::Ordering;

use super::sealed::{Ops, Sealed};
use super::{cell, AtomicInteger};
use crate::RawArray;

impl<I: AtomicInteger> RawArray<I> {
    #[track_caller]
    fn atomic(&self, index: usize) -> &<I as Sealed>::Atomic {
        self.check_index(index);
        // Behind a guard this thread holds, an atomic access would alias its `&mut`.
        self.allocation().assert_not_borrowed_here();
        // SAFETY: index < len (checked above), so the element lies inside the allocation,
        // which lives as long as `self`; the array starts aligned for `I` and element
        // `index` is `index * size_of::<I>()` bytes further, so it is aligned for `I` too; a
        // raw array is only ever accessed atomically by this process.
        unsafe { cell(self.as_ptr().add(index)) }
    }

    /// Reads element `index` with one atomic load (never torn). See
    /// [`RawValue::load`](crate::RawValue::load).
    ///
    /// # Panics
    /// If `index >= len()`, naming both, like slice indexing; if `order` is `Release` or
    /// `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Acquire;
    /// let a = shared_runtime::raw_array!('i', [4, 5])?; // a RawArray<i32>
    /// assert_eq!(a.load(1, Acquire), 5);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn load(&self, index: usize, order: Ordering) -> I {
        self.atomic(index).load(order)
    }

    /// Writes element `index` with one atomic store.
    ///
    /// # Panics
    /// If `index >= len()`, naming both; if `order` is `Acquire` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Release;
    /// let a = shared_runtime::RawArray::<u16>::zeroed(2)?;
    /// a.store(0, 9, Release);
    /// assert_eq!(a.to_vec(), [9, 0]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn store(&self, index: usize, value: I, order: Ordering) {
        Ops::store(self.atomic(index), value, order)
    }

    /// Stores `value` in element `index` and returns the previous value, atomically.
    ///
    /// # Panics
    /// If `index >= len()`, naming both.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::AcqRel;
    /// let a = shared_runtime::RawArray::from_slice(&[1u8, 2])?;
    /// assert_eq!(a.swap(1, 7, AcqRel), 2);
    /// assert_eq!(a.to_vec(), [1, 7]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn swap(&self, index: usize, value: I, order: Ordering) -> I {
        self.atomic(index).swap(value, order)
    }

    /// Stores `new` in element `index` if it holds `current`, atomically: `Ok(previous)` if
    /// stored, `Err(actual)` if not. See
    /// [`RawValue::compare_exchange`](crate::RawValue::compare_exchange).
    ///
    /// # Panics
    /// If `index >= len()`, naming both; if `failure` is `Release` or `AcqRel`.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::{Acquire, Relaxed};
    /// let slots = shared_runtime::RawArray::<u32>::zeroed(3)?;
    /// // Claim slot 2 once: the second claim finds it taken.
    /// assert_eq!(slots.compare_exchange(2, 0, 42, Acquire, Relaxed), Ok(0));
    /// assert_eq!(slots.compare_exchange(2, 0, 43, Acquire, Relaxed), Err(42));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn compare_exchange(
        &self,
        index: usize,
        current: I,
        new: I,
        success: Ordering,
        failure: Ordering,
    ) -> Result<I, I> {
        self.atomic(index)
            .compare_exchange(current, new, success, failure)
    }

    /// As [`compare_exchange`](Self::compare_exchange), but may fail spuriously.
    ///
    /// # Panics
    /// As [`compare_exchange`](Self::compare_exchange).
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[3i64])?;
    /// let mut seen = a.load(0, Relaxed);
    /// while let Err(now) = a.compare_exchange_weak(0, seen, -seen, Relaxed, Relaxed) {
    ///     seen = now;
    /// }
    /// assert_eq!(a.get(0), Some(-3));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn compare_exchange_weak(
        &self,
        index: usize,
        current: I,
        new: I,
        success: Ordering,
        failure: Ordering,
    ) -> Result<I, I> {
        self.atomic(index)
            .compare_exchange_weak(current, new, success, failure)
    }

    /// Adds `value` to element `index` (wrapping) and returns the previous value,
    /// atomically: per-slot counters shared without a lock.
    ///
    /// # Panics
    /// If `index >= len()`, naming both.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let counts = shared_runtime::RawArray::<u64>::zeroed(3)?;
    /// counts.fetch_add(1, 5, Relaxed);
    /// assert_eq!(counts.fetch_add(1, 1, Relaxed), 5);
    /// assert_eq!(counts.to_vec(), [0, 6, 0]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_add(&self, index: usize, value: I, order: Ordering) -> I {
        self.atomic(index).fetch_add(value, order)
    }

    /// Subtracts `value` from element `index` (wrapping); returns the previous value.
    ///
    /// # Panics
    /// If `index >= len()`, naming both.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[i16::MIN])?;
    /// assert_eq!(a.fetch_sub(0, 1, Relaxed), i16::MIN);
    /// assert_eq!(a.get(0), Some(i16::MAX)); // wrapped
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_sub(&self, index: usize, value: I, order: Ordering) -> I {
        self.atomic(index).fetch_sub(value, order)
    }

    /// Bitwise "and" of element `index` with `value`; returns the previous value.
    ///
    /// # Panics
    /// If `index >= len()`, naming both.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[0xF0u8])?;
    /// assert_eq!(a.fetch_and(0, 0x3C, Relaxed), 0xF0);
    /// assert_eq!(a.get(0), Some(0x30));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_and(&self, index: usize, value: I, order: Ordering) -> I {
        self.atomic(index).fetch_and(value, order)
    }

    /// Bitwise "or" of element `index` with `value`; returns the previous value.
    ///
    /// # Panics
    /// If `index >= len()`, naming both.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let bitmap = shared_runtime::RawArray::<u64>::zeroed(2)?;
    /// bitmap.fetch_or(1, 1 << 3, Relaxed);
    /// assert_eq!(bitmap.to_vec(), [0, 8]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_or(&self, index: usize, value: I, order: Ordering) -> I {
        self.atomic(index).fetch_or(value, order)
    }

    /// Bitwise "xor" of element `index` with `value`; returns the previous value.
    ///
    /// # Panics
    /// If `index >= len()`, naming both.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[0b11u32])?;
    /// assert_eq!(a.fetch_xor(0, 0b01, Relaxed), 0b11);
    /// assert_eq!(a.get(0), Some(0b10));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_xor(&self, index: usize, value: I, order: Ordering) -> I {
        self.atomic(index).fetch_xor(value, order)
    }

    /// Stores the larger of element `index` and `value`; returns the previous value.
    ///
    /// # Panics
    /// If `index >= len()`, naming both.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let peaks = shared_runtime::RawArray::from_slice(&[5isize, 5])?;
    /// peaks.fetch_max(0, 9, Relaxed);
    /// peaks.fetch_max(1, 2, Relaxed);
    /// assert_eq!(peaks.to_vec(), [9, 5]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_max(&self, index: usize, value: I, order: Ordering) -> I {
        self.atomic(index).fetch_max(value, order)
    }

    /// Stores the smaller of element `index` and `value`; returns the previous value.
    ///
    /// # Panics
    /// If `index >= len()`, naming both.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[5i8])?;
    /// assert_eq!(a.fetch_min(0, -1, Relaxed), 5);
    /// assert_eq!(a.get(0), Some(-1));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_min(&self, index: usize, value: I, order: Ordering) -> I {
        self.atomic(index).fetch_min(value, order)
    }

    /// Replaces element `index` with `f(element)` in a compare-exchange loop; see
    /// [`RawValue::fetch_update`](crate::RawValue::fetch_update).
    ///
    /// # Panics
    /// If `index >= len()`, naming both; if `fetch_order` is `Release` or `AcqRel`.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[1u16, 2])?;
    /// assert_eq!(a.fetch_update(1, Relaxed, Relaxed, |x| Some(x * 10)), Ok(2));
    /// assert_eq!(a.to_vec(), [1, 20]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_update(
        &self,
        index: usize,
        set_order: Ordering,
        fetch_order: Ordering,
        mut f: impl FnMut(I) -> Option<I>,
    ) -> Result<I, I> {
        self.atomic(index)
            .fetch_update(set_order, fetch_order, &mut f)
    }
}
