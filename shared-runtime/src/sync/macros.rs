//! `value!` and `array!`: typecode constructors of synchronized objects.

/// A [`Value`](crate::Value) from a typecode (or a shared type), an optional initial value,
/// and an optional lock: `value!('i', 7)`, `value!('d')` (zeroed),
/// `value!('i', 7, lock = my_lock)`. Expands to the constructor call, so it returns the
/// constructor's `Result`. (ctypes' `lock=False` is a [`raw_value!`](crate::raw_value).)
///
/// ```
/// use shared_runtime::{value, Lock};
/// let n = value!('i', 7)?;
/// n.update(|v| *v += 1);
/// assert_eq!(n.get(), 8);
/// let lock = Lock::new()?;
/// let x = value!('d', 0.5, lock = lock.clone())?;
/// assert_eq!(x.get(), 0.5);
/// assert_eq!(value!('q')?.get(), 0);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[macro_export]
macro_rules! value {
    ($code:tt) => {
        $crate::Value::<$crate::typecode!($code)>::zeroed()
    };
    ($code:tt, $value:expr, lock = $lock:expr $(,)?) => {
        $crate::Value::<$crate::typecode!($code), _>::with_lock($value, $lock)
    };
    ($code:tt, $value:expr $(,)?) => {
        $crate::Value::<$crate::typecode!($code)>::new($value)
    };
    ($t:ty, $value:expr, lock = $lock:expr $(,)?) => {
        $crate::Value::<$t, _>::with_lock($value, $lock)
    };
    ($t:ty, $value:expr $(,)?) => {
        $crate::Value::<$t>::new($value)
    };
}

/// An [`Array`](crate::Array) from a typecode (or a shared type), a size or a list of
/// initial values, and an optional lock: `array!('h', 7)`, `array!('i', [9, 2, 8])`,
/// `array!('c', 16, lock = my_lock)`. Expands to the constructor call, so it returns the
/// constructor's `Result`.
///
/// ```
/// use shared_runtime::{array, RLock};
/// let a = array!('i', [9, 2, 8])?;
/// assert_eq!(a.to_vec(), [9, 2, 8]);
/// let z = array!('h', 3, lock = RLock::new()?)?;
/// assert_eq!(z.to_vec(), [0i16; 3]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[macro_export]
macro_rules! array {
    ($code:tt, [$($item:expr),* $(,)?], lock = $lock:expr $(,)?) => {
        $crate::Array::<$crate::typecode!($code), _>::from_slice_with_lock(&[$($item),*], $lock)
    };
    ($code:tt, [$($item:expr),* $(,)?] $(,)?) => {
        $crate::Array::<$crate::typecode!($code)>::from_slice(&[$($item),*])
    };
    ($code:tt, $len:expr, lock = $lock:expr $(,)?) => {
        $crate::Array::<$crate::typecode!($code), _>::zeroed_with_lock($len, $lock)
    };
    ($code:tt, $len:expr $(,)?) => { $crate::Array::<$crate::typecode!($code)>::zeroed($len) };
    ($t:ty, [$($item:expr),* $(,)?], lock = $lock:expr $(,)?) => {
        $crate::Array::<$t, _>::from_slice_with_lock(&[$($item),*], $lock)
    };
    ($t:ty, [$($item:expr),* $(,)?] $(,)?) => { $crate::Array::<$t>::from_slice(&[$($item),*]) };
    ($t:ty, $len:expr, lock = $lock:expr $(,)?) => {
        $crate::Array::<$t, _>::zeroed_with_lock($len, $lock)
    };
    ($t:ty, $len:expr $(,)?) => { $crate::Array::<$t>::zeroed($len) };
}
