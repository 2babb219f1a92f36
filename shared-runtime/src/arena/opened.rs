//! One handle per object per process: a process-local map from (arena id, block offset)
//! to the handle this process already has of a named object, so that opening it twice
//! gives clones of one handle (one borrow mark, see `Allocation::borrow_mark`), never two
//! independent ones whose guards could alias.
//!
//! The map is guarded by a spin lock that records the holding process's `process_key`
//! rather than by a `Mutex`: a child forked while another thread held it finds the lock
//! held by a process that is not itself, and then starts from an empty map (leaking the
//! possibly half-updated one) instead of waiting forever. A child forked while the lock
//! was free keeps the map, whose handles it inherited too.

use std::collections::HashMap;
use std::ptr::null_mut;
use std::sync::atomic::{
    AtomicPtr, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Weak};

use crate::arena::{Allocation, Arena};
use crate::sys::process::process_key;

type Map = HashMap<(u64, u64), Weak<Allocation>>;

static HOLDER: AtomicU64 = AtomicU64::new(0);
static MAP: AtomicPtr<Map> = AtomicPtr::new(null_mut());

struct Held;

impl Drop for Held {
    fn drop(&mut self) {
        HOLDER.store(0, Release);
    }
}

fn with_map<R>(f: impl FnOnce(&mut Map) -> R) -> R {
    let me = process_key();
    let _held = loop {
        match HOLDER.compare_exchange(0, me, Acquire, Relaxed) {
            Ok(_) => break Held,
            Err(holder) if holder != me => {
                // Held by a thread of the process this one was forked from, which does not
                // exist here: the map may be half-updated, so it is abandoned, unread.
                if HOLDER
                    .compare_exchange(holder, me, Acquire, Relaxed)
                    .is_ok()
                {
                    MAP.store(null_mut(), Relaxed);
                    break Held;
                }
            }
            Err(_) => std::thread::yield_now(),
        }
    };
    let mut map = MAP.load(Relaxed);
    if map.is_null() {
        map = Box::into_raw(Box::default());
        MAP.store(map, Relaxed);
    }
    // SAFETY: `map` came from `Box::into_raw` and is never freed (an abandoned one is
    // leaked); the spin lock, held by this thread, makes this the only reference to it.
    f(unsafe { &mut *map })
}

/// The handle this process has of the object whose block is at `block`, if it has one.
pub(crate) fn find(arena: &Arena, block: u64) -> Option<Arc<Allocation>> {
    with_map(|m| m.get(&(arena.id(), block)).and_then(Weak::upgrade))
}

/// Records `data` as this process's handle of the object whose block is at `block`,
/// unless another thread recorded one first: then that one is returned instead.
pub(crate) fn insert(arena: &Arena, block: u64, data: Arc<Allocation>) -> Arc<Allocation> {
    let first = with_map(|m| {
        let key = (arena.id(), block);
        let first = m.get(&key).and_then(Weak::upgrade);
        if first.is_none() {
            m.insert(key, Arc::downgrade(&data));
        }
        first
    });
    // `data` is dropped (closing its open record) only here, with the map's lock released.
    first.unwrap_or(data)
}

/// Forgets the handle of the object whose block is at `block`, if it is gone.
pub(crate) fn forget(arena: &Arena, block: u64) {
    with_map(|m| {
        let key = (arena.id(), block);
        if m.get(&key).is_some_and(|w| w.strong_count() == 0) {
            m.remove(&key);
        }
    });
}
