//! Process-shared locks and the synchronized wrappers: `Lock`, `RLock`, `Value`, `Array`;
//! and the synchronization objects: `Event`, `Condition`, `Semaphore`, `BoundedSemaphore`,
//! `Barrier`, `Queue`.

mod array;
pub(crate) mod barrier;
mod condition;
mod event;
mod guard;
mod inspect;
mod lock;
mod lock_cell;
mod macros;
mod own_lock;
mod poison;
pub(crate) mod queue;
mod semaphore;
mod synchronized;
mod value;
mod wrap;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condition::{Condition, WaitTimeoutResult};
pub use event::Event;
pub use guard::SyncGuard;
pub use inspect::{Holder, HolderStatus, LockState};
pub use lock::{
    GenericLock, Lock, LockGuard, NonReentrant, RLock, Reentrancy, Reentrant, SharedLock,
};
pub(crate) use lock_cell::lock_state_at;
pub(crate) use lock_cell::LockCore;
pub use poison::{HoldsLock, Poison, PoisonCause};
pub use queue::{PopError, PushError, Queue};
pub(crate) use semaphore::STATE_BYTES as SEMAPHORE_BYTES;
pub use semaphore::{
    Bounded, BoundedSemaphore, Boundedness, GenericSemaphore, Semaphore, SemaphoreGuard, Unbounded,
};
pub(crate) use synchronized::Token;
pub use synchronized::{Array, SharedObject, Synchronized, Value};
pub use wrap::{synchronized, IntoObject, LockArg};
