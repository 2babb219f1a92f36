//! Review of issue 12 (lazy pages, the exposed prefix): reproducers.

mod common;

use common::{forking, in_child, unique};
use shared_runtime::test_hooks::crash_after_steps;
use shared_runtime::{Arena, Error, RawArray};

/// Fills this (forked, single-threaded) process's VMA table up to `vm.max_map_count` with
/// one-page anonymous mappings of alternating protection (neighbours never merge). Returns
/// them, to be unmapped again.
fn exhaust_vmas() -> Vec<usize> {
    let mut maps = Vec::with_capacity(300_000);
    for i in 0..300_000 {
        let prot = if i % 2 == 0 {
            libc::PROT_READ
        } else {
            libc::PROT_NONE
        };
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            break;
        }
        maps.push(p as usize);
    }
    maps
}

fn release_vmas(maps: Vec<usize>) {
    for p in maps {
        // SAFETY: each was mapped by `exhaust_vmas` and is unmapped once.
        unsafe { libc::munmap(p as *mut libc::c_void, 4096) };
    }
}

/// A process dies in the middle of freeing the block at the heap's top (after lowering
/// `top`, before scrubbing what it gave back). The next process to take the allocator lock
/// sees `OwnerDied` and must rebuild; here that process's view of the arena lags (it opened
/// the segment by name: 1 MiB exposed) and its `mprotect` is refused (its VMA table is
/// full, so the split fails with ENOMEM). `with_heap` returns that error *after* taking
/// the lock and *before* marking the rebuild as pending, and the unlock forgets that the
/// holder died: nobody rebuilds, and the next zeroed array holds the dead process's bytes.
#[test]
fn a_refused_expose_loses_the_rebuild_after_a_dead_holder() {
    let _serial = forking();
    let name = unique("rv-lost-rebuild");
    let arena = Arena::create_segment(&name, 64 << 20).unwrap();
    // Grow the heap well past the first MiB.
    let _big = RawArray::<u8>::zeroed_in(&arena, 8 << 20).unwrap();
    const DIRTY: usize = 64 << 10;

    // Dies at the second step of freeing a dirty block that ends at `top`: `top` lowered,
    // the bytes given back to the tail not yet zeroed.
    let a = arena.clone();
    let killed = in_child(move || {
        let x = RawArray::<u8>::zeroed_in(&a, DIRTY).unwrap();
        x.write(0, &vec![0xAA; DIRTY]);
        crash_after_steps(2);
        drop(x);
        crash_after_steps(0);
    });
    assert!(
        killed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("SIGKILL")),
        "the child was to die mid-free: {killed:?}"
    );

    // The first process to take the lock after the death: a fresh opener whose expose is
    // refused. 1 = the allocator call failed in mprotect, 0 = it succeeded.
    let n = name.clone();
    let refused = in_child(move || {
        let mine = Arena::open_segment(&n).unwrap();
        let maps = exhaust_vmas();
        let r = mine.stats();
        release_vmas(maps);
        match r {
            Err(Error::Os {
                call: "mprotect", ..
            }) => 1u64,
            Err(_) => 2,
            Ok(_) => 0,
        }
    })
    .unwrap();
    assert_eq!(
        refused, 1,
        "precondition: the opener's mprotect was to be refused"
    );

    // The arena must have been rebuilt (or still be marked for it): the dead process's
    // bytes are zero before anyone is handed them.
    let fresh = RawArray::<u8>::zeroed_in(&arena, DIRTY).unwrap();
    let dirty = fresh.to_vec().iter().filter(|&&b| b != 0).count();
    let check = arena.check();
    Arena::remove_segment(&name).unwrap();
    assert_eq!(
        dirty, 0,
        "a zeroed array holds {dirty} bytes of a dead process's freed block (check: {check:?})"
    );
    check.unwrap();
}
