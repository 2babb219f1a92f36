//! Padding never reaches shared memory: `set`, `update`, the accessors and the guard's
//! places write field by field, and a guard of a padded type has no `DerefMut` (a build
//! error, shown by the `compile_fail` example of `SharedType`).

use std::mem::{size_of, MaybeUninit};

use shared_runtime::{Array, SharedStruct, SyncGuard, Value};

/// 4 bytes of padding after `a`, 2 at the end.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Gappy {
    a: u32,
    b: u64,
    c: u16,
    d: [u8; 4],
}

const PADDING: [std::ops::Range<usize>; 2] = [4..8, 22..24];

/// A `Gappy` whose padding bytes are 0xAB in this local copy (as stack garbage would be).
fn dirty(a: u32) -> Gappy {
    let mut m = MaybeUninit::<Gappy>::uninit();
    // SAFETY: the pointer is valid for one `Gappy`; every field is then initialised
    // through raw pointers before `assume_init`.
    unsafe {
        m.as_mut_ptr().write_bytes(0xAB, 1);
        let p = m.as_mut_ptr();
        (*p).a = a;
        (*p).b = 2;
        (*p).c = 3;
        (*p).d = [4; 4];
        m.assume_init()
    }
}

/// The bytes of the value in shared memory, read under its lock.
fn shared_bytes(v: &Value<Gappy>) -> Vec<u8> {
    let g = v.lock().unwrap();
    let p: *const Gappy = &*g;
    // SAFETY: the guard holds the lock, so nothing writes the value while it is read; the
    // memory is initialised (shared memory starts zeroed and is only written with
    // initialised bytes, which is what this test checks), and `p` covers all of it.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), size_of::<Gappy>()) }.to_vec()
}

fn assert_padding_zero(bytes: &[u8]) {
    for range in PADDING {
        assert!(
            bytes[range.clone()].iter().all(|&b| b == 0),
            "padding {range:?} was written: {bytes:?}"
        );
    }
}

#[test]
fn set_update_and_places_never_write_padding() {
    assert!(<Gappy as shared_runtime::SharedType>::LAYOUT.has_padding());
    let v = Value::new(dirty(1)).unwrap();
    assert_padding_zero(&shared_bytes(&v));
    v.set(dirty(2));
    assert_padding_zero(&shared_bytes(&v));
    v.update(|g| *g = dirty(3));
    assert_padding_zero(&shared_bytes(&v));
    {
        let mut g = v.lock().unwrap();
        SyncGuard::place(&mut g).set(dirty(4));
        SyncGuard::place(&mut g).set_c(30);
    }
    assert_padding_zero(&shared_bytes(&v));
    assert_eq!(v.get().a, 4);
    assert_eq!(v.get().c, 30);

    let a = Array::from_slice(&[dirty(5), dirty(6)]).unwrap();
    a.set(1, dirty(7));
    a.update(0, |g| *g = dirty(8));
    {
        let mut g = a.lock().unwrap();
        SyncGuard::at(&mut g, 1).set(dirty(9));
    }
    let g = a.lock().unwrap();
    let p: *const Gappy = g.as_ptr();
    // SAFETY: as in `shared_bytes`, for both elements.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), 2 * size_of::<Gappy>()) };
    assert_padding_zero(&bytes[..size_of::<Gappy>()]);
    assert_padding_zero(&bytes[size_of::<Gappy>()..]);
    assert_eq!((g[0].a, g[1].a), (8, 9));
}
