//! `Synchronized<O, L>`: a shared object paired with the lock that guards it.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::sync::{Arc, LockResult, PoisonError, TryLockError};

use crate::arena::{Allocation, Arena};
use crate::raw::{RawArray, RawValue};
use crate::sync::guard::SyncGuard;
use crate::sync::lock::{LockGuard, RLock, SharedLock};
use crate::sync::poison::Poison;
use crate::sys::liveness::current_tid;
use crate::{Error, Result, SharedType};

/// A shared object paired with a process-shared lock (ctypes' synchronized wrapper).
///
/// Made by [`Value`]/[`Array`] constructors, by [`Synchronized::new`] and
/// [`with_lock`](Self::with_lock), or by [`synchronized`](crate::synchronized). Every
/// accessor takes the lock once; [`lock`](Value::lock) holds it for longer work.
/// [`getobj`](Self::getobj) and [`getlock`](Self::getlock) give the parts, as in Python.
///
/// A cheap [`Clone`] handle: clones share one object and one lock (and hand both to forked
/// children).
///
/// ```
/// use shared_runtime::{synchronized, Lock, RawValue};
///
/// let v = synchronized(RawValue::new(1u8)?, Lock::new()?)?;
/// assert_eq!(v.getobj().get(), 1);
/// let _held = v.getlock().lock().unwrap();
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct Synchronized<O, L = RLock> {
    obj: O,
    lock: L,
}

/// A [`Value`]: one shared value guarded by a lock (an [`RLock`] unless chosen).
pub type Value<T, L = RLock> = Synchronized<RawValue<T>, L>;
/// An [`Array`]: a shared array guarded by a lock (an [`RLock`] unless chosen).
pub type Array<T, L = RLock> = Synchronized<RawArray<T>, L>;

mod sealed {
    use super::*;

    /// Names what only this crate can call: a method that takes one cannot be called
    /// elsewhere, even through a `SharedObject` bound.
    #[derive(Debug)]
    pub struct Token;

    pub trait Sealed {
        /// The process-local mark of the thread that has the object's data borrowed,
        /// shared by every clone of the object's handle in this process.
        fn borrow_mark(&self, _: Token) -> &AtomicI32;
        /// `Ok` if this is the only handle of the object in this process.
        fn check_last_handle(&self, _: Token) -> Result<()>;
        /// Whether this process may wrap the object: it owns it, and this is its only
        /// handle here.
        fn check_wrappable(&self, _: Token) -> Result<()>;
        /// Records the object in this process's map of opened objects, paired with the
        /// lock at `lock`, if this process owns it; refused if this process has another
        /// live handle of its block.
        fn record_if_owned(&self, lock: u64, _: Token) -> Result<()>;
    }

    impl<T: SharedType> Sealed for RawValue<T> {
        fn borrow_mark(&self, _: Token) -> &AtomicI32 {
            self.allocation().borrow_mark()
        }
        fn check_last_handle(&self, _: Token) -> Result<()> {
            last_handle(self.allocation())
        }
        fn check_wrappable(&self, _: Token) -> Result<()> {
            wrappable(self.allocation())
        }
        fn record_if_owned(&self, lock: u64, _: Token) -> Result<()> {
            record_if_owned(self.allocation(), lock)
        }
    }
    impl<T: SharedType> Sealed for RawArray<T> {
        fn borrow_mark(&self, _: Token) -> &AtomicI32 {
            self.allocation().borrow_mark()
        }
        fn check_last_handle(&self, _: Token) -> Result<()> {
            last_handle(self.allocation())
        }
        fn check_wrappable(&self, _: Token) -> Result<()> {
            wrappable(self.allocation())
        }
        fn record_if_owned(&self, lock: u64, _: Token) -> Result<()> {
            record_if_owned(self.allocation(), lock)
        }
    }

    fn record_if_owned(data: &Arc<Allocation>, lock: u64) -> Result<()> {
        // Keyed by the block: a `Value` made with its own lock has its data after the lock
        // cell, and a handle of it names that block as its lock (as a named one's does).
        if data.object_owned_here() {
            crate::arena::opened::record_owned(data.arena(), data.block_offset(), lock, data)?;
        }
        Ok(())
    }

    fn wrappable(alloc: &Arc<Allocation>) -> Result<()> {
        if !alloc.object_owned_here() {
            return Err(Error::NotOwned);
        }
        // Another clone outside the wrapper could reach the data behind a guard's back
        // (and a second wrapper of it would have another lock).
        last_handle(alloc)
    }

    fn last_handle(alloc: &Arc<Allocation>) -> Result<()> {
        match Arc::strong_count(alloc) {
            1 => Ok(()),
            n => Err(Error::StillCloned {
                offset: alloc.offset(),
                clones: n - 1,
            }),
        }
    }
}
pub(crate) use sealed::{Sealed as ObjectSealed, Token};

/// A raw shared object that can be [`synchronized`](crate::synchronized): [`RawValue`] or
/// [`RawArray`]. Sealed.
///
/// ```
/// use shared_runtime::{RawValue, SharedObject};
/// let v = RawValue::new(1u8)?;
/// assert!(SharedObject::arena(&v).same_as(shared_runtime::Arena::global()));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub trait SharedObject: sealed::Sealed {
    /// The arena the object lives in.
    fn arena(&self) -> &Arena;
}

impl<T: SharedType> SharedObject for RawValue<T> {
    fn arena(&self) -> &Arena {
        RawValue::arena(self)
    }
}
impl<T: SharedType> SharedObject for RawArray<T> {
    fn arena(&self) -> &Arena {
        RawArray::arena(self)
    }
}

/// The lock of a synchronized object, held, with its data marked borrowed by this thread.
pub(crate) struct Held<'a> {
    // Field order matters: the mark is cleared while the lock is still held (cleared after
    // the release, it could erase the mark of the next holder).
    _borrow: Borrow<'a>,
    _lock: LockGuard<'a>,
}

/// Marks a synchronized object's data as borrowed by the current thread; clears it on drop.
pub(crate) struct Borrow<'a> {
    flag: &'a AtomicI32,
}

impl Borrow<'_> {
    /// The mark, which a condition wait clears while the lock is released and sets again
    /// once it is retaken (another thread of this process may borrow meanwhile).
    pub(crate) fn mark(&self) -> &AtomicI32 {
        self.flag
    }
}

impl Drop for Borrow<'_> {
    #[inline]
    fn drop(&mut self) {
        self.flag.store(0, Relaxed);
    }
}

impl<O: SharedObject, L: SharedLock> Synchronized<O, L> {
    /// Pairs `obj` with `lock`. The caller must make sure that this wrapper and its clones
    /// are the only handles of `obj` it made (a fresh object, or one checked by
    /// `into_object`). An object this process owns is recorded in its map of opened
    /// objects, so that a handle of it opened here (by a forked child, say) gives this
    /// handle, never a second one.
    ///
    /// # Errors
    /// [`Error::AlreadyOpen`] if this process has another live handle of the object's block
    /// (a view of an object that had the block before): it could write behind a guard.
    pub(crate) fn from_parts(obj: O, lock: L) -> Result<Self> {
        obj.record_if_owned(lock.lock_offset(Token), Token)?;
        Ok(Synchronized { obj, lock })
    }

    /// Pairs `obj`, this process's one handle of an object it opened (by name or by
    /// handle: already in its map of opened objects, and not owned here) or has just made
    /// with its own lock (`own_lock`: queued for that map by `opened::record_fresh`), with
    /// `lock`.
    pub(crate) fn from_opened(obj: O, lock: L) -> Self {
        Synchronized { obj, lock }
    }
}

impl<O, L> Synchronized<O, L> {
    /// The raw object, for the accessors that take the lock themselves.
    pub(crate) fn obj(&self) -> &O {
        &self.obj
    }

    /// The lock (ctypes' `get_lock()`).
    ///
    /// ```
    /// use shared_runtime::{Lock, Value};
    /// let lock = Lock::new()?;
    /// let v = Value::with_lock(1u8, lock.clone())?;
    /// assert!(v.getlock().same_as(&lock));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "get_lock")]
    pub fn getlock(&self) -> &L {
        &self.lock
    }
}

impl<O: SharedObject, L: SharedLock> Synchronized<O, L> {
    /// The process-local mark of the thread that has the data borrowed, shared by every
    /// clone of this wrapper (it lives in the object's allocation, which they share).
    fn mark(&self) -> &AtomicI32 {
        self.obj.borrow_mark(Token)
    }

    /// Splits into the raw object and the lock, if this is the last handle of the object
    /// in this process.
    ///
    /// The object made with its own lock (`Value::new`, `Array::zeroed`, ...) shares one
    /// arena block with that lock: the block lives until both parts are dropped, and the raw
    /// object cannot be handed over on its own (its `into_offset`/`into_handle` give
    /// [`Error::SharesBlock`]); it can be wrapped again, with any lock.
    ///
    /// # Errors
    /// [`Error::StillCloned`] if other clones of this wrapper (or of its raw object, made
    /// with `getobj().clone()`) are alive: the raw object would then sit beside a live
    /// wrapper whose guards expect to be the only way to the data.
    ///
    /// ```
    /// let v = shared_runtime::Value::new(5u16)?;
    /// let v2 = v.clone();
    /// assert!(v.clone().into_parts().is_err()); // `v` and `v2` are still alive
    /// drop(v2);
    /// let (raw, lock) = v.into_parts()?;
    /// assert_eq!(raw.get(), 5);
    /// # drop(lock);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn into_parts(self) -> Result<(O, L)> {
        self.obj.check_last_handle(Token)?;
        Ok((self.obj, self.lock))
    }

    /// The wrapped raw object (ctypes' `get_obj()`). Its accessors do not take the lock.
    ///
    /// # Panics
    /// If this thread holds a guard of this object (from `lock()`): the raw accessors
    /// would write behind the guard's reference. For the same reason every accessor of the
    /// raw object (and of any clone of it) panics on this thread while such a guard lives,
    /// even if the object was reached before the guard was taken. Other threads are not
    /// stopped: their raw accesses race with the guard (see the crate's safety notes).
    ///
    /// ```
    /// let v = shared_runtime::Value::new(3i32)?;
    /// assert_eq!(v.getobj().get(), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "get_obj")]
    #[track_caller]
    pub fn getobj(&self) -> &O {
        // The raw object's accessors ignore the lock: used while this thread holds a guard
        // of the same object, they would write behind the guard's reference.
        assert!(
            self.mark().load(Relaxed) != current_tid(),
            "getobj() while this thread holds a guard of the same object: use the guard"
        );
        &self.obj
    }

    /// Whether the lock is poisoned (see [`Lock::is_poisoned`](crate::Lock::is_poisoned)).
    /// `get`, `set` and `update` work on a poisoned object and leave the poison as it is;
    /// `lock()` reports it until [`clear_poison`](Self::clear_poison).
    ///
    /// ```
    /// let v = shared_runtime::Value::new(1u8)?;
    /// let _ = std::panic::catch_unwind(|| v.update(|_| panic!("half-way")));
    /// assert!(v.is_poisoned());
    /// assert_eq!(v.get(), 1); // still readable, and still poisoned
    /// assert!(v.is_poisoned());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.lock.is_poisoned()
    }

    /// Why the lock is poisoned, `None` if it is not (see
    /// [`Lock::poison`](crate::Lock::poison)).
    ///
    /// ```
    /// use shared_runtime::{PoisonCause, Value};
    /// let v = Value::new(1u8)?;
    /// let _ = std::panic::catch_unwind(|| v.update(|_| panic!("half-way")));
    /// assert_eq!(v.poison().unwrap().cause, PoisonCause::Panicked);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn poison(&self) -> Option<Poison> {
        self.lock.poison()
    }

    /// Clears the lock's poison, once the data has been checked or repaired (see
    /// [`Lock::clear_poison`](crate::Lock::clear_poison)). The lock may guard other objects
    /// too: it is their poison as well.
    ///
    /// ```
    /// let v = shared_runtime::Value::new(1u8)?;
    /// let _ = std::panic::catch_unwind(|| v.update(|_| panic!("half-way")));
    /// *v.lock().unwrap_err().into_inner() = 0; // repaired
    /// v.clear_poison();
    /// assert_eq!(*v.lock().unwrap(), 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn clear_poison(&self) {
        self.lock.clear_poison()
    }

    /// Takes the lock, ignoring poison (the convenience accessors report nothing and clear
    /// nothing; use `lock` to learn that a holder died), and marks the data borrowed by this
    /// thread.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn lock_and_borrow(&self) -> Held<'_> {
        self.assert_not_reentered();
        let lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let borrow = self.borrow(&lock);
        Held {
            _borrow: borrow,
            _lock: lock,
        }
    }

    /// Builds the guard `lock` returns, from the data's address.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn guard<T: ?Sized>(&self, data: *mut T) -> LockResult<SyncGuard<'_, T>> {
        let data = NonNull::new(data).expect("shared objects are never at address 0");
        self.assert_not_reentered();
        let (lock, poisoned) = match self.lock.lock() {
            Ok(g) => (g, false),
            Err(p) => (p.into_inner(), true),
        };
        let borrow = self.borrow(&lock);
        // SAFETY: the lock guard and the borrow mark are this object's, held by this thread,
        // and `data` (the caller passes the wrapped object's memory) lives as long as `self`.
        let guard = unsafe { SyncGuard::new(data, borrow, lock) };
        if poisoned {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// Panics if this thread has the data borrowed already: re-entry (through this wrapper
    /// or any clone of it: they share the mark). Called *before* taking the lock, so that
    /// the panic leaves the lock alone (a level taken and then dropped while unwinding
    /// would poison it). Valid without the lock: only this thread ever writes its own id
    /// into the mark, so reading our id there cannot be a stale or racing value.
    #[track_caller]
    #[inline]
    fn assert_not_reentered(&self) {
        // The thread's id is looked up only when some thread has the data borrowed (a mark
        // is never 0, the value of "nobody").
        let mark = self.mark().load(Relaxed);
        if mark != 0 && mark == current_tid() {
            reentered();
        }
    }

    /// Marks the data borrowed. Called with the lock held, after
    /// [`assert_not_reentered`](Self::assert_not_reentered), so only this thread of this
    /// process can be here and no mark of ours is set.
    #[inline]
    fn borrow(&self, held: &LockGuard<'_>) -> Borrow<'_> {
        let flag = self.mark();
        // The id the lock was taken with: the thread's own (`current_tid`), from the guard.
        debug_assert_eq!(held.tid(), current_tid());
        flag.store(held.tid(), Relaxed);
        Borrow { flag }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn reentered() -> ! {
    panic!(
        "this shared object is already borrowed by this thread (a guard from lock() or an \
         update() is in progress): use that guard instead of re-entering"
    )
}

/// Clones share one object and one lock: a cheap handle, as `RawValue`'s and `Lock`'s
/// clones are. Give one to a child process's closure.
///
/// ```
/// use shared_runtime::{Process, Value};
///
/// let n = Value::new(0u32)?;
/// let n2 = n.clone();
/// Process::start(move || n2.update(|v| *v += 1))?.join()?;
/// assert_eq!(n.get(), 1);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<O: Clone, L: Clone> Clone for Synchronized<O, L> {
    fn clone(&self) -> Self {
        Synchronized {
            obj: self.obj.clone(),
            lock: self.lock.clone(),
        }
    }
}

/// Shows the object only if its lock can be taken without waiting (as std's `Mutex` does):
/// `<locked>` while another thread or process holds it, `<borrowed by this thread>` while
/// this thread holds a guard of it. Never reads the data without the lock.
///
/// ```
/// let v = shared_runtime::Value::new(7u8)?;
/// assert!(format!("{v:?}").contains("RawValue(7)"));
/// let g = v.lock().unwrap();
/// assert!(format!("{v:?}").contains("<borrowed by this thread>"));
/// let v2 = v.clone();
/// let seen = std::thread::spawn(move || format!("{v2:?}")).join().unwrap();
/// assert!(seen.contains("<locked>"));
/// drop(g);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<O: SharedObject + fmt::Debug, L: SharedLock> fmt::Debug for Synchronized<O, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alternate = f.alternate();
        let mut d = f.debug_struct("Synchronized");
        if self.mark().load(Relaxed) == current_tid() {
            d.field("obj", &format_args!("<borrowed by this thread>"));
        } else {
            // Copied out under the lock, formatted after it is released (the formatter
            // writes to arbitrary code, which must not run under a process-shared lock).
            let shown = match self.lock.try_lock() {
                Ok(g) => Some(show(&self.obj, alternate, g)),
                Err(TryLockError::Poisoned(p)) => Some(show(&self.obj, alternate, p.into_inner())),
                Err(TryLockError::WouldBlock) => None,
            };
            match shown {
                Some(obj) => d.field("obj", &format_args!("{obj}")),
                None => d.field("obj", &format_args!("<locked>")),
            };
        }
        d.field("lock", &self.lock).finish()
    }
}

/// The `Debug` text of `obj`, made while `_held` keeps its lock (and released after).
fn show<O: fmt::Debug>(obj: &O, alternate: bool, _held: LockGuard<'_>) -> String {
    // The raw object's `Debug` reads without the borrow check: this thread holds the lock
    // and, as the caller checked, has no guard of the object, so nothing else touches it.
    if alternate {
        format!("{obj:#?}")
    } else {
        format!("{obj:?}")
    }
}
