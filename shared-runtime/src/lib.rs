//! # sharedctypes for Rust
//!
//! Typed values, arrays and `#[repr(C)]` structs allocated from shared memory, handed to
//! child processes, and guarded by process-shared locks: Python's
//! `multiprocessing.sharedctypes`, with layouts checked at compile time.
//!
//! ## A tour
//!
//! ```
//! use shared_runtime::{Array, CChar, Lock, Process, RawArray, RawValue, SharedStruct, Value};
//!
//! // A struct that can live in shared memory: #[repr(C)], Copy, shareable fields only.
//! // (A pointer, a `Vec` or a `bool` field would be a compile error saying what to use.)
//! #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct Sample {
//!     t: f64,
//!     value: i32,
//! }
//!
//! // Objects are allocated from a shared arena; forked children see the same memory.
//! let hits = Value::new(0u64)?;                    // guarded by its own RLock
//! let lock = Lock::new()?;                         // or share one lock between objects
//! let samples = Array::<Sample, Lock>::zeroed_with_lock(4, lock.clone())?;
//! let name = RawArray::<CChar>::zeroed(16)?;       // raw: no lock, racy but sound
//! let ratio = RawValue::new(0.5f64)?;
//!
//! // A scope lets children borrow; every child is joined before it returns.
//! Process::scope(|scope| {
//!     let mut workers = Vec::new();
//!     for w in 0..2 {
//!         let (hits, samples, name, ratio) = (&hits, &samples, &name, &ratio);
//!         workers.push(scope.start(move || {
//!             for i in (w..4).step_by(2) {
//!                 samples.update(i, |s| *s = Sample { t: i as f64 / 4.0, value: i as i32 });
//!                 hits.update(|h| *h += 1);         // one locked read-modify-write
//!             }
//!             if w == 0 {
//!                 name.set_value(b"worker 0").unwrap();
//!                 ratio.set(ratio.get() * 3.0);
//!             }
//!         })?);
//!     }
//!     workers.into_iter().try_for_each(|w| w.join()) // Err if a child panicked or died
//! })?;
//!
//! // Owned closures need no scope: move in a clone (shared objects are cheap handles),
//! // and get a value back from the child.
//! let r = ratio.clone();
//! let doubled = Process::start(move || r.get() * 2.0)?.join()?;
//! assert_eq!(doubled, 3.0);
//!
//! assert_eq!(hits.get(), 4);
//! assert_eq!(samples.get(3), Some(Sample { t: 0.75, value: 3 }));
//! {
//!     let all = samples.lock().unwrap();        // one lock for any amount of work
//!     assert_eq!(all.iter().map(|s| s.value).sum::<i32>(), 6);
//! }
//! assert_eq!(name.value(), b"worker 0");
//! assert_eq!(ratio.get(), 1.5);
//!
//! // Typecode macros, as in Python: array!('i', [9, 2, 8]) is an Array<i32>.
//! let a = shared_runtime::array!('i', [9, 2, 8])?;
//! assert_eq!(a.to_vec(), [9, 2, 8]);
//! # Ok::<(), shared_runtime::Error>(())
//! ```
//!
//! ## Which type do I want?
//!
//! | you have | use | Python's name |
//! | --- | --- | --- |
//! | one value, written by one process at a time or where a torn read is fine | [`RawValue<T>`]: `get`/`set`, no lock, copies with atomic instructions | `RawValue` |
//! | an array, same conditions | [`RawArray<T>`]: `get(i)`, `set(i, v)`, `read(range)`, `write(start, ..)` | `RawArray` |
//! | an integer counter or flag shared without a lock | a raw integer's atomics ([`AtomicInteger`]): `v.fetch_add(1, Relaxed)`, `a.compare_exchange(i, old, new, ..)` | (none: Python has no atomics) |
//! | one value updated by several processes | [`Value<T>`]: each `get`/`set`/`update` takes its lock once; `lock()` for a longer critical section | `Value` |
//! | an array updated by several processes | [`Array<T>`]: the same, indexed; `lock()` gives the whole slice | `Array` |
//! | several objects that must change together | one [`Lock`] (or [`RLock`], re-entrant) shared by them: `Value::with_lock`, `Array::from_slice_with_lock`, or a lock beside raw objects | `Lock`, `RLock` |
//! | a raw object that should get a lock after all | [`synchronized(obj, None)`](synchronized) (a fresh `RLock`) or `synchronized(obj, Some(lock))`: a [`Synchronized`] | `synchronized` |
//! | a `#[repr(C)]` struct in any of those | `#[derive(SharedStruct)]` on it: field accessors `p.x()`, `p.set_x(..)` | `Structure` |
//! | text in a fixed buffer | an array of [`CChar`] (`value()`, `set_value(..)`, `raw()`) or [`WChar`] | `c_char`/`c_wchar` arrays |
//! | a program that was not forked from yours (or Python) | a named arena ([`Arena::create_segment`]) or a [`Handle`](handle::Handle) to one object | `shared_memory` |
//! | a child process | [`Process::start`] (owned captures) or `Process::scope` (borrowing); `join()` reports how it ended | `Process` |
//!
//! Locks survive a crashed holder: if a process dies holding one (even by `SIGKILL`), the
//! next taker gets it inside a `PoisonError`, and every later `lock()` is told until
//! `clear_poison()` (`is_poisoned()` asks). Processes that did not fork from the creator
//! attach through named arenas, handles or an inherited descriptor
//! ([`Arena::create_segment`], [`Handle`](handle::Handle), [`Arena::share_with`]); see
//! [`guide::interop`].
//!
//! Less common names live in modules: [`place`] (typed locations inside shared objects, for
//! field-level access), [`layout`] (what a shared type looks like in memory), [`arena`]
//! (arena reports and constants), [`handle`] (objects named to other processes). The
//! [`guide`] holds the longer documents, [`guide::porting`] first for Python programmers.
//!
//! ## Safety model
//!
//! Memory another process can write is never handed out as a plain `&T` without the lock:
//! raw objects copy in and out with relaxed atomics (sound, possibly torn, like ctypes'
//! "potentially non-atomic" access); locked objects give references only while their lock
//! is held. See [`guide::safety`].

#![warn(missing_docs)]

pub mod arena;
mod error;
pub mod guide;
pub mod handle;
pub mod place;
mod process;
mod raw;
mod sync;
mod sys;
mod types;

pub use arena::Arena;
pub use error::{Error, Result};
pub use process::{Process, Scope, ScopedProcess, PANIC_EXIT_CODE};
pub use raw::{copy, copy_in, copy_slice, copy_slice_in, AtomicInteger, RawArray, RawValue};
pub use sync::{
    synchronized, Array, Barrier, BarrierWaitResult, Condition, Event, GenericLock, Holder,
    HolderStatus, HoldsLock, IntoObject, Lock, LockArg, LockGuard, LockState, NonReentrant, Poison,
    PoisonCause, PopError, PushError, Queue, RLock, Reentrancy, Reentrant, SharedLock,
    SharedObject, SyncGuard, Synchronized, Value, WaitTimeoutResult,
};
pub use sync::{
    Bounded, BoundedSemaphore, Boundedness, GenericSemaphore, Semaphore, SemaphoreGuard, Unbounded,
};
pub use types::{CChar, Plain, SharedType, WChar};

// The rarer names live in their modules; the crate's own code reaches them here too.
pub(crate) use place::{Held, Locked, Place, Unlocked};

/// Type layouts: what [`SharedType::LAYOUT`] says about a type (size, alignment, fields
/// and their primitive kinds), rendered as Python `ctypes` with
/// [`TypeLayout::to_ctypes`](crate::layout::TypeLayout::to_ctypes) and hashed into the fingerprint checked when another
/// process opens a named object or a handle.
///
/// ```
/// use shared_runtime::layout::{LayoutKind, Primitive};
/// use shared_runtime::SharedType;
///
/// let layout = <f64 as SharedType>::LAYOUT;
/// assert_eq!((layout.size, layout.align), (8, 8));
/// assert!(matches!(layout.kind, LayoutKind::Primitive(Primitive::F64)));
/// ```
pub mod layout {
    pub use crate::types::{FieldLayout, LayoutKind, LayoutName, Primitive, TypeLayout};
}

/// Re-exports of `shared_derive`'s generated code needs; not a public API.
///
/// Versioned with the expansion: a derive and a runtime that disagree about it fail to
/// compile (the derive is pinned to this runtime's exact version as well).
#[doc(hidden)]
pub mod __private_v1 {
    pub use crate::place::{project_field, HasPlace, Place};
    pub use crate::types::{
        FieldLayout, FieldType, LayoutKind, LayoutName, SharedType, TypeLayout,
    };
    pub use core::mem::{align_of, offset_of, size_of};
    pub use core::primitive::{bool, str, u64, usize};
}

/// Hooks for the crate's own fault-injection tests, built only with the `test-hooks`
/// feature: no program should call them.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod test_hooks {
    pub use crate::arena::crash::{
        crash_after_steps, end_failed_wake_for_tests, peek_for_tests, poke_for_tests,
        poke_slab_for_tests, set_slabs_for_tests,
    };
    pub use crate::arena::header::layout_for_tests;
    pub use crate::sync::queue::{set_queue_hook, QueueStep};
    pub use crate::sys::counted_lock::hooks::{lock_free_timeouts, lock_sleeps};
    pub use crate::sys::membarrier::refuse_for_tests as refuse_membarrier;
    pub use crate::sys::process::{force_fenced_release, releases_plain};
}

pub use shared_derive::SharedStruct;

/// The README's examples, run as doctests so that they cannot go stale.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
