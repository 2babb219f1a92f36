//! `Plain<T>`: any type zerocopy proves to be plain bytes, as a shared type.

use std::sync::atomic::Ordering;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::types::layout::{LayoutKind, Primitive, TypeLayout};
use crate::SharedType;

/// A value of a type that derives zerocopy's `FromBytes`, `IntoBytes` and `Immutable`
/// (for instance one from another crate, which cannot `#[derive(SharedStruct)]` or
/// implement [`SharedType`] itself), shared as plain bytes.
///
/// zerocopy's derives prove exactly what a shared type needs: every bit pattern is a valid
/// value (`FromBytes`: no pointer, reference, `bool`, `char` or enum), no padding
/// (`IntoBytes`), no interior mutability (`Immutable`). `Plain<T>` is
/// `#[repr(transparent)]`, so it has `T`'s layout; `.0` is the value.
///
/// Its [`TypeLayout`] is opaque: named `Plain`, `size_of::<T>()` bytes (`ctypes.c_uint8 *
/// size`) with `T`'s alignment. So the fingerprint checked at open tells apart types of
/// other sizes or alignments, but not two different types of the same size and alignment;
/// a `#[derive(SharedStruct)]` struct has a field-by-field layout instead.
///
/// ```
/// use shared_runtime::{Plain, RawValue, SharedType, Value};
/// use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
///
/// // A type from another crate, which knows nothing of shared memory.
/// #[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Rgba {
///     r: u8,
///     g: u8,
///     b: u8,
///     a: u8,
/// }
///
/// let pixel = RawValue::new(Plain(Rgba { r: 1, g: 2, b: 3, a: 255 }))?;
/// assert_eq!(pixel.get().0.a, 255);
/// assert_eq!(<Plain<Rgba> as SharedType>::LAYOUT.size, 4);
///
/// // Under the lock, the guard derefs to the value, and zerocopy's byte views apply.
/// let v = Value::new(Plain(Rgba { r: 1, g: 2, b: 3, a: 4 }))?;
/// let mut g = v.lock().unwrap();
/// assert_eq!(g.0.as_bytes(), [1, 2, 3, 4]);
/// g.0.as_mut_bytes()[0] = 10;
/// drop(g);
/// assert_eq!(v.get().0.r, 10);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Plain<T>(pub T);

impl<T> From<T> for Plain<T> {
    fn from(value: T) -> Self {
        Plain(value)
    }
}

// SAFETY: `#[repr(transparent)]` over `T`, for which zerocopy's (derive-checked) traits
// prove: `FromBytes`, every bit pattern is a valid `T`, so it holds no pointer or reference
// (raw pointers and references are not `FromBytes`); `IntoBytes`, no padding, so copying a
// whole value (the default `store`) writes no uninitialised byte; `Immutable`, no
// `UnsafeCell`. The layout below is `T`'s size and alignment, as bytes.
unsafe impl<T> SharedType for Plain<T>
where
    T: FromBytes + IntoBytes + Immutable + Copy + Send + Sync + 'static,
{
    const LAYOUT: TypeLayout = TypeLayout {
        name: "Plain",
        size: std::mem::size_of::<T>(),
        align: std::mem::align_of::<T>(),
        kind: LayoutKind::Array {
            elem: &TypeLayout::primitive(Primitive::U8),
            len: std::mem::size_of::<T>(),
        },
    };

    unsafe fn store(src: &Self, dst: *mut Self) {
        // SAFETY: the caller guarantees `dst` is valid and aligned, and that others access
        // it only atomically; `T: IntoBytes` has no padding, so every byte copied is
        // initialised.
        unsafe { atomic_memcpy::atomic_store(dst, *src, Ordering::Relaxed) }
    }
}
