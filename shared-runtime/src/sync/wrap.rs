//! Making a `Synchronized` from an object: `synchronized`, `Synchronized::new`/`with_lock`.

use crate::arena::Arena;
use crate::raw::{RawArray, RawValue};
use crate::sync::lock::{GenericLock, RLock, Reentrancy, SharedLock};
use crate::sync::own_lock;
use crate::sync::synchronized::{ObjectSealed, SharedObject, Synchronized, Token};
use crate::{Result, SharedType};

mod private {
    pub trait Sealed {}
}

/// What [`Synchronized::new`] and [`Synchronized::with_lock`] accept for the object `O`:
/// a value `T` (a new [`RawValue<T>`] in the global arena) for a [`Value`](crate::Value),
/// or an owned raw object ([`RawValue`], [`RawArray`]) to wrap as it is. Sealed.
///
/// ```
/// use shared_runtime::{RawArray, Synchronized, Value};
///
/// let v = Value::new(7)?; // a value
/// let a = Synchronized::new(RawArray::from_slice(&[1, 2])?)?; // an object
/// assert_eq!((v.get(), a.to_vec()), (7, vec![1, 2]));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither a shareable value nor an owned raw object to synchronize as `{O}`",
    label = "not a `SharedType` value, `RawValue` or `RawArray`",
    note = "wrap a value (`Value::new(7)`) or an owned `RawValue`/`RawArray` \
            (`Synchronized::new(RawArray::from_slice(&[1, 2])?)`)"
)]
pub trait IntoObject<O>: Sized {
    /// The object. Not callable outside the crate.
    #[doc(hidden)]
    fn into_object(self, _: Token) -> Result<O>;

    /// The object with a fresh [`RLock`]: an object passed in keeps its block, the lock
    /// goes in another; a value made here shares one block with its lock. Not callable
    /// outside the crate.
    #[doc(hidden)]
    fn with_own_lock(self, t: Token) -> Result<Synchronized<O, RLock>>
    where
        O: SharedObject,
    {
        let obj = self.into_object(t)?;
        let lock = RLock::new_in(obj.arena())?;
        Synchronized::from_parts(obj, lock)
    }
}

impl<T: SharedType> IntoObject<RawValue<T>> for T {
    fn into_object(self, _: Token) -> Result<RawValue<T>> {
        RawValue::new(self)
    }
    fn with_own_lock(self, _: Token) -> Result<Synchronized<RawValue<T>, RLock>> {
        own_lock::value_in(Arena::try_global()?, Some(self))
    }
}
impl<T: SharedType> IntoObject<RawValue<T>> for RawValue<T> {
    fn into_object(self, _: Token) -> Result<RawValue<T>> {
        self.check_wrappable(Token)?;
        Ok(self)
    }
}
impl<T: SharedType> IntoObject<RawArray<T>> for RawArray<T> {
    fn into_object(self, _: Token) -> Result<RawArray<T>> {
        self.check_wrappable(Token)?;
        Ok(self)
    }
}

/// The lock argument of [`synchronized`]: `None` (a fresh [`RLock`], as Python's
/// `lock=None`), `Some(rlock)`, or a lock itself ([`Lock`](crate::Lock) or [`RLock`]).
/// Sealed.
///
/// Why `Option<RLock>` and not `Option<L>` for any lock: with two lock types, Rust could not
/// tell which one a bare `None` means, and every call would need the type written out. With
/// a single `Option` form, `synchronized(obj, None)` needs no annotation. A `Lock` is passed
/// as itself: `synchronized(obj, lock)`.
///
/// ```
/// use shared_runtime::{synchronized, Lock, RLock, RawValue};
///
/// let a = synchronized(RawValue::new(1)?, None)?; // a fresh RLock
/// let b = synchronized(RawValue::new(2)?, Some(RLock::new()?))?;
/// let c = synchronized(RawValue::new(3)?, Lock::new()?)?;
/// let d = synchronized(RawValue::new(4)?, RLock::new()?)?;
/// assert_eq!(a.get() + b.get() + c.get() + d.get(), 10);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lock argument of `synchronized`",
    label = "expected `None`, `Some(rlock)`, a `Lock` or an `RLock`",
    note = "pass the lock itself: `synchronized(obj, lock)`, or use \
            `Synchronized::with_lock(obj, lock)`"
)]
pub trait LockArg: private::Sealed {
    /// The lock type of the wrapper.
    type Lock: SharedLock;
    /// The lock: this one, or a fresh one in `arena`. Not callable outside the crate.
    #[doc(hidden)]
    fn into_lock(self, arena: &Arena, _: Token) -> Result<Self::Lock>;
}

impl private::Sealed for Option<RLock> {}
impl LockArg for Option<RLock> {
    type Lock = RLock;
    fn into_lock(self, arena: &Arena, _: Token) -> Result<RLock> {
        match self {
            Some(lock) => Ok(lock),
            None => RLock::new_in(arena),
        }
    }
}

impl<K: Reentrancy> private::Sealed for GenericLock<K> {}
impl<K: Reentrancy> LockArg for GenericLock<K> {
    type Lock = GenericLock<K>;
    fn into_lock(self, _: &Arena, _: Token) -> Result<Self> {
        Ok(self)
    }
}

/// Wraps `obj` with a lock (ctypes' `synchronized(obj, lock=None)`): `None` makes a fresh
/// [`RLock`] in the object's arena, `Some(rlock)` uses that one, and a lock passed as
/// itself — a [`Lock`](crate::Lock) or an [`RLock`] — is used as it is. See [`LockArg`].
///
/// # Errors
/// [`Error::NotOwned`](crate::Error::NotOwned) if this process does not own `obj` (a view
/// opened by name or from a borrowed handle: several such views of one object could each
/// be wrapped, and their guards would alias);
/// [`Error::StillCloned`](crate::Error::StillCloned) if other clones of `obj` are alive in
/// this process (they could write behind a guard; clone the wrapper instead);
/// [`Error::AlreadyOpen`](crate::Error::AlreadyOpen) if this process still has a view of
/// an object that had the block before; as [`RLock::new`] when a fresh lock must be made.
///
/// ```
/// use shared_runtime::{synchronized, Lock, RawArray, RawValue};
///
/// let a = synchronized(RawArray::from_slice(&[1, 2])?, None)?;
/// a.update(0, |x| *x += 10);
/// assert_eq!(a.to_vec(), [11, 2]);
/// let v = synchronized(RawValue::new(0.5)?, Lock::new()?)?;
/// assert_eq!(v.get(), 0.5);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub fn synchronized<O: SharedObject, A: LockArg>(
    obj: O,
    lock: A,
) -> Result<Synchronized<O, A::Lock>> {
    obj.check_wrappable(Token)?;
    let lock = lock.into_lock(obj.arena(), Token)?;
    Synchronized::from_parts(obj, lock)
}

impl<O: SharedObject> Synchronized<O, RLock> {
    /// A synchronized object guarded by a fresh [`RLock`]: from a value, a new shared value
    /// in the global arena (ctypes' `Value(typecode, value)`), in one arena block with its
    /// lock (one allocation; a small value shares the lock's cache line); from an owned raw
    /// object, that object, with the lock in its arena in a block of its own
    /// (`synchronized(obj, None)`).
    ///
    /// # Errors
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full; for a raw
    /// object, as [`synchronized`].
    ///
    /// ```
    /// use shared_runtime::{RawValue, Synchronized, Value};
    ///
    /// let n = Value::new(7i32)?;
    /// n.update(|v| *v = v.pow(2));
    /// assert_eq!(n.get(), 49);
    /// let m = Synchronized::new(RawValue::new(1.5f32)?)?;
    /// assert_eq!(m.get(), 1.5);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new(obj: impl IntoObject<O>) -> Result<Self> {
        obj.with_own_lock(Token)
    }
}

impl<O: SharedObject, L: SharedLock> Synchronized<O, L> {
    /// A synchronized object guarded by `lock` (which may guard other objects too): from a
    /// value, a new shared value in the global arena, in a block of its own; from an owned
    /// raw object, that object (`synchronized(obj, lock)`).
    ///
    /// # Errors
    /// As [`new`](Synchronized::new).
    ///
    /// ```
    /// use shared_runtime::{Lock, RawArray, Synchronized, Value};
    /// let lock = Lock::new()?;
    /// let (a, b) = (Value::with_lock(1u8, lock.clone())?, Value::with_lock(2u8, lock.clone())?);
    /// assert_eq!(a.get() + b.get(), 3);
    /// let c = Synchronized::with_lock(RawArray::<u8>::zeroed(2)?, lock)?;
    /// assert_eq!(c.to_vec(), [0, 0]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn with_lock(obj: impl IntoObject<O>, lock: L) -> Result<Self> {
        Synchronized::from_parts(obj.into_object(Token)?, lock)
    }
}
