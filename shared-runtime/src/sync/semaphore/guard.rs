//! `SemaphoreGuard`: a unit of a semaphore, recorded against the process that took it and
//! given back on drop.

use std::fmt;

use crate::sync::semaphore::units::Units;
use crate::sys::process::process_key;

/// One unit of a [`Semaphore`](crate::Semaphore) or
/// [`BoundedSemaphore`](crate::BoundedSemaphore), taken by
/// [`access`](crate::GenericSemaphore::access) (or `try_access`, `access_timeout`) and given
/// back when the guard is dropped: Python's `with semaphore:`.
///
/// The unit is recorded against the process that took it, so that if that process dies
/// (killed, say) while holding it, the unit returns to the semaphore once the death is
/// proven: waiters look every 50 ms, and
/// [`reclaim_dead`](crate::GenericSemaphore::reclaim_dead) does it on demand. The guard
/// belongs to that process: a forked child's copy of it (a closure moved into
/// [`Process::start`](crate::Process::start) is one) gives nothing back when dropped there;
/// the parent's does. [`mem::forget`](std::mem::forget) keeps the unit taken, recorded, until
/// the process ends; then it is returned like a dead holder's. So does `exec`: the new
/// program is the same process, and its units come back when it ends.
///
/// A guard can be sent to another thread of the process and dropped there.
///
/// ```
/// let slots = shared_runtime::Semaphore::new(2)?;
/// {
///     let _a = slots.access();
///     let _b = slots.access();
///     assert_eq!(slots.value(), 0);
///     assert!(slots.try_access().is_none());
/// } // both units given back
/// assert_eq!(slots.value(), 2);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[must_use = "the unit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    units: &'a Units,
    /// The owner the unit is recorded against, 0 if it is not recorded.
    owner: u64,
    /// The `process_key` of the process that took the unit.
    key: u64,
}

impl<'a> SemaphoreGuard<'a> {
    /// Records the unit just taken from `units` against this process (if it can be) and
    /// guards it.
    pub(crate) fn record(units: &'a Units, owner: Option<u64>) -> Self {
        let owner = owner.filter(|&o| units.record(o)).unwrap_or(0);
        SemaphoreGuard {
            units,
            owner,
            key: process_key(),
        }
    }

    /// Whether the unit is recorded against this process, so that its death would give it
    /// back. `false` only when the semaphore's table of 16 holder processes was full of
    /// live ones (dead holders' entries are reclaimed first), or this process cannot be
    /// told apart from others in the arena (another pid namespace, or one it cannot read
    /// now; a `vfork` child).
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(1)?;
    /// assert!(s.access().is_recorded());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_recorded(&self) -> bool {
        self.owner != 0
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        if process_key() != self.key {
            // A forked child's copy: the unit is the parent's.
            return;
        }
        // The record goes first: a process killed between the two loses the unit (it is
        // neither recorded nor free), whereas the other order could return it twice.
        if self.owner != 0 {
            self.units.unrecord(self.owner);
        }
        // Past the cap only if someone else released it already (a bounded semaphore's
        // `release` by another process, or a reclaim): then it is not given twice.
        let _ = self.units.give();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard")
            .field("recorded", &self.is_recorded())
            .finish()
    }
}
