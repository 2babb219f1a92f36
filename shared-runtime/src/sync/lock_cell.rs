//! The part of a lock that lives in the arena, and the handle every clone shares.

use std::fmt;
use std::mem::size_of;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use crate::arena::{Allocation, Arena};
use crate::sync::inspect::{Holder, LockState};
use crate::sync::lock::{LockGuard, Reentrancy};
use crate::sync::poison::{Poison, PoisonCause};
use crate::sys::futex::{Acquired, FutexLock};
use crate::sys::liveness::thread_of_live_process;
use crate::sys::process::current_pid;
use crate::Result;

/// A lock in shared memory: the robust futex lock word, plus what `Debug` shows and the
/// poison record. 24 bytes (48 of arena with the block header).
#[repr(C)]
pub(crate) struct LockCell {
    lock: FutexLock,
    /// Process id of the holder, 0 when free (informational: written by the holder).
    owner: AtomicI32,
    /// How many times the holder has acquired it (at most 1 for `Lock`).
    depth: AtomicU32,
    /// The poison record, sticky until `clear_poison`, in one word so that it is written,
    /// cleared and read whole (two words raced: a record could be read as one holder's
    /// cause with another's pid, or with none): the cause ([`NOT_POISONED`], [`PANICKED`],
    /// [`DIED`], [`THREAD_DIED`]) in the low 32 bits, the poisoning holder's process id (0
    /// if unknown) in the high 32. On little-endian machines that is where the two 32-bit
    /// fields it replaces were (cause at byte 16, pid at byte 20).
    poison: AtomicU64,
}

const _: () = assert!(size_of::<LockCell>() as u64 == crate::arena::LOCK_CELL);
const _: () = assert!(size_of::<LockCell>() == 24);
const _: () = assert!(std::mem::offset_of!(LockCell, poison) == 16);

impl LockCell {
    /// The poison record: why and by whom the lock was poisoned, `None` if it is not.
    fn poison(&self) -> Option<Poison> {
        let word = self.poison.load(Relaxed);
        let cause = match word as u32 {
            NOT_POISONED => return None,
            PANICKED => PoisonCause::Panicked,
            DIED => PoisonCause::Died,
            THREAD_DIED => PoisonCause::ThreadDied,
            _ => PoisonCause::Unknown,
        };
        let pid = (word >> 32) as u32 as i32;
        Some(Poison {
            pid: (pid > 0).then_some(pid),
            cause,
        })
    }

    /// A snapshot of the cell, each field read atomically; nothing read is followed.
    pub(crate) fn state(&self) -> LockState {
        let holder = self.lock.holder();
        let holder = (holder != 0).then(|| Holder::of(holder, self.owner.load(Relaxed)));
        LockState {
            holder,
            depth: self.depth.load(Relaxed),
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

/// Causes in `LockCell::poison` (a zeroed cell is not poisoned; any other value, written
/// by a foreign version or writer, is reported as an unknown cause).
const NOT_POISONED: u32 = 0;
const PANICKED: u32 = 1;
/// The holding process ended.
const DIED: u32 = 2;
/// A holding thread ended while its process lived on.
const THREAD_DIED: u32 = 3;

/// One poison record word.
fn record(cause: u32, pid: i32) -> u64 {
    u64::from(cause) | u64::from(pid as u32) << 32
}

/// The process-local handle of a lock; clones of `Lock`/`RLock` share one. Whether the lock
/// is re-entrant is not stored: it is the `K` parameter of the acquiring methods, fixed by
/// the lock's type.
#[derive(Clone)]
pub(crate) struct LockCore {
    alloc: Arc<Allocation>,
}

impl LockCore {
    pub(crate) fn new_in(arena: &Arena) -> Result<Self> {
        // The creating thread will most likely take the lock: if it cannot be identified,
        // say so now, as an error, rather than as a panic at the first `lock`.
        arena.lock_identity()?;
        // A fresh block is zeroed: an unlocked lock word, no owner, depth 0, not poisoned.
        let alloc = arena.alloc_lock_cell()?;
        Ok(LockCore {
            alloc: Arc::new(alloc),
        })
    }

    /// The lock cell at the start of a shared block (a named or handed-over lock).
    pub(crate) fn from_alloc(alloc: Arc<Allocation>) -> Self {
        LockCore { alloc }
    }

    pub(crate) fn allocation(&self) -> &Arc<Allocation> {
        &self.alloc
    }

    #[inline]
    fn cell(&self) -> &LockCell {
        // SAFETY: the allocation holds a LockCell (all zeroes is a valid, unlocked one) for
        // as long as `self.alloc` lives. Every field is an atomic, so a shared reference is
        // sound even while other threads and processes use the lock.
        unsafe { &*self.alloc.ptr().cast::<LockCell>() }
    }

    pub(crate) fn same_as(&self, other: &LockCore) -> bool {
        // The same cell in this process's mapping, however each handle was made.
        self.alloc.ptr() == other.alloc.ptr()
    }

    pub(crate) fn arena(&self) -> &Arena {
        self.alloc.arena()
    }

    /// The calling thread's identity in this lock's arena, for the acquire functions, whose
    /// std-shaped results have no room for an [`Error`](crate::Error).
    #[track_caller]
    #[inline]
    fn identity(&self) -> u64 {
        self.arena()
            .lock_identity()
            .unwrap_or_else(|e| panic!("cannot take a lock: {e}"))
    }

    /// Whether this thread holds the lock already.
    #[inline]
    fn held_by(&self, me: u64) -> bool {
        self.cell().lock.holder() == me
    }

    /// A snapshot of the lock, for inspection.
    pub(crate) fn state(&self) -> LockState {
        self.cell().state()
    }

    /// The poison record: why and by whom the lock was poisoned, `None` if it is not.
    pub(crate) fn poison(&self) -> Option<Poison> {
        self.cell().poison()
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.cell().poison.load(Relaxed) as u32 != NOT_POISONED
    }

    pub(crate) fn clear_poison(&self) {
        self.cell().poison.store(0, Relaxed);
    }

    /// Records why the lock is poisoned; `pid` is the holder that ended badly.
    #[cold]
    fn set_poison(&self, why: u32, pid: i32) {
        self.cell().poison.store(record(why, pid), Relaxed);
    }

    #[inline]
    fn enter(&self, how: Acquired) -> LockResult<LockGuard<'_>> {
        let c = self.cell();
        // Only the holder writes these fields, so plain loads and stores suffice (atomics
        // only because other threads and processes may read them for `Debug`).
        let depth = if let Acquired::OwnerDied { holder } = how {
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
            0
        } else {
            c.depth.load(Relaxed)
        };
        // Only a re-entry can be this deep (a fresh acquisition starts from 0), so the lock
        // is this thread's and stays held by its earlier guards: refusing leaves it as it
        // was. Wrapping instead would let the next release unlock under live guards.
        let Some(deeper) = depth.checked_add(1) else {
            panic!(
                "RLock re-entered more than {} times by one thread",
                u32::MAX
            );
        };
        c.depth.store(deeper, Relaxed);
        if depth == 0 {
            c.owner.store(current_pid(), Relaxed);
        }
        // SAFETY: the lock was just acquired (or re-entered) by this thread; the guard
        // releases one level of it, once.
        let guard = unsafe { LockGuard::new(self) };
        // Sticky, as std's: every acquisition is told until someone calls `clear_poison`.
        if self.is_poisoned() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    fn enter_try(&self, how: Option<Acquired>) -> TryLockResult<LockGuard<'_>> {
        match how {
            None => Err(TryLockError::WouldBlock),
            Some(how) => self.enter(how).map_err(TryLockError::Poisoned),
        }
    }

    /// Blocks until held; `K` says whether the holding thread may enter again.
    pub(crate) fn lock<K: Reentrancy>(&self) -> LockResult<LockGuard<'_>> {
        let me = self.identity();
        if self.held_by(me) {
            assert!(
                K::REENTRANT,
                "deadlock: this thread already holds this Lock, which is not re-entrant \
                 (use an RLock to acquire it again while holding it)"
            );
            return self.enter(Acquired::Clean);
        }
        let how = self
            .cell()
            .lock
            .lock(me, None)
            .expect("an unbounded wait succeeds");
        self.enter(how)
    }

    pub(crate) fn try_lock<K: Reentrancy>(&self) -> TryLockResult<LockGuard<'_>> {
        let me = self.identity();
        if self.held_by(me) {
            // For the non-blocking forms, a `Lock` this thread holds simply "would block".
            return self.enter_try(K::REENTRANT.then_some(Acquired::Clean));
        }
        self.enter_try(self.cell().lock.try_lock(me))
    }

    pub(crate) fn try_lock_for<K: Reentrancy>(
        &self,
        timeout: Duration,
    ) -> TryLockResult<LockGuard<'_>> {
        let me = self.identity();
        if self.held_by(me) {
            return self.enter_try(K::REENTRANT.then_some(Acquired::Clean));
        }
        let deadline = Instant::now().checked_add(timeout);
        self.enter_try(self.cell().lock.lock(me, deadline))
    }

    /// Called by the guard, on the holding thread, to release one level. `was_panicking`:
    /// whether the thread was already unwinding when it took this level.
    #[inline]
    pub(crate) fn leave(&self, was_panicking: bool) {
        let c = self.cell();
        // A guard that crossed a fork (moved into a child's closure) releases nothing: the
        // lock is the parent thread's (the child's thread has another identity), and only
        // that thread's copy of the guard may release it. The identity is cached since the
        // lock was taken, except in a `vfork` child, which caches nothing and asks again.
        let me = match self.arena().cached_lock_identity() {
            Some(me) => me,
            None => match self.arena().lock_identity() {
                Ok(me) => me,
                Err(_) => return,
            },
        };
        if c.lock.holder() != me {
            return;
        }
        // std's rule: poison only if the thread started panicking while it held this
        // level (a level taken during an unrelated unwind, in a destructor, ran its
        // critical section to the end).
        if !was_panicking && std::thread::panicking() {
            self.set_poison(PANICKED, current_pid());
        }
        let depth = c.depth.load(Relaxed);
        c.depth.store(depth.saturating_sub(1), Relaxed);
        if depth <= 1 {
            c.owner.store(0, Relaxed);
            // SAFETY: called only from a guard's drop, on the thread that holds the lock,
            // and this was its last level.
            unsafe { c.lock.unlock() }
        }
    }

    /// Overwrites the recorded re-entry depth.
    ///
    /// # Safety
    /// The calling thread must hold the lock (the depth is the holder's to write), and the
    /// guards it drops afterwards must not release the lock while another still lives.
    pub(crate) unsafe fn set_depth(&self, depth: u32) {
        self.cell().depth.store(depth, Relaxed);
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
            d.field("depth", &c.depth.load(Relaxed));
        }
        d.field("poisoned", &self.is_poisoned()).finish()
    }
}
