//! One handle per object per process: a process-local map from (arena id, block offset)
//! to the handle this process has of the object whose data is in that block — every named
//! object it opened, every object it opened by handle, and every `Value`/`Array` it made —
//! so that opening it again gives clones of one handle (one borrow mark, see
//! `Allocation::borrow_mark`), never two independent ones whose guards could alias.
//!
//! Each slot also holds the object's *stamp* (a named object's directory stamp, unique per
//! created object; 0 for an unnamed one) and the offset of the lock paired with the data
//! (0 if none yet). A slot whose stamp is not the directory's is an earlier object's at the
//! same offset (a forked child inherits its parent's slots, including ones the parent has
//! since let go): it never matches, and is replaced.
//!
//! The map is guarded by a spin lock. A fork handler (`sys::process`) takes it before every
//! `fork()` made through libc and releases it on both sides, so a child never inherits it
//! held. A child made by a raw `fork`/`clone` system call (no handlers run) while another
//! thread held it cannot trust the map: every use then fails with an error rather than
//! waiting forever or starting from an empty map (which would hand out second handles).

use std::collections::HashMap;
use std::ptr::null_mut;
use std::sync::atomic::{
    AtomicBool, AtomicPtr,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Weak};

use crate::arena::{Allocation, Arena};
use crate::{Error, Result};

/// What the map holds of one block.
struct Slot {
    stamp: u64,
    lock: u64,
    data: Weak<Allocation>,
}

type Map = HashMap<(u64, u64), Slot>;

static HELD: AtomicBool = AtomicBool::new(false);
/// Set in a child made without libc's `fork` while the map was held.
static BROKEN: AtomicBool = AtomicBool::new(false);
static MAP: AtomicPtr<Map> = AtomicPtr::new(null_mut());

fn take() {
    while HELD
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

/// `pthread_atfork` prepare handler: the forking thread takes the map's lock, so no other
/// thread is in the middle of an update when the child's copy is made.
pub(crate) fn before_fork() {
    take();
}

/// `pthread_atfork` parent and child handler: releases what `before_fork` took.
pub(crate) fn after_fork() {
    HELD.store(false, Release);
}

/// Called in a child made without libc's `fork` (no handler ran): a map held at the fork
/// may be half-updated.
pub(crate) fn after_raw_fork() {
    if HELD.load(Acquire) {
        BROKEN.store(true, Release);
    }
}

struct Held;

impl Drop for Held {
    fn drop(&mut self) {
        HELD.store(false, Release);
    }
}

/// Runs `f` on the map. `f` must not drop an `Arc<Allocation>` (its drop uses the map).
///
/// Every use of the map comes through here, so this is where a child made by a raw fork
/// learns that it is one (and whether the map was held at the fork), before it trusts
/// `BROKEN` or waits for the lock: a lock held by a thread that does not exist in the
/// child would otherwise be waited for forever.
fn with_map<R>(f: impl FnOnce(&mut Map) -> R) -> Result<R> {
    crate::sys::process::renew_if_forked();
    if BROKEN.load(Acquire) {
        return Err(Error::Corrupted(
            "this process was forked without libc's fork while another thread was updating \
             its table of open objects: it cannot open shared objects by name or handle"
                .into(),
        ));
    }
    take();
    let _held = Held;
    let mut map = MAP.load(Relaxed);
    if map.is_null() {
        map = Box::into_raw(Box::default());
        MAP.store(map, Relaxed);
    }
    // SAFETY: `map` came from `Box::into_raw` and is never freed; the spin lock, held by
    // this thread, makes this the only reference to it.
    Ok(f(unsafe { &mut *map }))
}

/// This process's handle of the object of stamp `stamp` whose block is at `block`, and
/// the lock offset paired with it, if it has one.
pub(crate) fn find(
    arena: &Arena,
    block: u64,
    stamp: u64,
) -> Result<Option<(Arc<Allocation>, u64)>> {
    with_map(|m| {
        let slot = m.get(&(arena.id(), block))?;
        if slot.stamp != stamp {
            return None;
        }
        Some((slot.data.upgrade()?, slot.lock))
    })
}

/// What [`insert`] found.
pub(crate) enum Inserted {
    /// `data` was recorded (or was there already).
    Ok(Arc<Allocation>),
    /// This process has another handle of the object, paired with another lock.
    OtherLock,
}

/// Records `data` (paired with the lock at `lock`, 0 for none) as this process's handle
/// of the object of stamp `stamp` whose block is at `block`, unless it has one already:
/// then that one is returned, if its lock is `lock` (or either has none).
pub(crate) fn insert(
    arena: &Arena,
    block: u64,
    stamp: u64,
    lock: u64,
    data: Arc<Allocation>,
) -> Result<Inserted> {
    let first = with_map(|m| {
        let key = (arena.id(), block);
        let live = m
            .get(&key)
            .filter(|s| s.stamp == stamp)
            .and_then(|s| Some((s.data.upgrade()?, s.lock)));
        match live {
            Some((first, have)) if have != 0 && lock != 0 && have != lock => Err((first, have)),
            Some((first, have)) => {
                if have == 0 && lock != 0 {
                    m.get_mut(&key).expect("just found").lock = lock;
                }
                Ok(Some(first))
            }
            None => {
                data.set_mapped(block);
                let data = Arc::downgrade(&data);
                m.insert(key, Slot { stamp, lock, data });
                Ok(None)
            }
        }
    })?;
    // Arcs are dropped (closing an open record) only here, with the map's lock released.
    Ok(match first {
        Ok(Some(first)) => Inserted::Ok(first),
        Ok(None) => Inserted::Ok(data),
        Err(_) => Inserted::OtherLock,
    })
}

/// Records `data`, a handle this process just made of an object it owns (a new unnamed
/// `Value`/`Array`, or one it just wrapped), paired with the lock at `lock`. Any earlier
/// slot of the block is an ended object's (the block was free until now).
pub(crate) fn record_owned(arena: &Arena, block: u64, lock: u64, data: &Arc<Allocation>) {
    data.set_mapped(block);
    let data = Arc::downgrade(data);
    // A broken map only refuses later opens; nothing to record then.
    let _ = with_map(|m| {
        let old = m.insert(
            (arena.id(), block),
            Slot {
                stamp: 0,
                lock,
                data,
            },
        );
        // Dropping a `Weak` drops no `Allocation`.
        drop(old);
    });
}

/// Forgets the slot of the block at `block`, if its handle is gone.
pub(crate) fn forget(arena: &Arena, block: u64) {
    let _ = with_map(|m| {
        let key = (arena.id(), block);
        if m.get(&key).is_some_and(|s| s.data.strong_count() == 0) {
            m.remove(&key);
        }
    });
}
