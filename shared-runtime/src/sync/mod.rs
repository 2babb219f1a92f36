//! Process-shared locks and the synchronized wrappers: `Lock`, `RLock`, `Value`, `Array`;
//! and the synchronization objects: `Event`.

mod array;
mod event;
mod guard;
mod inspect;
mod lock;
mod lock_cell;
mod macros;
mod poison;
pub(crate) mod queue;
mod synchronized;
mod value;
mod wrap;

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
pub(crate) use synchronized::Token;
pub use synchronized::{Array, SharedObject, Synchronized, Value};
pub use wrap::{synchronized, IntoObject, LockArg};
