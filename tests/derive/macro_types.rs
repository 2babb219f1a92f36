//! Field types written through macros, whose expansion the derive cannot see: names in
//! them that equal a name the generated code binds (its generic parameter `C`, its
//! parameter `value`) mean what they mean at the struct, never the generated item.

/// A field type `the_c!()` that expands to the user's struct `C`, named like the accessor
/// impl's generic parameter for containers.
mod struct_named_c {
    use shared_runtime::{RawValue, SharedStruct, Value};

    #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct C {
        pub x: u32,
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct R;

    macro_rules! the_c {
        () => {
            C
        };
    }

    #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Holder {
        pub inner: the_c!(),
        pub count: u16,
    }

    /// The same in a generic struct (rustc's own derives refuse type macros there).
    #[derive(SharedStruct)]
    #[repr(C)]
    pub struct Pair<T> {
        pub first: T,
        pub second: the_c!(),
    }

    impl<T: Copy> Clone for Pair<T> {
        fn clone(&self) -> Self {
            *self
        }
    }

    impl<T: Copy> Copy for Pair<T> {}

    #[test]
    fn a_macro_field_type_naming_c_is_the_users_c() {
        let v = RawValue::new(Holder {
            inner: C { x: 1 },
            count: 2,
        })
        .unwrap();
        assert_eq!(v.inner(), C { x: 1 });
        v.inner_place().set_x(5);
        // `update_x<R>`: the closure's return type is the user's `R` here.
        assert_eq!(v.update_inner(|c| c.x * 2), 10);
        let r: R = v.update_inner(|c| {
            c.x += 1;
            R
        });
        assert_eq!((r, v.inner().x, v.count()), (R, 6, 2));

        let p = Value::new(Pair {
            first: 1u8,
            second: C { x: 3 },
        })
        .unwrap();
        p.set_second(C { x: 4 });
        assert_eq!((p.first(), p.get().second), (1, C { x: 4 }));
    }
}

/// An array length `len!()` that expands to the user's `const value`, named like the
/// accessors' parameter.
#[allow(non_upper_case_globals)]
mod const_named_value {
    use shared_runtime::{RawValue, SharedStruct, SharedType};

    pub const value: usize = 4;

    macro_rules! len {
        () => {
            value
        };
    }

    #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Buf {
        pub b: [u8; len!()],
    }

    /// A unit struct `src` and a const `dst`, named like `store`'s parameters, in scope
    /// through a glob import (which no scan of the tokens sees), `dst` also through a macro.
    #[allow(non_camel_case_types, dead_code)]
    mod hidden {
        pub const dst: usize = 2;
        pub struct src;
    }
    use self::hidden::*;

    macro_rules! two {
        () => {
            dst
        };
    }

    #[derive(SharedStruct)]
    #[repr(C)]
    pub struct Halves<T> {
        pub h: [T; two!()],
    }

    impl<T: Copy> Clone for Halves<T> {
        fn clone(&self) -> Self {
            *self
        }
    }

    impl<T: Copy> Copy for Halves<T> {}

    #[test]
    fn a_macro_array_length_naming_value_is_the_users_value() {
        assert_eq!(<Buf as SharedType>::LAYOUT.size, 4);
        let v = RawValue::new(Buf { b: [1; 4] }).unwrap();
        v.set_b([2; 4]);
        v.b_place().at(3).set(9);
        assert_eq!(v.b(), [2, 2, 2, 9]);
        let h = RawValue::new(Halves { h: [1u32, 2] }).unwrap();
        h.update_h(|h| h.swap(0, 1));
        assert_eq!(h.get().h, [2, 1]);
        assert_eq!(<Halves<u32> as SharedType>::LAYOUT.name, "Halves<u32>");
    }
}
