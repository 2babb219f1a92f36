//! Round-2 review (issue 11 fixes, 642fdd0): reproducers. Every wait is bounded.

use std::panic::{catch_unwind, AssertUnwindSafe};

use shared_runtime::{synchronized, Arena, Lock, RawArray};

/// (b) The per-process opened map is bypassed by `from_offset_in` / an owned handle
/// (`Allocation::adopt`): a process that has a block open as data (a borrowed view from a
/// handle) adopts the same block, wraps it in an `Array` (`record_owned` overwrites the
/// view's slot) and then writes through the old view while the Array's guard holds a
/// `&mut [u64]` over the same words, in the same thread. The borrow mark of the view's
/// handle is not the guard's, so nothing refuses it: aliasing `&mut` in safe code.
#[test]
fn adopted_block_aliases_a_view_opened_before() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let r = RawArray::<u64>::zeroed_in(&arena, 2).unwrap();
    let lent = r.handle();
    let off = r.into_offset().unwrap();
    // A view of the detached block (owner 0: not this process's, so it opens).
    let view = RawArray::<u64>::open_handle(&arena, &lent).unwrap();
    // The same process takes the block over and wraps it.
    let mine = RawArray::<u64>::from_offset_in(&arena, off, 2).unwrap();
    let arr = synchronized(mine, Lock::new_in(&arena).unwrap()).unwrap();
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

/// (a) `from_offset_in` (and an owned handle: `Allocation::adopt`) never looks at the
/// block's KIND_TAG. Another process that writes "owner 0" (detached) into the header of
/// a Semaphore's block (a hostile write, with the canary it can compute from the arena id)
/// lets this process adopt the semaphore's block as a RawArray: data over a sync object's
/// words, owned twice (the Semaphore's allocation and the array's), freed by the array
/// while the semaphore is still in use.
#[test]
fn tagged_semaphore_block_is_adopted_as_data() {
    use shared_runtime::{Semaphore, Value};
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let s = Semaphore::new_in(&arena, 1).unwrap();
    let soff = s.handle().offset;
    // The mapping's base, as another process mapping the segment would have it.
    let v = Value::<u64, Lock>::with_lock_in(&arena, 0, Lock::new_in(&arena).unwrap()).unwrap();
    let voff = v.getobj().offset() as usize;
    let base = {
        let g = v.lock().unwrap();
        (&*g as *const u64 as usize) - voff
    };
    unsafe {
        let id = *((base + 24) as *const u64);
        let b = soff - 16;
        let canary = (id ^ b).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        let w = (base + b as usize + 8) as *mut u64;
        std::ptr::write_volatile(w, canary << 32); // owner 0: "detached"
    }
    let adopted = RawArray::<u64>::from_offset_in(&arena, soff, 2);
    assert!(
        adopted.is_err(),
        "a block tagged as a Semaphore's was adopted as a RawArray"
    );
}
