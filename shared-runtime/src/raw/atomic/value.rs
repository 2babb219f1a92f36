//! Atomic operations on a `RawValue<I>` of an integer type.

use std::sync::atomic::Ordering;

use super::sealed::{Ops, Sealed};
use super::{cell, AtomicInteger};
use crate::RawValue;

impl<I: AtomicInteger> RawValue<I> {
    #[track_caller]
    fn atomic(&self) -> &<I as Sealed>::Atomic {
        // Behind a guard this thread holds, an atomic access would alias its `&mut`.
        self.allocation().assert_not_borrowed_here();
        // SAFETY: the allocation holds an `I` aligned for `I` (allocated or adopted with
        // `align_of::<I>()`) for as long as `self` lives, and a raw value is only ever
        // accessed atomically by this process.
        unsafe { cell(self.as_ptr()) }
    }

    /// Reads the value with one atomic load (never torn), like std's `AtomicU64::load`.
    ///
    /// # Panics
    /// If `order` is `Release` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Acquire;
    /// let v = shared_runtime::RawValue::new(5u32)?;
    /// assert_eq!(v.load(Acquire), 5);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn load(&self, order: Ordering) -> I {
        self.atomic().load(order)
    }

    /// Writes the value with one atomic store, like std's `AtomicU64::store`.
    ///
    /// # Panics
    /// If `order` is `Acquire` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::{Relaxed, Release};
    /// let v = shared_runtime::RawValue::new(5i16)?;
    /// v.store(-7, Release);
    /// assert_eq!(v.load(Relaxed), -7);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn store(&self, value: I, order: Ordering) {
        Ops::store(self.atomic(), value, order)
    }

    /// Stores `value` and returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::AcqRel;
    /// let v = shared_runtime::RawValue::new(1u8)?;
    /// assert_eq!(v.swap(2, AcqRel), 1);
    /// assert_eq!(v.get(), 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn swap(&self, value: I, order: Ordering) -> I {
        self.atomic().swap(value, order)
    }

    /// Stores `new` if the value is `current`, atomically: `Ok(previous)` if it was stored,
    /// `Err(actual)` with the value found if not. As std's `compare_exchange`.
    ///
    /// # Panics
    /// If `failure` is `Release` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::{Acquire, Relaxed};
    /// let v = shared_runtime::RawValue::new(3i64)?;
    /// assert_eq!(v.compare_exchange(3, 4, Acquire, Relaxed), Ok(3));
    /// assert_eq!(v.compare_exchange(3, 5, Acquire, Relaxed), Err(4));
    /// assert_eq!(v.get(), 4);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn compare_exchange(
        &self,
        current: I,
        new: I,
        success: Ordering,
        failure: Ordering,
    ) -> Result<I, I> {
        self.atomic()
            .compare_exchange(current, new, success, failure)
    }

    /// As [`compare_exchange`](Self::compare_exchange), but may fail even when the value
    /// is `current` (cheaper in a retry loop on some processors), as std's
    /// `compare_exchange_weak`.
    ///
    /// # Panics
    /// As [`compare_exchange`](Self::compare_exchange).
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let v = shared_runtime::RawValue::new(10u16)?;
    /// let mut seen = v.load(Relaxed);
    /// while let Err(now) = v.compare_exchange_weak(seen, seen * 2, Relaxed, Relaxed) {
    ///     seen = now;
    /// }
    /// assert_eq!(v.get(), 20);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn compare_exchange_weak(
        &self,
        current: I,
        new: I,
        success: Ordering,
        failure: Ordering,
    ) -> Result<I, I> {
        self.atomic()
            .compare_exchange_weak(current, new, success, failure)
    }

    /// Adds `value` (wrapping on overflow) and returns the previous value, atomically: a
    /// shared counter that loses no update and takes no lock.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let v = shared_runtime::RawValue::new(u8::MAX)?;
    /// assert_eq!(v.fetch_add(2, Relaxed), 255);
    /// assert_eq!(v.get(), 1); // wrapped
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_add(&self, value: I, order: Ordering) -> I {
        self.atomic().fetch_add(value, order)
    }

    /// Subtracts `value` (wrapping on overflow) and returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let v = shared_runtime::RawValue::new(0u32)?;
    /// assert_eq!(v.fetch_sub(1, Relaxed), 0);
    /// assert_eq!(v.get(), u32::MAX); // wrapped
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_sub(&self, value: I, order: Ordering) -> I {
        self.atomic().fetch_sub(value, order)
    }

    /// Bitwise "and" with `value`; returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let v = shared_runtime::RawValue::new(0b1100u8)?;
    /// assert_eq!(v.fetch_and(0b1010, Relaxed), 0b1100);
    /// assert_eq!(v.get(), 0b1000);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_and(&self, value: I, order: Ordering) -> I {
        self.atomic().fetch_and(value, order)
    }

    /// Bitwise "or" with `value`; returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let flags = shared_runtime::RawValue::new(0b01u64)?;
    /// assert_eq!(flags.fetch_or(0b10, Relaxed), 0b01);
    /// assert_eq!(flags.get(), 0b11);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_or(&self, value: I, order: Ordering) -> I {
        self.atomic().fetch_or(value, order)
    }

    /// Bitwise "xor" with `value`; returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let v = shared_runtime::RawValue::new(0b0110i32)?;
    /// assert_eq!(v.fetch_xor(0b0011, Relaxed), 0b0110);
    /// assert_eq!(v.get(), 0b0101);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_xor(&self, value: I, order: Ordering) -> I {
        self.atomic().fetch_xor(value, order)
    }

    /// Stores the larger of the value and `value` (signed comparison for signed types);
    /// returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let high = shared_runtime::RawValue::new(-5i8)?;
    /// assert_eq!(high.fetch_max(-9, Relaxed), -5);
    /// assert_eq!(high.fetch_max(3, Relaxed), -5);
    /// assert_eq!(high.get(), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_max(&self, value: I, order: Ordering) -> I {
        self.atomic().fetch_max(value, order)
    }

    /// Stores the smaller of the value and `value`; returns the previous value, atomically.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let low = shared_runtime::RawValue::new(7usize)?;
    /// assert_eq!(low.fetch_min(2, Relaxed), 7);
    /// assert_eq!(low.get(), 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn fetch_min(&self, value: I, order: Ordering) -> I {
        self.atomic().fetch_min(value, order)
    }

    /// Replaces the value with `f(value)` until no other writer got in between (a
    /// compare-exchange loop), as std's `fetch_update`: `Ok(previous)` once stored, or
    /// `Err(current)` as soon as `f` returns `None`. `f` may run several times.
    ///
    /// # Panics
    /// If `fetch_order` is `Release` or `AcqRel`, as std does.
    ///
    /// ```
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let v = shared_runtime::RawValue::new(250u8)?;
    /// // A saturating add: refuses to go past the maximum.
    /// assert_eq!(v.fetch_update(Relaxed, Relaxed, |x| x.checked_add(5)), Ok(250));
    /// assert_eq!(v.fetch_update(Relaxed, Relaxed, |x| x.checked_add(5)), Err(255));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn fetch_update(
        &self,
        set_order: Ordering,
        fetch_order: Ordering,
        mut f: impl FnMut(I) -> Option<I>,
    ) -> Result<I, I> {
        self.atomic().fetch_update(set_order, fetch_order, &mut f)
    }
}
