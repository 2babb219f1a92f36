//! `Semaphore` and `BoundedSemaphore`: process-shared counting semaphores, as Python's
//! `multiprocessing.Semaphore` and `BoundedSemaphore`, whose guard-held units come back
//! when their process dies.

mod guard;
mod holders;
mod units;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::arena::{Allocation, Arena, NamedObject, ObjectKind, Parts, Shape};
use crate::sync::Token;
use crate::{Error, Result};

pub use guard::SemaphoreGuard;
use holders::my_owner;
use units::Units;
pub(crate) use units::{BOUNDED_TAG, SEMAPHORE_TAG, STATE_BYTES};

mod sealed {
    pub trait Sealed {}
}

/// Whether a [`GenericSemaphore`] refuses releases past its initial value: the type
/// parameter that makes it a [`Semaphore`] ([`Unbounded`]) or a [`BoundedSemaphore`]
/// ([`Bounded`]). Sealed.
///
/// ```
/// use shared_runtime::{Bounded, Boundedness, Unbounded};
/// assert!(<Bounded as Boundedness>::BOUNDED && !<Unbounded as Boundedness>::BOUNDED);
/// ```
pub trait Boundedness: sealed::Sealed + Send + Sync + 'static {
    /// Whether releases past the initial value are refused.
    const BOUNDED: bool;
    /// The kind recorded for a named semaphore of this flavour.
    #[doc(hidden)]
    const KIND: ObjectKind;
}

/// The flavour of [`Semaphore`]: any number of releases (up to `u32::MAX` free units).
///
/// ```
/// let _: shared_runtime::GenericSemaphore<shared_runtime::Unbounded> =
///     shared_runtime::Semaphore::new(1)?;
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Unbounded;

/// The flavour of [`BoundedSemaphore`]: a release past the initial value is an error.
///
/// ```
/// let _: shared_runtime::GenericSemaphore<shared_runtime::Bounded> =
///     shared_runtime::BoundedSemaphore::new(1)?;
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Bounded;

impl sealed::Sealed for Unbounded {}
impl sealed::Sealed for Bounded {}
impl Boundedness for Unbounded {
    const BOUNDED: bool = false;
    const KIND: ObjectKind = ObjectKind::Semaphore;
}
impl Boundedness for Bounded {
    const BOUNDED: bool = true;
    const KIND: ObjectKind = ObjectKind::BoundedSemaphore;
}

/// A process-shared counting semaphore (Python's `multiprocessing.Semaphore`): a count of
/// free units that [`acquire`](GenericSemaphore::acquire) takes one from, waiting while
/// there is none, and [`release`](GenericSemaphore::release) gives one to. Anyone may
/// release, also a process that acquired nothing.
///
/// See [`GenericSemaphore`] for every method, and [`BoundedSemaphore`] for the flavour
/// that refuses releases past the initial value.
///
/// ```
/// use shared_runtime::{Process, Semaphore};
///
/// let s = Semaphore::new(0)?;
/// let s2 = s.clone();
/// let child = Process::start(move || s2.release().unwrap())?;
/// s.acquire(); // returns once the child has released
/// child.join()?;
/// assert_eq!(s.value(), 0);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub type Semaphore = GenericSemaphore<Unbounded>;

/// A process-shared semaphore whose value may never exceed its initial value (Python's
/// `multiprocessing.BoundedSemaphore`): a [`release`](GenericSemaphore::release) past it is
/// [`Error::SemaphoreOverflow`] and changes nothing.
///
/// ```
/// use shared_runtime::{BoundedSemaphore, Error};
///
/// let s = BoundedSemaphore::new(1)?;
/// assert!(matches!(s.release(), Err(Error::SemaphoreOverflow { bound: 1 })));
/// s.acquire();
/// s.release()?;
/// assert_eq!(s.value(), 1);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub type BoundedSemaphore = GenericSemaphore<Bounded>;

/// A process-shared counting semaphore: [`Semaphore`] or [`BoundedSemaphore`], told apart
/// by `B` (as [`GenericLock`](crate::GenericLock) is by its reentrancy).
///
/// It lives in a 144-byte block of an [`Arena`] (no file descriptor): its value, its bound,
/// a waiter count and a table of the processes holding units through guards. Clones name
/// the same semaphore, in this process and in forked children; it can be named
/// ([`Arena::create`], whose init is the initial value) and handed over
/// ([`handle`](Self::handle), [`open_handle`](Self::open_handle)). Waits are futex waits on
/// the value: a release between a waiter's check and its sleep is never lost.
///
/// # Two ways to hold a unit, and what a process's death does to them
/// - [`acquire`](Self::acquire), [`try_acquire`](Self::try_acquire),
///   [`acquire_timeout`](Self::acquire_timeout) take a unit as a bare count, as Python
///   does: any process may [`release`](Self::release) it. A process that dies holding such
///   units **loses them**, exactly as in Python (nobody can tell whose they were).
/// - [`access`](Self::access), [`try_access`](Self::try_access),
///   [`access_timeout`](Self::access_timeout) return a [`SemaphoreGuard`] that gives its
///   unit back on drop. Its unit is **recorded against the taking process** (its pid and
///   start time, so a reused pid is not mistaken for it). When that process is proven dead
///   (no such process, or a zombie, or a pid reused by a later process; "cannot tell"
///   counts as alive) its recorded units return to the value: a waiter does it every 50 ms
///   while it sleeps, and [`reclaim_dead`](Self::reclaim_dead) does it on demand.
///
/// A guard-held unit can still be lost in these windows: the process is killed between
/// taking the unit and recording it, or between erasing its record and giving it back
/// (each a few instructions); a reclaimer is killed between clearing a dead holder's entry
/// and adding its units back; the table of 16 holder processes is full of live ones
/// (further guards' units go unrecorded, [`SemaphoreGuard::is_recorded`] says so); the
/// process lives in another pid namespace than the arena's creator, or cannot read its pid
/// namespace at that moment (nobody could prove it dead). A waiter woken for a released
/// unit and killed before it takes it costs the other waiters at most 50 ms: the unit
/// stays free, and they look again after each such sleep. A unit is
/// never returned twice, and never while its holder lives: the entry's owner and count
/// change together in one atomic instruction, which the reclaimer's matches only if
/// nothing changed since its proof.
///
/// Garbage written into the block by another process gives wrong counts (or a value
/// capped at `u32::MAX` or the bound), never undefined behaviour or a wait that does not
/// wake at its timeout.
///
/// ```
/// use shared_runtime::{Process, RawValue, Semaphore};
/// use std::sync::atomic::Ordering::SeqCst;
///
/// // At most two processes inside at once.
/// let slots = Semaphore::new(2)?;
/// let (inside, most) = (RawValue::new(0u32)?, RawValue::new(0u32)?);
/// Process::scope(|s| {
///     for _ in 0..4 {
///         s.start(|| {
///             let _slot = slots.access();
///             let now = inside.fetch_add(1, SeqCst) + 1;
///             most.fetch_max(now, SeqCst);
///             inside.fetch_sub(1, SeqCst);
///         })?;
///     }
///     Ok::<(), shared_runtime::Error>(())
/// })?;
/// assert!(most.get() <= 2);
/// assert_eq!(slots.value(), 2);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct GenericSemaphore<B: Boundedness> {
    units: Units,
    _flavour: PhantomData<fn() -> B>,
}

impl<B: Boundedness> Clone for GenericSemaphore<B> {
    fn clone(&self) -> Self {
        GenericSemaphore {
            units: self.units.clone(),
            _flavour: PhantomData,
        }
    }
}

impl<B: Boundedness> GenericSemaphore<B> {
    /// A new semaphore with `value` free units (for a [`BoundedSemaphore`], also its bound)
    /// in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the arena is full, or the errors of
    /// [`Arena::try_global`].
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(3)?;
    /// assert_eq!(s.value(), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<Self> {
        Self::new_in(Arena::try_global()?, value)
    }

    /// A new semaphore with `value` free units in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the arena is full.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let s = shared_runtime::BoundedSemaphore::new_in(&arena, 2)?;
    /// assert_eq!((s.value(), s.bound()), (2, 2));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new_in(arena: &Arena, value: u32) -> Result<Self> {
        let alloc = arena.alloc_tagged(STATE_BYTES as usize, 8, <Self as NamedObject>::KIND)?;
        // SAFETY: a fresh block of STATE_BYTES bytes, 8-aligned, that no one else knows.
        unsafe { Units::init(alloc.ptr(), value, B::BOUNDED) };
        Ok(Self::from_alloc(Arc::new(alloc)))
    }

    /// The semaphore whose block starts `alloc` (a named or handed-over one's).
    pub(crate) fn from_alloc(alloc: Arc<Allocation>) -> Self {
        GenericSemaphore {
            units: Units::new(alloc, B::BOUNDED),
            _flavour: PhantomData,
        }
    }

    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        self.units.allocation()
    }

    /// Whether the block is tagged as this flavour's (a block of the other flavour, of
    /// another object, or zeroed is not).
    pub(crate) fn tagged_as_mine(&self) -> bool {
        self.units.tag()
            == if B::BOUNDED {
                BOUNDED_TAG
            } else {
                SEMAPHORE_TAG
            }
    }

    /// The arena the semaphore lives in.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let s = shared_runtime::Semaphore::new_in(&arena, 1)?;
    /// assert_eq!(s.arena().id(), arena.id());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn arena(&self) -> &Arena {
        self.units.arena()
    }

    /// The number of free units now (Python's `get_value()`). Another process may change
    /// it at any moment.
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(2)?;
    /// s.acquire();
    /// assert_eq!(s.value(), 1);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn value(&self) -> u32 {
        self.units.value()
    }

    /// Takes a unit, waiting as long as it takes for one (Python's `acquire()`). The unit
    /// is a bare count: lost if this process dies without releasing it (use
    /// [`access`](Self::access) to have it returned).
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(1)?;
    /// s.acquire();
    /// assert!(!s.try_acquire());
    /// s.release()?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn acquire(&self) {
        self.units.take_until(None);
    }

    /// Takes a unit if one is free now, without waiting (Python's `acquire(False)`):
    /// whether it did. It does not look for dead holders' units
    /// ([`reclaim_dead`](Self::reclaim_dead) does).
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(1)?;
    /// assert!(s.try_acquire());
    /// assert!(!s.try_acquire());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn try_acquire(&self) -> bool {
        self.units.try_take()
    }

    /// Takes a unit, waiting at most `timeout` (on the monotonic clock) for one (Python's
    /// `acquire(timeout=...)`): whether it did. A zero timeout only tries.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = shared_runtime::Semaphore::new(1)?;
    /// assert!(s.acquire_timeout(Duration::from_millis(1)));
    /// assert!(!s.acquire_timeout(Duration::from_millis(1)));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        // A timeout too long for the clock is no timeout.
        self.units.take_until(Instant::now().checked_add(timeout))
    }

    /// Gives a unit back and wakes a waiter (Python's `release()`). Any process may
    /// release, whether or not it acquired.
    ///
    /// # Errors
    /// [`Error::SemaphoreOverflow`], the value unchanged, if the value would exceed the
    /// bound of a [`BoundedSemaphore`] (Python's `ValueError`), or `u32::MAX` units for a
    /// [`Semaphore`] (Python's `OverflowError`).
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(0)?;
    /// s.release()?;
    /// s.release()?;
    /// assert_eq!(s.value(), 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.units
            .give()
            .map_err(|bound| Error::SemaphoreOverflow { bound })
    }

    /// Takes a unit as [`acquire`](Self::acquire) does, recorded against this process and
    /// guarded: the guard gives it back when dropped, and the unit comes back by itself if
    /// this process dies holding it (see [`SemaphoreGuard`]).
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(1)?;
    /// {
    ///     let _unit = s.access();
    ///     assert_eq!(s.value(), 0);
    /// }
    /// assert_eq!(s.value(), 1);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn access(&self) -> SemaphoreGuard<'_> {
        self.units.take_until(None);
        SemaphoreGuard::record(&self.units, my_owner(self.arena()))
    }

    /// [`access`](Self::access) if a unit is free now, `None` otherwise.
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(1)?;
    /// let held = s.try_access();
    /// assert!(held.is_some());
    /// assert!(s.try_access().is_none());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn try_access(&self) -> Option<SemaphoreGuard<'_>> {
        self.units
            .try_take()
            .then(|| SemaphoreGuard::record(&self.units, my_owner(self.arena())))
    }

    /// [`access`](Self::access), waiting at most `timeout` for a unit; `None` on timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = shared_runtime::Semaphore::new(1)?;
    /// let held = s.access_timeout(Duration::from_millis(1));
    /// assert!(held.is_some());
    /// assert!(s.access_timeout(Duration::from_millis(1)).is_none());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn access_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.units
            .take_until(Instant::now().checked_add(timeout))
            .then(|| SemaphoreGuard::record(&self.units, my_owner(self.arena())))
    }

    /// Returns to the value the units recorded against holder processes that are proven
    /// dead (up to the bound of a [`BoundedSemaphore`]), and wakes waiters: how many came
    /// back. Waiters do this
    /// by themselves every 50 ms; call it before [`try_acquire`](Self::try_acquire) to
    /// count the dead's units without waiting. Units taken with `acquire` are never
    /// recorded, so never come back this way.
    ///
    /// ```
    /// use shared_runtime::{Process, Semaphore};
    /// let s = Semaphore::new(1)?;
    /// let s2 = s.clone();
    /// Process::start(move || std::mem::forget(s2.access()))?.join()?;
    /// assert_eq!(s.value(), 0); // the child ended holding it
    /// assert_eq!(s.reclaim_dead(), 1);
    /// assert_eq!(s.value(), 1);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn reclaim_dead(&self) -> u32 {
        self.units.reclaim_dead()
    }
}

impl BoundedSemaphore {
    /// The bound: the initial value, which releases may not exceed (as read when this
    /// handle was made).
    ///
    /// ```
    /// let s = shared_runtime::BoundedSemaphore::new(4)?;
    /// assert_eq!(s.bound(), 4);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn bound(&self) -> u32 {
        self.units.cap()
    }
}

impl<B: Boundedness> fmt::Debug for GenericSemaphore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if B::BOUNDED {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        };
        let mut d = f.debug_struct(name);
        d.field("value", &self.units.value());
        if B::BOUNDED {
            d.field("bound", &self.units.cap());
        }
        d.field("held_by_guards", &self.units.recorded()).finish()
    }
}

impl<B: Boundedness> NamedObject for GenericSemaphore<B> {
    type Init<'a> = u32;
    const KIND: ObjectKind = B::KIND;
    const STATE_BYTES: u64 = STATE_BYTES;
    fn shape(_: Option<&u32>, _: Token) -> Shape {
        Shape {
            layout: None,
            len: Some(1),
        }
    }
    unsafe fn init(init: &u32, data: *mut u8, _: Token) {
        // SAFETY: the caller passes the data of a fresh block of STATE_BYTES bytes
        // (`Self::STATE_BYTES`, no layout), 8-aligned, not yet visible to anyone.
        unsafe { Units::init(data, *init, B::BOUNDED) }
    }
    fn build(parts: Parts, _: Token) -> Self {
        Self::from_alloc(parts.data)
    }
}
