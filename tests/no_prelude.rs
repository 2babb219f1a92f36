//! The derive's expansion under a crate-level `#![no_implicit_prelude]`: every path it
//! emits must be absolute.
#![no_implicit_prelude]

#[derive(::shared_runtime::SharedStruct, ::std::clone::Clone, ::std::marker::Copy)]
#[repr(C)]
struct Reading {
    at: f64,
    sensor: u16,
    tags: [u8; 3],
}

#[derive(::shared_runtime::SharedStruct, ::std::clone::Clone, ::std::marker::Copy)]
#[repr(C, align(16))]
struct Batch {
    first: Reading,
    count: i32,
}

#[test]
fn derived_without_a_prelude() {
    use ::shared_runtime::SharedType;
    let v = ::shared_runtime::RawValue::new(Batch {
        first: Reading {
            at: 1.5,
            sensor: 7,
            tags: [1, 2, 3],
        },
        count: 4,
    })
    .unwrap();
    let got = v.get();
    ::std::assert_eq!(
        (got.first.at, got.first.sensor, got.first.tags),
        (1.5, 7, [1, 2, 3])
    );
    ::std::assert_eq!(got.count, 4);
    ::std::assert_eq!(<Batch as SharedType>::LAYOUT.align, 16);
    ::std::assert_eq!(
        <Batch as SharedType>::LAYOUT.size,
        ::std::mem::size_of::<Batch>()
    );
}
