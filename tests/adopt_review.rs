//! Taking a block over (`from_offset_in`, an owned handle: `Allocation::adopt`) as regressions
//! of a review: adoption goes through this process's map of opened objects (one handle, one
//! borrow mark per block), a wrapped block never replaces a live handle's slot, and a block
//! made for a lock or a synchronization object is never taken over as data. Every wait is
//! bounded.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use shared_runtime::handle::Handle;
use shared_runtime::{synchronized, Arena, Error, Lock, RawArray, Semaphore, Value};

/// A process that has a block open as data (a borrowed view from a handle) adopts the
/// same block and wraps it: the view must not write behind the wrapper's guard in the
/// same thread. Refusing at any step passes; so does a panicking raw write.
#[test]
fn adopted_block_aliases_a_view_opened_before() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let r = RawArray::<u64>::zeroed_in(&arena, 2).unwrap();
    let lent = r.handle();
    let off = r.into_offset().unwrap();
    // A view of the detached block (owner 0: not this process's, so it opens).
    let view = RawArray::<u64>::open_handle(&arena, &lent).unwrap();
    // The same process takes the block over and wraps it.
    let Ok(mine) = RawArray::<u64>::from_offset_in(&arena, off, 2) else {
        return; // refused: no second handle
    };
    let Ok(arr) = synchronized(mine, Lock::new_in(&arena).unwrap()) else {
        return; // refused: the view is a clone of the adopted handle
    };
    let mut g = arr.lock().unwrap();
    let slice: &mut [u64] = &mut g;
    slice[0] = 1;
    let wrote = catch_unwind(AssertUnwindSafe(|| view.set(0, 99))).is_ok();
    let seen = slice[0];
    drop(g);
    assert!(
        !wrote,
        "a raw view wrote behind a live guard's &mut in the same thread (guard now reads {seen})"
    );
}

/// Adopting a block this process has a view of gives that view's handle, now the owner:
/// the two see the same words, the adopted one cannot be wrapped while the view lives,
/// the block is taken over once only, and it is freed when the last of them is dropped.
#[test]
fn adopting_a_viewed_block_makes_the_view_the_owner() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let r = RawArray::<u64>::zeroed_in(&arena, 2).unwrap();
    let lent = r.handle();
    let off = r.into_offset().unwrap();
    let view = RawArray::<u64>::open_handle(&arena, &lent).unwrap();
    let mine = RawArray::<u64>::from_offset_in(&arena, off, 2).unwrap();
    view.set(1, 5);
    assert_eq!(mine.get(1), Some(5));
    assert!(
        RawArray::<u64>::from_offset_in(&arena, off, 2).is_err(),
        "taken over twice"
    );
    let wrapped = synchronized(mine, Lock::new_in(&arena).unwrap());
    assert!(
        matches!(wrapped, Err(Error::StillCloned { .. })),
        "wrapped while a view of the same handle lives: {:?}",
        wrapped.err()
    );
    let before = arena.stats().unwrap().live_allocations;
    drop(view);
    let after = arena.stats().unwrap().live_allocations;
    assert_eq!(
        before - after,
        1,
        "the view, now the owner, did not free the block"
    );
}

/// A view this process still has of a block that another process has since freed (here:
/// reclaimed from it once it died) never
/// shares a wrapped object's words unnoticed: wrapping a new array that got the block is
/// refused with `AlreadyOpen` while the view lives, and works once it is dropped.
#[test]
fn wrapping_a_block_a_stale_view_names_is_refused() {
    let _f = common::forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let r = RawArray::<u64>::zeroed_in(&arena, 2).unwrap();
    let lent = r.handle();
    let off = r.into_offset().unwrap();
    let view = RawArray::<u64>::open_handle(&arena, &lent).unwrap();
    // Another process takes the block over and ends without freeing it (its inherited
    // copy of the view, now the owner, is never dropped); this one reclaims it.
    common::in_child(|| drop(RawArray::<u64>::from_offset_in(&arena, off, 2).unwrap())).unwrap();
    assert_eq!(arena.reclaim_dead().unwrap().objects, 1);
    let mut held = Vec::new();
    let again = loop {
        let a = RawArray::<u64>::zeroed_in(&arena, 2).unwrap();
        if a.offset() == off {
            break a;
        }
        assert!(
            held.len() < 64,
            "the freed block was never handed out again"
        );
        held.push(a);
    };
    match synchronized(again, lock.clone()) {
        Err(Error::AlreadyOpen { offset, .. }) => assert_eq!(offset, off),
        other => panic!("wrapped a block a live view names: {:?}", other.err()),
    }
    drop(view);
    let a = loop {
        let a = RawArray::<u64>::zeroed_in(&arena, 2).unwrap();
        if a.offset() == off {
            break a;
        }
        assert!(
            held.len() < 128,
            "the freed block was never handed out again"
        );
        held.push(a);
    };
    let arr = synchronized(a, lock).unwrap();
    arr.set(0, 3);
    assert_eq!(arr.get(0), Some(3));
}

/// Writes "owner 0" (detached) into the header of the used block whose payload is at
/// `payload`, with the canary another process mapping the arena can compute from its id.
fn forge_detached(arena: &Arena, payload: u64) {
    let v = Value::<u64, Lock>::with_lock_in(arena, 0, Lock::new_in(arena).unwrap()).unwrap();
    let voff = v.getobj().offset() as usize;
    let base = {
        let g = v.lock().unwrap();
        (&*g as *const u64 as usize) - voff
    };
    // SAFETY: (a test) a hostile write, as another process could make one, of the owner
    // word of a used block of this arena's mapping (alive: `arena` is borrowed).
    unsafe {
        let id = *((base + 24) as *const u64);
        let b = payload - 16;
        let canary = (id ^ b).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        let w = (base + b as usize + 8) as *mut u64;
        std::ptr::write_volatile(w, canary << 32); // owner 0: "detached"
    }
}

/// An owned handle of a `RawArray<u64>` of 2 at `offset`.
fn owned_handle(arena: &Arena, offset: u64) -> Handle {
    let probe = RawArray::<u64>::zeroed_in(arena, 2).unwrap();
    Handle {
        offset,
        owned: true,
        ..probe.handle()
    }
}

/// A block tagged as a Semaphore's, or made as a lock cell, with "owner 0" (detached)
/// forged into its header by another process, is not taken over as data: neither by
/// `from_offset_in` nor by an owned handle.
#[test]
fn tagged_semaphore_block_is_adopted_as_data() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let s = Semaphore::new_in(&arena, 1).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    for off in [s.handle().offset, lock.handle().offset] {
        forge_detached(&arena, off);
        let adopted = RawArray::<u64>::from_offset_in(&arena, off, 2);
        assert!(
            matches!(adopted, Err(Error::Corrupted(_))),
            "a block made for a sync object was adopted as a RawArray"
        );
        let h = owned_handle(&arena, off);
        let opened = RawArray::<u64>::open_handle(&arena, &h);
        assert!(
            matches!(opened, Err(Error::Corrupted(_))),
            "an owned handle took over a block made for a sync object"
        );
    }
    // Still usable as what they are.
    assert!(s.try_acquire());
    s.release().unwrap();
    assert_eq!(s.value(), 1);
    drop(lock.lock().unwrap());
}

/// Across processes: a child that has a view of a block (opened from a borrowed handle)
/// and then opens an owned handle of it gets the view's handle, now its owner.
#[test]
fn owned_handle_opened_where_a_view_lives_gives_the_view() {
    let _f = common::forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let r = RawArray::<u64>::zeroed_in(&arena, 2).unwrap();
    let lent = r.handle();
    let owned = r.into_handle().unwrap();
    let freed = common::in_child(|| {
        let view = RawArray::<u64>::open_handle(&arena, &lent).unwrap();
        let mine = RawArray::<u64>::open_handle(&arena, &owned).unwrap();
        view.set(1, 7);
        assert_eq!(mine.get(1), Some(7));
        let wrapped = synchronized(mine, Lock::new_in(&arena).unwrap());
        assert!(matches!(wrapped, Err(Error::StillCloned { .. })));
        let before = arena.stats().unwrap().live_allocations;
        drop(view);
        before - arena.stats().unwrap().live_allocations
    })
    .unwrap();
    assert_eq!(
        freed, 1,
        "the child's view, now the owner, did not free the block"
    );
}
