//! What a lock looks like from outside: its holder, depth and poison, for inspectors.

use crate::sync::poison::Poison;
use crate::sys::liveness::{thread_ended, FOREIGN, TID_MASK};

/// Whether the thread recorded as a lock's holder still runs.
///
/// ```
/// use shared_runtime::{HolderStatus, Lock};
/// let lock = Lock::new()?;
/// let _g = lock.lock()?;
/// assert_eq!(lock.state().holder.unwrap().status, HolderStatus::Alive);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HolderStatus {
    /// It runs (or ran a moment ago): no proof of its end was found.
    Alive,
    /// It provably ended: the next taker recovers the lock, poisoned.
    Dead,
    /// Nothing can be proven (a holder in another pid namespace).
    Unknown,
}

/// The thread that holds a lock.
///
/// ```
/// let lock = shared_runtime::RLock::new()?;
/// let _g = lock.lock()?;
/// let h = lock.state().holder.unwrap();
/// assert_eq!(h.pid, Some(std::process::id() as i32));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Holder {
    /// Its process id as the holder recorded it (`None` if not yet, or no longer, written).
    pub pid: Option<i32>,
    /// Its thread id, from the lock word.
    pub tid: i32,
    /// Whether it still runs.
    pub status: HolderStatus,
}

impl Holder {
    /// The holder a lock word's `identity` (non-zero) names, with the process id `pid` the
    /// holder recorded (0 or less: none); its status under the proof-of-death rules.
    pub(crate) fn of(identity: u64, pid: i32) -> Holder {
        Holder {
            pid: (pid > 0).then_some(pid),
            tid: (identity & TID_MASK) as i32,
            status: if identity & FOREIGN != 0 {
                HolderStatus::Unknown
            } else if thread_ended(identity) {
                HolderStatus::Dead
            } else {
                HolderStatus::Alive
            },
        }
    }
}

/// A snapshot of a lock, read atomically field by field (a lock in use may change between
/// two fields; nothing read is trusted beyond being shown).
///
/// ```
/// let lock = shared_runtime::Lock::new()?;
/// let s = lock.state();
/// assert!(s.holder.is_none() && s.depth == 0 && s.poison.is_none());
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LockState {
    /// Who holds it, `None` if it is free.
    pub holder: Option<Holder>,
    /// How many times the holder has taken it (more than 1 only for an `RLock`).
    pub depth: u32,
    /// Why it is poisoned, `None` if it is not.
    pub poison: Option<Poison>,
}
