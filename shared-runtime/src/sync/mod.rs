//! Process-shared locks and the synchronized wrappers: `Lock`, `RLock`, `Value`, `Array`.

mod array;
mod guard;
mod inspect;
mod lock;
mod lock_cell;
mod macros;
mod poison;
mod synchronized;
mod value;
mod wrap;

pub use guard::SyncGuard;
pub use lock::{
    GenericLock, Lock, LockGuard, NonReentrant, RLock, Reentrancy, Reentrant, SharedLock,
};
pub use inspect::{Holder, HolderStatus, LockState};
pub(crate) use lock_cell::lock_state_at;
pub use poison::{HoldsLock, Poison, PoisonCause};
pub use synchronized::{Array, SharedObject, Synchronized, Value};
pub use wrap::{synchronized, IntoObject, LockArg};
pub(crate) use synchronized::Token;
pub(crate) use lock_cell::LockCore;
