//! A process killed in the middle of an allocator operation leaves the arena usable.

mod common;

use common::{finish, forking, in_child};
use shared_runtime::test_hooks::crash_after_steps;
use shared_runtime::{Arena, Process, RawArray, RawValue};

/// The allocator work each child does: splits, merges both ways, returns to the tail,
/// punched holes and their reuse, and an over-aligned object.
fn workload(arena: &Arena) {
    let a = RawArray::<u8>::zeroed_in(arena, 100).unwrap();
    let b = RawArray::<u8>::zeroed_in(arena, 5_000).unwrap();
    let c = RawArray::<u8>::zeroed_in(arena, 300_000).unwrap();
    let d = RawValue::new_in(arena, 1u64).unwrap();
    drop(b);
    drop(c); // merges with b's hole into a punched run
    let e = RawArray::<u8>::zeroed_in(arena, 200).unwrap(); // split off that run
    let f = RawArray::<[u64; 8]>::zeroed_in(arena, 3).unwrap();
    drop(a);
    drop(e); // merges with a's hole and the run
    drop(d);
    drop(f); // back to the tail
}

/// Kills a child at every step of the workload in turn; after each death the parent's
/// next allocator call rebuilds the state, every invariant holds, and allocation works.
#[test]
fn killed_at_every_step_the_allocator_recovers() {
    let _serial = forking();
    let mut killed = 0;
    for step in 1.. {
        let arena = Arena::with_capacity(8 << 20).unwrap();
        let survivor = RawValue::new_in(&arena, 0xfeed_u64).unwrap();
        let mine = arena.clone();
        match in_child(move || {
            crash_after_steps(step);
            workload(&mine);
            crash_after_steps(0);
        }) {
            Ok(()) => break, // the workload has fewer steps than this: all covered
            Err(e) => assert!(e.to_string().contains("SIGKILL"), "step {step}: {e}"),
        }
        killed += 1;
        let report = arena.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
        assert!(report.used_blocks >= 1, "step {step}");
        assert_eq!(
            survivor.get(),
            0xfeed,
            "step {step}: a live object was disturbed"
        );
        // The arena still works: the same workload runs to the end in this process.
        workload(&arena);
        arena
            .check()
            .unwrap_or_else(|e| panic!("step {step}, after reuse: {e}"));
    }
    assert!(killed > 30, "only {killed} crash points were exercised");
}

/// Workers that allocate, fill and free under the arena lock are killed at random moments;
/// the arena stays consistent and the survivors' data is intact.
#[test]
fn kill_storm_leaves_the_arena_consistent() {
    let _serial = forking();
    let arena = Arena::with_capacity(64 << 20).unwrap();
    let keep: Vec<_> = (0..20)
        .map(|i| RawArray::from_slice_in(&arena, &[i as u8; 1000]).unwrap())
        .collect();
    for round in 0..10 {
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let arena = arena.clone();
                let p = Process::start(move || {
                    let mut mine = Vec::new();
                    for i in 0usize.. {
                        mine.push(
                            RawArray::<u8>::zeroed_in(&arena, (i * 37 + w) % 4000 + 1).unwrap(),
                        );
                        if mine.len() > 20 {
                            mine.swap_remove(i % 20);
                        }
                    }
                })
                .unwrap();
                std::thread::sleep(std::time::Duration::from_millis(
                    (3 + (round * 7 + w) % 11) as u64,
                ));
                p.kill().unwrap();
                p
            })
            .collect();
        for w in workers {
            assert!(finish(w).unwrap_err().to_string().contains("SIGKILL"));
        }
        arena
            .check()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        for (i, k) in keep.iter().enumerate() {
            assert!(
                k.to_vec().iter().all(|&b| b == i as u8),
                "round {round}: object {i}"
            );
        }
    }
    // What the killed workers held is theirs no more: reclaim it all.
    let reclaimed = arena.reclaim_dead().unwrap();
    assert!(reclaimed.objects > 0);
    let report = arena.check().unwrap();
    assert_eq!(
        report.used_blocks,
        keep.len() as u64,
        "only the survivors' objects remain"
    );
    for (i, k) in keep.iter().enumerate() {
        assert!(
            k.to_vec().iter().all(|&b| b == i as u8),
            "object {i} after reclaiming"
        );
    }
}

/// Only the objects of processes that have ended are reclaimed.
#[test]
fn reclaim_spares_the_living() {
    let _serial = forking();
    let arena = Arena::with_capacity(8 << 20).unwrap();
    let mine = RawValue::new_in(&arena, 1u64).unwrap();
    let ready = RawValue::new_in(&arena, 0u8).unwrap();
    let (arena2, ready2) = (arena.clone(), ready.clone());
    let mut child = Process::<()>::start(move || {
        let held: Vec<_> = (0..5)
            .map(|i| RawValue::new_in(&arena2, i as u32).unwrap())
            .collect();
        ready2.set(1);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let _ = &held;
        }
    })
    .unwrap();
    assert!(common::wait_until(|| ready.get() == 1));
    assert_eq!(
        arena.reclaim_dead().unwrap().objects,
        0,
        "the child is alive"
    );
    child.kill().unwrap();
    assert!(child.join_timeout(common::PATIENCE).is_err());
    let reclaimed = arena.reclaim_dead().unwrap();
    assert_eq!(reclaimed.objects, 5);
    assert_eq!(
        arena.stats().unwrap().live_allocations,
        2,
        "this process's two remain"
    );
    assert_eq!(mine.get(), 1);
    arena.check().unwrap();
}

/// A 64-aligned element: its blocks are cut out of a larger free block, front and tail
/// given back.
#[derive(shared_runtime::SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
struct Line {
    v: u64,
}

/// An object of the counted workload.
enum Kept {
    Bytes(RawArray<u8>),
    Line(RawValue<Line>),
}

/// Allocations and frees that split free blocks (a tail given back, and the front of an
/// over-aligned block), carve from the unused tail, and reuse a punched run; `held` is
/// raised before each allocation and lowered after each free, as the kill storm's workers
/// publish what they hold.
fn counted_workload(arena: &Arena, held: &RawValue<u64>) {
    let mut kept: Vec<Kept> = Vec::new();
    let alloc = |kept: &mut Vec<Kept>, what: usize| {
        held.set(held.get() + 1);
        kept.push(match what {
            0 => Kept::Line(RawValue::new_in(arena, Line { v: 7 }).unwrap()),
            n => Kept::Bytes(RawArray::zeroed_in(arena, n).unwrap()),
        });
    };
    let free = |kept: &mut Vec<Kept>, i: usize| {
        match kept.remove(i) {
            Kept::Bytes(b) => assert!(b.to_vec().iter().all(|&x| x == 0), "overwritten"),
            Kept::Line(l) => assert_eq!(l.get(), Line { v: 7 }, "overwritten"),
        }
        held.set(held.get() - 1);
    };
    alloc(&mut kept, 100);
    alloc(&mut kept, 5_000);
    alloc(&mut kept, 300_000);
    alloc(&mut kept, 40);
    free(&mut kept, 1);
    free(&mut kept, 1); // a punched run
    alloc(&mut kept, 200); // split off that run: its tail goes back
    alloc(&mut kept, 0); // over-aligned, from the run: front and tail go back
    alloc(&mut kept, 0);
    free(&mut kept, 0);
    alloc(&mut kept, 0);
    alloc(&mut kept, 24);
    for last in (0..kept.len()).rev() {
        free(&mut kept, last);
    }
}

/// Killed at every step of the counted workload, the child leaves no block but the
/// objects it holds and at most the one it was allocating or freeing: `reclaim_dead` frees
/// within one of what it published. (A block the allocator was giving back, marked as the
/// child's, would be reclaimed as one more object: the kill storm's accounting saw that.)
#[test]
fn killed_at_every_step_only_what_the_child_held_is_reclaimed() {
    let _serial = forking();
    let mut killed = 0;
    for step in 1.. {
        let arena = Arena::with_capacity(8 << 20).unwrap();
        let held = RawValue::new_in(&arena, 0u64).unwrap();
        let (mine, counter) = (arena.clone(), held.clone());
        match in_child(move || {
            crash_after_steps(step);
            counted_workload(&mine, &counter);
            crash_after_steps(0);
        }) {
            Ok(()) => break,
            Err(e) => assert!(e.to_string().contains("SIGKILL"), "step {step}: {e}"),
        }
        killed += 1;
        let published = held.get();
        let reclaimed = arena
            .reclaim_dead()
            .unwrap_or_else(|e| panic!("step {step}: {e}"))
            .objects;
        assert!(
            reclaimed <= published && published <= reclaimed + 1,
            "step {step}: reclaim_dead() freed {reclaimed} objects of a child that held \
             {published} (counting the one in flight)"
        );
        arena.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
        assert_eq!(arena.stats().unwrap().live_allocations, 1, "step {step}");
    }
    assert!(killed > 30, "only {killed} crash points were exercised");
}
