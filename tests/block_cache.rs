//! The process-local cache of freed small blocks (`arena/cache.rs`): a freed block is
//! reused zeroed, counters stay truthful, a forked child never takes its parent's cached
//! blocks, a child's cache is given back when it ends, and a killed process's cached
//! blocks are reclaimed like anything else it owned, never handed out while it lives.
//!
//! The cache serves blocks of 61 to 112 payload bytes (smaller objects are slots of slabs,
//! `tests/slab.rs`), so the objects here are of that size: a `Big` (64 bytes) as data, a
//! `Value<Big>` made with its own lock (lock cell and data in one 88-byte block) as a
//! block that starts with a lock cell.

mod common;

use std::time::Duration;

use common::{finish, forking, in_child, wait_until, PATIENCE};
use shared_runtime::{Arena, Event, Lock, Process, RawArray, RawValue, Value};

/// A payload the block cache serves (61..=112 bytes): larger than any slab slot.
type Big = [u64; 8];

/// `x` in every word of a `Big`.
fn big(x: u64) -> Big {
    [x; 8]
}

/// Allocates and frees one small value in `arena`, so that this process holds a slot of
/// the arena's table of caches (taken by the first free that finds none).
fn warm(arena: &Arena) {
    drop(RawValue::new_in(arena, big(0)).unwrap());
}

#[test]
fn a_freed_small_value_is_reused_zeroed_without_the_allocator() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    warm(&arena);
    let v = RawValue::new_in(&arena, big(u64::MAX)).unwrap();
    let at = v.offset();
    drop(v);
    let w = RawValue::<Big>::zeroed_in(&arena).unwrap();
    assert_eq!(w.offset(), at, "the freed block is taken from the cache");
    assert_eq!(
        w.get(),
        big(0),
        "a cached block is zeroed before it is handed out"
    );
    drop(w);
    // Reading the counters gives this process's cached blocks back first.
    let s = arena.stats().unwrap();
    assert_eq!(
        (s.allocations, s.frees, s.live_allocations, s.bytes_in_use),
        (2, 2, 0, 0),
        "the second value was the first one's block, from the cache; the counts are true"
    );
    assert_eq!(arena.check().unwrap().used_blocks, 0);
}

#[test]
fn a_cached_lock_cell_comes_back_unlocked() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    // A lock of its own is a slab slot (24 bytes); a Value<Big>'s one block starts with a
    // lock cell and is cached.
    for _ in 0..3 {
        let v = Value::new_in(&arena, big(1)).unwrap();
        let guard = v.getlock().try_lock().expect("a new lock is free");
        std::mem::forget(guard); // its cell is dropped held
    }
    let s = arena.stats().unwrap();
    assert_eq!(s.live_allocations, 0);
    assert_eq!(s.allocations, 2, "the third lock cell came from the cache");
}

#[test]
fn threads_share_the_cache_and_the_counters_add_up() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 22).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let arena = &arena;
            s.spawn(move || {
                let mut live = Vec::new();
                for i in 0..5_000u64 {
                    if i % 3 == 2 {
                        live.pop();
                    }
                    let v = RawValue::new_in(arena, big(t << 32 | i)).unwrap();
                    assert_eq!(v.get(), big(t << 32 | i));
                    live.push(v);
                    if live.len() > 40 {
                        live.drain(..20);
                    }
                }
            });
        }
    });
    let report = arena.check().unwrap();
    assert_eq!(report.used_blocks, 0);
    assert_eq!(arena.stats().unwrap().live_allocations, 0);
}

#[test]
fn a_forked_child_never_takes_its_parents_cached_blocks() {
    let _serial = forking();
    let global = Arena::global();
    let before = global.stats().unwrap().live_allocations;
    warm(global);
    let v = RawValue::new(big(7)).unwrap();
    let cached = v.offset();
    drop(v); // into this process's cache of the global arena
    let child = Process::start(move || {
        // Many allocations of the same class: none may be the parent's cached block.
        let held: Vec<_> = (0..200).map(|_| RawValue::new(big(1)).unwrap()).collect();
        let clash = held.iter().any(|v| v.offset() == cached);
        drop(held); // into the child's own cache, given back when the child ends
        u8::from(clash)
    })
    .unwrap();
    assert_eq!(
        finish(child).unwrap(),
        0,
        "the child was handed a cached block"
    );
    // The child's cache went back to the arena as it ended; the parent's block is still
    // the parent's, and its next allocation of that class takes it.
    let again = RawValue::new(big(0)).unwrap();
    assert_eq!(again.offset(), cached);
    assert_eq!(again.get(), big(0));
    drop(again);
    assert_eq!(global.stats().unwrap().live_allocations, before);
}

#[test]
fn a_killed_processes_cached_blocks_are_never_reused_while_it_lives_then_reclaimed() {
    let _serial = forking();
    const N: usize = 16;
    let global = Arena::global();
    let before = global.stats().unwrap().live_allocations;
    // Slot N is the child's "ready" flag.
    let offsets = RawArray::<u64>::zeroed(N + 1).unwrap();
    let shared = offsets.clone();
    let mut child = Process::start(move || -> u8 {
        warm(Arena::global());
        let vs: Vec<_> = (0..N)
            .map(|i| RawValue::new(big(i as u64)).unwrap())
            .collect();
        for (i, v) in vs.iter().enumerate() {
            shared.set(i, v.offset());
        }
        drop(vs); // cached by this child, still its blocks in the arena
        shared.set(N, 1);
        loop {
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .unwrap();
    assert!(
        wait_until(|| offsets.get(N) == Some(1)),
        "the child never got ready"
    );
    let cached: Vec<u64> = offsets.read(..N);
    let mine: Vec<_> = (0..4 * N).map(|_| RawValue::new(big(0)).unwrap()).collect();
    assert!(
        mine.iter().all(|v| !cached.contains(&v.offset())),
        "a block cached by a live process was handed out again"
    );
    drop(mine);
    child.kill().unwrap();
    assert!(child.join_timeout(PATIENCE).is_err(), "killed, not joined");
    // Dead: its cached blocks are counted as cached, not as objects, until they are
    // reclaimed like anything else it owned; they were no objects, so none is reported.
    let s = global.stats().unwrap();
    assert!(s.cached_blocks >= N as u64, "{s:?}");
    let reclaimed = global.reclaim_dead().unwrap();
    let after = global.stats().unwrap();
    assert_eq!(after.cached_blocks, 0);
    assert_eq!(
        after.live_allocations,
        s.live_allocations - reclaimed.objects,
        "objects and cached blocks are told apart: {s:?} {reclaimed:?} {after:?}"
    );
    assert_eq!(after.frees - s.frees, reclaimed.objects + s.cached_blocks);
    drop((offsets, child));
    assert_eq!(global.stats().unwrap().live_allocations, before);
    global.check().unwrap();
}

#[test]
fn a_handle_to_a_cached_block_opens_nothing_and_it_cannot_be_adopted() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    warm(&arena);
    let v = RawValue::new_in(&arena, big(7)).unwrap();
    let (h, at) = (v.handle(), v.offset());
    drop(v);
    let err = RawValue::<Big>::open_handle(&arena, &h).unwrap_err();
    assert!(err.to_string().contains("freed"), "{err}");
    let err = RawValue::<Big>::from_offset_in(&arena, at).unwrap_err();
    assert!(err.to_string().contains("freed"), "{err}");
    // Nor in a child, where the block is its parent's.
    let refused = in_child(|| RawValue::<Big>::open_handle(&arena, &h).is_err() as u8).unwrap();
    assert_eq!(refused, 1, "a child opened its parent's cached block");
    // Taken out again, it is an object: the block is the same one.
    let w = RawValue::<Big>::zeroed_in(&arena).unwrap();
    assert_eq!(w.offset(), at);
    w.set(big(3));
    let seen =
        in_child(|| RawValue::<Big>::open_handle(&arena, &h).map_or(99, |v| v.get()[7])).unwrap();
    assert_eq!(seen, 3, "the child opens the live object again");
}

#[test]
fn a_cached_block_takes_the_marks_of_its_next_use_only() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    // The kind-tagged objects (Event, Condition, Barrier: 24 to 40 bytes) are slots of
    // slabs kept per mark, so an Event's slot never becomes data.
    let e = Event::new_in(&arena).unwrap();
    e.set();
    let eh = e.handle();
    drop(e);
    let d = RawArray::<u8>::zeroed_in(&arena, 24).unwrap();
    assert_ne!(d.handle().offset, eh.offset, "an Event's slot became data");
    let refused = in_child(|| u8::from(Event::open_handle(&arena, &eh).is_err())).unwrap();
    assert_eq!(refused, 1, "a freed Event's handle opened");
    drop(d);
    // The marks the cache sees: a block starting with a lock cell (a Value<Big> made with
    // its own lock: 88 bytes) comes back as data of the same size.
    let v = Value::new_in(&arena, big(9)).unwrap();
    let lh = v.getlock().handle();
    drop(v);
    let r = RawArray::<u8>::zeroed_in(&arena, 88).unwrap();
    assert_eq!(r.handle().offset, lh.offset, "from the cache");
    assert_eq!(r.to_vec(), vec![0; 88], "zeroed");
    let rh = r.handle();
    // Opened in a child (the owner uses the handle it has): as data only.
    let seen = in_child(|| {
        u8::from(Lock::open_handle(&arena, &lh).is_err())
            | u8::from(RawArray::<u8>::open_handle(&arena, &rh).is_ok()) << 1
    })
    .unwrap();
    assert_eq!(
        seen, 3,
        "a lock handle opened a data block, or data did not open"
    );
    drop(r);
    // And data's block comes back as a lock block: marked, unlocked.
    let v = Value::new_in(&arena, big(4)).unwrap();
    let vh = v.handle();
    assert_eq!(v.getlock().handle().offset, rh.offset, "from the cache");
    assert!(v.getlock().try_lock().is_ok(), "unlocked");
    let seen = in_child(|| {
        u8::from(RawArray::<u8>::open_handle(&arena, &rh).is_err())
            | u8::from(Value::<Big>::open_handle(&arena, &vh).is_ok_and(|v| v.get() == big(4))) << 1
    })
    .unwrap();
    assert_eq!(
        seen, 3,
        "a data handle opened a lock block, or the Value did not open"
    );
    drop(v);
    arena.check().unwrap();
}

#[test]
fn a_one_block_value_dropped_locked_comes_back_unlocked_or_as_plain_data() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = Value::new_in(&arena, big(5)).unwrap();
    let lh = v.getlock().handle();
    std::mem::forget(v.getlock().try_lock().expect("a new lock is free"));
    drop(v);
    // Lock cell and value: 88 bytes, the same class as 88 bytes of data.
    let r = RawArray::<u64>::zeroed_in(&arena, 11).unwrap();
    assert_eq!(r.handle().offset, lh.offset, "from the cache");
    assert_eq!(r.to_vec(), vec![0; 11], "the held lock cell was zeroed");
    let refused = in_child(|| u8::from(Lock::open_handle(&arena, &lh).is_err())).unwrap();
    assert_eq!(refused, 1, "a lock handle opened a data block");
    drop(r);
    let v = Value::new_in(&arena, big(6)).unwrap();
    assert_eq!(v.getlock().handle().offset, lh.offset, "from the cache");
    assert!(v.getlock().try_lock().is_ok(), "unlocked");
    assert_eq!(v.get(), big(6));
    v.update(|x| x[0] += 1);
    assert_eq!(v.get()[0], 7);
    drop(v);
    arena.check().unwrap();
}
