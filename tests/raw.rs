//! Raw containers in one process: accessors, bounds, typecode macros.

use shared_runtime::{copy, copy_slice, raw_array, raw_value, CChar, RawArray, RawValue};

#[test]
fn value_get_set() {
    let v = RawValue::new(3.5f64).unwrap();
    assert_eq!(v.get(), 3.5);
    v.set(-1.25);
    assert_eq!(v.get(), -1.25);
    assert_eq!(format!("{v:?}"), "RawValue(-1.25)");
    assert_eq!(RawValue::<[i16; 3]>::zeroed().unwrap().get(), [0; 3]);
}

#[test]
fn array_accessors() {
    let a = RawArray::from_slice(&[680, 626, 934, 821, 150, 233, 548, 982, 714, 831]).unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(a.get(3), Some(821));
    assert_eq!(a.get(10), None);
    assert_eq!(a.read(2..7), [934, 821, 150, 233, 548]);
    a.write(4, &[1, 2, 3, 4]);
    assert_eq!(a.to_vec(), [680, 626, 934, 821, 1, 2, 3, 4, 714, 831]);
    assert_eq!(a.read(..=1), [680, 626]);
    assert_eq!(a.read(8..), [714, 831]);
}

#[test]
#[should_panic(expected = "the len is 3 but the index is 3")]
fn set_out_of_range_panics_with_index_and_length() {
    RawArray::<u8>::zeroed(3).unwrap().set(3, 1);
}

#[test]
#[should_panic(expected = "range end index 5 out of range for array of length 4")]
fn read_out_of_range_panics() {
    RawArray::<u8>::zeroed(4).unwrap().read(1..5);
}

#[test]
#[should_panic(expected = "range end index 4 out of range for array of length 3")]
fn write_out_of_range_panics() {
    RawArray::<u8>::zeroed(3).unwrap().write(2, &[1, 2]);
}

/// Writes `data` at `start` into a zeroed array of `size` bytes, and checks that reads see
/// exactly it there and zeroes elsewhere.
fn assert_round_trip(size: usize, start: usize, data: &[u8]) {
    let len = data.len();
    let a = RawArray::<u8>::zeroed(size).unwrap();
    a.write(start, data);
    let got = a.to_vec();
    assert_eq!(&got[start..start + len], data, "start {start} len {len}");
    assert!(got[..start]
        .iter()
        .chain(&got[start + len..])
        .all(|&b| b == 0));
    assert_eq!(a.read(start..start + len), data, "start {start} len {len}");
}

#[test]
fn unaligned_bulk_ranges_round_trip() {
    // Bulk copies split into bytes and words; every start and length must come out right.
    let data: Vec<u8> = (0..64).collect();
    for start in 0..17 {
        for len in 0..40 {
            assert_round_trip(64, start, &data[..len]);
        }
    }
}

#[test]
fn zeroed_array_is_zero_three_times() {
    for _ in 0..3 {
        let a = RawArray::<i32>::zeroed(10).unwrap();
        assert_eq!(a.to_vec(), [0; 10]);
        a.write(0, &[7; 10]);
    }
}

#[test]
fn typecode_macros() {
    let d = raw_value!('d', 2.4).unwrap();
    assert_eq!(d.get(), 2.4f64);
    let h = raw_array!('h', 7).unwrap();
    assert_eq!(h.to_vec(), [0i16; 7]);
    let i = raw_array!('i', [9, 2, 8]).unwrap();
    assert_eq!(i.to_vec(), [9i32, 2, 8]);
    let c = raw_array!('c', 5).unwrap();
    c.set_value(b"abc").unwrap();
    assert_eq!(c.value(), b"abc");
    let t = raw_array!([u8; 2], [[1, 2], [3, 4]]).unwrap();
    assert_eq!(t.get(1), Some([3, 4]));
    let z = raw_value!('Q').unwrap();
    assert_eq!(z.get(), 0u64);
}

#[test]
fn copies_are_independent() {
    let original = RawArray::from_slice(&[1.5f32, 2.5]).unwrap();
    let c = copy_slice(&original.to_vec()).unwrap();
    original.write(0, &[0.0, 0.0]);
    assert_eq!(c.to_vec(), [1.5, 2.5]);
    let v = copy(&[CChar(b'a'); 2]).unwrap();
    assert_eq!(v.get(), [CChar(b'a'); 2]);
}

#[test]
fn containers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RawValue<f64>>();
    assert_send_sync::<RawArray<CChar>>();
    assert_send_sync::<shared_runtime::Arena>();
}

#[test]
fn threads_share_raw_objects() {
    let a = RawArray::<u64>::zeroed(8).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let a = &a;
            s.spawn(move || a.set(t, t as u64 * 10));
        }
    });
    assert_eq!(a.to_vec(), [0, 10, 20, 30, 40, 50, 60, 70]);
}

#[test]
fn bulk_copies_around_the_asm_threshold_round_trip() {
    // Lengths on both sides of the size from which x86-64 copies with `rep movsb`.
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    for start in [0, 1, 7, 8, 13] {
        for len in [500, 511, 512, 513, 1000, 4000] {
            assert_round_trip(4100, start, &data[..len]);
        }
    }
    let wide = RawArray::from_slice(&(0..10_000u64).collect::<Vec<_>>()).unwrap();
    assert_eq!(wide.read(1234..1300), (1234..1300).collect::<Vec<u64>>());
}
