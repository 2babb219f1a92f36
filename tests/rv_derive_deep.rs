//! Reviewer `derive`: deeply nested array parameters in a generic struct's layout name.
use shared_runtime::{SharedStruct, SharedType};

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
struct Wrap<T> {
    v: T,
}

type Deep = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[u8; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1];

#[test]
fn deep_generic_layout_name_compiles() {
    let l = <Wrap<Deep> as SharedType>::LAYOUT;
    assert_eq!(l.size, 1);
    assert!(l.name.starts_with("Wrap<[[["));
    assert!(!l.has_padding());
}

#[test]
fn deep_guard_deref_mut_compiles() {
    let v = shared_runtime::Value::<Deep>::zeroed().unwrap();
    let mut g = v.lock().unwrap();
    let x: &mut Deep = &mut g;
    let _ = x;
    let a = shared_runtime::RawArray::<Deep>::zeroed(1).unwrap();
    a.write(0, &[unsafe { std::mem::zeroed() }]);
    let _ = <Deep as SharedType>::LAYOUT.fingerprint();
}
