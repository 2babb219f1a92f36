//! Small objects in slabs: 4096-byte blocks of equal slots, each with a 4-byte owner word,
//! claimed and freed without the allocator's lock. Every wait is bounded. (Slabs are not
//! on by default yet: each test turns them on for this process.)

mod common;

use std::collections::HashSet;

use common::{finish, forking, in_child, wait_until};
use shared_runtime::handle::Handle;
use shared_runtime::test_hooks::{crash_after_steps, poke_slab_for_tests, set_slabs_for_tests};
use shared_runtime::{Arena, Error, Lock, Process, RawArray, RawValue, Value};

/// Slots of the 8-byte stride in one slab: (4080 payload bytes - 32 header bytes) / 8.
const SLOTS_8: usize = 506;
const PAGE: u64 = 4096;

fn slab_of(offset: u64) -> u64 {
    offset & !(PAGE - 1)
}

/// A freed slot is the one the next claim in a full slab gets, and it comes back zero.
#[test]
fn a_freed_slot_is_reused_and_zero() {
    set_slabs_for_tests(true);
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let mut values: Vec<RawValue<i32>> = (0..SLOTS_8)
        .map(|i| RawValue::new_in(&arena, i as i32 + 1).unwrap())
        .collect();
    let slab = slab_of(values[0].handle().offset);
    assert!(
        values.iter().all(|v| slab_of(v.handle().offset) == slab),
        "{SLOTS_8} four-byte values do not share one slab"
    );
    assert_eq!(arena.stats().unwrap().slabs, 1);
    let gone = values.swap_remove(100);
    let at = gone.handle().offset;
    gone.set(-1);
    drop(gone);
    let again = RawArray::<u8>::zeroed_in(&arena, 4).unwrap();
    assert_eq!(
        again.handle().offset,
        at,
        "the only free slot was not reused"
    );
    assert_eq!(again.to_vec(), [0; 4], "a reused slot is not zero");
    for (i, v) in values.iter().enumerate() {
        let want = if i == 100 {
            SLOTS_8 as i32
        } else {
            i as i32 + 1
        };
        assert_eq!(v.get(), want, "value {i} was disturbed");
    }
    drop((values, again));
    let stats = arena.stats().unwrap();
    assert_eq!(
        (stats.live_allocations, stats.slabs, stats.heap_bytes),
        (0, 0, 0)
    );
    arena.check().unwrap();
}

/// A four-byte value takes about 8 arena bytes, and a million locked `Value<i32>` fit in
/// 32 MiB (as `stats` counts: slots, plus each slab's header once).
#[test]
fn small_objects_cost_their_slot() {
    set_slabs_for_tests(true);
    let arena = Arena::with_capacity(1 << 30).unwrap();
    let before = arena.stats().unwrap().bytes_in_use;
    let raw: Vec<RawValue<i32>> = (0..1000)
        .map(|i| RawValue::new_in(&arena, i).unwrap())
        .collect();
    let per = (arena.stats().unwrap().bytes_in_use - before) as f64 / 1000.0;
    assert!(per <= 8.2, "a RawValue<i32> costs {per} arena bytes");
    drop(raw);
    let values: Vec<Value<i32>> = (0..1_000_000)
        .map(|i| Value::new_in(&arena, i).unwrap())
        .collect();
    let s = arena.stats().unwrap();
    assert_eq!(s.live_allocations, 1_000_000);
    assert!(
        s.bytes_in_use <= 32 << 20,
        "a million locked values take {} bytes",
        s.bytes_in_use
    );
    // The honest total: whole slabs, spare slots included.
    assert!(s.bytes_in_use + s.slab_spare_bytes <= 33 << 20);
    assert_eq!(values[777_777].update(|v| *v), 777_777);
    drop(values);
    let s = arena.stats().unwrap();
    assert_eq!((s.live_allocations, s.bytes_in_use, s.slabs), (0, 0, 0));
    assert_eq!(s.allocations, s.frees);
}

/// A slot given up with `into_offset` is taken over by another process, which gives it
/// back the same way; it is freed once, by its last owner.
#[test]
fn a_slot_changes_hands_between_processes() {
    set_slabs_for_tests(true);
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = RawValue::new_in(&arena, 41i32).unwrap();
    let off = v.into_offset().unwrap();
    let a = arena.clone();
    let back = in_child(move || {
        let v = RawValue::<i32>::from_offset_in(&a, off).unwrap();
        assert_eq!(v.get(), 41);
        v.set(42);
        v.into_offset().unwrap()
    })
    .unwrap();
    assert_eq!(back, off);
    assert!(
        RawValue::<u64>::from_offset_in(&arena, off).is_err(),
        "too big for the slot"
    );
    let v = RawValue::<i32>::from_offset_in(&arena, off).unwrap();
    assert_eq!(v.get(), 42);
    assert!(
        RawValue::<i32>::from_offset_in(&arena, off).is_err(),
        "taken twice"
    );
    assert_eq!(arena.stats().unwrap().live_allocations, 1);
    drop(v);
    let s = arena.stats().unwrap();
    assert_eq!((s.live_allocations, s.slabs), (0, 0));
    arena.check().unwrap();
}

/// A child killed while it holds slab objects (in the parent's slabs and its own): only
/// its slots are freed by `reclaim_dead`; the parent's stay intact.
#[test]
fn a_killed_childs_slots_are_reclaimed_exactly() {
    set_slabs_for_tests(true);
    let _serial = forking();
    let arena = Arena::with_capacity(8 << 20).unwrap();
    let mine: Vec<RawValue<i32>> = (0..300)
        .map(|i| RawValue::new_in(&arena, i).unwrap())
        .collect();
    let my_locks: Vec<Lock> = (0..10).map(|_| Lock::new_in(&arena).unwrap()).collect();
    let ready = RawValue::new_in(&arena, 0u64).unwrap();
    let (a, flag) = (arena.clone(), ready.handle());
    let child = Process::start(move || {
        let flag = RawValue::<u64>::open_handle(&a, &flag).unwrap();
        let raw: Vec<_> = (0..400).map(|i| RawValue::new_in(&a, i).unwrap()).collect();
        let locks: Vec<_> = (0..20).map(|_| Lock::new_in(&a).unwrap()).collect();
        let values: Vec<_> = (0..30).map(|i| Value::new_in(&a, i).unwrap()).collect();
        flag.set(450);
        std::thread::sleep(std::time::Duration::from_secs(600));
        drop((raw, locks, values));
    })
    .unwrap();
    assert!(
        wait_until(|| ready.get() == 450),
        "the child never got ready"
    );
    let before = arena.stats().unwrap().live_allocations;
    assert_eq!(before, 300 + 10 + 1 + 450);
    child.kill().unwrap();
    assert!(finish(child).is_err(), "the killed child reported success");
    let done = arena.reclaim_dead().unwrap();
    assert_eq!(done.objects, 450);
    assert_eq!(arena.stats().unwrap().live_allocations, 311);
    for (i, v) in mine.iter().enumerate() {
        assert_eq!(v.get(), i as i32);
    }
    for l in &my_locks {
        drop(l.lock().unwrap());
    }
    assert_eq!(arena.reclaim_dead().unwrap().objects, 0, "reclaimed twice");
    arena.check().unwrap();
}

/// A reclaimer killed at every step of freeing a dead process's slots leaves slots the
/// next `reclaim_dead` finishes: in the end exactly the dead process's objects are gone.
#[test]
fn a_killed_reclaimer_is_finished_by_the_next() {
    set_slabs_for_tests(true);
    let _serial = forking();
    let mut killed = 0;
    for step in 1..40 {
        let arena = Arena::with_capacity(8 << 20).unwrap();
        let survivor = RawValue::new_in(&arena, 7i32).unwrap();
        let a = arena.clone();
        in_child(move || {
            for i in 0..5 {
                std::mem::forget(RawValue::new_in(&a, i).unwrap());
            }
            std::mem::forget(Lock::new_in(&a).unwrap());
        })
        .unwrap();
        let a = arena.clone();
        let first = in_child(move || {
            crash_after_steps(step);
            let n = a.reclaim_dead().unwrap().objects;
            crash_after_steps(0);
            n
        });
        let rest = arena.reclaim_dead().unwrap().objects;
        match first {
            Ok(n) => {
                assert_eq!((n, rest), (6, 0), "step {step}");
                break;
            }
            Err(e) => assert!(e.to_string().contains("SIGKILL"), "step {step}: {e}"),
        }
        killed += 1;
        assert!(rest <= 6, "step {step}: {rest} objects reclaimed");
        let s = arena.stats().unwrap();
        assert_eq!(s.live_allocations, 1, "step {step}");
        assert_eq!(survivor.get(), 7, "step {step}");
        arena.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
    }
    assert!(killed >= 6, "only {killed} crash points were exercised");
}

/// Offsets into a slab that name no object in use are refused, by `from_offset_in` and by
/// a handle.
#[test]
fn forged_offsets_into_a_slab_are_refused() {
    set_slabs_for_tests(true);
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = RawValue::new_in(&arena, 1i32).unwrap();
    let w = RawValue::new_in(&arena, 2i32).unwrap();
    let h = v.handle();
    let slab = slab_of(h.offset);
    let freed = {
        let x = RawValue::new_in(&arena, 3i32).unwrap();
        x.handle().offset
    };
    drop(w);
    let forged = [
        slab,                // the slab's header
        slab + 8,            // inside it
        h.offset + 4,        // the owner word of a slot
        h.offset + 2,        // misaligned
        freed,               // a free slot
        slab + 32 + 506 * 8, // past the last slot
        slab - 16,           // the slab's block header
    ];
    for off in forged {
        match RawValue::<i32>::from_offset_in(&arena, off) {
            Err(Error::Corrupted(_)) => {}
            other => panic!("offset {off} (slab {slab}): {:?}", other.map(|v| v.get())),
        }
    }
    let a = arena.clone();
    let opened = in_child(move || {
        forged
            .iter()
            .filter(|&&off| RawValue::<i32>::open_handle(&a, &Handle { offset: off, ..h }).is_ok())
            .count() as u64
    })
    .unwrap();
    assert_eq!(opened, 0);
    // The real slot opens.
    let a = arena.clone();
    assert_eq!(
        in_child(move || RawValue::<i32>::open_handle(&a, &h).unwrap().get()).unwrap(),
        1
    );
    arena.check().unwrap();
}

/// Garbage written into a slab's header or owner words gives errors, never a hang or a
/// crash; allocation goes on elsewhere.
#[test]
fn garbage_in_a_slab_is_reported() {
    set_slabs_for_tests(true);
    let _serial = forking();
    for (word, value) in [
        (0u64, 0xdead_beef_u64),
        (1, 12),
        (2, 1 << 40),
        (3, 0),
        (8, u64::MAX),
    ] {
        let arena = Arena::with_capacity(1 << 20).unwrap();
        let v = RawValue::new_in(&arena, 9i32).unwrap();
        let h = v.handle();
        let slab = slab_of(h.offset);
        // SAFETY: no reference to the slab's words is held.
        unsafe { poke_slab_for_tests(&arena, slab + 8 * word, value).unwrap() };
        assert!(
            arena.check().is_err(),
            "garbage in word {word} went unnoticed"
        );
        // Allocation still works (elsewhere, or in the same slab if the header is fine).
        let more: Vec<_> = (0..600)
            .map(|i| RawValue::new_in(&arena, i).unwrap())
            .collect();
        assert!(more.iter().enumerate().all(|(i, m)| m.get() == i as i32));
        let _ = arena.stats();
        let _ = arena.reclaim_dead();
        let _ = RawValue::<i32>::from_offset_in(&arena, h.offset);
        let a = arena.clone();
        let _ = in_child(move || u8::from(RawValue::<i32>::open_handle(&a, &h).is_ok()));
        drop(more);
        std::mem::forget(v); // its slot may be garbage now
    }
}

/// Threads and processes claiming at once never get the same slot.
#[test]
fn concurrent_claimers_get_distinct_slots() {
    set_slabs_for_tests(true);
    let _serial = forking();
    const PER: usize = 2000;
    let arena = Arena::with_capacity(16 << 20).unwrap();
    let warm = RawValue::new_in(&arena, 0i32).unwrap(); // a current slab to share
    let offsets = RawArray::<u64>::zeroed_in(&arena, 2 * PER).unwrap();
    let go = RawValue::new_in(&arena, 0u32).unwrap();
    let mut children = Vec::new();
    for c in 0..2 {
        let (a, oh, gh) = (arena.clone(), offsets.handle(), go.handle());
        children.push(
            Process::start(move || {
                let offsets = RawArray::<u64>::open_handle(&a, &oh).unwrap();
                let go = RawValue::<u32>::open_handle(&a, &gh).unwrap();
                assert!(wait_until(|| go.get() == 1));
                for i in 0..PER {
                    let v = RawValue::new_in(&a, (c * PER + i) as i32).unwrap();
                    offsets.set(c * PER + i, v.into_offset().unwrap());
                }
            })
            .unwrap(),
        );
    }
    go.set(1);
    let threads: Vec<Vec<(u64, RawValue<i32>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let arena = &arena;
                s.spawn(move || {
                    (0..PER)
                        .map(|i| {
                            let v = RawValue::new_in(arena, -((t * PER + i) as i32) - 1).unwrap();
                            (v.handle().offset, v)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for c in children {
        finish(c).unwrap();
    }
    let mut seen = HashSet::new();
    for (t, list) in threads.iter().enumerate() {
        for (i, (off, v)) in list.iter().enumerate() {
            assert!(seen.insert(*off), "slot {off} handed out twice");
            assert_eq!(v.get(), -((t * PER + i) as i32) - 1);
        }
    }
    for i in 0..2 * PER {
        let off = offsets.get(i).unwrap();
        assert!(seen.insert(off), "slot {off} handed out twice");
        let v = RawValue::<i32>::from_offset_in(&arena, off).unwrap();
        assert_eq!(v.get(), i as i32);
    }
    assert!(seen.insert(warm.handle().offset));
    arena.check().unwrap();
}
