//! Layout names too long to keep: a generic struct's name is cut at 160 bytes, yet every
//! instantiation keeps its own fingerprint (the cut name ends in a hash of all the
//! parameters), and arrays nested as deep as the type system allows still get a name.

use shared_runtime::layout::LayoutName;
use shared_runtime::{Arena, RawArray, RawValue, SharedStruct, SharedType, Value};

/// A const parameter that no field uses: only the layout's name carries it.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Tagged<T, const UNIT: u32> {
    v: T,
}

/// A parameter whose name is long (a matrix of matrices), as nested generics get: with it,
/// `Tagged`'s name is cut before `UNIT`.
#[rustfmt::skip]
type Long = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[f64; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1];
    1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1];

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Wrap<T> {
    v: T,
}

/// 125 levels of arrays, about what the trait solver's recursion limit allows: a const
/// evaluation that recursed once per level would run out of stack frames.
#[rustfmt::skip]
type Deep = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[u8; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]
    ; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]
    ; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]
    ; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]
    ; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]
    ; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1];

/// How many arrays `layout` nests.
fn depth(mut layout: &shared_runtime::layout::TypeLayout) -> usize {
    let mut n = 0;
    while let shared_runtime::layout::LayoutKind::Array { elem, .. } = layout.kind {
        layout = elem;
        n += 1;
    }
    n
}

#[test]
fn a_cut_name_still_tells_const_parameters_apart() {
    let short1 = <Tagged<u8, 1> as SharedType>::LAYOUT;
    let short2 = <Tagged<u8, 2> as SharedType>::LAYOUT;
    assert_eq!(
        (short1.name, short2.name),
        ("Tagged<u8, 1>", "Tagged<u8, 2>")
    );
    assert_ne!(short1.fingerprint(), short2.fingerprint());

    let long1 = <Tagged<Long, 1> as SharedType>::LAYOUT;
    let long2 = <Tagged<Long, 2> as SharedType>::LAYOUT;
    for name in [long1.name, long2.name] {
        assert!(name.len() <= 160, "{name}");
        assert!(
            name.starts_with("Tagged<[[[[") && name.contains("...#"),
            "{name}"
        );
    }
    assert_ne!(long1.name, long2.name);
    assert_ne!(long1.fingerprint(), long2.fingerprint());
    // The same instantiation, the same name, in every build.
    assert_eq!(long1.name, <Tagged<Long, 1> as SharedType>::LAYOUT.name);
}

#[test]
fn opening_checks_the_instantiation_behind_a_cut_name() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    arena
        .create::<RawValue<Tagged<u8, 1>>>("short", Tagged { v: 7 })
        .unwrap();
    assert!(arena.open::<RawValue<Tagged<u8, 2>>>("short").is_err());
    assert_eq!(
        arena.open::<RawValue<Tagged<u8, 1>>>("short").unwrap().v(),
        7
    );
    let zero = Long::default();
    arena
        .create::<RawValue<Tagged<Long, 1>>>("long", Tagged { v: zero })
        .unwrap();
    let err = arena.open::<RawValue<Tagged<Long, 2>>>("long").unwrap_err();
    assert!(err.to_string().contains("Tagged<"), "{err}");
    assert!(arena.open::<RawValue<Tagged<Long, 1>>>("long").is_ok());
}

#[test]
fn the_hash_covers_what_was_cut() {
    let long = "x".repeat(130);
    let name = |n: u128| LayoutName::new(&long).unsigned(u128::MAX - n).close();
    let (a, b) = (name(0), name(1));
    for cut in [a.as_str(), b.as_str()] {
        let (kept, hash) = cut.split_once("...#").expect("a cut name ends in its hash");
        assert_eq!(kept, format!("{long}<"), "{cut}");
        assert!(
            hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{cut}"
        );
    }
    assert_ne!(a.as_str(), b.as_str());
    assert_eq!(a.as_str(), name(0).as_str());
    // A name that fits is not cut and carries no hash.
    assert_eq!(
        LayoutName::new("Grid").unsigned(4).close().as_str(),
        "Grid<4>"
    );
}

#[test]
fn arrays_nested_deeper_than_a_const_stack_get_a_name() {
    let layout = <Wrap<Deep> as SharedType>::LAYOUT;
    assert_eq!(layout.size, 1);
    assert_eq!(depth(field_ty(&layout)), 125);
    assert!(layout.name.starts_with("Wrap<[[[") && layout.name.contains("...#"));
    assert!(layout.name.len() <= 160);
    assert!(!layout.has_padding());
    assert_ne!(
        layout.fingerprint(),
        <Wrap<[u8; 1]> as SharedType>::LAYOUT.fingerprint()
    );
    // A deep array has no padding, so its guard derefs mutably.
    let v = Value::<Deep>::zeroed().unwrap();
    let mut g = v.lock().unwrap();
    let inner: &mut Deep = &mut g;
    assert_eq!(std::mem::size_of_val(inner), 1);
    drop(g);
    let a = RawArray::<Deep>::zeroed(2).unwrap();
    assert_eq!(a.len(), 2);
}

/// The type of `layout`'s only field.
fn field_ty(
    layout: &shared_runtime::layout::TypeLayout,
) -> &'static shared_runtime::layout::TypeLayout {
    match layout.kind {
        shared_runtime::layout::LayoutKind::Struct { fields } => fields[0].ty,
        _ => panic!("not a struct"),
    }
}
