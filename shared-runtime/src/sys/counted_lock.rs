//! The objects' robust lock: the lock word of [`futex`](crate::sys::futex) (the holder's
//! identity, 0 when free) beside a count of its sleepers, released with a plain store.
//!
//! Taking a free lock is one compare-and-swap, as for the allocator's lock. Releasing is
//! `store(0)` to the word, then a read of the sleeper count, and a `FUTEX_WAKE` only if it
//! is not 0: no locked read-modify-write, which halves the cost of an uncontended
//! lock-and-release. A waiter, before it sleeps, adds itself to the count and removes
//! itself when it wakes. The count is in another word than the lock word (the same cache
//! line), so the release cannot learn it from its store, as a swap would.
//!
//! # Why no wake-up is lost
//!
//! The danger is the classic store-buffer reordering: a CPU may perform the release's
//! load of the count before its store of 0 is visible to others (x86 does, from its store
//! buffer). Then a waiter may, in between, raise the count and read the word as still held
//! (the futex re-reads it in the kernel): the releaser reads the count as 0 and wakes
//! nobody, the waiter sleeps on a free lock. Ordering both sides with full barriers would
//! put a barrier on every release, which is what this protocol avoids. Instead the barrier
//! is asymmetric: the (rare, already slow) sleeping side pays for both.
//!
//! The waiter: (W1) add 1 to the count (a locked RMW: visible everywhere when it returns);
//! (W2) `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which returns only after every CPU
//! running a thread of a *registered* process executed a full memory barrier (a thread
//! not running at that time is past one already: a context switch is a full barrier);
//! (W3) `FUTEX_WAIT`, which sleeps only if the word still holds the holder it saw.
//! The releaser, in a registered process: (R1) store 0 to the word; (R2) load the count;
//! (R3) wake one if it is not 0. Its thread passes through a full barrier at some point
//! P during W2. Two cases, whichever P is:
//!
//! - R2 comes after P in the releaser's program order: W1 was visible before W2 began,
//!   hence before P, and the barrier at P orders R2 after it: R2 reads the raised count
//!   and R3 wakes the waiter (or a wake-up reaches the futex before the waiter sleeps:
//!   then W3 returns at once or finds the word changed).
//! - R2 comes before P: then so does R1 (program order), and the barrier at P makes the
//!   store of 0 visible everywhere before W2 returns. W3 reads the word after W2 returned,
//!   finds it changed (0, or another holder, who will release and see the count), and does
//!   not sleep on the old holder.
//!
//! So in both interleavings either the releaser wakes the waiter or the waiter does not
//! sleep. A releaser whose process is *not* registered (the kernel or a seccomp filter
//! refused, or a child that has not registered yet: registration is per address space, not
//! inherited by `fork`, reset by `exec`) puts a full fence between R1 and R2 itself: the
//! textbook Dekker pattern with W1's locked RMW on the other side. Which one a release
//! uses is [`renew_if_forked_plain_release`](crate::sys::process::renew_if_forked_plain_release).
//! A waiter whose own membarrier is refused has no point P to argue from, so against
//! registered releasers it cannot rule a lost wake-up out: it sleeps at most [`UNFENCED_NAP`] at a time instead (so a lost
//! wake-up costs it at most that long), and re-checks.
//!
//! The count counts sleepers only: a waiter joins it right before each sleep (and pays one
//! membarrier each time) and leaves it right after. Joining once per wait (one membarrier)
//! was tried and measured worse: waiters that spin between sleeps stay counted, so under
//! contention nearly every release made a needless `FUTEX_WAKE` (16 processes on 2 CPUs:
//! 2.5 to 4.8 times the robust pthread mutex, against 0.6 to 1.7 times per sleep).
//!
//! A release wakes one sleeper, and no more until that one takes the lock, sleeps again or
//! gives up ([`WOKEN`]); this is a policy for contention, not part of the argument above: a
//! release that skips its wake-up for it leaves a sleeper a wake-up in flight, or (if that
//! waiter is gone) at most a `POLL` of waiting.
//!
//! A waiter killed in its sleep leaves the count raised for good: every later release of
//! that lock makes one needless `FUTEX_WAKE` (about a microsecond), and stays correct.
//! Garbage written to the count by another process costs wake-ups, or a waiter a
//! [`POLL`](crate::sys::futex::POLL) of latency, never correctness: a sleeper wakes every
//! `POLL` anyway.

use std::sync::atomic::{
    compiler_fence, fence, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use std::time::{Duration, Instant};

use crate::sys::futex::{
    futex_wait, futex_wake_one, lock_slow, take_from_dead, Acquired, Protocol,
};
use crate::sys::liveness::thread_ended;
use crate::sys::membarrier::global_barrier;

/// In the sleeper word, above the count: a release woke a sleeper that has not yet taken
/// the lock, gone back to sleep or given up; later releases wake nobody meanwhile, so that
/// under heavy contention the lock passes between running threads instead of waking every
/// sleeper in turn (what the waiters bit of `FutexLock`, cleared by each release, did). A
/// woken waiter that never clears it (killed) costs the others at most a `POLL`: each
/// sleeper looks again then, and its next sleep clears it.
const WOKEN: u32 = 1 << 31;

/// The longest sleep of a waiter whose membarrier was refused (see the module doc).
pub(crate) const UNFENCED_NAP: Duration = Duration::from_millis(1);

/// A lock word and its sleeper count, both in shared memory (a `LockCell`'s fields).
#[derive(Clone, Copy)]
pub(crate) struct CountedLock<'a> {
    word: &'a AtomicU64,
    sleepers: &'a AtomicU32,
}

impl<'a> CountedLock<'a> {
    #[inline]
    pub(crate) fn new(word: &'a AtomicU64, sleepers: &'a AtomicU32) -> Self {
        CountedLock { word, sleepers }
    }

    /// The identity of the holder (0 if free).
    #[inline]
    pub(crate) fn holder(self) -> u64 {
        self.word.load(Relaxed)
    }

    /// Takes the lock for `me`, waiting until `deadline` (`None`: forever). `None` if the
    /// time ran out. The caller must not hold it already.
    #[inline]
    pub(crate) fn lock(self, me: u64, deadline: Option<Instant>) -> Option<Acquired> {
        if self.take(me).is_ok() {
            return Some(Acquired::Clean);
        }
        self.lock_slow(me, deadline)
    }

    /// Takes the lock for `me` if it is free (one compare-and-swap); otherwise the word as
    /// found, so that a caller can tell its own hold (a re-entry) from another's without a
    /// separate load on the fast path.
    #[inline]
    pub(crate) fn take(self, me: u64) -> Result<(), u64> {
        self.word
            .compare_exchange(0, me, Acquire, Relaxed)
            .map(drop)
    }

    /// The rest of [`lock`](Self::lock), after [`take`](Self::take) failed on a word that
    /// does not name `me`.
    #[cold]
    pub(crate) fn lock_slow(self, me: u64, deadline: Option<Instant>) -> Option<Acquired> {
        lock_slow(&self, me, deadline)
    }

    /// Takes the lock if it is free, or if its holder has died.
    #[inline]
    pub(crate) fn try_lock(self, me: u64) -> Option<Acquired> {
        match self.word.compare_exchange(0, me, Acquire, Relaxed) {
            Ok(_) => Some(Acquired::Clean),
            Err(cur) => take_from_dead(&self, cur, me, thread_ended),
        }
    }

    /// Releases the lock; `plain`: this process is registered for global membarriers
    /// (from [`renew_if_forked_plain_release`](crate::sys::process::renew_if_forked_plain_release)),
    /// so the store needs no fence before the count is read (see the module doc).
    ///
    /// # Safety
    /// The calling thread must hold it.
    #[inline]
    pub(crate) unsafe fn unlock(self, plain: bool) {
        self.word.store(0, Release);
        if plain {
            // Only the compiler must keep the load after the store; the CPU may reorder
            // them, which a sleeper's membarrier makes harmless.
            compiler_fence(SeqCst);
        } else {
            fence(SeqCst);
        }
        if self.sleepers.load(Relaxed) != 0 {
            self.wake();
        }
    }

    /// The release's wake-up, when the count is not 0: one sleeper, unless one woken
    /// earlier has not yet taken the lock or gone back to sleep (see [`WOKEN`]).
    #[cold]
    #[inline(never)]
    fn wake(self) {
        let seen = self.sleepers.load(Relaxed);
        if seen & !WOKEN == 0 || seen & WOKEN != 0 {
            return;
        }
        if self.sleepers.fetch_or(WOKEN, Relaxed) & WOKEN == 0 && !futex_wake_one(self.word) {
            // Nobody was asleep yet (a counted waiter on its way in): no wake-up is in
            // flight, and that waiter must be woken by the next release.
            self.sleepers.fetch_and(!WOKEN, Relaxed);
        }
    }
}

impl Protocol for CountedLock<'_> {
    #[inline]
    fn word(&self) -> &AtomicU64 {
        self.word
    }

    #[inline]
    fn holder_in(cur: u64) -> u64 {
        cur
    }

    #[inline]
    fn taken(me: u64, _: u64) -> u64 {
        me
    }

    fn sleep(&self, cur: u64, nap: Duration) -> bool {
        // W1: a locked RMW, visible to every CPU when it returns (SeqCst for the fenced
        // releasers' Dekker pairing).
        self.sleepers.fetch_add(1, SeqCst);
        // Going (back) to sleep ends a wake-up in flight, if this waiter was its target
        // (or not: then a release may wake one more than needed).
        self.sleepers.fetch_and(!WOKEN, SeqCst);
        // W2: a barrier on every CPU that runs a registered releaser.
        let nap = if global_barrier() {
            nap
        } else {
            nap.min(UNFENCED_NAP)
        };
        fence(SeqCst);
        // W3: the kernel compares the word (its low half) before sleeping.
        let timed_out = futex_wait(self.word, cur as u32, nap);
        self.sleepers.fetch_sub(1, Relaxed);
        #[cfg(feature = "test-hooks")]
        hooks::record(nap, timed_out);
        #[cfg(not(feature = "test-hooks"))]
        let _ = timed_out;
        true
    }

    fn pass_wake(&self) {
        self.sleepers.fetch_and(!WOKEN, SeqCst);
        if self.sleepers.load(SeqCst) != 0 {
            futex_wake_one(self.word);
        }
    }

    fn taken_after_sleep(&self) {
        self.sleepers.fetch_and(!WOKEN, Relaxed);
    }
}

/// Counts of this process's sleeps on object locks, for the lost-wake-up tests.
#[cfg(feature = "test-hooks")]
pub(crate) mod hooks {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Duration;

    use crate::sys::futex::POLL;

    static SLEEPS: AtomicU64 = AtomicU64::new(0);
    static LONG_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

    pub(super) fn record(nap: Duration, timed_out: bool) {
        SLEEPS.fetch_add(1, Relaxed);
        if timed_out && nap >= POLL / 2 {
            LONG_TIMEOUTS.fetch_add(1, Relaxed);
        }
    }

    /// How many times this process's threads slept on an object's lock, and how many of
    /// those sleeps, asked to last at least half a `POLL`, ended by their timeout rather
    /// than a wake-up: what a lost wake-up looks like (or a holder that kept the lock that
    /// long).
    pub fn lock_sleeps() -> (u64, u64) {
        (SLEEPS.load(Relaxed), LONG_TIMEOUTS.load(Relaxed))
    }
}
