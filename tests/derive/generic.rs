//! Generic shared structs, `#[repr(transparent)]` newtypes, `usize`/`isize` fields, and the
//! derive's hygiene: names the user's items cannot capture, and generated code that holds
//! no `unsafe` block a `#[shared(crate = ..)]` path could misdirect.

use std::mem::{offset_of, size_of};

use shared_runtime::layout::Primitive;
use shared_runtime::place::HasPlace;
use shared_runtime::{Arena, Array, RawArray, RawValue, SharedStruct, SharedType, Value};

use super::{fork_lock, in_child, Point, PointFields};

/// A generic struct: a shared type for every shared `T`.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Stamped<T> {
    pub seq: u64,
    pub value: T,
}

/// Type and const parameters, and a bound of the struct's own.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Grid<T: Default, const N: usize>
where
    T: PartialEq,
{
    pub cells: [T; N],
    pub filled: u32,
}

/// A newtype.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
pub struct Meters(pub f64);

/// A generic newtype, spelled `r#C` in its `repr` (valid Rust).
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(r#C)]
pub struct Tagged<T>(pub u32, pub T);

/// `usize` and `isize` are shared types.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Slot {
    pub index: usize,
    pub delta: isize,
}

#[test]
fn each_instantiation_has_its_own_layout() {
    let a = <Stamped<u32> as SharedType>::LAYOUT;
    let b = <Stamped<f64> as SharedType>::LAYOUT;
    assert_eq!(a.name, "Stamped<u32>");
    assert_eq!(b.name, "Stamped<f64>");
    assert_eq!((a.size, b.size), (16, 16));
    assert_eq!(
        a.kind_fields(),
        [("seq", 0), ("value", offset_of!(Stamped<u32>, value))]
    );
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_ne!(
        a.fingerprint(),
        <Stamped<i32> as SharedType>::LAYOUT.fingerprint()
    );
    // `Stamped<u32>` has 4 bytes of padding at its end; `Stamped<u64>` none.
    assert!(a.has_padding());
    assert!(!<Stamped<u64> as SharedType>::LAYOUT.has_padding());

    let nested = <Stamped<[Stamped<u8>; 2]> as SharedType>::LAYOUT;
    assert_eq!(nested.name, "Stamped<[Stamped<u8>; 2]>");
    let grid = <Grid<f32, 3> as SharedType>::LAYOUT;
    assert_eq!(grid.name, "Grid<f32, 3>");
    assert_eq!(grid.size, size_of::<Grid<f32, 3>>());
    assert_ne!(
        grid.fingerprint(),
        <Grid<f32, 4> as SharedType>::LAYOUT.fingerprint()
    );
    assert_eq!(<Tagged<Point> as SharedType>::LAYOUT.name, "Tagged<Point>");
}

/// A layout's `(name, offset)` pairs.
trait KindFields {
    fn kind_fields(&self) -> Vec<(&'static str, usize)>;
}

impl KindFields for shared_runtime::layout::TypeLayout {
    fn kind_fields(&self) -> Vec<(&'static str, usize)> {
        match self.kind {
            shared_runtime::layout::LayoutKind::Struct { fields } => {
                fields.iter().map(|f| (f.name, f.offset)).collect()
            }
            _ => panic!("not a struct: {self:?}"),
        }
    }
}

#[test]
fn generic_accessors_work_on_every_container() {
    let raw = RawValue::new(Stamped {
        seq: 1,
        value: 2.5f64,
    })
    .unwrap();
    raw.set_value(3.5);
    raw.update_seq(|s| *s += 1);
    assert_eq!(raw.get(), Stamped { seq: 2, value: 3.5 });

    let locked = Value::new(Stamped {
        seq: 0,
        value: Point { x: 1.0, y: 2.0 },
    })
    .unwrap();
    locked.value_place().set_y(20.0);
    assert_eq!(locked.value().y, 20.0);

    let grids = Array::from_slice(&[Grid::<u16, 2> {
        cells: [1, 2],
        filled: 2,
    }])
    .unwrap();
    grids.at(0).cells_place().at(1).set(7);
    assert_eq!(grids.get(0).unwrap().cells, [1, 7]);

    let meters = RawValue::new(Meters(1.5)).unwrap();
    meters.set_0(meters._0() * 2.0);
    assert_eq!(meters.get(), Meters(3.0));
    assert_eq!(<Meters as SharedType>::LAYOUT.size, 8);

    let tagged = RawArray::from_slice(&[Tagged(1, 1u8), Tagged(2, 2u8)]).unwrap();
    tagged.at(1).set_1(20);
    assert_eq!(tagged.to_vec(), [Tagged(1, 1), Tagged(2, 20)]);
}

#[test]
fn usize_fields_record_the_pointer_width() {
    let usize_layout = <usize as SharedType>::LAYOUT;
    assert_eq!(usize_layout.size, size_of::<usize>());
    assert_eq!(usize_layout.name, "usize");
    assert_eq!(Primitive::Usize.ctypes_name(), "c_size_t");
    assert_eq!(Primitive::Isize.ctypes_name(), "c_ssize_t");
    // Same size and alignment as u64 on a 64-bit target, yet another fingerprint: a program
    // of another pointer width (whose usize is 4 bytes) has another one again.
    assert_ne!(
        usize_layout.fingerprint(),
        <u64 as SharedType>::LAYOUT.fingerprint()
    );
    assert_ne!(
        <isize as SharedType>::LAYOUT.fingerprint(),
        <i64 as SharedType>::LAYOUT.fingerprint()
    );
    let ctypes = Slot::LAYOUT.to_ctypes();
    assert!(
        ctypes.contains("(\"index\", ctypes.c_size_t),")
            && ctypes.contains("(\"delta\", ctypes.c_ssize_t),"),
        "{ctypes}"
    );
    let slot = RawValue::new(Slot {
        index: usize::MAX,
        delta: -1,
    })
    .unwrap();
    slot.update_index(|i| *i -= 1);
    assert_eq!(slot.index(), usize::MAX - 1);
    let arena = Arena::global();
    arena
        .create::<RawValue<_>>("generic-test-slot", slot.get())
        .unwrap();
    let err = arena
        .open::<RawValue<Stamped<u64>>>("generic-test-slot")
        .unwrap_err();
    assert!(err.to_string().contains("Slot"), "{err}");
}

#[test]
fn two_instantiations_cross_processes_each_with_its_own_fingerprint() {
    let _fork = fork_lock();
    let arena = Arena::global();
    let ints = arena
        .create::<RawValue<Stamped<u32>>>(
            "generic-test-ints",
            Stamped {
                seq: 1,
                value: 10u32,
            },
        )
        .unwrap();
    let floats = arena
        .create::<RawValue<Stamped<f64>>>(
            "generic-test-floats",
            Stamped {
                seq: 1,
                value: 0.5f64,
            },
        )
        .unwrap();
    in_child(|| {
        let ints = arena
            .open::<RawValue<Stamped<u32>>>("generic-test-ints")
            .unwrap();
        let floats = arena
            .open::<RawValue<Stamped<f64>>>("generic-test-floats")
            .unwrap();
        ints.set(Stamped {
            seq: ints.seq() + 1,
            value: ints.value() * 3,
        });
        floats.set_value(floats.value() * 4.0);
        // The other instantiation's name is refused: its fingerprint differs.
        assert!(arena
            .open::<RawValue<Stamped<f64>>>("generic-test-ints")
            .is_err());
        assert!(arena
            .open::<RawValue<Stamped<u32>>>("generic-test-floats")
            .is_err());
    });
    assert_eq!(ints.get(), Stamped { seq: 2, value: 30 });
    assert_eq!(floats.get(), Stamped { seq: 1, value: 2.0 });
}

/// Items of the user's module named like what the generated code binds.
#[allow(non_upper_case_globals, non_camel_case_types, dead_code)]
mod captures {
    use shared_runtime::SharedStruct;

    pub const value: u32 = 1;
    pub const f: u8 = 2;
    pub const src: u8 = 3;
    pub struct dst;
    pub struct __src;
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct R;
    pub type C = u16;
    pub type __C = u32;
    pub type R2 = u8;

    /// Field types `C` and `__C` (the generated generic parameters' old names), an array
    /// length through `value`.
    #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Captured {
        pub a: C,
        pub b: __C,
        pub c: [u8; value as usize],
        pub value: u16,
        pub f: R2,
    }

    /// A generic struct whose parameter is called `C`.
    #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Holder<C> {
        pub held: C,
    }
}

#[test]
fn user_items_do_not_capture_generated_names() {
    use captures::{CapturedFields, HolderFields};
    let v = RawValue::new(captures::Captured {
        a: 1,
        b: 2,
        c: [3],
        value: 4,
        f: 5,
    })
    .unwrap();
    v.set_value(40);
    v.set_f(50);
    assert_eq!(v.update_b(|b| *b * 10), 20);
    assert_eq!((v.a(), v.value(), v.f()), (1, 40, 50));
    let h = Value::new(captures::Holder { held: 7u8 }).unwrap();
    h.set_held(8);
    assert_eq!(h.held(), 8);
}

/// A `crate` path whose `__private` is the user's own: it re-exports the real items but
/// replaces `project_field` with a safe function of its own. The generated accessors call
/// it, and can only get what safe code can make: the generated code has no `unsafe` block
/// that such a path could aim at memory of its choosing.
mod fake {

    pub mod __private_v1 {
        pub use shared_runtime::__private_v1::*;

        use std::sync::atomic::{AtomicUsize, Ordering};

        pub static CALLS: AtomicUsize = AtomicUsize::new(0);

        /// The user's replacement: any offset it likes, but it can only reach the real
        /// (checked) projection.
        pub fn project_field<'a, T: SharedType, U: SharedType, A: shared_runtime::place::Access>(
            place: Place<'a, T, A>,
            offset: usize,
        ) -> Place<'a, U, A> {
            CALLS.fetch_add(1, Ordering::Relaxed);
            shared_runtime::__private_v1::project_field(place, offset)
        }
    }
}

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[shared(crate = "crate::generic::fake")]
#[repr(C)]
struct ThroughFake {
    a: u32,
    b: u32,
}

#[test]
fn a_replaced_crate_path_reaches_only_safe_code() {
    use std::sync::atomic::Ordering;
    let v = RawValue::new(ThroughFake { a: 1, b: 2 }).unwrap();
    let before = fake::__private_v1::CALLS.load(Ordering::Relaxed);
    v.set_b(20);
    assert_eq!(v.place().get(), ThroughFake { a: 1, b: 20 });
    assert!(fake::__private_v1::CALLS.load(Ordering::Relaxed) > before);
}

#[test]
#[should_panic(expected = "does not lie inside")]
fn the_runtime_projection_refuses_an_offset_outside_the_value() {
    let v = RawValue::new([0u32; 2]).unwrap();
    let _ = shared_runtime::__private_v1::project_field::<_, u32, _>(v.place(), 8);
}

#[test]
#[should_panic(expected = "not aligned")]
fn the_runtime_projection_refuses_a_misaligned_offset() {
    let v = RawValue::new([0u32; 2]).unwrap();
    let _ = shared_runtime::__private_v1::project_field::<_, u32, _>(v.place(), 1);
}

/// A type that knows only zerocopy, as another crate's would.
#[derive(
    zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, Clone, Copy, Debug, PartialEq,
)]
#[repr(C)]
struct Foreign {
    id: u32,
    weight: f32,
}

/// It is shared through `Plain`, also as a field of a derived struct.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Holds {
    tag: u64,
    foreign: shared_runtime::Plain<Foreign>,
}

#[test]
fn zerocopy_types_are_shared_through_plain() {
    use shared_runtime::Plain;
    let layout = <Plain<Foreign> as SharedType>::LAYOUT;
    assert_eq!((layout.size, layout.align), (8, 4));
    assert!(!layout.has_padding());
    assert_ne!(
        layout.fingerprint(),
        <Plain<[u16; 2]> as SharedType>::LAYOUT.fingerprint(),
        "another size"
    );
    let _fork = fork_lock();
    let v = Value::new(Holds {
        tag: 1,
        foreign: Plain(Foreign { id: 7, weight: 0.5 }),
    })
    .unwrap();
    in_child(|| {
        v.foreign_place().update(|f| f.0.weight *= 4.0);
        let mut g = v.lock().unwrap();
        g.tag = 2; // no padding: the guard has DerefMut
    });
    assert_eq!(
        v.get(),
        Holds {
            tag: 2,
            foreign: Plain(Foreign { id: 7, weight: 2.0 })
        }
    );
}

/// Defaulted parameters (`<T = u8, const N: usize = 2>`) derive: the defaults stay on the
/// struct, the generated impls and the accessor trait leave them out.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Defaulted<T = u8, const N: usize = 2> {
    items: [T; N],
    tag: u16,
}

#[test]
fn defaulted_parameters_derive() {
    let v: RawValue<Defaulted> = RawValue::new(Defaulted {
        items: [1, 2],
        tag: 3,
    })
    .unwrap();
    assert_eq!(v.tag(), 3);
    assert_eq!(v.get().items, [1, 2]);
    let w = RawValue::new(Defaulted::<u32, 3> {
        items: [4, 5, 6],
        tag: 7,
    })
    .unwrap();
    assert_eq!(w.items(), [4, 5, 6]);
    assert_ne!(
        <Defaulted as SharedType>::LAYOUT.fingerprint(),
        <Defaulted<u32, 3> as SharedType>::LAYOUT.fingerprint()
    );
}
