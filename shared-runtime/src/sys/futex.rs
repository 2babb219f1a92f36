//! A robust process-shared lock on one 64-bit word and a futex.
//!
//! The word holds the holder's *identity* ([`thread_identity`]: thread id plus the low bits
//! of the thread's start time), or 0 when free. Taking a free lock is one compare-and-swap;
//! no per-thread robust list to maintain, which is what makes glibc's robust mutex slower.
//! Two protocols share the wait loop here ([`lock_slow`], generic over [`Protocol`]):
//! [`FutexLock`], the allocator's, keeps a waiters bit in the word and releases with one
//! swap (plus a `FUTEX_WAKE` only if the bit was set); the objects' locks
//! ([`CountedLock`](crate::sys::counted_lock::CountedLock)) count their sleepers in a
//! separate word and release with a plain store (see there for why that is safe).
//!
//! The word holds no address: nothing a writer of the shared memory puts there is ever
//! followed, by this crate or by the kernel (unlike a glibc robust mutex, whose robust-list
//! links live in the mutex and are followed by glibc on unlock).
//!
//! A holder that dies cannot release, and nobody tells the waiters. So a waiter sleeps at
//! most [`POLL`] at a time and then asks for proof that the holder has ended
//! ([`thread_ended`]: no such thread, a zombie, or a thread id reused by a thread that
//! started at another time). Only on proof does the waiter take the lock over, with one
//! compare-and-swap from exactly the dead identity (so only one waiter does), and report
//! [`Acquired::OwnerDied`]; when nothing can be proven it goes on waiting.
//!
//! Limits: thread ids must mean the same thing to every user of the lock (one pid
//! namespace); a dead holder is noticed within [`POLL`], not at once.

use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::time::{Duration, Instant};

use crate::sys::liveness::{thread_ended, thread_vanished, FOREIGN};

/// How a lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous holder released it.
    Clean,
    /// The previous holder provably died holding it; the caller now holds it. `holder` is
    /// the dead holder's identity (see [`thread_identity`](crate::sys::liveness)).
    OwnerDied { holder: u64 },
}

/// Set while some thread sleeps on the lock (bit 31: above every thread id, see
/// `liveness::TID_MASK`).
pub(crate) const WAITERS: u64 = 1 << 31;
/// How long a waiter sleeps before checking that the holder still runs.
pub(crate) const POLL: Duration = Duration::from_millis(50);
/// Rounds of spinning before sleeping, for holders that are about to release: round `r`
/// spins `1 << r` times (1 to 64, 127 `pause`s in all) and then reads the word once, so a
/// waiter touches the holder's line less and less often (each read steals the line from
/// the holder, who must win it back to write). Then it gives its CPU up once
/// ([`YIELD_ROUND`]) before sleeping. Chosen by measurement (`benches/table.rs`, two, four
/// and sixteen processes on two CPUs; docs/benchmarks.md): against 100 plain spins, the
/// backoff and the yield were faster with two processes (the target there) and no worse
/// oversubscribed.
const SPIN_ROUNDS: u32 = 7;
/// The round after the spinning: one `sched_yield`. When processes outnumber CPUs, the
/// holder may be runnable and waiting for this very CPU; yielding lets it finish and
/// release, and the waiter then takes the lock without a futex sleep and wake-up (which
/// would also cost the holder a `FUTEX_WAKE` on release).
const YIELD_ROUND: u32 = SPIN_ROUNDS;

/// The allocator's lock word (`arena::header`): released with one swap, which learns
/// whether to wake from the [`WAITERS`] bit. Lives in shared memory; all access is atomic.
/// The locks of objects use [`CountedLock`](crate::sys::counted_lock::CountedLock), which
/// releases with a plain store.
#[repr(C)]
pub(crate) struct FutexLock {
    word: AtomicU64,
}

/// Sleeps while the low half of `word` is `expected_low`, at most `timeout`; whether the
/// sleep ended by the timeout (rather than a wake-up, a changed word or a signal).
pub(crate) fn futex_wait(word: &AtomicU64, expected_low: u32, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: FUTEX_WAIT reads the aligned 32-bit word at the address (the low half of the
    // 64-bit lock word on little-endian x86-64) and sleeps only if it still equals
    // `expected_low`; the timespec is a valid relative timeout. Not FUTEX_PRIVATE: waiters
    // may be in other processes. Every outcome (woken, timeout, EAGAIN, EINTR) is handled by
    // the caller re-reading the word.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr().cast::<u32>(),
            libc::FUTEX_WAIT,
            expected_low,
            &ts,
        )
    };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT)
}

/// Wakes one thread sleeping in [`futex_wait`] on `word`; whether it woke one.
pub(crate) fn futex_wake_one(word: &AtomicU64) -> bool {
    // SAFETY: FUTEX_WAKE only wakes threads waiting on this address; it reads nothing.
    let woken = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr().cast::<u32>(),
            libc::FUTEX_WAKE,
            1,
        )
    };
    woken > 0
}

/// How a lock word records its sleepers: what the shared wait loop ([`lock_slow`]) needs
/// to know of a lock protocol.
pub(crate) trait Protocol {
    /// The lock word.
    fn word(&self) -> &AtomicU64;
    /// The holder's identity in a word as read (0: free).
    fn holder_in(cur: u64) -> u64;
    /// The word that takes the lock for `me`, from a free word or (`cur`) from a dead
    /// holder's, in the wait loop (where others may sleep).
    fn taken(me: u64, cur: u64) -> u64;
    /// Sleeps at most `nap` while the word is `cur`; `false` if the word changed before
    /// the sleep could start (the caller looks again at once).
    fn sleep(&self, cur: u64, nap: Duration) -> bool;
    /// Passes a wake-up on, from a waiter that gives up after it slept (a release may have
    /// woken it, and then nobody else).
    fn pass_wake(&self);
    /// Called by a waiter that slept and has now taken the lock.
    fn taken_after_sleep(&self) {}
}

impl Protocol for FutexLock {
    #[inline]
    fn word(&self) -> &AtomicU64 {
        &self.word
    }

    #[inline]
    fn holder_in(cur: u64) -> u64 {
        cur & !WAITERS
    }

    #[inline]
    fn taken(me: u64, cur: u64) -> u64 {
        // Others may be asleep: keep the waiters bit (always set from a free word), so our
        // release wakes one.
        me | if cur == 0 { WAITERS } else { cur & WAITERS }
    }

    fn sleep(&self, cur: u64, nap: Duration) -> bool {
        if cur & WAITERS == 0
            && self
                .word
                .compare_exchange(cur, cur | WAITERS, Relaxed, Relaxed)
                .is_err()
        {
            return false;
        }
        futex_wait(&self.word, (cur | WAITERS) as u32, nap);
        true
    }

    fn pass_wake(&self) {
        futex_wake_one(&self.word);
    }
}

/// The wait of [`FutexLock::lock_slow`] and of
/// [`CountedLock::lock`](crate::sys::counted_lock::CountedLock::lock), after the first
/// compare-and-swap failed on a word that does not name `me`: spin, yield, sleep, and
/// check the holder's life every [`POLL`]. `None` if `deadline` passed.
#[cold]
pub(crate) fn lock_slow<P: Protocol>(
    lock: &P,
    me: u64,
    deadline: Option<Instant>,
) -> Option<Acquired> {
    let word = lock.word();
    let mut spins = 0;
    let mut last_check = Instant::now();
    let (mut checked, mut probed, mut slept) = (false, false, false);
    loop {
        let cur = word.load(Relaxed);
        if cur == 0 {
            let taken = word.compare_exchange(0, P::taken(me, 0), Acquire, Relaxed);
            if taken.is_ok() {
                if slept {
                    lock.taken_after_sleep();
                }
                return Some(Acquired::Clean);
            }
            continue;
        }
        if spins < SPIN_ROUNDS {
            for _ in 0..1u32 << spins {
                std::hint::spin_loop();
            }
            spins += 1;
            continue;
        }
        if spins == YIELD_ROUND {
            spins += 1;
            std::thread::yield_now();
            continue;
        }
        let now = Instant::now();
        let timed_out = deadline.is_some_and(|d| now >= d);
        // Check the holder every POLL, and once before giving up (a timeout shorter
        // than POLL must still be able to take over from a dead holder).
        if now.duration_since(last_check) >= POLL || (timed_out && !checked) {
            (last_check, checked) = (now, true);
            if let Some(how) = take_from_dead(lock, cur, me, thread_ended) {
                return Some(how);
            }
        } else if !probed {
            // Before the first sleep, the cheap half of the proof (one `kill(tid, 0)`):
            // a holder whose thread is gone is taken over at once, not after a POLL.
            probed = true;
            if let Some(how) = take_from_dead(lock, cur, me, thread_vanished) {
                return Some(how);
            }
        }
        if timed_out {
            if slept {
                // A release may have woken us and found nobody else to wake: pass the
                // wake-up on rather than leave another sleeper waiting a whole POLL.
                lock.pass_wake();
            }
            return None;
        }
        let mut nap = POLL.saturating_sub(now.duration_since(last_check));
        if let Some(deadline) = deadline {
            nap = nap.min(deadline - now);
        }
        if !lock.sleep(cur, nap.max(Duration::from_micros(1))) {
            continue;
        }
        slept = true;
        // Woken (or timed out), spin again before the next sleep: a woken waiter that
        // found the lock retaken would otherwise sleep at once and lose every race to
        // spinning newcomers (the worst wait, measured in `benches/table.rs`, is what
        // this is for).
        spins = 0;
    }
}

/// If `dead` proves that the holder recorded in `cur` has ended, takes the lock over for
/// `me`.
pub(crate) fn take_from_dead<P: Protocol>(
    lock: &P,
    cur: u64,
    me: u64,
    dead: fn(u64) -> bool,
) -> Option<Acquired> {
    let holder = P::holder_in(cur);
    // A taker of another pid namespace than the arena's creator cannot prove anyone
    // dead: the ids it would check name other threads where it lives.
    if holder == 0 || me & FOREIGN != 0 || !dead(holder) {
        return None;
    }
    // Only one taker wins: the word must still name exactly the dead holder.
    lock.word()
        .compare_exchange(cur, P::taken(me, cur), Acquire, Relaxed)
        .ok()
        .map(|_| Acquired::OwnerDied { holder })
}

const _: () = assert!(
    cfg!(target_endian = "little"),
    "the futex word is the low half"
);

impl FutexLock {
    /// The identity of the holder (0 if free).
    #[inline]
    pub(crate) fn holder(&self) -> u64 {
        self.word.load(Relaxed) & !WAITERS
    }

    /// Takes the lock for `me`, waiting until `deadline` (`None`: forever). `None` if the
    /// time ran out. The caller must not hold it already. (Only the allocator-lock test
    /// hooks wait this way; the allocator itself takes and waits in two steps.)
    #[cfg(feature = "test-hooks")]
    pub(crate) fn lock(&self, me: u64, deadline: Option<Instant>) -> Option<Acquired> {
        if self.take(me).is_ok() {
            return Some(Acquired::Clean);
        }
        self.lock_slow(me, deadline)
    }

    /// Takes the lock for `me` if it is free (one compare-and-swap).
    #[inline]
    pub(crate) fn take(&self, me: u64) -> Result<(), u64> {
        self.word
            .compare_exchange(0, me, Acquire, Relaxed)
            .map(drop)
    }

    /// The wait after [`take`](Self::take) failed on a word that does not name `me`.
    #[cold]
    pub(crate) fn lock_slow(&self, me: u64, deadline: Option<Instant>) -> Option<Acquired> {
        lock_slow(self, me, deadline)
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread must hold it.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        if self.word.swap(0, Release) & WAITERS != 0 {
            futex_wake_one(&self.word);
        }
    }
}
