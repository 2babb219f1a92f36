//! `Condition`: a process-shared condition variable (std's `Condvar` shape, Python's
//! `multiprocessing.Condition`), used with this crate's lock guards.

use std::fmt;
use std::sync::atomic::{
    AtomicU32,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::{Arc, LockResult, PoisonError};
use std::time::{Duration, Instant};

use crate::arena::{Allocation, Arena, ObjectKind, LOCK_CELL};
use crate::sync::poison::HoldsLock;
use crate::sync::Token;
use crate::sys::futex::POLL;
use crate::sys::futex_word::{wait_while_equal, wake_all, wake_one, Nap};
use crate::Result;

/// The shared state: two words at the start of a 24-byte block.
#[repr(C)]
struct CondState {
    /// Bumped by every notify: the futex word waiters sleep on.
    seq: AtomicU32,
    /// How many waiters may be asleep: a hint that lets a notify skip the wake-up call
    /// when it is 0. A waiter that dies asleep leaves it one too high (a needless wake-up
    /// call per notify, never a missed one).
    waiters: AtomicU32,
}

/// A process-shared condition variable: processes wait, with a lock held, until another
/// process notifies them (std's [`Condvar`](std::sync::Condvar) shape; Python's
/// `multiprocessing.Condition`).
///
/// It works with the guards of this crate's locks: a [`LockGuard`](crate::LockGuard) of a
/// [`Lock`](crate::Lock) or [`RLock`](crate::RLock), or the [`SyncGuard`](crate::SyncGuard)
/// of a [`Value`](crate::Value), [`Array`](crate::Array) or other
/// [`Synchronized`](crate::Synchronized) object. [`wait`](Self::wait) releases the lock,
/// sleeps until notified, and takes the lock again before returning the same guard. Use
/// one lock with a condition (as with std, using two locks with one condition is a logic
/// error; it is not detected).
///
/// It is two 32-bit words of an [`Arena`] (in a 24-byte block). Clones name the same
/// condition, in this process and in forked children; it can be named
/// ([`Arena::create`], [`open`](Arena::open)) and handed over by [`handle`](Self::handle).
///
/// **No lost wake-ups**: a waiter reads the condition's sequence word while it holds the
/// lock, and sleeps only while the word is unchanged (a futex wait, across processes), so
/// a notify made after the waiter checked its predicate under the lock always reaches it.
///
/// **Spurious wake-ups** happen, as with std: a wait can return without a notify meant for
/// it (a `notify_one` can release two waiters, a signal interrupts the sleep, a waiter
/// wakes to check on the lock's holder). Always wait in a loop on the predicate, or use
/// [`wait_while`](Self::wait_while).
///
/// **Robust**: waiting never holds the lock, and retaking it goes through the lock's robust
/// path. A waiter whose lock holder died gets its guard inside a
/// [`PoisonError`], exactly as [`lock()`](crate::Lock::lock) gives it: a sleeping waiter
/// checks every 50 ms whether the lock's holder has died, and if so wakes to take the lock
/// over (so a holder killed before it could notify does not leave waiters asleep forever).
/// A notifier that dies before notifying notified nobody; waiters then wait on, bounded by
/// the timed forms.
///
/// **Polling, and its cost**: every sleeping waiter wakes every 50 ms (the crate's `POLL`)
/// to make that check — a futex wait cannot be woken by a death, so nothing else can
/// notice a holder that died without notifying. Each such wake-up is a system call and a
/// look at the holder (usually a pidfd or `/proc` probe), about 20 per second per sleeping
/// waiter; it returns to sleep at once if the holder lives. A waiter in another pid
/// namespace than the arena's cannot prove any holder dead (its thread ids mean nothing
/// there): an untimed [`wait`](Self::wait) there whose lock holder died before notifying
/// waits on for ever; use [`wait_timeout`](Self::wait_timeout) in such a process.
///
/// **`RLock`**: a wait needs the lock held exactly once by this thread, and panics if an
/// `RLock` is held more deeply: releasing only the innermost level would keep other
/// processes out for the whole wait, and releasing every level would leave this thread's
/// outer guards (possibly a `SyncGuard` giving `&mut` to shared data) in use without the
/// lock. It also panics for a guard that crossed into a forked child (the child does not
/// hold the lock).
///
/// ```
/// use shared_runtime::{Condition, Process, Value};
///
/// let ready = Value::new(0u8)?;
/// let cond = Condition::new()?;
/// let (r, c) = (ready.clone(), cond.clone());
/// let child = Process::start(move || {
///     *r.lock().unwrap() = 1;
///     c.notify_all();
/// })?;
/// let g = cond.wait_while(ready.lock().unwrap(), |ready| **ready == 0).unwrap();
/// assert_eq!(*g, 1);
/// drop(g);
/// child.join()?;
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    alloc: Arc<Allocation>,
}

/// Whether a timed wait on a [`Condition`] returned because its time ran out (std's
/// `WaitTimeoutResult`, which other crates cannot make).
///
/// ```
/// use std::time::Duration;
/// let (lock, cond) = (shared_runtime::Lock::new()?, shared_runtime::Condition::new()?);
/// let (_g, r) = cond.wait_timeout(lock.lock().unwrap(), Duration::from_millis(1)).unwrap();
/// assert!(r.timed_out()); // nobody notified
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait ended because the time ran out. From
    /// [`wait_timeout_while`](Condition::wait_timeout_while): the time ran out with the
    /// predicate still true (Python's `wait_for` returning a false value).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (lock, cond) = (shared_runtime::Lock::new()?, shared_runtime::Condition::new()?);
    /// let g = lock.lock().unwrap();
    /// let (_g, r) = cond.wait_timeout_while(g, Duration::from_secs(9), |_| false).unwrap();
    /// assert!(!r.timed_out()); // the predicate was false at once
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// Counts this thread in the `waiters` hint until dropped (also on a panic).
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn new(waiters: &'a AtomicU32) -> Self {
        waiters.fetch_add(1, SeqCst);
        Waiting(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Condition {
    /// A new condition in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full, or the
    /// errors of [`Arena::try_global`].
    ///
    /// ```
    /// let c = shared_runtime::Condition::new()?;
    /// c.notify_all(); // nobody waits: nothing happens
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::new_in(Arena::try_global()?)
    }

    /// A new condition in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let c = shared_runtime::Condition::new_in(&arena)?;
    /// assert_eq!(c.arena().id(), arena.id());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<Self> {
        // A fresh block is zeroed: no notifies, no waiters. The size of a named one's.
        let alloc = arena.alloc_tagged(LOCK_CELL as usize, 8, ObjectKind::Condition)?;
        Ok(Condition::from_alloc(Arc::new(alloc)))
    }

    /// The condition whose state starts `alloc` (a named or handed-over one's block).
    pub(crate) fn from_alloc(alloc: Arc<Allocation>) -> Self {
        Condition { alloc }
    }

    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        &self.alloc
    }

    fn state(&self) -> &CondState {
        // SAFETY: the allocation holds at least LOCK_CELL (24) bytes, 8-aligned, mapped for
        // as long as `self.alloc` lives; its first 8 bytes are the two words (any bits are
        // valid), only ever accessed atomically, by every process.
        unsafe { &*self.alloc.ptr().cast::<CondState>() }
    }

    /// The arena the condition lives in.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let c = shared_runtime::Condition::new_in(&arena)?;
    /// assert_eq!(c.arena().id(), arena.id());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// Wakes at least one waiter, in any process, if any waits (Python's `notify()`). Call
    /// it after changing the state the waiters check, best with the lock held.
    ///
    /// ```
    /// let c = shared_runtime::Condition::new()?;
    /// c.notify_one();
    /// assert!(format!("{c:?}").contains("notifies: 1"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn notify_one(&self) {
        let s = self.state();
        s.seq.fetch_add(1, SeqCst);
        if s.waiters.load(SeqCst) != 0 {
            wake_one(&s.seq);
        }
    }

    /// Wakes every waiter, in every process (Python's `notify_all()`).
    ///
    /// ```
    /// let c = shared_runtime::Condition::new()?;
    /// c.notify_all();
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn notify_all(&self) {
        let s = self.state();
        s.seq.fetch_add(1, SeqCst);
        if s.waiters.load(SeqCst) != 0 {
            wake_all(&s.seq);
        }
    }

    /// Releases the lock `guard` holds, sleeps until notified (or a spurious wake-up), and
    /// takes the lock again, returning the guard.
    ///
    /// # Errors
    /// The guard inside a [`PoisonError`] if the lock is poisoned when retaken (its holder
    /// died or panicked meanwhile, or it was poisoned already), as
    /// [`lock()`](crate::Lock::lock) returns it.
    ///
    /// # Panics
    /// If the guard's lock is an [`RLock`](crate::RLock) held more than once by this
    /// thread, or the guard was taken in another process (moved into a forked child).
    ///
    /// ```
    /// use shared_runtime::{Condition, Process, Value};
    ///
    /// let n = Value::new(0u32)?;
    /// let cond = Condition::new()?;
    /// let (n2, c2) = (n.clone(), cond.clone());
    /// let child = Process::start(move || {
    ///     *n2.lock().unwrap() = 7;
    ///     c2.notify_one();
    /// })?;
    /// let mut g = n.lock()?;
    /// while *g == 0 {
    ///     g = cond.wait(g)?; // loop: wake-ups may be spurious
    /// }
    /// assert_eq!(*g, 7);
    /// # drop(g);
    /// child.join()?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn wait<G: HoldsLock>(&self, guard: G) -> LockResult<G> {
        let (guard, _, poisoned) = self.wait_until(guard, None);
        if poisoned {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// Waits while `condition` returns `true`, checking it with the lock held before each
    /// wait (std's `wait_while`; Python's `wait_for` negated).
    ///
    /// # Errors
    /// As [`wait`](Self::wait), at the first poisoned wake-up.
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// use shared_runtime::{Condition, Lock, Process, RawValue};
    ///
    /// let (lock, cond, n) = (Lock::new()?, Condition::new()?, RawValue::new(0u8)?);
    /// let (l2, c2, n2) = (lock.clone(), cond.clone(), n.clone());
    /// let child = Process::start(move || {
    ///     let _g = l2.lock().unwrap();
    ///     n2.set(1);
    ///     c2.notify_all();
    /// })?;
    /// let _g = cond.wait_while(lock.lock()?, |_| n.get() == 0)?;
    /// assert_eq!(n.get(), 1);
    /// # drop(_g);
    /// child.join()?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn wait_while<G, F>(&self, mut guard: G, mut condition: F) -> LockResult<G>
    where
        G: HoldsLock,
        F: FnMut(&mut G) -> bool,
    {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As [`wait`](Self::wait), but for at most `timeout` (on the monotonic clock; Python's
    /// `wait(timeout)`, whose `False` is [`timed_out()`](WaitTimeoutResult::timed_out)).
    /// The lock is retaken after the time runs out, however long that takes.
    ///
    /// # Errors
    /// As [`wait`](Self::wait), the guard and the result inside the [`PoisonError`].
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (lock, cond) = (shared_runtime::RLock::new()?, shared_runtime::Condition::new()?);
    /// let (g, r) = cond.wait_timeout(lock.lock()?, Duration::from_millis(5)).unwrap();
    /// assert!(r.timed_out());
    /// # drop(g);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn wait_timeout<G: HoldsLock>(
        &self,
        guard: G,
        timeout: Duration,
    ) -> LockResult<(G, WaitTimeoutResult)> {
        // A timeout too long for the clock is no timeout.
        let deadline = Instant::now().checked_add(timeout);
        let (guard, timed_out, poisoned) = self.wait_until(guard, deadline);
        let r = (guard, WaitTimeoutResult(timed_out));
        if poisoned {
            Err(PoisonError::new(r))
        } else {
            Ok(r)
        }
    }

    /// Waits while `condition` returns `true`, for at most `timeout` in all (Python's
    /// `wait_for(predicate, timeout)`): [`timed_out()`](WaitTimeoutResult::timed_out) says
    /// the time ran out with `condition` still `true`.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// use shared_runtime::{Condition, Value};
    ///
    /// let (v, cond) = (Value::new(0u32)?, Condition::new()?);
    /// let g = v.lock().unwrap();
    /// let (g, r) = cond
    ///     .wait_timeout_while(g, Duration::from_millis(5), |g| **g == 0)
    ///     .unwrap();
    /// assert!(r.timed_out() && *g == 0);
    /// # drop(g);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn wait_timeout_while<G, F>(
        &self,
        mut guard: G,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(G, WaitTimeoutResult)>
    where
        G: HoldsLock,
        F: FnMut(&mut G) -> bool,
    {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if !condition(&mut guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            let (g, _, poisoned) = self.wait_until(guard, deadline);
            guard = g;
            if poisoned {
                let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
                return Err(PoisonError::new((guard, WaitTimeoutResult(timed_out))));
            }
        }
    }

    /// The wait itself: the guard, whether the time ran out, whether the lock is poisoned.
    #[track_caller]
    fn wait_until<G: HoldsLock>(&self, guard: G, deadline: Option<Instant>) -> (G, bool, bool) {
        let (lock, mark) = HoldsLock::wait_parts(&guard, Token);
        let (core, me) = lock.parts();
        core.check_waitable(me);
        let s = self.state();
        let waiting = Waiting::new(&s.waiters);
        // Read with the lock held: a notify that follows a change the caller's predicate
        // saw (made under the lock) bumps the word after this read, so the sleep below is
        // refused or woken: no lost wake-up. (`waiters` is raised first, in one total
        // order with the notifier's bump and read of it, so a notifier that skips the
        // wake-up call bumped the word before this read.)
        let seen = s.seq.load(SeqCst);
        let poisoned_before = core.is_poisoned();
        if let Some(mark) = mark {
            // Another thread of this process may borrow the data while the lock is free.
            mark.store(0, Relaxed);
        }
        // SAFETY: `check_waitable` passed just now on this thread, and nothing released the
        // lock since; the guard is not used (only held) until the lock is retaken below.
        unsafe { core.release_for_wait(me) };
        // A live guard always means a held lock (its release trusts that): should anything
        // below unwind, the lock is retaken before the guard is dropped.
        let retake = Retake { core, me };
        let timed_out = loop {
            let nap = match deadline {
                None => POLL,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(POLL),
                    _ => break true,
                },
            };
            if wait_while_equal(&s.seq, seen, Some(nap)) == Nap::Ended || s.seq.load(SeqCst) != seen
            {
                break false;
            }
            // A quiet POLL: wake (spuriously) if the lock's holder has died, so that a
            // holder killed before notifying leaves no waiter asleep for good.
            if (!poisoned_before && core.is_poisoned()) || core.holder_proven_dead() {
                break false;
            }
        };
        drop(waiting);
        std::mem::forget(retake);
        let poisoned = core.retake_after_wait(me);
        if let Some(mark) = mark {
            mark.store(lock.tid(), Relaxed);
        }
        (guard, timed_out, poisoned)
    }
}

/// Retakes a lock released for a condition wait if the wait unwinds (see `wait_until`).
struct Retake<'a> {
    core: &'a crate::sync::lock_cell::LockCore,
    me: u64,
}

impl Drop for Retake<'_> {
    fn drop(&mut self) {
        self.core.retake_after_wait(self.me);
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("Condition")
            .field("waiters", &s.waiters.load(Relaxed))
            .field("notifies", &s.seq.load(Relaxed))
            .finish()
    }
}
