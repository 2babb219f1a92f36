//! The marker trait for types that may live in shared memory.

use std::sync::atomic::Ordering;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::types::layout::{LayoutKind, Primitive, TypeLayout};

/// A type whose values can live in memory shared between processes.
///
/// Implemented for the primitive types of the typecode table (`i8`..`u64`, `f32`, `f64`),
/// `usize` and `isize` (ctypes' `c_size_t` and `c_ssize_t`: their layout records this
/// program's pointer width, so a program of another width is refused at open),
/// [`CChar`](crate::CChar), [`WChar`](crate::WChar), arrays `[T; N]` of shared types,
/// structs that `#[derive(SharedStruct)]` (generic ones for every shared parameter), and
/// [`Plain<T>`](crate::Plain) for any type that derives zerocopy's `FromBytes`, `IntoBytes`
/// and `Immutable`.
///
/// `bool` and `char` are deliberately **not** shared types: not every bit pattern is a valid
/// `bool` or `char`, and another process (or a torn racy write) can leave any bit pattern in
/// shared memory, so reading one back could be undefined behaviour. Use `u8` (0/1) and
/// [`WChar`](crate::WChar) (a `u32` code point) instead, as ctypes does.
///
/// # Safety
/// An implementor must guarantee that:
/// - every sequence of `size_of::<Self>()` initialised bytes is a valid value (no invalid bit
///   patterns: no `bool`, `char`, enums, references or `NonZero*`);
/// - it holds no pointer, reference or handle that is meaningless in another process;
/// - its layout is fixed (`#[repr(C)]`, `#[repr(transparent)]` or a primitive) and described
///   truthfully by [`LAYOUT`](SharedType::LAYOUT);
/// - [`store`](SharedType::store) writes every non-padding byte of `dst`, and no padding
///   byte (the padding of a value is uninitialised, and must not reach shared memory).
///
/// ```
/// use shared_runtime::SharedType;
///
/// assert_eq!(<f64 as SharedType>::LAYOUT.size, 8);
/// assert_eq!(<[i16; 3] as SharedType>::LAYOUT.size, 6);
/// assert_eq!(<usize as SharedType>::LAYOUT.ctypes_type(), "ctypes.c_size_t");
/// ```
///
/// # Padding
/// A struct whose fields do not fill it has padding bytes
/// ([`TypeLayout::has_padding`]). Copying such a value copies its padding too, which is
/// uninitialised (in practice, stack garbage), so nothing in this crate copies a whole
/// padded value into shared memory: `set`, `update`, the derived field accessors and a
/// guard's [`place`](crate::SyncGuard::place) write field by field, and a guard of a padded
/// type has no `DerefMut` (`*guard = v` is a build error that names the alternatives):
///
/// ```compile_fail,E0080
/// use shared_runtime::{SharedStruct, Value};
///
/// #[derive(SharedStruct, Clone, Copy)]
/// #[repr(C)]
/// struct Padded { a: u32, b: u64 } // 4 bytes of padding after `a`
///
/// let v = Value::new(Padded { a: 1, b: 2 })?;
/// let mut g = v.lock().unwrap();
/// *g = Padded { a: 3, b: 4 }; // error: this shared type has padding bytes
/// # Ok::<(), shared_runtime::Error>(())
/// ```
///
/// The same through a padding-free type compiles, and the padded one is written through
/// its place:
///
/// ```
/// use shared_runtime::{Array, SharedStruct, SyncGuard, Value};
///
/// #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Padded { a: u32, b: u64 }
///
/// let v = Value::new(Padded { a: 1, b: 2 })?;
/// let mut g = v.lock().unwrap();
/// SyncGuard::place(&mut g).set(Padded { a: 3, b: 4 });
/// SyncGuard::place(&mut g).set_a(5);
/// drop(g);
/// assert_eq!(v.get(), Padded { a: 5, b: 4 });
///
/// let counts = Array::from_slice(&[1u64, 2])?;
/// counts.lock().unwrap()[1] = 20; // u64 has no padding
/// assert_eq!(counts.to_vec(), [1, 20]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot live in shared memory",
    label = "not a shared type",
    note = "shared types are the typecode primitives (i8..u64, f32, f64), usize, isize, CChar, \
            WChar, arrays of them, #[repr(C)] structs with #[derive(SharedStruct)], and \
            Plain<T> for a type deriving zerocopy's FromBytes, IntoBytes and Immutable",
    note = "pointers, references, Box, Vec, String, Rc and Arc mean nothing in another \
            process: store an index or an offset instead; use u8 for bool and WChar for char"
)]
pub unsafe trait SharedType: Copy + Send + Sync + 'static {
    /// The type's layout: name, size, alignment and fields.
    const LAYOUT: TypeLayout;

    /// Writes `*src` to `dst` with relaxed atomic word stores, never writing padding (so
    /// uninitialised padding bytes of `src` never reach shared memory).
    ///
    /// # Safety
    /// `dst` must be valid for writes of `Self` and aligned; other processes may access it
    /// concurrently only through atomic operations.
    #[doc(hidden)]
    unsafe fn store(src: &Self, dst: *mut Self) {
        // SAFETY: the caller guarantees `dst` is valid and aligned; types without padding
        // (every non-derived implementor) have no uninitialised bytes to leak.
        unsafe { atomic_memcpy::atomic_store(dst, *src, Ordering::Relaxed) }
    }
}

const _: () = {
    proved_by_zerocopy::<crate::CChar>();
    proved_by_zerocopy::<crate::WChar>();
};

/// Compiles only for types zerocopy proves what `SharedType` asserts of them: every bit
/// pattern is valid (`FromBytes`: so no pointer, reference, `bool`, `char` or enum), no
/// padding (`IntoBytes`), no interior mutability (`Immutable`).
pub(crate) const fn proved_by_zerocopy<T: FromBytes + IntoBytes + Immutable + KnownLayout>() {}

macro_rules! primitive {
    ($($t:ty => $p:ident),* $(,)?) => {$(
        // SAFETY: a primitive integer or float: every bit pattern is valid, no pointers
        // (zerocopy proves both, below), fixed layout, and the layout below is its own.
        unsafe impl SharedType for $t {
            const LAYOUT: TypeLayout = TypeLayout::primitive(Primitive::$p);
        }
        const _: () = proved_by_zerocopy::<$t>();
    )*};
}

primitive! {
    i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
    i64 => I64, u64 => U64, f32 => F32, f64 => F64, usize => Usize, isize => Isize,
}

// SAFETY: an array of shared types is valid for every bit pattern its elements are, holds
// what they hold, and has the fixed layout of N consecutive elements (no padding between
// them, since size is a multiple of alignment).
unsafe impl<T: SharedType, const N: usize> SharedType for [T; N] {
    const LAYOUT: TypeLayout = TypeLayout {
        name: "array",
        size: std::mem::size_of::<[T; N]>(),
        align: std::mem::align_of::<[T; N]>(),
        kind: LayoutKind::Array {
            elem: &T::LAYOUT,
            len: N,
        },
    };

    unsafe fn store(src: &Self, dst: *mut Self) {
        for (i, item) in src.iter().enumerate() {
            // SAFETY: element i of a valid, aligned `*mut [T; N]` is a valid, aligned
            // `*mut T`; the caller's concurrency guarantee carries over.
            unsafe { T::store(item, dst.cast::<T>().add(i)) }
        }
    }
}

// SAFETY: `()` has one value and no bytes: every (empty) byte sequence is it, it holds
// nothing, and its layout (size 0, alignment 1, no fields) is described below.
unsafe impl SharedType for () {
    const LAYOUT: TypeLayout = TypeLayout {
        name: "()",
        size: 0,
        align: 1,
        kind: LayoutKind::Struct { fields: &[] },
    };

    unsafe fn store(_: &Self, _: *mut Self) {}
}

/// The type of field `INDEX` of a derived struct, for `#[derive(SharedStruct)]`'s generated
/// code only (not a public API): a field type holding a macro call (`[u8; len!()]`) is
/// written once, in an impl of this trait, and named `<S as FieldType<I>>::Type` where the
/// generated code binds names of its own, which the macro's expansion could otherwise
/// capture or be captured by.
///
/// ```
/// use shared_runtime::__private_v1::FieldType;
///
/// struct S;
/// impl FieldType<0> for S {
///     type Type = [u8; 4];
/// }
/// let bytes: <S as FieldType<0>>::Type = [1; 4];
/// assert_eq!(bytes.len(), 4);
/// ```
#[doc(hidden)]
pub trait FieldType<const INDEX: usize> {
    /// The field's type.
    type Type: ?Sized;
}
