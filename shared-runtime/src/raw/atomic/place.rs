//! Atomic operations on the unlocked place of an integer: an integer field of a shared
//! struct inside a raw object (`v.place().hits()`), or an element reached with `at`.

use std::sync::atomic::Ordering;

use super::sealed::{Ops, Sealed};
use super::{cell, AtomicInteger};
use crate::{Place, Unlocked};

impl<I: AtomicInteger> Place<'_, I, Unlocked<'_>> {
    fn atomic(&self) -> &<I as Sealed>::Atomic {
        // SAFETY: an unlocked place points to an `I` aligned for `I` (`Place::new`'s
        // contract; `project_field` checks a field's alignment) inside a raw object that
        // outlives the place; a raw object is only ever accessed atomically by this process.
        unsafe { cell(self.as_ptr()) }
    }

    /// Reads the integer with one atomic load (never torn).
    ///
    /// # Panics
    /// If `order` is `Release` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// use shared_runtime::{RawValue, SharedStruct};
    ///
    /// #[derive(SharedStruct, Clone, Copy)]
    /// #[repr(C)]
    /// struct Stats {
    ///     hits: u64,
    ///     misses: u32,
    /// }
    ///
    /// let s = RawValue::new(Stats { hits: 3, misses: 0 })?;
    /// assert_eq!(s.hits_place().load(Relaxed), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn load(self, order: Ordering) -> I {
        self.atomic().load(order)
    }

    /// Writes the integer with one atomic store.
    ///
    /// # Panics
    /// If `order` is `Acquire` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::<i32>::zeroed(2)?;
    /// a.at(1).store(-4, Relaxed);
    /// assert_eq!(a.to_vec(), [0, -4]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn store(self, value: I, order: Ordering) {
        Ops::store(self.atomic(), value, order)
    }

    /// Stores `value` and returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[1u8])?;
    /// assert_eq!(a.at(0).swap(2, Relaxed), 1);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn swap(self, value: I, order: Ordering) -> I {
        self.atomic().swap(value, order)
    }

    /// Stores `new` if the integer is `current`: `Ok(previous)` if stored, `Err(actual)`
    /// if not, atomically.
    ///
    /// # Panics
    /// If `failure` is `Release` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[5u16])?;
    /// assert_eq!(a.at(0).compare_exchange(4, 6, Relaxed, Relaxed), Err(5));
    /// assert_eq!(a.at(0).compare_exchange(5, 6, Relaxed, Relaxed), Ok(5));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn compare_exchange(
        self,
        current: I,
        new: I,
        success: Ordering,
        failure: Ordering,
    ) -> Result<I, I> {
        self.atomic()
            .compare_exchange(current, new, success, failure)
    }

    /// As [`compare_exchange`](Self::compare_exchange), but may fail spuriously.
    ///
    /// # Panics
    /// As [`compare_exchange`](Self::compare_exchange).
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[5u16])?;
    /// while a.at(0).compare_exchange_weak(5, 6, Relaxed, Relaxed).is_err() {}
    /// assert_eq!(a.get(0), Some(6));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn compare_exchange_weak(
        self,
        current: I,
        new: I,
        success: Ordering,
        failure: Ordering,
    ) -> Result<I, I> {
        self.atomic()
            .compare_exchange_weak(current, new, success, failure)
    }

    /// Adds `value` (wrapping) and returns the previous value, atomically: a counter field
    /// of a shared struct that needs no lock.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// use shared_runtime::{Process, RawValue, SharedStruct};
    ///
    /// #[derive(SharedStruct, Clone, Copy)]
    /// #[repr(C)]
    /// struct Stats {
    ///     hits: u64,
    ///     misses: u32,
    /// }
    ///
    /// let s = RawValue::new(Stats { hits: 0, misses: 0 })?;
    /// Process::scope(|scope| {
    ///     let a = scope.start(|| for _ in 0..500 { s.hits_place().fetch_add(1, Relaxed); })?;
    ///     let b = scope.start(|| for _ in 0..500 { s.hits_place().fetch_add(1, Relaxed); })?;
    ///     a.join()?;
    ///     b.join()
    /// })?;
    /// assert_eq!(s.get().hits, 1000);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_add(self, value: I, order: Ordering) -> I {
        self.atomic().fetch_add(value, order)
    }

    /// Subtracts `value` (wrapping) and returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[1u32])?;
    /// assert_eq!(a.at(0).fetch_sub(2, Relaxed), 1);
    /// assert_eq!(a.get(0), Some(u32::MAX));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_sub(self, value: I, order: Ordering) -> I {
        self.atomic().fetch_sub(value, order)
    }

    /// Bitwise "and" with `value`; returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[0b110u8])?;
    /// a.at(0).fetch_and(0b011, Relaxed);
    /// assert_eq!(a.get(0), Some(0b010));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_and(self, value: I, order: Ordering) -> I {
        self.atomic().fetch_and(value, order)
    }

    /// Bitwise "or" with `value`; returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[0b100u8])?;
    /// a.at(0).fetch_or(0b001, Relaxed);
    /// assert_eq!(a.get(0), Some(0b101));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_or(self, value: I, order: Ordering) -> I {
        self.atomic().fetch_or(value, order)
    }

    /// Bitwise "xor" with `value`; returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[0b101u8])?;
    /// a.at(0).fetch_xor(0b111, Relaxed);
    /// assert_eq!(a.get(0), Some(0b010));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_xor(self, value: I, order: Ordering) -> I {
        self.atomic().fetch_xor(value, order)
    }

    /// Stores the larger of the integer and `value`; returns the previous value.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[-3i64])?;
    /// a.at(0).fetch_max(-1, Relaxed);
    /// assert_eq!(a.get(0), Some(-1));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_max(self, value: I, order: Ordering) -> I {
        self.atomic().fetch_max(value, order)
    }

    /// Stores the smaller of the integer and `value`; returns the previous value.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[3usize])?;
    /// a.at(0).fetch_min(1, Relaxed);
    /// assert_eq!(a.get(0), Some(1));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_min(self, value: I, order: Ordering) -> I {
        self.atomic().fetch_min(value, order)
    }

    /// Replaces the integer with `f(integer)` in a compare-exchange loop; see
    /// [`RawValue::fetch_update`](crate::RawValue::fetch_update).
    ///
    /// # Panics
    /// If `fetch_order` is `Release` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shared_runtime::RawArray::from_slice(&[7i16])?;
    /// assert_eq!(a.at(0).fetch_update(Relaxed, Relaxed, |x| Some(x - 10)), Ok(7));
    /// assert_eq!(a.get(0), Some(-3));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_update(
        self,
        set_order: Ordering,
        fetch_order: Ordering,
        mut f: impl FnMut(I) -> Option<I>,
    ) -> Result<I, I> {
        self.atomic().fetch_update(set_order, fetch_order, &mut f)
    }
}
