//! `HasPlace`: borrowed containers of one `T`, which give its [`Place`].

use crate::place::{Access, Locked, Place, Unlocked};
use crate::raw::RawValue;
use crate::sync::{SharedLock, Synchronized};
use crate::SharedType;

/// A borrowed container of one `T` in shared memory, which gives the [`Place`] of that `T`
/// for `'a`: `&'a RawValue<T>`, `&'a Value<T, L>`, and a `Place<'a, T, _>` itself (an
/// element of an array from `RawArray::at`/`Array::at`, a field of a struct, or a guard's
/// place from [`SyncGuard::place`](crate::SyncGuard::place)).
///
/// `#[derive(SharedStruct)]` on a struct `S` implements its field-accessor trait
/// `SFields<'a>` for every `C: HasPlace<'a, S>`, so every container of an `S` has the same
/// accessors. They take the container by value (it is `Copy`: a reference or a place), so
/// the place of a field outlives the temporary it was reached through:
/// `let inner = v.outer_place().inner_place();` borrows `v`, not a temporary.
///
/// A guard ([`SyncGuard`](crate::SyncGuard)) is not a `HasPlace`: it derefs to `&T`, and a
/// place must not write while such a reference lives. [`SyncGuard::place(&mut
/// guard)`](crate::SyncGuard::place) borrows it mutably instead.
///
/// ```
/// use shared_runtime::{RawValue, Value};
/// use shared_runtime::place::HasPlace;
///
/// fn bump<'a, C: HasPlace<'a, u64>>(counter: C) -> u64 {
///     counter.place().update(|n| {
///         *n += 1;
///         *n
///     })
/// }
/// assert_eq!(bump(&RawValue::new(1u64)?), 2); // no lock
/// assert_eq!(bump(&Value::new(41u64)?), 42); // one acquisition of the lock
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub trait HasPlace<'a, T: SharedType>: Copy {
    /// How the place's operations are made exclusive: [`Unlocked`], [`Locked`] or
    /// [`Held`](crate::Held).
    type Access: Access;

    /// The place of the contained `T`. Takes no lock: each operation on the place does.
    ///
    /// ```
    /// use shared_runtime::place::HasPlace;
    /// let v = shared_runtime::Value::new(3i8)?;
    /// let p = v.place(); // `v` is borrowed: `&Value` is the container
    /// p.set(p.get() * 2);
    /// assert_eq!(v.get(), 6);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    fn place(self) -> Place<'a, T, Self::Access>;
}

impl<'a, T: SharedType> HasPlace<'a, T> for &'a RawValue<T> {
    type Access = Unlocked<'a>;

    fn place(self) -> Place<'a, T, Unlocked<'a>> {
        // SAFETY: the value's memory is an aligned `T` that lives as long as the borrow of
        // the value; a raw value never hands out references into it, and `Unlocked` promises
        // no exclusion (its operations check the borrow mark, as `get`/`set` do).
        unsafe { Place::new(self.as_ptr(), Unlocked::new(self.allocation())) }
    }
}

impl<'a, T: SharedType, L: SharedLock> HasPlace<'a, T> for &'a Synchronized<RawValue<T>, L> {
    type Access = Locked<'a, RawValue<T>, L>;

    fn place(self) -> Place<'a, T, Locked<'a, RawValue<T>, L>> {
        // SAFETY: as for `RawValue`; references into the memory exist only inside a guard or
        // an `update`, which mark the object borrowed, and every operation of a `Locked`
        // place takes the lock and checks that mark first.
        unsafe { Place::new(self.obj().as_ptr(), Locked::new(self)) }
    }
}

impl<'a, T: SharedType, A: Access> HasPlace<'a, T> for Place<'a, T, A> {
    type Access = A;

    fn place(self) -> Place<'a, T, A> {
        self
    }
}
