//! `copy` and `copy_slice`: ctypes' `sharedctypes.copy`.

use crate::raw::{RawArray, RawValue};
use crate::{Result, SharedType};

/// A new raw shared value holding a copy of `value` (ctypes' `copy(obj)`), in the global
/// arena.
///
/// # Errors
/// As [`RawValue::new`].
///
/// ```
/// let original = shared_runtime::RawValue::new(5i32)?;
/// let c = shared_runtime::copy(&original.get())?;
/// original.set(0);
/// assert_eq!(c.get(), 5);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub fn copy<T: SharedType>(value: &T) -> Result<RawValue<T>> {
    RawValue::new(*value)
}

/// A new raw shared array holding a copy of `items`, in the global arena.
///
/// # Errors
/// As [`RawArray::from_slice`].
///
/// ```
/// let a = shared_runtime::copy_slice(&[1u8, 2, 3])?;
/// assert_eq!(a.to_vec(), [1, 2, 3]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub fn copy_slice<T: SharedType>(items: &[T]) -> Result<RawArray<T>> {
    RawArray::from_slice(items)
}

/// [`copy`] in the given arena.
///
/// # Errors
/// As [`RawValue::new_in`].
///
/// ```
/// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
/// assert_eq!(shared_runtime::copy_in(&arena, &2.5f64)?.get(), 2.5);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub fn copy_in<T: SharedType>(arena: &crate::Arena, value: &T) -> Result<RawValue<T>> {
    RawValue::new_in(arena, *value)
}

/// [`copy_slice`] in the given arena.
///
/// # Errors
/// As [`RawArray::from_slice_in`].
///
/// ```
/// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
/// assert_eq!(shared_runtime::copy_slice_in(&arena, &[4i8])?.to_vec(), [4]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub fn copy_slice_in<T: SharedType>(arena: &crate::Arena, items: &[T]) -> Result<RawArray<T>> {
    RawArray::from_slice_in(arena, items)
}
