//! A semaphore's block and every operation on it: taking and giving units, waiting for one,
//! and the table of units held through guards, returned when their process is proven dead.
//!
//! Layout (all fields atomics, every bit pattern valid):
//!
//! | offset | field                                                                    |
//! |--------|--------------------------------------------------------------------------|
//! | 0      | `value: u32`: free units, the futex word acquirers sleep on while 0       |
//! | 4      | `bound: u32`: the initial value (the cap of a bounded semaphore)          |
//! | 8      | `waiters: u32`: how many threads are asleep or about to sleep (a hint)    |
//! | 12     | unused                                                                    |
//! | 16     | `holders: [u64; HOLDERS]`: units held through guards, by process          |

use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, SeqCst},
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::arena::{Allocation, Arena};
use crate::sync::semaphore::holders::{entry, my_owner, owner_ended, owner_of, units_of, UNIT_MAX};
use crate::sys::futex_word::{wait_while_equal, wake_all, wake_one};

/// Holder entries in a block: distinct processes that can hold guard units at once and
/// have them returned if they die (more take their units unrecorded).
pub(crate) const HOLDERS: usize = 16;
/// Bytes of a semaphore's block.
pub(crate) const STATE_BYTES: u64 = 16 + 8 * HOLDERS as u64;
/// The longest a waiter sleeps before it looks for dead holders.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The kind word of a [`Semaphore`](crate::Semaphore)'s block. Neither tag is 0, and they
/// differ in many bits: a zeroed block, or another object's, is neither.
pub(crate) const SEMAPHORE_TAG: u32 = 0x5e3a_9f01;
/// The kind word of a [`BoundedSemaphore`](crate::BoundedSemaphore)'s block.
pub(crate) const BOUNDED_TAG: u32 = 0xb0a1_d5e7;

/// A semaphore's block, seen from this process, with the cap its `release` respects.
#[derive(Clone)]
pub(crate) struct Units {
    alloc: Arc<Allocation>,
    /// The largest value a release may reach: the bound of a bounded semaphore, `u32::MAX`
    /// otherwise. Read once, when the handle is made, so a later write to the block cannot
    /// change it.
    cap: u32,
}

impl Units {
    /// Writes the initial state into a fresh, zeroed block, tagged bounded or not.
    ///
    /// # Safety
    /// `data` is the start of a fresh block of at least [`STATE_BYTES`] bytes, 8-aligned,
    /// that no other thread or process can see yet.
    pub(crate) unsafe fn init(data: *mut u8, value: u32, bounded: bool) {
        let tag = if bounded { BOUNDED_TAG } else { SEMAPHORE_TAG };
        // SAFETY: by the caller's contract, the three words are inside the block, aligned,
        // and nobody else accesses them yet.
        unsafe {
            (*data.cast::<AtomicU32>()).store(value, Relaxed);
            (*data.add(4).cast::<AtomicU32>()).store(value, Relaxed);
            (*data.add(12).cast::<AtomicU32>()).store(tag, Relaxed);
        }
    }

    /// The kind word of the block (see [`SEMAPHORE_TAG`]).
    pub(crate) fn tag(&self) -> u32 {
        self.word(12).load(Acquire)
    }

    /// The semaphore whose block is `alloc`; `bounded` caps releases at the stored bound.
    pub(crate) fn new(alloc: Arc<Allocation>, bounded: bool) -> Self {
        let mut units = Units {
            alloc,
            cap: u32::MAX,
        };
        if bounded {
            units.cap = units.word(4).load(Acquire);
        }
        units
    }

    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        &self.alloc
    }

    pub(crate) fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    pub(crate) fn cap(&self) -> u32 {
        self.cap
    }

    /// The `u32` at byte `at` (0, 4, 8 or 12) of the block.
    fn word(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at <= 12 && at % 4 == 0);
        // SAFETY: the block holds STATE_BYTES bytes, 8-aligned (made so, or checked by
        // `resolve` when opened by handle), mapped as long as `self.alloc` lives; the word is
        // only ever accessed atomically, by every process, and any bit pattern is valid.
        unsafe { &*self.alloc.ptr().add(at).cast::<AtomicU32>() }
    }

    fn value_word(&self) -> &AtomicU32 {
        self.word(0)
    }

    fn waiters(&self) -> &AtomicU32 {
        self.word(8)
    }

    fn holders(&self) -> impl Iterator<Item = &AtomicU64> {
        (0..HOLDERS).map(|i| {
            // SAFETY: entry `i < HOLDERS` lies at 16 + 8i, inside the STATE_BYTES block and
            // 8-aligned; accessed only atomically; any bit pattern is valid.
            unsafe { &*self.alloc.ptr().add(16 + 8 * i).cast::<AtomicU64>() }
        })
    }

    /// The free units.
    pub(crate) fn value(&self) -> u32 {
        self.value_word().load(Acquire)
    }

    /// The units recorded against holder processes (for `Debug`).
    pub(crate) fn recorded(&self) -> u64 {
        self.holders().map(|e| units_of(e.load(Relaxed))).sum()
    }

    /// Takes a unit if one is free.
    pub(crate) fn try_take(&self) -> bool {
        self.value_word()
            .fetch_update(SeqCst, Acquire, |v| v.checked_sub(1))
            .is_ok()
    }

    /// Gives a unit back and wakes one waiter; `Err(cap)` (nothing changed) if the value
    /// would pass the cap.
    pub(crate) fn give(&self) -> Result<(), u32> {
        self.value_word()
            .fetch_update(SeqCst, Acquire, |v| {
                v.checked_add(1).filter(|&sum| sum <= self.cap)
            })
            .map_err(|_| self.cap)?;
        // SeqCst with the waiter's `waiters += 1` then value check: one of the two sees
        // the other, so a sleeper is never missed (and the futex refuses a sleep on a
        // value that is no longer 0).
        if self.waiters().load(SeqCst) != 0 {
            wake_one(self.value_word());
        }
        Ok(())
    }

    /// Takes a unit, sleeping until one is free or `deadline` passes (`None`: no
    /// deadline); `false` on timeout. Every sleep is at most [`POLL`]; every [`POLL`] the
    /// units of holders proven dead are returned.
    pub(crate) fn take_until(&self, deadline: Option<Instant>) -> bool {
        if self.try_take() {
            return true;
        }
        let mut checked = Instant::now();
        loop {
            let now = Instant::now();
            let nap = match deadline {
                None => POLL,
                Some(d) => match d.checked_duration_since(now) {
                    Some(left) if !left.is_zero() => left.min(POLL),
                    _ => return false,
                },
            };
            if now.duration_since(checked) >= POLL {
                checked = now;
                self.reclaim_dead();
                if self.try_take() {
                    return true;
                }
            }
            // A hint only: a hostile zero costs waiters a POLL, a wrap costs releasers a
            // needless wake.
            self.waiters().fetch_add(1, SeqCst);
            if self.value_word().load(SeqCst) == 0 {
                wait_while_equal(self.value_word(), 0, Some(nap));
            }
            self.waiters().fetch_sub(1, SeqCst);
            // Woken or not, try before looking at the clock: a waiter woken for a unit
            // takes it even at its deadline, so the wake-up is not lost.
            if self.try_take() {
                return true;
            }
        }
    }

    /// Records one unit, just taken, against `owner`; `false` if the table has no room even
    /// after the entries of holders proven dead were reclaimed (the unit is then held
    /// unrecorded).
    /// With the table full of live holders every further guard pays for one such look
    /// (one `kill` and a `/proc` read per entry).
    pub(crate) fn record(&self, owner: u64) -> bool {
        if self.try_record(owner) {
            return true;
        }
        // Entries freed by the reclaim are ours to take (the units go back to the value).
        self.reclaim_dead();
        self.try_record(owner)
    }

    fn try_record(&self, owner: u64) -> bool {
        // An entry of ours with room: only our own threads change it (a reclaimer never
        // touches a live owner's entry), so this loop ends.
        for e in self.holders() {
            let mut w = e.load(Relaxed);
            while owner_of(w) == owner && units_of(w) < UNIT_MAX {
                match e.compare_exchange_weak(w, w + 1, AcqRel, Relaxed) {
                    Ok(_) => return true,
                    Err(now) => w = now,
                }
            }
        }
        self.holders().any(|e| {
            e.compare_exchange(0, entry(owner, 1), AcqRel, Relaxed)
                .is_ok()
        })
    }

    /// Removes one unit recorded against `owner`, freeing the entry at its last unit;
    /// `false` if none is recorded (only possible if the block was written by someone
    /// else).
    pub(crate) fn unrecord(&self, owner: u64) -> bool {
        self.holders().any(|e| {
            e.fetch_update(AcqRel, Relaxed, |w| {
                (owner_of(w) == owner && units_of(w) > 0).then(|| {
                    if units_of(w) == 1 {
                        0
                    } else {
                        w - 1
                    }
                })
            })
            .is_ok()
        })
    }

    /// Returns the units recorded against holders proven dead to the value (up to the
    /// bound of a bounded semaphore) and wakes waiters; how many the value grew by.
    pub(crate) fn reclaim_dead(&self) -> u32 {
        if self.arena().foreign() {
            // Pids here name other processes: nothing can be proven.
            return 0;
        }
        // Our own entries need no proof.
        let me = my_owner(self.arena());
        let mut back: u64 = 0;
        for e in self.holders() {
            let w = e.load(Acquire);
            let owner = owner_of(w);
            if w == 0 || Some(owner) == me || !owner_ended(owner) {
                continue;
            }
            // The whole word: if anything changed since the proof (another reclaimer took
            // it and the entry was reused), nothing is taken.
            if e.compare_exchange(w, 0, AcqRel, Relaxed).is_ok() {
                back += units_of(w);
            }
        }
        if back == 0 {
            return 0;
        }
        // All of them, or as many as fit under the cap (more than fit only if the block
        // was written by someone else, or units were released on a holder's behalf).
        let back = u32::try_from(back).unwrap_or(u32::MAX);
        let cap = self.cap;
        let before = self
            .value_word()
            .fetch_update(SeqCst, Acquire, |v| {
                Some(v.saturating_add(back).min(cap).max(v))
            })
            .unwrap_or_else(|v| v);
        let added = before.saturating_add(back).min(cap).max(before) - before;
        if added != 0 && self.waiters().load(SeqCst) != 0 {
            wake_all(self.value_word());
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
    use std::time::Duration;

    use crate::{Arena, BoundedSemaphore, Error, Semaphore};

    /// Fills the block with `word` (a hostile or buggy process's writes).
    fn scribble(base: *mut u8, word: u64) {
        for i in 0..(super::STATE_BYTES / 8) as usize {
            // SAFETY: inside the STATE_BYTES block, 8-aligned; accessed atomically.
            unsafe { (*base.add(8 * i).cast::<AtomicU64>()).store(word, SeqCst) };
        }
    }

    #[test]
    fn garbage_in_the_block_gives_wrong_counts_never_a_panic_or_hang() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let short = Duration::from_millis(5);
        for word in [u64::MAX, 0x5555_5555_5555_5555, 1 << 14, 0xffff_ffff, 1] {
            let s = Semaphore::new_in(&arena, 1).unwrap();
            scribble(s.allocation().ptr(), word);
            let _ = format!("{s:?}");
            let _ = s.reclaim_dead();
            let _ = s.try_acquire();
            let _ = s.acquire_timeout(short);
            if let Some(g) = s.access_timeout(short) {
                drop(g);
            }
            let _ = s.release();
            let _ = s.reclaim_dead();
            let b = BoundedSemaphore::new_in(&arena, 1).unwrap();
            scribble(b.allocation().ptr(), word);
            // A handle made now reads the garbage bound.
            let b = BoundedSemaphore::from_alloc(b.allocation().clone());
            let _ = format!("{b:?}");
            let _ = b.acquire_timeout(short);
            let _ = b.release();
            let _ = b.reclaim_dead();
        }
    }

    #[test]
    fn garbage_holders_past_the_cap_fill_it_and_no_more() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let b = BoundedSemaphore::new_in(&arena, 3).unwrap();
        // Entries whose owner has pid 0 (no process): garbage, cleared, units returned up
        // to the bound.
        for _ in 0..3 {
            assert!(b.try_acquire());
        }
        for i in 0..super::HOLDERS {
            // SAFETY: entry i of the block, 8-aligned; accessed atomically.
            let e = unsafe { &*b.allocation().ptr().add(16 + 8 * i).cast::<AtomicU64>() };
            e.store(5, SeqCst);
        }
        assert_eq!(b.reclaim_dead(), 3, "the value passed the bound");
        assert_eq!(b.value(), 3);
        assert_eq!(b.units.recorded(), 0, "garbage entries were kept");
        assert!(matches!(
            b.release(),
            Err(Error::SemaphoreOverflow { bound: 3 })
        ));
        // A zeroed waiter hint only costs a poll; a wrapped one, needless wakes.
        // SAFETY: the waiters word at offset 8; accessed atomically.
        let waiters = unsafe { &*b.allocation().ptr().add(8).cast::<AtomicU32>() };
        waiters.store(u32::MAX, SeqCst);
        assert!(b.try_acquire());
        b.release().unwrap();
        assert!(b.acquire_timeout(Duration::from_millis(5)));
    }
}
