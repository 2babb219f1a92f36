//! # sharedctypes for Rust
//!
//! Typed values, arrays and `#[repr(C)]` structs allocated from shared memory, handed to
//! child processes, and guarded by process-shared locks: Python's
//! `multiprocessing.sharedctypes`, with layouts checked at compile time.
//!
//! ## A tour
//!
//! ```
//! use shared_runtime::{CChar, Process, RawArray, RawValue};
//!
//! // Objects live in a shared arena; forked children see the same memory.
//! let counter = RawValue::new(0u64)?;
//! let samples = RawArray::<f64>::zeroed(3)?;
//! let name = RawArray::<CChar>::zeroed(16)?;
//!
//! let child = Process::start(|| {
//!     counter.set(41);
//!     samples.write(0, &[0.5, 1.5, 2.5]);
//!     name.set_value(b"from the child").unwrap();
//! })?;
//! child.join()?; // an error if the child panicked or was killed
//!
//! counter.set(counter.get() + 1);
//! assert_eq!(counter.get(), 42);
//! assert_eq!(samples.to_vec(), [0.5, 1.5, 2.5]);
//! assert_eq!(name.value(), b"from the child");
//!
//! // Typecode macros, as in Python: raw_array!('i', [9, 2, 8]) is RawArray<i32>.
//! let a = shared_runtime::raw_array!('i', [9, 2, 8])?;
//! assert_eq!(a.get(1), Some(2));
//! # Ok::<(), shared_runtime::Error>(())
//! ```
//!
//! ## Safety model
//!
//! Memory another process can write is never handed out as a plain `&T`: raw objects copy
//! in and out with relaxed atomics (sound, possibly torn, like ctypes' "potentially
//! non-atomic" access). See `docs/safety.md`.

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

pub use arena::{Arena, ArenaStats, HeapReport, ARENA_ENV, MAX_ALIGN};
pub use error::{Error, Result};
pub use handle::Handle;
pub use place::{Access, HasPlace, Held, Locked, Place, Unlocked};
pub use process::{Process, PANIC_EXIT_CODE};
pub use raw::{copy, copy_in, copy_slice, copy_slice_in, RawArray, RawValue};
pub use sync::{
    synchronized, Array, Lock, LockGuard, RLock, SharedLock, SharedObject, SyncGuard, Synchronized,
    Value,
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
