//! The part of a lock that lives in the arena, and the handle every clone shares.

use std::fmt;
use std::mem::size_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use crate::arena::{mark_renewed, Allocation, Arena, MappedPtr};
use crate::sync::inspect::{Holder, LockState};
use crate::sync::lock::{LockGuard, Reentrancy};
use crate::sync::poison::{Poison, PoisonCause};
use crate::sys::counted_lock::CountedLock;
use crate::sys::futex::Acquired;
use crate::sys::liveness::{
    cached_identity_renewed, thread_ended, thread_identity, thread_of_live_process, FOREIGN,
    TID_MASK,
};
use crate::sys::process::{
    current_pid_renewed, plain_release, release_key, renew_if_forked_plain_release, NOT_A_KEY,
};
use crate::{Error, Result};

/// A lock in shared memory: the robust futex lock word and its sleeper count
/// ([`CountedLock`]), plus what `Debug` shows and the poison record. 24 bytes, in one cache
/// line (48 of arena with the block header).
#[repr(C)]
pub(crate) struct LockCell {
    /// The lock word: the holder's identity, 0 when free.
    word: AtomicU64,
    /// Process id of the holder, 0 when free (informational: written by the holder).
    owner: AtomicI32,
    /// How many times the holder has acquired it *again* (an `RLock` re-entered; always 0
    /// for `Lock`), so that a fresh acquisition and its release write nothing here.
    depth: AtomicU32,
    /// How many threads sleep on the word (see [`CountedLock`]).
    sleepers: AtomicU32,
    /// The poison record, sticky until `clear_poison`, in one word so that it is written,
    /// cleared and read whole (two words raced: a record could be read as one holder's
    /// cause with another's pid, or with none): the cause ([`NOT_POISONED`], [`PANICKED`],
    /// [`DIED`], [`THREAD_DIED`]) in the low [`CAUSE_BITS`] bits, the poisoning holder's
    /// process id (0 if unknown; pids are below `PID_MAX_LIMIT`, 2^22) above them.
    poison: AtomicU32,
}

const _: () = assert!(size_of::<LockCell>() as u64 == crate::arena::LOCK_CELL);
const _: () = assert!(size_of::<LockCell>() == 24);
const _: () = assert!(std::mem::offset_of!(LockCell, sleepers) == 16);
const _: () = assert!(std::mem::offset_of!(LockCell, poison) == 20);

impl LockCell {
    /// The lock word and its sleeper count.
    #[inline]
    fn lock(&self) -> CountedLock<'_> {
        CountedLock::new(&self.word, &self.sleepers)
    }

    /// The poison record: why and by whom the lock was poisoned, `None` if it is not.
    fn poison(&self) -> Option<Poison> {
        let word = self.poison.load(Relaxed);
        let cause = match word & CAUSE_MASK {
            NOT_POISONED => return None,
            PANICKED => PoisonCause::Panicked,
            DIED => PoisonCause::Died,
            _ => PoisonCause::ThreadDied,
        };
        let pid = (word >> CAUSE_BITS) as i32;
        Some(Poison {
            pid: (pid > 0).then_some(pid),
            cause,
        })
    }

    /// How many times the holder has acquired the lock (0 when free).
    fn depth(&self, held: bool) -> u32 {
        if held {
            self.depth.load(Relaxed).saturating_add(1)
        } else {
            0
        }
    }

    /// A snapshot of the cell, each field read atomically; nothing read is followed.
    pub(crate) fn state(&self) -> LockState {
        let holder = self.lock().holder();
        let holder = (holder != 0).then(|| Holder::of(holder, self.owner.load(Relaxed)));
        LockState {
            holder,
            depth: self.depth(holder.is_some()),
            poison: self.poison(),
        }
    }
}

/// Reads the lock cell at `cell` (a named `Value`'s or lock's block) for inspection.
///
/// # Safety
/// `cell` points to `LOCK_CELL` mapped bytes, 8-aligned, that stay mapped meanwhile.
pub(crate) unsafe fn lock_state_at(cell: *const u8) -> LockState {
    // SAFETY: by the caller's contract the bytes are mapped and aligned; every field of a
    // LockCell is an atomic, valid for any bits and for concurrent use.
    unsafe { &*cell.cast::<LockCell>() }.state()
}

/// Causes in `LockCell::poison`'s low [`CAUSE_BITS`] (a zeroed cell is not poisoned).
const NOT_POISONED: u32 = 0;
const PANICKED: u32 = 1;
/// The holding process ended.
const DIED: u32 = 2;
/// A holding thread ended while its process lived on.
const THREAD_DIED: u32 = 3;

#[cold]
#[inline(never)]
fn depth_overflow() -> ! {
    panic!(
        "RLock re-entered more than {} times by one thread",
        u32::MAX
    )
}

/// How many low bits of a poison record hold the cause.
const CAUSE_BITS: u32 = 2;
const CAUSE_MASK: u32 = (1 << CAUSE_BITS) - 1;

/// One poison record word. A pid that does not fit (none does: pids are below 2^22) is
/// recorded as unknown.
fn record(cause: u32, pid: i32) -> u32 {
    let pid = u32::try_from(pid)
        .ok()
        .filter(|&p| p <= u32::MAX >> CAUSE_BITS);
    cause | pid.unwrap_or(0) << CAUSE_BITS
}

/// The process-local handle of a lock; clones of `Lock`/`RLock` share one. Whether the lock
/// is re-entrant is not stored: it is the `K` parameter of the acquiring methods, fixed by
/// the lock's type.
#[derive(Clone)]
pub(crate) struct LockCore {
    alloc: Arc<Allocation>,
    /// The cell in this process's mapping (`alloc.ptr()`, kept here so that the hot path
    /// follows one pointer, not three).
    cell: MappedPtr<LockCell>,
    /// A copy of the arena's `creator_pidns` (fixed for the arena handle's life), for the
    /// identity this process writes into the lock word.
    creator_pidns: u64,
}

/// The thread id in an identity (its low bits, below the foreign and waiters bits), which
/// holds the whole id (at most `PID_MAX_LIMIT`), foreign or not: what `current_tid` gives.
#[inline]
pub(crate) fn tid_of(me: u64) -> i32 {
    (me & TID_MASK) as i32
}

/// In a guard's release key: the thread was unwinding already when it took the level (a
/// bit no key has, so the release takes its careful path, which reads it).
pub(crate) const UNWINDING: u64 = NOT_A_KEY;

/// The calling thread, as an acquisition records it (see [`LockCore::taker`]).
#[derive(Clone, Copy)]
pub(crate) struct Taker {
    /// Its identity in the lock's arena: what the lock word holds while it holds the lock.
    pub(crate) me: u64,
    /// The release key for a guard taken now (`sys::process::release_key`).
    pub(crate) key: u64,
}

/// How `enter` came to hold the lock.
#[derive(Clone, Copy)]
enum Entry {
    /// Taken fresh from a released lock.
    Fresh,
    /// Taken again by the thread that holds it (`RLock`).
    Again,
    /// Taken over from a holder proven dead.
    OwnerDied { holder: u64 },
}

impl From<Acquired> for Entry {
    #[inline]
    fn from(how: Acquired) -> Self {
        match how {
            Acquired::Clean => Entry::Fresh,
            Acquired::OwnerDied { holder } => Entry::OwnerDied { holder },
        }
    }
}

impl LockCore {
    #[inline]
    fn with_alloc(alloc: Arc<Allocation>) -> Self {
        let cell = MappedPtr::new(
            NonNull::new(alloc.ptr().cast::<LockCell>())
                .expect("shared objects are never at address 0"),
        );
        let creator_pidns = alloc.arena().creator_pidns();
        LockCore {
            alloc,
            cell,
            creator_pidns,
        }
    }

    pub(crate) fn new_in(arena: &Arena) -> Result<Self> {
        // The creating thread will most likely take the lock: if it cannot be identified,
        // say so now, as an error, rather than as a panic at the first `lock`.
        arena.lock_identity()?;
        // A fresh block is zeroed: an unlocked lock word, no owner, depth 0, not poisoned.
        let alloc = arena.alloc_lock_cell()?;
        Ok(LockCore::with_alloc(alloc))
    }

    /// The lock cell at the start of a shared block (a named or handed-over lock).
    #[inline]
    pub(crate) fn from_alloc(alloc: Arc<Allocation>) -> Self {
        LockCore::with_alloc(alloc)
    }

    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        &self.alloc
    }

    #[inline]
    fn cell(&self) -> &LockCell {
        // SAFETY: `cell` is `self.alloc.ptr()`, where the allocation holds a LockCell (all
        // zeroes is a valid, unlocked one) for as long as `self.alloc` lives. Every field is
        // an atomic, so a shared reference is sound even while other threads and processes
        // use the lock.
        unsafe { self.cell.get().as_ref() }
    }

    pub(crate) fn same_as(&self, other: &LockCore) -> bool {
        // The same cell in this process's mapping, however each handle was made.
        self.alloc.ptr() == other.alloc.ptr()
    }

    pub(crate) fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// The calling thread's identity in this lock's arena, for the acquire functions, whose
    /// std-shaped results have no room for an [`Error`](crate::Error). Renews the caches of
    /// a child made without libc's `fork` first (once for the whole acquisition).
    #[track_caller]
    #[inline]
    fn me(&self) -> u64 {
        self.taker().me
    }

    /// [`me`](Self::me), and the release key for a guard taken now ([`release_key`]: read
    /// with the fork check, once for the whole acquisition).
    #[track_caller]
    #[inline(always)]
    fn taker(&self) -> Taker {
        let key = release_key();
        let raw = cached_identity_renewed();
        let me = if raw == 0 {
            self.me_uncached()
        } else {
            mark_renewed(raw, self.creator_pidns)
        };
        Taker { me, key }
    }

    /// [`me`](Self::me) when the identity is not cached yet (a thread's first lock, or any
    /// lock in a `vfork` child, which caches nothing).
    #[cold]
    #[track_caller]
    fn me_uncached(&self) -> u64 {
        let raw = thread_identity().unwrap_or_else(|e| panic!("cannot take a lock: {e}"));
        self.arena().mark(raw)
    }

    /// Whether this thread holds the lock already.
    #[inline]
    fn held_by(&self, me: u64) -> bool {
        self.cell().lock().holder() == me
    }

    /// A snapshot of the lock, for inspection.
    pub(crate) fn state(&self) -> LockState {
        self.cell().state()
    }

    /// The poison record: why and by whom the lock was poisoned, `None` if it is not.
    pub(crate) fn poison(&self) -> Option<Poison> {
        self.cell().poison()
    }

    #[inline]
    pub(crate) fn is_poisoned(&self) -> bool {
        self.cell().poison.load(Relaxed) & CAUSE_MASK != NOT_POISONED
    }

    pub(crate) fn clear_poison(&self) {
        self.cell().poison.store(0, Relaxed);
    }

    /// Records that this process's holder panicked while holding the lock.
    #[cold]
    fn poison_panicked(&self) {
        self.set_poison(PANICKED, current_pid_renewed());
    }

    /// Records why the lock is poisoned; `pid` is the holder that ended badly.
    #[cold]
    fn set_poison(&self, why: u32, pid: i32) {
        self.cell().poison.store(record(why, pid), Relaxed);
    }

    #[inline(always)]
    fn enter(&self, how: Entry, taker: Taker) -> LockResult<LockGuard<'_>> {
        let c = self.cell();
        // Only the holder writes these fields, so plain loads and stores suffice (atomics
        // only because other threads and processes may read them for `Debug`). A released
        // lock has no re-entries recorded (its last holder left `depth` at 0 before the
        // release store this thread's acquisition synchronised with), so a fresh
        // acquisition writes only `owner`.
        match how {
            Entry::Fresh => c.owner.store(current_pid_renewed(), Relaxed),
            Entry::Again => self.reenter(),
            Entry::OwnerDied { holder } => {
                self.take_over(holder);
                c.owner.store(current_pid_renewed(), Relaxed);
            }
        }
        // SAFETY: the lock was just acquired (or re-entered) by this thread as `taker.me`,
        // and `taker` was read on this thread; the guard releases one level of it, once.
        let guard = unsafe { LockGuard::new(self, taker) };
        // Sticky, as std's: every acquisition is told until someone calls `clear_poison`.
        if self.is_poisoned() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// Records one more level taken by the thread that holds the lock (an `RLock`).
    #[inline]
    fn reenter(&self) {
        let c = self.cell();
        // Only a re-entry can be this deep, so the lock is this thread's and stays held by
        // its earlier guards: refusing leaves it as it was. Wrapping instead would let the
        // next release unlock under live guards. (At most `u32::MAX` levels in all.)
        let again = c.depth.load(Relaxed);
        let Some(deeper) = again.checked_add(1).filter(|&d| d < u32::MAX) else {
            depth_overflow()
        };
        c.depth.store(deeper, Relaxed);
    }

    /// Records the poison of a lock taken over from `holder`, proven dead, and forgets the
    /// dead holder's re-entries.
    #[cold]
    fn take_over(&self, holder: u64) {
        let c = self.cell();
        c.depth.store(0, Relaxed);
        // The dead holder's pid is still in `owner` (unless it died before writing it,
        // or after clearing it: then 0, "unknown"). Read it before it is overwritten.
        let pid = c.owner.load(Relaxed);
        let why = if thread_of_live_process(holder, pid) {
            THREAD_DIED
        } else {
            DIED
        };
        // The record is written before `owner` names us, on purpose. Until then this
        // thread has not touched the data, so if it dies in between, the next taker
        // finds `owner` still naming the holder that left the data half-done, and
        // records exactly what is recorded here. Naming ourselves first would let a
        // death in between record a holder that never touched the data and lose the
        // one that did. (Once `owner` names us, a death of ours is ours to report.)
        self.set_poison(why, pid);
    }

    fn enter_try(&self, how: Option<Entry>, taker: Taker) -> TryLockResult<LockGuard<'_>> {
        match how {
            None => Err(TryLockError::WouldBlock),
            Some(how) => self.enter(how, taker).map_err(TryLockError::Poisoned),
        }
    }

    /// Blocks until held; `K` says whether the holding thread may enter again. Inlined
    /// whole into the caller (the slow paths are out of line): returned from a call, the
    /// guard went through memory and its copy stalled on store forwarding.
    #[inline(always)]
    pub(crate) fn lock<K: Reentrancy>(&self) -> LockResult<LockGuard<'_>> {
        let taker = self.taker();
        let me = taker.me;
        // The compare-and-swap first: on a free lock it is all there is to do, and when it
        // fails the word it found says whether this thread holds the lock already.
        let how = match self.cell().lock().take(me) {
            Ok(()) => Entry::Fresh,
            Err(cur) if cur == me => {
                assert!(
                    K::REENTRANT,
                    "deadlock: this thread already holds this Lock, which is not re-entrant \
                     (use an RLock to acquire it again while holding it)"
                );
                Entry::Again
            }
            Err(_) => self
                .cell()
                .lock()
                .lock_slow(me, None)
                .expect("an unbounded wait succeeds")
                .into(),
        };
        self.enter(how, taker)
    }

    pub(crate) fn try_lock<K: Reentrancy>(&self) -> TryLockResult<LockGuard<'_>> {
        let taker = self.taker();
        let me = taker.me;
        if self.held_by(me) {
            // For the non-blocking forms, a `Lock` this thread holds simply "would block".
            return self.enter_try(K::REENTRANT.then_some(Entry::Again), taker);
        }
        self.enter_try(self.cell().lock().try_lock(me).map(Entry::from), taker)
    }

    pub(crate) fn try_lock_for<K: Reentrancy>(
        &self,
        timeout: Duration,
    ) -> TryLockResult<LockGuard<'_>> {
        let taker = self.taker();
        let me = taker.me;
        if self.held_by(me) {
            return self.enter_try(K::REENTRANT.then_some(Entry::Again), taker);
        }
        let deadline = Instant::now().checked_add(timeout);
        let how = self.cell().lock().lock(me, deadline);
        self.enter_try(how.map(Entry::from), taker)
    }

    /// Takes a lock its user never nests (a `Queue`'s), waiting until `deadline` (`None`:
    /// as long as it takes); `Ok(None)` if the time ran out. For callers that report
    /// failures as errors, not panics: the thread's identity is looked up fallibly, and a
    /// lock word naming the calling thread on entry (which such a user never leaves
    /// behind) is damage, not a deadlock. The fast path is [`lock`](Self::lock)'s.
    ///
    /// # Errors
    /// The reason a thread that has none cached cannot get an identity (out of
    /// descriptors, say); [`Error::Corrupted`] if the lock word names this thread.
    #[inline]
    pub(crate) fn lock_unnested(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<LockResult<LockGuard<'_>>>> {
        let key = release_key();
        let me = match cached_identity_renewed() {
            0 => self.arena().lock_identity()?,
            raw => mark_renewed(raw, self.creator_pidns),
        };
        let taker = Taker { me, key };
        let lock = self.cell().lock();
        let how = match lock.take(me) {
            Ok(()) => Acquired::Clean,
            Err(cur) if cur == me => return Err(self.names_me()),
            Err(_) => match lock.lock_slow(me, deadline) {
                Some(how) => how,
                None => return Ok(None),
            },
        };
        Ok(Some(self.enter(how.into(), taker)))
    }

    #[cold]
    fn names_me(&self) -> Error {
        Error::Corrupted(format!(
            "the lock word of the object at offset {} names this thread as its holder, \
             but this thread never takes that lock twice: another process overwrote it",
            self.alloc.offset()
        ))
    }

    /// Called by the guard, on the holding thread, to release one level taken as `me`, with
    /// the release key `key` read at the acquisition (with [`UNWINDING`] if the thread was
    /// already unwinding when it took this level).
    #[inline(always)]
    pub(crate) fn leave(&self, me: u64, key: u64) {
        let c = self.cell();
        // The common case, all in one test: the wipe page's word is the key read when the
        // lock was taken (so this is the process that took it, not a forked child the guard
        // was copied into, and the guard is not `Send`: the thread that took it), and this
        // process may release with a plain store (a key with `UNWINDING` never passes); the
        // lock is held at one level, the lock word still names this thread, and the thread
        // is not panicking (nor was it when it took the level: a new panic poisons). A
        // live guard means a held lock (a condition wait, which releases the lock under a
        // live guard, retakes it before the guard can be dropped, even when unwinding), so
        // the word is read only as defence in depth: a word that another process overwrote
        // (or another holder took over, wrongly proving this thread dead) is not released
        // from under its holder by this thread's store of 0. The read costs little: this
        // thread wrote that line when it took the lock.
        if plain_release(key)
            && c.lock().holder() == me
            && c.depth.load(Relaxed) == 0
            && !std::thread::panicking()
        {
            c.owner.store(0, Relaxed);
            // SAFETY: the calling thread holds the lock at its last level, and this process
            // is registered for global membarriers (`plain_release`).
            unsafe { c.lock().unlock(true) }
        } else {
            self.leave_slow(me, key & UNWINDING != 0);
        }
    }

    /// [`leave`](Self::leave), for anything but the common case.
    #[cold]
    #[inline(never)]
    fn leave_slow(&self, me: u64, was_panicking: bool) {
        // First of all: a child made without libc's `fork` renews its caches (its cached
        // identity is still its parent thread's), and the release's kind is decided afresh.
        let plain = renew_if_forked_plain_release();
        let c = self.cell();
        // A guard that crossed a fork (moved into a child's closure) releases nothing: the
        // lock is the parent thread's (the child's thread has another identity), and only
        // that thread's copy of the guard may release it. The common case, checked first:
        // the thread's cache still holds the identity the lock was taken with (then that
        // is the identity `held_here` would find, unmarked: this process is not foreign,
        // as a foreign identity is never a cached one). Anything else (a child, a foreign
        // process, a `vfork` child, which caches nothing) looks its identity up afresh.
        let holds = if cached_identity_renewed() == me {
            c.lock().holder() == me
        } else {
            self.held_here()
        };
        if !holds {
            return;
        }
        // std's rule: poison only if the thread started panicking while it held this
        // level (a level taken during an unrelated unwind, in a destructor, ran its
        // critical section to the end).
        if !was_panicking && std::thread::panicking() {
            self.poison_panicked();
        }
        let again = c.depth.load(Relaxed);
        if again > 0 {
            c.depth.store(again - 1, Relaxed);
        } else {
            c.owner.store(0, Relaxed);
            // SAFETY: called only from a guard's drop, on the thread that holds the lock,
            // and this was its last level.
            unsafe { c.lock().unlock(plain) }
        }
    }

    /// Whether the calling thread holds the lock, its identity looked up afresh.
    #[cold]
    fn held_here(&self) -> bool {
        let me = match self.arena().cached_lock_identity() {
            Some(me) => me,
            None => match self.arena().lock_identity() {
                Ok(me) => me,
                Err(_) => return false,
            },
        };
        self.cell().lock().holder() == me
    }

    /// Checks that the calling thread may wait on a condition with the level it holds as
    /// `me`: it holds the lock (not a guard that crossed a fork), at depth 1.
    ///
    /// # Panics
    /// With a message naming the misuse, before anything is changed.
    #[track_caller]
    pub(crate) fn check_waitable(&self, me: u64) {
        assert!(
            self.cell().lock().holder() == me && self.me() == me,
            "cannot wait on a Condition with a guard this thread does not hold (a guard \
             taken in another process and moved into a forked child)"
        );
        let depth = self.cell().depth(true);
        assert!(
            depth <= 1,
            "cannot wait on a Condition with an RLock held {depth} times: waiting releases \
             the lock, which the outer guards of this thread would then use unlocked; drop \
             the inner guards first (hold it once)"
        );
    }

    /// Releases the lock held by the calling thread as `me` at depth 1, for a condition
    /// wait, leaving the caller's guard alive (it is retaken by
    /// [`retake_after_wait`](Self::retake_after_wait) before the guard is used again).
    ///
    /// # Safety
    /// [`check_waitable(me)`](Self::check_waitable) passed on this thread, and the lock has
    /// not been released since.
    pub(crate) unsafe fn release_for_wait(&self, me: u64) {
        let plain = renew_if_forked_plain_release();
        let c = self.cell();
        debug_assert_eq!(c.lock().holder(), me);
        // No re-entries to forget (`check_waitable`).
        c.owner.store(0, Relaxed);
        // SAFETY: the calling thread holds the lock (the caller's contract).
        unsafe { c.lock().unlock(plain) }
    }

    /// Takes the lock again as `me` after a condition wait, through the robust path (a
    /// holder that died meanwhile is taken over and recorded); whether it is poisoned. The
    /// level taken belongs to the guard that [`release_for_wait`](Self::release_for_wait)
    /// left alive.
    pub(crate) fn retake_after_wait(&self, me: u64) -> bool {
        let how = self
            .cell()
            .lock()
            .lock(me, None)
            .expect("an unbounded wait succeeds");
        // Key 0: this guard is forgotten, never dropped.
        let taker = Taker { me, key: 0 };
        let (guard, poisoned) = match self.enter(how.into(), taker) {
            Ok(g) => (g, false),
            Err(p) => (p.into_inner(), true),
        };
        // The caller's guard releases this level: this second one must not.
        std::mem::forget(guard);
        poisoned
    }

    /// Whether the lock's holder is proven to have ended (nobody has taken it over yet):
    /// a waiter that depends on the lock checks this at each poll.
    /// A process of another pid namespace than the arena's creator proves nothing (the
    /// ids it would check name other threads where it lives), as for a take-over.
    pub(crate) fn holder_proven_dead(&self) -> bool {
        let holder = self.cell().lock().holder();
        holder != 0 && self.me() & FOREIGN == 0 && thread_ended(holder)
    }

    /// Overwrites the recorded re-entry depth.
    ///
    /// # Safety
    /// The calling thread must hold the lock (the depth is the holder's to write), and the
    /// guards it drops afterwards must not release the lock while another still lives.
    pub(crate) unsafe fn set_depth(&self, depth: u32) {
        self.cell().depth.store(depth.saturating_sub(1), Relaxed);
    }

    pub(crate) fn debug(
        &self,
        name: &str,
        reentrant: bool,
        f: &mut fmt::Formatter<'_>,
    ) -> fmt::Result {
        let c = self.cell();
        let owner = c.owner.load(Relaxed);
        let mut d = f.debug_struct(name);
        d.field("owner", &(owner != 0).then_some(owner));
        if reentrant {
            d.field("depth", &c.depth(c.lock().holder() != 0));
        }
        d.field("poisoned", &self.is_poisoned()).finish()
    }
}
