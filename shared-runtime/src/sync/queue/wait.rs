//! How long an operation may wait, and one bounded sleep on a sequence word.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::sys::futex::POLL;
use crate::sys::futex_word::wait_while_equal;

/// How long the `try_` forms wait for the queue's lock: its holder keeps it for one copy,
/// so a lock still busy after this is held by a stopped, slow or unprovably dead process,
/// and the call says `Full`/`Empty` rather than wait on it (Python's `get(block=False)`
/// says `Empty` when its lock is busy).
pub(super) const TRY_LOCK_WAIT: Duration = Duration::from_millis(1);

/// How long [`close`](super::Queue::close) waits for the lock before closing without it.
pub(super) const CLOSE_LOCK_WAIT: Duration = POLL;

/// A short `wait` from now (now itself, should the clock overflow: always bounded).
pub(super) fn soon(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait).unwrap_or(now)
}

/// How long a push or pop may wait.
#[derive(Clone, Copy)]
pub(super) enum Patience {
    /// Not for room or items (`try_push`, `try_pop`), and at most [`TRY_LOCK_WAIT`] for
    /// the lock.
    Never,
    /// Until this instant (`push_timeout`, `pop_timeout`), the lock included.
    Until(Instant),
    /// As long as it takes (`push`, `pop`).
    Forever,
}

impl Patience {
    /// `timeout` from now; one too long for the clock is no timeout.
    pub(super) fn after(timeout: Duration) -> Self {
        Instant::now()
            .checked_add(timeout)
            .map_or(Patience::Forever, Patience::Until)
    }

    /// The deadline of the lock's wait (computed afresh at every attempt).
    pub(super) fn lock_deadline(self) -> Option<Instant> {
        match self {
            Patience::Never => Some(soon(TRY_LOCK_WAIT)),
            Patience::Until(d) => Some(d),
            Patience::Forever => None,
        }
    }

    /// The deadline of a sleep for room or an item.
    pub(super) fn deadline(self) -> Option<Instant> {
        match self {
            Patience::Until(d) => Some(d),
            Patience::Never | Patience::Forever => None,
        }
    }

    /// Whether the caller must stop waiting now.
    pub(super) fn is_over(self) -> bool {
        match self {
            Patience::Never => true,
            Patience::Until(d) => Instant::now() >= d,
            Patience::Forever => false,
        }
    }
}

/// Sleeps while `word` holds `seen`, at most [`POLL`] and at most until `deadline`, then
/// uncounts the caller from `waiters` (counted under the lock by the caller). The bound is
/// what keeps a waiter going when the process that should have woken it died between
/// its change and its wake-up: the caller re-takes the (robust) lock and looks again.
pub(super) fn nap(word: &AtomicU32, seen: u32, waiters: &AtomicU32, deadline: Option<Instant>) {
    let nap = match deadline {
        Some(d) => POLL.min(d.saturating_duration_since(Instant::now())),
        None => POLL,
    };
    if !nap.is_zero() {
        wait_while_equal(word, seen, Some(nap));
    }
    // Saturating: a count another process zeroed must not wrap to "everyone sleeps".
    let _ = waiters.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
}
