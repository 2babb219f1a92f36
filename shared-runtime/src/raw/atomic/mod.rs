//! Atomic read-modify-write operations on raw shared integers: `fetch_add` and friends on
//! [`RawValue<I>`](crate::RawValue), on the elements of [`RawArray<I>`](crate::RawArray), and
//! on the unlocked [`Place`](crate::place::Place) of an integer field.
//!
//! Each operation is one of std's atomic instructions (`AtomicU64::fetch_add`, ...) applied
//! in place to the shared integer, so it cannot lose updates, even against unrelated
//! processes, and needs no lock.
//!
//! # Why this is sound
//! An operation views the integer as its std atomic (`AtomicU32::from_ptr`) for the length
//! of one call. That needs:
//! - **alignment**: the integer is aligned for its type (every block is allocated, adopted
//!   or registered aligned for the object's type; an element `i` is `i * size_of::<I>()`
//!   bytes further; a field place checks its alignment), and [`cell`] checks at compile time
//!   that the atomic type asks no more alignment than the integer;
//! - **no data race**: the crate never makes a plain reference to a raw object's memory;
//!   every other access to the integer is atomic — `get`/`set` copy an aligned integer with
//!   one atomic access of the integer's own size (`atomic-memcpy` picks the widest atomic
//!   the alignment allows, which for an aligned integer is the integer's size), and other
//!   processes are outside this program's memory model altogether;
//! - **same-size accesses**: a whole-object `get()` never covers more than the integer,
//!   because the object *is* the integer. Two accesses of different sizes can meet only
//!   when this process, from another thread, copies a range of an array in bulk
//!   (`read`/`write`/`to_vec`, which move words or bytes) or a whole struct around a field
//!   while an atomic operation runs on one element or field: Rust's model does not define
//!   racing atomic accesses of different sizes, although every supported processor
//!   performs both coherently (see docs/safety.md, where this is recorded).

mod array;
mod place;
mod value;

use std::mem::{align_of, size_of};
use std::sync::atomic::{self, Ordering};

use crate::SharedType;

pub(crate) mod sealed {
    use std::sync::atomic::Ordering;

    /// Maps an integer type to its std atomic; implemented only in this module.
    pub trait Sealed: Sized {
        /// The std atomic with the same size and bit validity (`AtomicU32` for `u32`).
        type Atomic: Ops<Self>;

        /// Views `*ptr` as its atomic.
        ///
        /// # Safety
        /// `ptr` must be aligned for `Self::Atomic`, valid for reads and writes for `'a`, and
        /// accessed by this process during `'a` only with atomic operations of this size.
        unsafe fn from_ptr<'a>(ptr: *mut Self) -> &'a Self::Atomic;
    }

    /// std's atomic operations, under std's names, forwarded to the atomic type.
    pub trait Ops<I> {
        fn load(&self, order: Ordering) -> I;
        fn store(&self, value: I, order: Ordering);
        fn swap(&self, value: I, order: Ordering) -> I;
        fn compare_exchange(&self, c: I, n: I, s: Ordering, f: Ordering) -> Result<I, I>;
        fn compare_exchange_weak(&self, c: I, n: I, s: Ordering, f: Ordering) -> Result<I, I>;
        fn fetch_add(&self, value: I, order: Ordering) -> I;
        fn fetch_sub(&self, value: I, order: Ordering) -> I;
        fn fetch_and(&self, value: I, order: Ordering) -> I;
        fn fetch_or(&self, value: I, order: Ordering) -> I;
        fn fetch_xor(&self, value: I, order: Ordering) -> I;
        fn fetch_max(&self, value: I, order: Ordering) -> I;
        fn fetch_min(&self, value: I, order: Ordering) -> I;
        fn fetch_update(
            &self,
            set: Ordering,
            fetch: Ordering,
            f: &mut dyn FnMut(I) -> Option<I>,
        ) -> Result<I, I>;
    }
}

/// An integer type whose shared values have atomic operations: `i8`, `u8`, `i16`, `u16`,
/// `i32`, `u32`, `i64`, `u64`, `isize`, `usize` (and so `c_long`, `c_ulong` and the integer
/// typecodes). Sealed: it cannot be implemented outside this crate.
///
/// With it, [`RawValue<I>`](crate::RawValue), [`RawArray<I>`](crate::RawArray) (with an
/// index first) and the [`Place`](crate::place::Place) of an integer inside a raw object
/// have std's atomic operations: `load`, `store`, `swap`, `fetch_add`, `fetch_sub`
/// (both wrapping), `fetch_and`, `fetch_or`, `fetch_xor`, `fetch_max`, `fetch_min`,
/// `compare_exchange`, `compare_exchange_weak` and `fetch_update`, taking std's
/// [`Ordering`].
///
/// ```
/// use std::sync::atomic::Ordering::Relaxed;
/// use shared_runtime::{Process, RawValue};
/// use shared_runtime::AtomicInteger;
///
/// fn bump<I: AtomicInteger>(v: &RawValue<I>, by: I) -> I {
///     v.fetch_add(by, Relaxed)
/// }
///
/// let hits = RawValue::new(0u64)?;
/// Process::scope(|s| {
///     let children: Vec<_> = (0..4)
///         .map(|_| s.start(|| for _ in 0..1000 { bump(&hits, 1); }))
///         .collect::<Result<_, _>>()?;
///     children.into_iter().try_for_each(|c| c.join())
/// })?;
/// assert_eq!(hits.load(Relaxed), 4000); // no update lost, no lock taken
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub trait AtomicInteger: SharedType + Ord + sealed::Sealed {}

/// The atomic view of the integer at `ptr`.
///
/// # Safety
/// `ptr` must point to an `I` aligned for `I`, inside a raw shared object that outlives
/// `'a` (so this process makes no plain reference to it, and accesses it only atomically).
pub(crate) unsafe fn cell<'a, I: AtomicInteger>(ptr: *mut I) -> &'a I::Atomic {
    const {
        assert!(
            size_of::<I>() == size_of::<I::Atomic>() && align_of::<I>() >= align_of::<I::Atomic>(),
            "this integer is less aligned than its atomic on this target: no atomics for it"
        )
    };
    // SAFETY: `ptr` is aligned for `I` (the caller), which is at least the atomic's alignment
    // (checked above, at compile time); it is valid for `'a`, and this process accesses it
    // only atomically, with accesses of `I`'s size (the module docs give the whole proof).
    unsafe { I::from_ptr(ptr) }
}

macro_rules! atomic_integer {
    ($($int:ty => $atomic:ident, $bits:literal;)*) => {$(
        #[cfg(target_has_atomic = $bits)]
        impl sealed::Sealed for $int {
            type Atomic = atomic::$atomic;

            unsafe fn from_ptr<'a>(ptr: *mut Self) -> &'a Self::Atomic {
                // SAFETY: the caller's contract is `from_ptr`'s: aligned for the atomic,
                // valid for `'a`, and not accessed non-atomically or with another size.
                unsafe { atomic::$atomic::from_ptr(ptr) }
            }
        }

        #[cfg(target_has_atomic = $bits)]
        impl AtomicInteger for $int {}

        #[cfg(target_has_atomic = $bits)]
        impl sealed::Ops<$int> for atomic::$atomic {
            #[track_caller]
            fn load(&self, order: Ordering) -> $int {
                atomic::$atomic::load(self, order)
            }
            #[track_caller]
            fn store(&self, value: $int, order: Ordering) {
                atomic::$atomic::store(self, value, order)
            }
            fn swap(&self, value: $int, order: Ordering) -> $int {
                atomic::$atomic::swap(self, value, order)
            }
            #[track_caller]
            fn compare_exchange(
                &self,
                c: $int,
                n: $int,
                s: Ordering,
                f: Ordering,
            ) -> Result<$int, $int> {
                atomic::$atomic::compare_exchange(self, c, n, s, f)
            }
            #[track_caller]
            fn compare_exchange_weak(
                &self,
                c: $int,
                n: $int,
                s: Ordering,
                f: Ordering,
            ) -> Result<$int, $int> {
                atomic::$atomic::compare_exchange_weak(self, c, n, s, f)
            }
            fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                atomic::$atomic::fetch_add(self, value, order)
            }
            fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
                atomic::$atomic::fetch_sub(self, value, order)
            }
            fn fetch_and(&self, value: $int, order: Ordering) -> $int {
                atomic::$atomic::fetch_and(self, value, order)
            }
            fn fetch_or(&self, value: $int, order: Ordering) -> $int {
                atomic::$atomic::fetch_or(self, value, order)
            }
            fn fetch_xor(&self, value: $int, order: Ordering) -> $int {
                atomic::$atomic::fetch_xor(self, value, order)
            }
            fn fetch_max(&self, value: $int, order: Ordering) -> $int {
                atomic::$atomic::fetch_max(self, value, order)
            }
            fn fetch_min(&self, value: $int, order: Ordering) -> $int {
                atomic::$atomic::fetch_min(self, value, order)
            }
            #[track_caller]
            fn fetch_update(
                &self,
                set: Ordering,
                fetch: Ordering,
                f: &mut dyn FnMut($int) -> Option<$int>,
            ) -> Result<$int, $int> {
                atomic::$atomic::fetch_update(self, set, fetch, f)
            }
        }
    )*};
}

atomic_integer! {
    i8 => AtomicI8, "8";
    u8 => AtomicU8, "8";
    i16 => AtomicI16, "16";
    u16 => AtomicU16, "16";
    i32 => AtomicI32, "32";
    u32 => AtomicU32, "32";
    i64 => AtomicI64, "64";
    u64 => AtomicU64, "64";
    isize => AtomicIsize, "ptr";
    usize => AtomicUsize, "ptr";
}
