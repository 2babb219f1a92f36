//! How long an operation may wait, and one bounded sleep on a sequence word.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::sys::futex::POLL;
use crate::sys::futex_word::wait_while_equal;

/// How long a push or pop may wait for room or for an item.
#[derive(Clone, Copy)]
pub(super) enum Patience {
    /// Not at all (`try_push`, `try_pop`); the lock is still waited for, as briefly as its
    /// holder keeps it.
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

    /// The deadline of the lock's wait.
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
