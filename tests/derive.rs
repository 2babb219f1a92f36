//! `#[derive(SharedStruct)]`: layouts, nesting, padding, alignment, hygiene, `store`, the
//! Python `ctypes` rendering, CPython's sharedctypes structure tests on raw objects, and
//! (in `derive/accessors.rs`) the generated field accessors on every container.

mod common;
use std::mem::{align_of, offset_of, size_of, MaybeUninit};
use std::sync::MutexGuard;

use shared_runtime::layout::{LayoutKind, TypeLayout};
use shared_runtime::{
    copy, Array, CChar, RawArray, RawValue, ScopedProcess, SharedStruct, SharedType, Value, WChar,
};

// ---------------------------------------------------------------------------------------
// The structs under test.

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

/// Padding between fields: 4 bytes after `a`.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Padded {
    a: i32,
    b: f64,
    c: i64,
}

/// CPython's `_Foo` of `test_multiprocessing`: `x` c_int, `y` c_double, `z` c_longlong.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Foo {
    x: i32,
    y: f64,
    z: i64,
}

/// Nesting: a struct field, an array of structs, characters, and trailing padding.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Shape {
    id: u16,
    origin: Point,
    corners: [Point; 2],
    label: [CChar; 5],
    wide: WChar,
    tail: u8,
}

/// Two levels of nesting, with `Padded` (inner padding) in an array.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Scene {
    shapes: [Shape; 2],
    extra: [Padded; 3],
    flag: u8,
}

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C, align(16))]
struct Aligned {
    v: f32,
}

/// `#[repr(C)]` and `#[repr(align(N))]` as two attributes.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[repr(align(32))]
struct AlignedTwice {
    a: u8,
    b: Aligned,
}

/// A tuple struct: fields named "0", "1" in the layout.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Rgb(u8, u16, u8);

/// Raw identifiers lose their `r#`; names like the generated code's locals are harmless; a
/// field may be called like a padding field.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Keywords {
    r#type: u8,
    __src: u32,
    __dst: u8,
    _pad0: u64,
}

/// Names Python reserves.
mod python_names {
    /// A struct named like a Python keyword.
    #[derive(shared_runtime::SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct None {
        pub r#class: u8,
    }

    /// A struct named like the module the snippet imports.
    #[allow(non_camel_case_types, non_snake_case)]
    #[derive(shared_runtime::SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct ctypes {
        pub inner: super::Point,
        pub None: u8,
    }
}

/// Two different structs called `Point` in one layout.
#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct TwoPoints {
    a: Point,
    b: different::Point,
    c: same::Point,
}

/// The runtime reached through another path.
mod facade {
    pub use shared_runtime as runtime;
}

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[shared(crate = "crate::facade::runtime")]
#[repr(C)]
struct ThroughFacade {
    a: u32,
}

macro_rules! wide_struct {
    ($name:ident { $($small:ident $large:ident)* }) => {
        #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
        #[repr(C)]
        struct $name {
            $($small: u8, $large: u64,)*
        }

        impl $name {
            fn rust_offsets() -> Vec<(&'static str, usize)> {
                vec![$(
                    (stringify!($small), offset_of!($name, $small)),
                    (stringify!($large), offset_of!($name, $large)),
                )*]
            }
        }
    };
}

wide_struct!(Wide {
    a00 b00 a01 b01 a02 b02 a03 b03 a04 b04 a05 b05 a06 b06 a07 b07
    a08 b08 a09 b09 a10 b10 a11 b11 a12 b12 a13 b13 a14 b14 a15 b15
    a16 b16 a17 b17 a18 b18 a19 b19 a20 b20 a21 b21 a22 b22 a23 b23
    a24 b24 a25 b25 a26 b26 a27 b27 a28 b28 a29 b29 a30 b30 a31 b31
});

/// Derived without any prelude: every path in the expansion must be absolute, and names
/// in scope must not capture it.
#[no_implicit_prelude]
mod no_prelude {
    #[allow(dead_code, non_camel_case_types)]
    mod shadows {
        pub struct SharedType;
        pub struct TypeLayout;
        pub struct FieldLayout;
        pub struct usize;
        pub struct Copy;
        pub struct __private;
        pub struct __private_v1;
    }
    #[allow(unused_imports)]
    use self::shadows::*;

    #[derive(
        ::shared_runtime::SharedStruct,
        ::core::clone::Clone,
        ::core::marker::Copy,
        ::core::fmt::Debug,
        ::core::cmp::PartialEq,
    )]
    #[repr(C)]
    pub struct Bare {
        pub a: u8,
        pub b: [u32; 2],
    }
}

/// Field accessors (`x()`, `set_x(v)`, `update_x(f)`, `x_place()`) on every container.
#[path = "derive/accessors.rs"]
mod accessors;

// ---------------------------------------------------------------------------------------
// Helpers.

/// Tests that fork are serialized: one child at a time in this test binary.
fn fork_lock() -> MutexGuard<'static, ()> {
    common::forking()
}

/// Runs `f` in a forked child and waits for it; a child that fails or hangs fails the test.
fn in_child(f: impl FnOnce()) {
    common::in_child(f).unwrap_or_else(|e| panic!("the child failed: {e}"));
}

/// Waits for `child`; a child that fails or hangs fails the test.
fn finish(child: ScopedProcess<'_>) {
    common::finish(child).unwrap_or_else(|e| panic!("the child failed: {e}"));
}

fn field<'a>(layout: &'a TypeLayout, name: &str) -> &'a shared_runtime::layout::FieldLayout {
    match layout.kind {
        LayoutKind::Struct { fields } => fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {}", layout.name)),
        _ => panic!("{} is not a struct", layout.name),
    }
}

fn field_names(layout: &TypeLayout) -> Vec<&'static str> {
    match layout.kind {
        LayoutKind::Struct { fields } => fields.iter().map(|f| f.name).collect(),
        _ => panic!("{} is not a struct", layout.name),
    }
}

/// Asserts that `T::LAYOUT` is `T`'s real layout, given the real offsets.
fn assert_layout<T: SharedType>(name: &str, offsets: &[(&str, usize)]) {
    let l = T::LAYOUT;
    assert_eq!(
        (l.name, l.size, l.align),
        (name, size_of::<T>(), align_of::<T>())
    );
    let names: Vec<&str> = offsets.iter().map(|(n, _)| *n).collect();
    assert_eq!(field_names(&l), names);
    for (n, offset) in offsets {
        assert_eq!(field(&l, n).offset, *offset, "offset of {name}.{n}");
    }
}

// ---------------------------------------------------------------------------------------
// Layouts.

#[test]
fn layouts_match_the_compiler() {
    assert_layout::<Point>("Point", &[("x", 0), ("y", 8)]);
    assert_layout::<Padded>("Padded", &[("a", 0), ("b", 8), ("c", 16)]);
    assert_layout::<Foo>("Foo", &[("x", 0), ("y", 8), ("z", 16)]);
    assert_layout::<Shape>(
        "Shape",
        &[
            ("id", offset_of!(Shape, id)),
            ("origin", offset_of!(Shape, origin)),
            ("corners", offset_of!(Shape, corners)),
            ("label", offset_of!(Shape, label)),
            ("wide", offset_of!(Shape, wide)),
            ("tail", offset_of!(Shape, tail)),
        ],
    );
    assert_layout::<Scene>(
        "Scene",
        &[
            ("shapes", offset_of!(Scene, shapes)),
            ("extra", offset_of!(Scene, extra)),
            ("flag", offset_of!(Scene, flag)),
        ],
    );
    assert_layout::<Rgb>("Rgb", &[("0", 0), ("1", 2), ("2", 4)]);
    assert_layout::<Keywords>(
        "Keywords",
        &[("type", 0), ("__src", 4), ("__dst", 8), ("_pad0", 16)],
    );
    assert_layout::<python_names::None>("None", &[("class", 0)]);
    assert_layout::<python_names::ctypes>("ctypes", &[("inner", 0), ("None", 16)]);
    assert_layout::<TwoPoints>("TwoPoints", &[("a", 0), ("b", 16), ("c", 32)]);
    assert_layout::<ThroughFacade>("ThroughFacade", &[("a", 0)]);
    assert_layout::<no_prelude::Bare>("Bare", &[("a", 0), ("b", 4)]);
    assert_eq!(size_of::<Padded>(), 24);
    assert_eq!(Shape::LAYOUT.size, 72);
}

#[test]
fn field_types_carry_their_layouts() {
    let corners = field(&Shape::LAYOUT, "corners").ty;
    match corners.kind {
        LayoutKind::Array { elem, len } => {
            assert_eq!(len, 2);
            assert_eq!(elem.name, "Point");
            assert_eq!(elem.fingerprint(), Point::LAYOUT.fingerprint());
        }
        _ => panic!("corners is not an array"),
    }
    assert_eq!(
        field(&Shape::LAYOUT, "origin").ty.fingerprint(),
        Point::LAYOUT.fingerprint()
    );
    assert_eq!(
        field(&Shape::LAYOUT, "wide").ty.ctypes_type(),
        "ctypes.c_wchar"
    );
    assert_eq!(
        field(&Shape::LAYOUT, "label").ty.ctypes_type(),
        "(ctypes.c_char * 5)"
    );
}

#[test]
fn alignment_attributes_are_kept() {
    assert_layout::<Aligned>("Aligned", &[("v", 0)]);
    assert_eq!((Aligned::LAYOUT.size, Aligned::LAYOUT.align), (16, 16));
    assert_layout::<AlignedTwice>("AlignedTwice", &[("a", 0), ("b", 16)]);
    assert_eq!(
        (AlignedTwice::LAYOUT.size, AlignedTwice::LAYOUT.align),
        (32, 32)
    );
    let v = RawValue::new(AlignedTwice {
        a: 7,
        b: Aligned { v: 1.5 },
    })
    .unwrap();
    assert_eq!(
        v.get(),
        AlignedTwice {
            a: 7,
            b: Aligned { v: 1.5 }
        }
    );
}

#[test]
fn structs_declared_inside_a_function() {
    #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Local {
        a: u16,
        b: Point,
    }
    assert_layout::<Local>("Local", &[("a", 0), ("b", 8)]);
    let v = RawValue::new(Local {
        a: 3,
        b: Point { x: 1.0, y: 2.0 },
    })
    .unwrap();
    assert_eq!(v.get().b.y, 2.0);
}

#[test]
fn a_struct_with_64_fields() {
    let layout = Wide::LAYOUT;
    let LayoutKind::Struct { fields } = layout.kind else {
        panic!("not a struct")
    };
    assert_eq!(fields.len(), 64);
    let offsets = Wide::rust_offsets();
    assert_eq!(offsets.len(), 64);
    for (f, (name, offset)) in fields.iter().zip(&offsets) {
        assert_eq!((f.name, f.offset), (*name, *offset));
    }
    assert_eq!(layout.size, 32 * 16);
    assert!(layout.has_padding());
}

#[test]
fn padding_is_known() {
    assert!(!Point::LAYOUT.has_padding());
    assert!(Padded::LAYOUT.has_padding());
    assert!(Shape::LAYOUT.has_padding());
    assert!(Rgb::LAYOUT.has_padding());
    assert!(Aligned::LAYOUT.has_padding());
    assert!(!ThroughFacade::LAYOUT.has_padding());
}

mod same {
    /// The same layout as `super::Point`, declared again.
    #[derive(shared_runtime::SharedStruct, Clone, Copy)]
    #[repr(C)]
    pub struct Point {
        pub x: f64,
        pub y: f64,
    }
}

mod different {
    use shared_runtime::SharedStruct;

    #[derive(SharedStruct, Clone, Copy)]
    #[repr(C)]
    pub struct Point {
        pub x: f64,
        pub z: f64,
    }

    #[derive(SharedStruct, Clone, Copy)]
    #[repr(C)]
    pub struct Point2 {
        pub x: f64,
        pub y: f64,
    }

    #[derive(SharedStruct, Clone, Copy)]
    #[repr(C)]
    pub struct Swapped {
        pub y: f64,
        pub x: f64,
    }

    #[derive(SharedStruct, Clone, Copy)]
    #[repr(C)]
    pub struct Point3 {
        pub x: f64,
        pub y: u64,
    }
}

#[test]
fn fingerprints_are_stable_and_tell_layouts_apart() {
    let p = Point::LAYOUT.fingerprint();
    // Equal layouts hash equal, in every build: this value is part of the on-disk format.
    assert_eq!(p, same::Point::LAYOUT.fingerprint());
    assert_eq!(
        p, 0x4cfa_e28c_3245_11c9,
        "Point's fingerprint changed: {p:#x}"
    );
    let others = [
        different::Point::LAYOUT.fingerprint(),
        different::Point2::LAYOUT.fingerprint(),
        different::Swapped::LAYOUT.fingerprint(),
        different::Point3::LAYOUT.fingerprint(),
        Padded::LAYOUT.fingerprint(),
        Foo::LAYOUT.fingerprint(),
    ];
    for (i, other) in others.iter().enumerate() {
        assert_ne!(p, *other, "layout {i} hashes like Point");
    }
    // A nested struct whose inner layout changes hashes differently too.
    assert_ne!(Shape::LAYOUT.fingerprint(), Scene::LAYOUT.fingerprint());
}

// ---------------------------------------------------------------------------------------
// `store` writes fields, never padding.

/// Stores `value` into a buffer whose bytes are all `fill`, and returns the buffer's bytes.
fn stored_bytes<T: SharedType>(value: &T, fill: u8) -> Vec<u8> {
    let mut buf = MaybeUninit::<T>::uninit();
    // SAFETY: the buffer is valid for `size_of::<T>()` bytes of writes.
    unsafe {
        buf.as_mut_ptr()
            .cast::<u8>()
            .write_bytes(fill, size_of::<T>())
    };
    // SAFETY: `buf` is valid for writes of `T` and aligned (it is a `MaybeUninit<T>`), and
    // nothing else accesses it.
    unsafe { T::store(value, buf.as_mut_ptr()) };
    // SAFETY: every byte was initialised by `write_bytes` (and possibly overwritten by
    // `store` with a field's initialised bytes), so all `size_of::<T>()` bytes may be read.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), size_of::<T>()).to_vec() }
}

/// Marks the bytes of `layout` (placed at `base`) that belong to some primitive.
fn mark_fields(layout: &TypeLayout, base: usize, covered: &mut [bool]) {
    match layout.kind {
        LayoutKind::Primitive(_) => covered[base..base + layout.size].fill(true),
        LayoutKind::Array { elem, len } => {
            for i in 0..len {
                mark_fields(elem, base + i * elem.size, covered);
            }
        }
        LayoutKind::Struct { fields } => {
            for f in fields {
                mark_fields(f.ty, base + f.offset, covered);
            }
        }
    }
}

/// `store` writes exactly the field bytes that the layout describes: padding keeps whatever
/// was there.
fn assert_store_skips_padding<T: SharedType>(value: &T) {
    let name = T::LAYOUT.name;
    let mut covered = vec![false; size_of::<T>()];
    mark_fields(&T::LAYOUT, 0, &mut covered);
    let over_aa = stored_bytes(value, 0xAA);
    let over_55 = stored_bytes(value, 0x55);
    for (i, is_field) in covered.iter().enumerate() {
        let (a, b) = (over_aa[i], over_55[i]);
        if *is_field {
            assert_eq!(
                a, b,
                "{name}: field byte {i} depends on what was there before"
            );
        } else {
            assert_eq!((a, b), (0xAA, 0x55), "{name}: padding byte {i} was written");
        }
    }
    assert_eq!(covered.iter().all(|c| *c), !T::LAYOUT.has_padding());
}

fn shape(n: f64) -> Shape {
    Shape {
        id: 0xBEEF,
        origin: Point { x: n, y: -n },
        corners: [Point { x: 1.0, y: 2.0 }, Point { x: 3.0, y: n }],
        label: [CChar(b'a'), CChar(b'b'), CChar(b'c'), CChar(0), CChar(0)],
        wide: WChar::from('é'),
        tail: 9,
    }
}

fn scene() -> Scene {
    Scene {
        shapes: [shape(1.0), shape(2.0)],
        extra: [Padded {
            a: -1,
            b: 0.5,
            c: i64::MIN,
        }; 3],
        flag: 1,
    }
}

#[test]
fn store_never_writes_padding() {
    let padded = stored_bytes(
        &Padded {
            a: -1,
            b: 2.0,
            c: 3,
        },
        0xAA,
    );
    assert_eq!(&padded[0..4], &(-1i32).to_ne_bytes());
    assert_eq!(&padded[4..8], &[0xAA; 4]);
    assert_eq!(&padded[8..16], &2.0f64.to_ne_bytes());
    assert_eq!(&padded[16..24], &3i64.to_ne_bytes());

    assert_store_skips_padding(&Padded { a: 1, b: 2.0, c: 3 });
    assert_store_skips_padding(&shape(4.5));
    assert_store_skips_padding(&scene());
    assert_store_skips_padding(&Aligned { v: 1.0 });
    assert_store_skips_padding(&AlignedTwice {
        a: 1,
        b: Aligned { v: 2.0 },
    });
    assert_store_skips_padding(&Rgb(1, 2, 3));
    assert_store_skips_padding(&Keywords {
        r#type: 1,
        __src: 2,
        __dst: 3,
        _pad0: 4,
    });
    assert_store_skips_padding(&[Padded { a: 1, b: 2.0, c: 3 }; 3]);
    assert_store_skips_padding(&Point { x: 1.0, y: 2.0 });
}

#[test]
fn shared_containers_hold_structs() {
    let s = RawValue::new(scene()).unwrap();
    assert_eq!(s.get(), scene());
    let a = RawArray::from_slice(&[shape(1.0), shape(2.0), shape(3.0)]).unwrap();
    a.set(1, shape(-2.0));
    a.write(2, &[shape(7.0)]);
    assert_eq!(a.to_vec(), [shape(1.0), shape(-2.0), shape(7.0)]);
    let z = RawValue::<no_prelude::Bare>::zeroed().unwrap();
    assert_eq!(z.get(), no_prelude::Bare { a: 0, b: [0, 0] });
}

/// Derived structs shared with forked children.
#[path = "derive/processes.rs"]
mod processes;

/// Python's view of the layouts.
#[path = "derive/python.rs"]
mod python;

/// Generic structs, newtypes, `usize`, and hygiene.
#[path = "derive/generic.rs"]
mod generic;

/// Padding never reaches shared memory.
#[path = "derive/padding.rs"]
mod padding;

/// Generic structs whose padding depends on the parameter, on every write path.
#[path = "derive/generic_padding.rs"]
mod generic_padding;

/// Layout names too long to keep, and arrays nested very deep.
#[path = "derive/long_names.rs"]
mod long_names;

/// Field types written through macros.
#[path = "derive/macro_types.rs"]
mod macro_types;
