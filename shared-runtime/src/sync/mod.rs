//! Process-shared locks and the synchronized wrappers: `Lock`, `RLock`, `Value`, `Array`.

mod array;
mod guard;
mod lock;
mod lock_cell;
mod macros;
mod synchronized;
mod value;

pub use guard::SyncGuard;
pub use lock::{Lock, LockGuard, RLock, SharedLock};
pub use synchronized::{synchronized, Array, SharedObject, Synchronized, Value};
