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
//! let workers: Vec<Process> = (0..2)
//!     .map(|w| {
//!         let (hits, samples, name, ratio) = (&hits, &samples, &name, &ratio);
//!         Process::start(move || {
//!             for i in (w..4).step_by(2) {
//!                 samples.update(i, |s| *s = Sample { t: i as f64 / 4.0, value: i as i32 });
//!                 hits.update(|h| *h += 1);         // one locked read-modify-write
//!             }
//!             if w == 0 {
//!                 name.set_value(b"worker 0").unwrap();
//!                 ratio.set(ratio.get() * 3.0);
//!             }
//!         })
//!     })
//!     .collect::<Result<_, _>>()?;
//! for w in workers {
//!     w.join()?;                                   // an error if a child panicked or died
//! }
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
//! Locks survive a crashed holder: if a process dies holding one (even by `SIGKILL`), the
//! next acquirer gets it inside a `PoisonError`, and every later one until `clear_poison()`. Processes that did not fork from the
//! creator attach through named arenas, handles or an inherited descriptor
//! ([`Arena::create_named`], [`Handle`], [`Arena::share_with`]); see `docs/interop.md`.
//!
//! ## Safety model
//!
//! Memory another process can write is never handed out as a plain `&T` without the lock:
//! raw objects copy in and out with relaxed atomics (sound, possibly torn, like ctypes'
//! "potentially non-atomic" access); locked objects give references only while their lock
//! is held. See `docs/safety.md`.

#![warn(missing_docs)]

mod arena;
mod error;
mod handle;
mod place;
mod process;
mod raw;
mod sync;
mod sys;
mod types;

pub use arena::{Arena, ArenaStats, HeapReport, Reclaimed, ARENA_ENV, MAX_ALIGN};
pub use error::{Error, Result};
pub use handle::Handle;
pub use place::{Access, HasPlace, Held, Locked, Place, Unlocked};
pub use process::{Process, PANIC_EXIT_CODE};
pub use raw::{copy, copy_in, copy_slice, copy_slice_in, RawArray, RawValue};
pub use sync::{
    synchronized, Array, GenericLock, HoldsLock, IntoObject, Lock, LockArg, LockGuard,
    NonReentrant, Poison, PoisonCause, RLock, Reentrancy, Reentrant, SharedLock, SharedObject,
    SyncGuard, Synchronized, Value,
};
pub use types::{CChar, FieldLayout, LayoutKind, Primitive, SharedType, TypeLayout, WChar};

/// Re-exports of `shared_derive`'s generated code needs; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::arena::crash::crash_after_steps;
    pub use crate::arena::header::layout_for_tests;
    pub use crate::place::{HasPlace, Place};
    pub use crate::types::{FieldLayout, LayoutKind, SharedType, TypeLayout};
    pub use core::mem::{align_of, offset_of, size_of};
    pub use core::primitive::{bool, str, u64, usize};
}

pub use shared_derive::SharedStruct;

/// The README's examples, run as doctests so that they cannot go stale.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
