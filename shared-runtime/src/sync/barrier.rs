//! `Barrier`: a process-shared barrier for a fixed number of parties, as Python's
//! `threading.Barrier` / `multiprocessing.Barrier`.

use std::fmt;
use std::sync::atomic::{
    AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

use crate::arena::{Allocation, Arena, ObjectKind, LOCK_CELL};
use crate::sync::{Lock, LockCore, LockGuard};
use crate::sys::futex::POLL;
use crate::sys::futex_word::{wait_while_equal, wake_all, Nap};
use crate::{Error, Result};

/// Bit 31 of the round word: the barrier is broken.
const BROKEN: u32 = 1 << 31;
/// Bits 0..31 of the round word: the round number (wrapping).
const ROUND: u32 = !BROKEN;
/// Bytes of a barrier's block: its lock cell, then [`BarrierState`].
pub(crate) const BARRIER_BYTES: u64 = LOCK_CELL + 16;

/// The shared state after the lock cell. `count`, `round` and `history` change only with
/// the lock held; waiters read `round` (their futex word) and `history` without it.
#[repr(C)]
struct BarrierState {
    /// The number of parties, written at creation; each process checks it once, when it
    /// makes or opens the barrier, and keeps its own copy.
    parties: AtomicU32,
    /// How many parties wait in the current round.
    count: AtomicU32,
    /// The round number, plus [`BROKEN`].
    round: AtomicU32,
    /// Bit `r % 32` says how round `r` ended: 1 released (every party arrived), 0 broken
    /// or reset. A waiter that wakes to find the round advanced reads its round's bit.
    history: AtomicU32,
}

/// A process-shared barrier (Python's `threading.Barrier`, as `multiprocessing.Barrier`
/// gives it): `parties` processes (or threads) each call [`wait`](Self::wait), and all are
/// released together when the last arrives; then the barrier is ready for the next round.
///
/// It is 40 bytes of an [`Arena`]: a robust lock cell and four 32-bit words. Clones name
/// the same barrier, in this process and in forked children; it can be named
/// (`arena.create::<Barrier>(name, parties)`, [`Arena::open`]) and handed over by
/// [`handle`](Self::handle).
///
/// As in Python, the barrier can be **broken**: by [`abort`](Self::abort), by a
/// [`wait_timeout`](Self::wait_timeout) that runs out, or by [`reset`](Self::reset) while
/// parties wait. Waiters then get [`Error::BrokenBarrier`], and so does every `wait` until
/// `reset`. Python's barrier action is not offered: the party for which
/// [`is_leader`](BarrierWaitResult::is_leader) is true can run it.
///
/// **Dead parties.** A party that dies before arriving never arrives. An untimed
/// [`wait`](Self::wait) *trusts the parties*: the others wait for it for ever (as Python's
/// would). [`wait_timeout`](Self::wait_timeout) is the robust form: when its time runs out
/// it breaks the barrier, so every other waiter gets `BrokenBarrier` at once. A party that
/// dies inside the barrier's short critical section (its lock held) leaves the count
/// unknown; the next process to take the lock — a waiter notices the dead holder within
/// 50 ms — breaks the barrier rather than guess, and `reset` makes it usable again.
///
/// **Polling, and its cost**: every sleeping waiter wakes every 50 ms (the crate's `POLL`)
/// to check whether the barrier's lock holder has died (a futex wait is not woken by a
/// death): a system call and a liveness probe, about 20 per second per waiter, back to
/// sleep at once if all is well. A waiter in another pid namespace than the arena's cannot
/// prove a holder dead, so there only [`wait_timeout`](Self::wait_timeout) ends.
///
/// A waiter that sleeps through 32 further rounds (possible only when more processes than
/// `parties` use the barrier) cannot tell how its own round ended any more, and gets
/// `BrokenBarrier`.
///
/// ```
/// use shared_runtime::{Barrier, Process};
///
/// let b = Barrier::new(3)?;
/// let children: Vec<_> = (0..2)
///     .map(|_| {
///         let b = b.clone();
///         Process::start(move || u32::from(b.wait().unwrap().is_leader()))
///     })
///     .collect::<Result<_, _>>()?;
/// let mut leaders = u32::from(b.wait()?.is_leader());
/// for c in children {
///     leaders += c.join()?;
/// }
/// assert_eq!(leaders, 1); // exactly one leader per round
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    alloc: Arc<Allocation>,
    /// The lock cell at the start of the block.
    lock: Lock,
    /// This process's checked copy of the party count.
    parties: u32,
}

/// What [`Barrier::wait`] returns: the arrival index and whether this party is the leader.
///
/// ```
/// let b = shared_runtime::Barrier::new(1)?;
/// let r = b.wait()?;
/// assert!(r.is_leader() && r.index() == 0);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BarrierWaitResult {
    index: usize,
    leader: bool,
}

impl BarrierWaitResult {
    /// Whether this party was the leader of its round: the last to arrive, the one whose
    /// arrival released the others (std's `is_leader`; Python runs the barrier's action in
    /// this party). Exactly one party of each released round is the leader.
    ///
    /// ```
    /// let b = shared_runtime::Barrier::new(1)?;
    /// assert!(b.wait()?.is_leader());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The arrival index, `0` for the first party of the round to arrive up to
    /// `parties - 1` for the leader: what Python's `wait()` returns, different for each
    /// party of a round.
    ///
    /// ```
    /// let b = shared_runtime::Barrier::new(1)?;
    /// assert_eq!(b.wait()?.index(), 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Barrier {
    /// The largest number of parties a barrier can have.
    pub const MAX_PARTIES: usize = 1 << 30;

    /// A new barrier for `parties` parties in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidParties`] for 0 parties or more than
    /// [`MAX_PARTIES`](Self::MAX_PARTIES); [`Error::OutOfMemory`] if the arena is full; the
    /// errors of [`Arena::try_global`]; [`Error::ThreadIdentity`] as for
    /// [`Lock::new`](crate::Lock::new).
    ///
    /// ```
    /// use shared_runtime::{Barrier, Error};
    /// assert_eq!(Barrier::new(4)?.parties(), 4);
    /// assert!(matches!(Barrier::new(0), Err(Error::InvalidParties { parties: 0 })));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new(parties: usize) -> Result<Self> {
        Self::new_in(Arena::try_global()?, parties)
    }

    /// A new barrier for `parties` parties in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let b = shared_runtime::Barrier::new_in(&arena, 2)?;
    /// assert_eq!(b.arena().id(), arena.id());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new_in(arena: &Arena, parties: usize) -> Result<Self> {
        let parties = check_parties(parties)?;
        // Its lock will be taken by this thread: say now if it cannot be identified.
        arena.lock_identity()?;
        let alloc = arena.alloc_tagged(BARRIER_BYTES as usize, 8, ObjectKind::Barrier)?;
        // SAFETY: a fresh, zeroed block of BARRIER_BYTES, 8-aligned: a free lock cell, then
        // the state, of which the party count is written here, before anyone can see it.
        unsafe { write_parties(alloc.ptr(), parties) };
        Ok(Barrier::from_alloc(Arc::new(alloc)))
    }

    /// The barrier whose block is `alloc`, with the party count found there (a count out
    /// of range is clamped: callers check it first with [`stored_parties`]; one changed by
    /// a foreign writer in between gives a wrong but usable barrier).
    pub(crate) fn from_alloc(alloc: Arc<Allocation>) -> Self {
        let stored = stored_parties(&alloc).unwrap_or_else(|bad| bad);
        let lock = Lock::from_core(LockCore::from_alloc(alloc.clone()));
        Barrier {
            alloc,
            lock,
            parties: stored.clamp(1, Self::MAX_PARTIES as u32),
        }
    }

    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        &self.alloc
    }

    fn state(&self) -> &BarrierState {
        // SAFETY: the block holds BARRIER_BYTES, 8-aligned, mapped while `self.alloc`
        // lives; the state follows the lock cell (4-aligned at offset 24) and holds only
        // atomics, valid for any bits and for use by every process at once.
        unsafe {
            &*self
                .alloc
                .ptr()
                .add(LOCK_CELL as usize)
                .cast::<BarrierState>()
        }
    }

    /// The arena the barrier lives in.
    ///
    /// ```
    /// let b = shared_runtime::Barrier::new(2)?;
    /// assert_eq!(b.arena().id(), shared_runtime::Arena::global().id());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// The number of parties that must arrive to release a round.
    ///
    /// ```
    /// assert_eq!(shared_runtime::Barrier::new(3)?.parties(), 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn parties(&self) -> usize {
        self.parties as usize
    }

    /// How many parties wait in the current round (0 while broken), as Python's
    /// `n_waiting`. A snapshot: it may change as soon as it is read.
    ///
    /// ```
    /// let b = shared_runtime::Barrier::new(2)?;
    /// assert_eq!(b.n_waiting(), 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn n_waiting(&self) -> usize {
        let s = self.state();
        if s.round.load(Acquire) & BROKEN != 0 {
            return 0;
        }
        s.count.load(Relaxed).min(self.parties) as usize
    }

    /// Whether the barrier is broken (Python's `broken`): aborted, timed out, or left
    /// unknown by a party that died inside it, and not [`reset`](Self::reset) since.
    ///
    /// ```
    /// let b = shared_runtime::Barrier::new(2)?;
    /// b.abort();
    /// assert!(b.is_broken());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn is_broken(&self) -> bool {
        self.state().round.load(Acquire) & BROKEN != 0
    }

    /// Breaks the barrier: every waiter, and every later `wait`, gets
    /// [`Error::BrokenBarrier`] until [`reset`](Self::reset) (Python's `abort()`).
    ///
    /// ```
    /// use shared_runtime::{Barrier, Error};
    /// let b = Barrier::new(2)?;
    /// b.abort();
    /// assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    ///
    /// Lock-free: it never waits, even for a party stalled inside the barrier's lock.
    pub fn abort(&self) {
        self.break_lock_free(None);
    }

    /// Returns the barrier to its empty, unbroken state (Python's `reset()`): parties
    /// waiting in the current round get [`Error::BrokenBarrier`]; later waits start a new
    /// round. Also repairs a barrier broken by a party that died inside it.
    ///
    /// It takes the barrier's lock, so it waits, as [`Lock::lock`](crate::Lock::lock)
    /// does, while a live party is inside the barrier's short critical section (one stopped
    /// there stops it; a dead one is taken over).
    ///
    /// ```
    /// let b = shared_runtime::Barrier::new(1)?;
    /// b.abort();
    /// b.reset();
    /// assert!(!b.is_broken());
    /// assert!(b.wait()?.is_leader());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn reset(&self) {
        let (_g, poisoned) = self.locked();
        let r = self.state().round.load(Relaxed);
        self.end_round_unreleased(r);
        if poisoned {
            self.lock.clear_poison();
        }
        wake_all(&self.state().round);
    }

    /// Waits until all parties have called `wait` (Python's `wait()`): the arrival index
    /// and whether this party is the leader. Untimed: it trusts every party to arrive (see
    /// the [type's docs](Self)); prefer [`wait_timeout`](Self::wait_timeout) when a party
    /// may die.
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] if the barrier is or becomes broken while waiting (aborted,
    /// another waiter's timeout, reset, a party dead inside it);
    /// [`Error::Corrupted`] if the shared count is beyond the party count (a foreign writer;
    /// the barrier is then broken).
    ///
    /// # Panics
    /// As [`Lock::lock`](crate::Lock::lock), if this thread cannot be identified.
    ///
    /// ```
    /// use shared_runtime::{Barrier, Process};
    /// let b = Barrier::new(2)?;
    /// let b2 = b.clone();
    /// let child = Process::start(move || b2.wait().unwrap().index() as u64)?;
    /// let mine = b.wait()?.index() as u64;
    /// assert_eq!(mine + child.join()?, 1); // indexes 0 and 1
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult> {
        self.wait_until(None)
    }

    /// As [`wait`](Self::wait), for at most `timeout` (on the monotonic clock): when the
    /// time runs out the barrier is broken (Python's rule), this party gets
    /// [`Error::BrokenBarrier`], and so does every other waiter at once.
    ///
    /// The timeout bounds everything, taking the barrier's lock included: if a live party
    /// holds it (stopped inside the short critical section) until the time runs out, the
    /// barrier is broken without the lock, and this party gets `BrokenBarrier`.
    ///
    /// So a zero or very short timeout can break the current round although every party
    /// is alive and on time: if another party holds the lock for a moment (arriving, or
    /// taking its wake-up) when this call starts, this one may run out of time before it
    /// gets the lock, even as the last party, whose arrival would have completed the round.
    /// That is Python's rule (a timed-out wait breaks the barrier), kept as is: give a
    /// timeout well above scheduling delays, or use [`wait`](Self::wait).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// use shared_runtime::{Barrier, Error};
    /// let b = Barrier::new(2)?;
    /// let r = b.wait_timeout(Duration::from_millis(5)); // nobody else comes
    /// assert!(matches!(r, Err(Error::BrokenBarrier)));
    /// assert!(b.is_broken());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult> {
        // A timeout too long for the clock is no timeout.
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Holds the barrier's lock, for tests that kill or stall a party inside it. Only with
    /// the `test-hooks` feature.
    ///
    /// ```
    /// let b = shared_runtime::Barrier::new(2)?;
    /// let g = b.hold_lock_for_tests();
    /// # drop(g);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn hold_lock_for_tests(&self) -> LockGuard<'_> {
        self.locked().0
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<BarrierWaitResult> {
        let s = self.state();
        let Some((g, poisoned)) = self.locked_by(deadline) else {
            // A live party held the lock until our time ran out.
            self.break_lock_free(None);
            return Err(Error::BrokenBarrier);
        };
        if poisoned {
            return Err(self.break_poisoned(g));
        }
        let round = s.round.load(Relaxed);
        if round & BROKEN != 0 {
            return Err(Error::BrokenBarrier);
        }
        let index = s.count.load(Relaxed);
        if index >= self.parties {
            self.break_locked();
            return Err(Error::Corrupted(format!(
                "the barrier's count of waiting parties is {index}, but it has {} parties; \
                 it is now broken (reset() makes it usable again)",
                self.parties
            )));
        }
        if index + 1 == self.parties {
            if !self.release_round(round) {
                // Broken without the lock meanwhile (a timed-out waiter, `abort`).
                s.count.store(0, Relaxed);
                return Err(Error::BrokenBarrier);
            }
            drop(g);
            wake_all(&s.round);
            return Ok(BarrierWaitResult {
                index: index as usize,
                leader: true,
            });
        }
        s.count.store(index + 1, Relaxed);
        drop(g);
        self.sleep(round, deadline)?;
        Ok(BarrierWaitResult {
            index: index as usize,
            leader: false,
        })
    }

    /// Sleeps until round `round` (unbroken) ends; `Ok` if it was released.
    fn sleep(&self, round: u32, deadline: Option<Instant>) -> Result<()> {
        let s = self.state();
        loop {
            if s.round.load(Acquire) != round {
                return self.outcome(round);
            }
            let nap = match deadline {
                None => POLL,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(POLL),
                    _ => return self.time_out(round),
                },
            };
            let quiet = wait_while_equal(&s.round, round, Some(nap)) == Nap::TimedOut;
            if quiet && s.round.load(Acquire) == round && self.lock.core().holder_proven_dead() {
                // A party died inside the lock: take it over, which breaks the barrier (a
                // timed waiter waits for the lock no longer than its time: if a live party
                // takes it first, the loop goes on and the deadline ends it).
                if let Some((g, true)) = self.locked_by(deadline) {
                    self.break_poisoned(g);
                }
            }
        }
    }

    /// How round `round` ended, once the round word no longer reads `round`.
    fn outcome(&self, round: u32) -> Result<()> {
        let s = self.state();
        if s.round.load(Acquire) & ROUND == round {
            // Same round, so it broke (only a break changes the word without a new round).
            return Err(Error::BrokenBarrier);
        }
        // The bit of our round is overwritten only when round + 32 ends, after the word
        // said round + 32 (the Acquire load of the bit shows that store if it read the
        // overwrite): a word read afterwards fewer than 32 rounds ahead vouches for it.
        let history = s.history.load(Acquire);
        let ahead = (s.round.load(Acquire) & ROUND).wrapping_sub(round) & ROUND;
        if ahead < 32 && history & (1 << (round % 32)) != 0 {
            Ok(())
        } else {
            Err(Error::BrokenBarrier)
        }
    }

    /// The time ran out in round `round`: break it, unless it has just ended. Lock-free,
    /// so that it never waits for a party inside the lock.
    fn time_out(&self, round: u32) -> Result<()> {
        if self.break_lock_free(Some(round)) {
            Err(Error::BrokenBarrier)
        } else {
            self.outcome(round)
        }
    }

    /// Breaks the barrier without its lock and wakes every waiter: the round word gets
    /// [`BROKEN`] by compare-and-swap, so a party inside the lock that ends the round at the
    /// same moment finds it broken (see [`release_round`](Self::release_round)) instead of
    /// overwriting the break. The count is left as it is: nothing reads it while the
    /// barrier is broken, and `reset` (with the lock) empties it. With `only`, only round
    /// `only` (unbroken) is broken: `false` if the word no longer says it.
    fn break_lock_free(&self, only: Option<u32>) -> bool {
        let s = self.state();
        let mut word = s.round.load(Relaxed);
        loop {
            if only.is_some_and(|r| r != word) {
                return false;
            }
            if word & BROKEN != 0 {
                return true;
            }
            match s
                .round
                .compare_exchange_weak(word, word | BROKEN, Release, Relaxed)
            {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        wake_all(&s.round);
        true
    }

    /// The barrier's lock, held, and whether it was poisoned (a party died holding it).
    fn locked(&self) -> (LockGuard<'_>, bool) {
        match self.lock.lock() {
            Ok(g) => (g, false),
            Err(p) => (p.into_inner(), true),
        }
    }

    /// As [`locked`](Self::locked), waiting no later than `deadline`: `None` if the time
    /// ran out first.
    fn locked_by(&self, deadline: Option<Instant>) -> Option<(LockGuard<'_>, bool)> {
        let Some(d) = deadline else {
            return Some(self.locked());
        };
        let left = d.saturating_duration_since(Instant::now());
        match self.lock.try_lock_for(left) {
            Ok(g) => Some((g, false)),
            Err(TryLockError::Poisoned(p)) => Some((p.into_inner(), true)),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Breaks the barrier whose lock `g` was taken poisoned: the dead party may have left
    /// the count half-updated, so the round cannot go on. The poison is cleared: the
    /// broken state now says it, and `reset` repairs it.
    fn break_poisoned(&self, g: LockGuard<'_>) -> Error {
        self.break_locked();
        self.lock.clear_poison();
        drop(g);
        Error::BrokenBarrier
    }

    /// Marks the barrier broken and wakes every waiter. With the lock held.
    fn break_locked(&self) {
        let s = self.state();
        s.count.store(0, Relaxed);
        s.round.fetch_or(BROKEN, Release);
        wake_all(&s.round);
    }

    /// Releases round `round` (unbroken, read with the lock held): records it, empties the
    /// count and starts the next round, unless the round was broken without the lock
    /// meanwhile (`false`). With the lock held; the caller wakes the waiters.
    fn release_round(&self, round: u32) -> bool {
        let s = self.state();
        let bit = 1 << (round % 32);
        // Recorded before the round word changes (a woken waiter reads it after); undone if
        // the round broke instead (its waiters then never read it).
        s.history.fetch_or(bit, Release);
        let next = round.wrapping_add(1) & ROUND;
        if s.round
            .compare_exchange(round, next, Release, Relaxed)
            .is_err()
        {
            s.history.fetch_and(!bit, Release);
            return false;
        }
        s.count.store(0, Relaxed);
        true
    }

    /// Ends round `round` (its word, possibly broken) unreleased, for `reset`: records
    /// it, empties the count and starts the next round, unbroken (a break made without the
    /// lock just before is overwritten: it happened before the reset). With the lock held;
    /// the caller wakes the waiters.
    fn end_round_unreleased(&self, round: u32) {
        let s = self.state();
        let bit = 1 << ((round & ROUND) % 32);
        s.history.fetch_and(!bit, Release);
        s.count.store(0, Relaxed);
        s.round
            .store((round & ROUND).wrapping_add(1) & ROUND, Release);
    }
}

/// The party count as a stored `u32`, or [`Error::InvalidParties`].
pub(crate) fn check_parties(parties: usize) -> Result<u32> {
    if parties == 0 || parties > Barrier::MAX_PARTIES {
        return Err(Error::InvalidParties { parties });
    }
    Ok(parties as u32)
}

/// The party count stored in a barrier's block: `Ok` if it is one a barrier can have, else
/// the value found.
pub(crate) fn stored_parties(block: &Allocation) -> std::result::Result<u32, u32> {
    // SAFETY: a barrier's block holds BARRIER_BYTES, 8-aligned, mapped while `block`
    // lives; the party count is the atomic word at LOCK_CELL.
    let p = unsafe { &*block.ptr().add(LOCK_CELL as usize).cast::<AtomicU32>() }.load(Acquire);
    if p == 0 || p as usize > Barrier::MAX_PARTIES {
        Err(p)
    } else {
        Ok(p)
    }
}

/// Writes the party count of a fresh barrier block.
///
/// # Safety
/// `block` is the start of a barrier's block (BARRIER_BYTES, 8-aligned, mapped).
pub(crate) unsafe fn write_parties(block: *mut u8, parties: u32) {
    // SAFETY: by the caller's contract the word at LOCK_CELL is in the block, aligned.
    unsafe { &*block.add(LOCK_CELL as usize).cast::<AtomicU32>() }.store(parties, Release);
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let round = self.state().round.load(Relaxed);
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("n_waiting", &self.n_waiting())
            .field("broken", &(round & BROKEN != 0))
            .field("round", &(round & ROUND))
            .finish()
    }
}
