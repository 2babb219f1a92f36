//! A generic struct whose padding depends on its parameter (`Pair<u64>` has 7 bytes of it,
//! `Pair<u8>` none): every path that writes a value into shared memory, on every kind of
//! object, leaves the padding of `Pair<u64>` untouched, and a guard derefs mutably only
//! without padding.

use std::mem::{size_of, MaybeUninit};

use shared_runtime::layout::TypeLayout;
use shared_runtime::{
    copy, copy_slice, synchronized, Arena, Array, Plain, RawArray, RawValue, SharedStruct,
    SharedType, SyncGuard, Value,
};

use super::field;

/// Padding after `a` depends on `T`.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pair<T> {
    a: u8,
    b: T,
}

/// A `Pair<u64>` whose padding bytes are 0xAB in this local copy (as stack garbage would be).
fn dirty(a: u8, b: u64) -> Pair<u64> {
    let mut m = MaybeUninit::<Pair<u64>>::uninit();
    // SAFETY: the pointer is valid for one `Pair<u64>`; both fields are then initialised
    // through raw pointers before `assume_init`.
    unsafe {
        m.as_mut_ptr().write_bytes(0xAB, 1);
        let p = m.as_mut_ptr();
        (*p).a = a;
        (*p).b = b;
        m.assume_init()
    }
}

/// Asserts that no 16-byte `Pair<u64>` in `bytes` carries the writer's 0xAB padding (bytes
/// 1..8 of each).
fn assert_clean(bytes: &[u8], what: &str) {
    assert_eq!(bytes.len() % 16, 0);
    for (e, chunk) in bytes.chunks(16).enumerate() {
        assert!(
            chunk[1..8].iter().all(|&b| b != 0xAB),
            "{what}: element {e}'s padding carries the writer's bytes: {chunk:02x?}"
        );
    }
}

/// The bytes of a synchronized value, read under its lock.
fn value_bytes(v: &Value<Pair<u64>>) -> Vec<u8> {
    let g = v.lock().unwrap();
    let p: *const Pair<u64> = &*g;
    // SAFETY: the guard holds the lock, so nothing writes the value while it is read; the
    // memory is initialised (shared memory starts zeroed and is only written with
    // initialised bytes, which is what this test checks), and `p` covers all of it.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), size_of::<Pair<u64>>()) }.to_vec()
}

/// The bytes of a synchronized array, read under its lock.
fn array_bytes(a: &Array<Pair<u64>>) -> Vec<u8> {
    let g = a.lock().unwrap();
    // SAFETY: as in `value_bytes`, for the `g.len()` elements the guard covers.
    unsafe { std::slice::from_raw_parts(g.as_ptr().cast::<u8>(), size_of::<Pair<u64>>() * g.len()) }
        .to_vec()
}

#[test]
fn every_write_path_skips_the_padding_of_a_generic_instantiation() {
    assert!(<Pair<u64> as SharedType>::LAYOUT.has_padding());
    assert!(!<Pair<u8> as SharedType>::LAYOUT.has_padding());
    assert_eq!(field(&<Pair<u64> as SharedType>::LAYOUT, "b").offset, 8);

    // Synchronized values: new, set, update, a guard's place.
    let v = Value::new(dirty(1, 2)).unwrap();
    assert_clean(&value_bytes(&v), "Value::new");
    v.set(dirty(3, 4));
    assert_clean(&value_bytes(&v), "Value::set");
    v.update(|p| *p = dirty(5, 6));
    assert_clean(&value_bytes(&v), "Value::update");
    SyncGuard::place(&mut v.lock().unwrap()).set(dirty(7, 8));
    assert_clean(&value_bytes(&v), "a guard's place");
    assert_eq!(v.get(), Pair { a: 7, b: 8 });

    // Synchronized arrays: from_slice, write, set, an element's place, a guard's element.
    let a = Array::from_slice(&[dirty(1, 1), dirty(2, 2), dirty(3, 3)]).unwrap();
    assert_clean(&array_bytes(&a), "Array::from_slice");
    a.write(0, &[dirty(4, 4), dirty(5, 5)]);
    assert_clean(&array_bytes(&a), "Array::write");
    a.set(2, dirty(6, 6));
    a.at(1).set(dirty(7, 7));
    a.at(0).update(|p| *p = dirty(8, 8));
    assert_clean(&array_bytes(&a), "Array::set, at(i).set, at(i).update");
    SyncGuard::at(&mut a.lock().unwrap(), 2).set(dirty(9, 9));
    assert_clean(&array_bytes(&a), "a guard's element");
    assert_eq!(a.get(2), Some(Pair { a: 9, b: 9 }));

    // Raw objects and copies, read afterwards through a synchronized wrapper.
    let r = RawValue::new(dirty(1, 2)).unwrap();
    r.set(dirty(3, 4));
    shared_runtime::place::HasPlace::place(&r).update(|p| *p = dirty(5, 6));
    PairFields::set_b(&r, 7);
    assert_clean(&value_bytes(&synchronized(r, None).unwrap()), "RawValue");
    let ra = RawArray::from_slice(&[dirty(1, 1), dirty(2, 2)]).unwrap();
    ra.write(0, &[dirty(3, 3)]);
    ra.set(1, dirty(4, 4));
    assert_clean(&array_bytes(&synchronized(ra, None).unwrap()), "RawArray");
    let c = copy_slice(&[dirty(1, 1)]).unwrap();
    assert_clean(&array_bytes(&synchronized(c, None).unwrap()), "copy_slice");
    let c = copy(&dirty(1, 1)).unwrap();
    assert_clean(&value_bytes(&synchronized(c, None).unwrap()), "copy");
}

#[test]
fn named_objects_do_not_carry_padding() {
    let name = format!("derive-generic-padding-{}", std::process::id());
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let v: RawValue<Pair<u64>> = arena.create("pad", dirty(1, 2)).unwrap();
    let a: RawArray<Pair<u64>> = arena
        .create("pads", &[dirty(3, 4), dirty(5, 6)][..])
        .unwrap();
    let file = std::fs::read(format!("/dev/shm/{name}"));
    assert!(Arena::remove_segment(&name).unwrap());
    let file = file.unwrap();
    let off = v.offset() as usize;
    assert_clean(&file[off..off + 16], "arena.create");
    let off = a.offset() as usize;
    assert_clean(&file[off..off + 32], "arena.create_array");
}

#[test]
fn a_guard_derefs_mutably_only_without_padding() {
    // `Pair<u8>` has no padding: `*guard = ..` compiles and writes.
    let v = Value::new(Pair { a: 1u8, b: 2u8 }).unwrap();
    *v.lock().unwrap() = Pair { a: 3, b: 4 };
    assert_eq!(v.get(), Pair { a: 3, b: 4 });
    let p = Value::new(Plain([1u32, 2])).unwrap();
    *p.lock().unwrap() = Plain([3, 4]);
    assert_eq!(p.get().0, [3, 4]);
}

#[test]
fn fingerprints_tell_instantiations_apart() {
    let fp = |l: TypeLayout| l.fingerprint();
    assert_ne!(
        fp(<Pair<u32> as SharedType>::LAYOUT),
        fp(<Pair<i32> as SharedType>::LAYOUT)
    );
    assert_ne!(
        fp(<Pair<u64> as SharedType>::LAYOUT),
        fp(<Pair<usize> as SharedType>::LAYOUT)
    );
    assert_ne!(
        fp(<Plain<[u8; 8]> as SharedType>::LAYOUT),
        fp(<[u8; 8] as SharedType>::LAYOUT)
    );
    assert_ne!(
        fp(<Plain<u64> as SharedType>::LAYOUT),
        fp(<Plain<[u32; 2]> as SharedType>::LAYOUT)
    );
    assert_ne!(
        fp(<Pair<Pair<u8>> as SharedType>::LAYOUT),
        fp(<Pair<[u8; 2]> as SharedType>::LAYOUT)
    );
    // The documented limit of `Plain`: only its size and alignment are known.
    assert_eq!(
        fp(<Plain<u64> as SharedType>::LAYOUT),
        fp(<Plain<i64> as SharedType>::LAYOUT)
    );
}
