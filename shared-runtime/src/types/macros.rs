//! Typecode macros: `raw_value!('d', 2.4)`, `raw_array!('i', [9, 2, 8])`, ...

/// The Rust type for a typecode of Python's `array` module, as `multiprocessing.sharedctypes`
/// uses them. An unknown typecode is a compile error that lists the valid ones.
///
/// ```
/// let x: shared_runtime::typecode!('d') = 2.5;
/// let c: shared_runtime::typecode!('c') = shared_runtime::CChar(b'a');
/// # let _ = (x, c);
/// ```
///
/// ```compile_fail
/// let x: shared_runtime::typecode!('z') = 0; // error: unknown typecode 'z'
/// ```
#[macro_export]
macro_rules! typecode {
    ('c') => {
        $crate::CChar
    };
    ('u') => {
        $crate::WChar
    };
    ('b') => {
        i8
    };
    ('B') => {
        u8
    };
    ('h') => {
        i16
    };
    ('H') => {
        u16
    };
    ('i') => {
        i32
    };
    ('I') => {
        u32
    };
    ('l') => {
        ::std::os::raw::c_long
    };
    ('L') => {
        ::std::os::raw::c_ulong
    };
    ('q') => {
        i64
    };
    ('Q') => {
        u64
    };
    ('f') => {
        f32
    };
    ('d') => {
        f64
    };
    ($other:literal) => {
        ::std::compile_error!(::std::concat!(
            "unknown typecode ",
            ::std::stringify!($other),
            "; valid typecodes: 'c' CChar, 'u' WChar, 'b' i8, 'B' u8, 'h' i16, 'H' u16, ",
            "'i' i32, 'I' u32, 'l' c_long, 'L' c_ulong, 'q' i64, 'Q' u64, 'f' f32, 'd' f64"
        ))
    };
    ($t:ty) => {
        $t
    };
}

/// A [`RawValue`](crate::RawValue) from a typecode (or a shared type) and an optional
/// initial value: `raw_value!('d', 2.4)`, `raw_value!('i')` (zeroed). Expands to the
/// constructor call, so it returns the constructor's `Result`.
///
/// ```
/// let x = shared_runtime::raw_value!('d', 2.4)?;
/// assert_eq!(x.get(), 2.4);
/// let n = shared_runtime::raw_value!('q')?;
/// assert_eq!(n.get(), 0i64);
/// let t = shared_runtime::raw_value!([u8; 2], [1, 2])?;
/// assert_eq!(t.get(), [1, 2]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[macro_export]
macro_rules! raw_value {
    // A single token (a typecode literal, a type name or an array type) is forwarded as a
    // token tree, so that `typecode!` can still recognise the literal.
    ($code:tt) => {
        $crate::RawValue::<$crate::typecode!($code)>::zeroed()
    };
    ($code:tt, $value:expr $(,)?) => {
        $crate::RawValue::<$crate::typecode!($code)>::new($value)
    };
    ($t:ty) => {
        $crate::RawValue::<$t>::zeroed()
    };
    ($t:ty, $value:expr $(,)?) => {
        $crate::RawValue::<$t>::new($value)
    };
}

/// A [`RawArray`](crate::RawArray) from a typecode (or a shared type) and a size or a list of
/// initial values: `raw_array!('h', 7)` (seven zeros), `raw_array!('i', [9, 2, 8])`.
/// Expands to the constructor call, so it returns the constructor's `Result`.
///
/// ```
/// let a = shared_runtime::raw_array!('h', 7)?;
/// assert_eq!(a.to_vec(), vec![0i16; 7]);
/// let b = shared_runtime::raw_array!('i', [9, 2, 8])?;
/// assert_eq!(b.to_vec(), vec![9, 2, 8]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[macro_export]
macro_rules! raw_array {
    ($code:tt, [$($item:expr),* $(,)?] $(,)?) => {
        $crate::RawArray::<$crate::typecode!($code)>::from_slice(&[$($item),*])
    };
    ($code:tt, $len:expr $(,)?) => {
        $crate::RawArray::<$crate::typecode!($code)>::zeroed($len)
    };
    ($t:ty, [$($item:expr),* $(,)?] $(,)?) => {
        $crate::RawArray::<$t>::from_slice(&[$($item),*])
    };
    ($t:ty, $len:expr $(,)?) => { $crate::RawArray::<$t>::zeroed($len) };
}
