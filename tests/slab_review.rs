//! Reproducers of the attacking review of slabs (issue 12), kept as regression tests.
//! Every wait is bounded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use shared_runtime::test_hooks::set_slabs_for_tests;
use shared_runtime::{Arena, RawArray, RawValue};

const PAGE: u64 = 4096;

/// `set_slabs_for_tests` is process-wide: tests that turn slabs off for a moment run alone.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn canary(id: u64, off: u64) -> u64 {
    (id ^ off).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}

fn check_word(canary: u64, stride: u64, marks: u64) -> u64 {
    (canary ^ stride.rotate_left(17) ^ marks.rotate_left(7)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Writes, into the data array `big` (plain `set`s of its own elements, as any process
/// holding the array may), the bytes a slab of 8-byte slots at payload offset `s` has.
fn forge_slab(arena: &Arena, big: &RawArray<u64>, s: u64) {
    let at = |off: u64| ((off - big.offset()) / 8) as usize;
    let id = arena.id();
    let b = s - 16;
    big.set(at(b), PAGE | 1 | (0x3e << 56)); // size | USED | SLAB tag
    big.set(at(b + 8), u64::from(u32::MAX - 2) | canary(id, b) << 32); // SLAB_OWNER
    let c = canary(id, s);
    big.set(at(s), c << 32); // state: canary, open, no pins
    big.set(at(s + 8), 8); // stride
    big.set(at(s + 16), 0); // marks: data
    big.set(at(s + 24), check_word(c, 8, 0));
}

/// `check()` runs while another thread claims a slot, writes into it and frees it, over and
/// over (no lock is taken by claim or free). `verify_slab` reads the owner word (FREE),
/// then the payload (dirty: claimed and written meanwhile), then the owner word again
/// (FREE: freed meanwhile) and reports a sound slab as "free but not zero".
#[test]
fn check_reports_a_sound_slab_corrupted_under_claim_write_free() {
    let _serial = serial();
    set_slabs_for_tests(true);
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let _keep = RawValue::new_in(&arena, 1u64).unwrap(); // the slab is never swept
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Relaxed) {
                // Same slot each time (the hint points at the slot just freed).
                let v = RawValue::new_in(&arena, u64::MAX - 1).unwrap();
                v.set(u64::MAX);
                drop(v);
            }
        });
        let mut res = Ok(0u64);
        let mut n = 0u64;
        while Instant::now() < deadline {
            if let Err(e) = arena.check() {
                res = Err(e);
                break;
            }
            n += 1;
        }
        stop.store(true, Relaxed);
        res.map(|_| n)
    });
    if let Err(e) = result {
        panic!("check() failed on a sound arena under concurrent claims: {e}");
    }
}

/// A process's current-slab hint outlives its slab: another process's `stats()` (or
/// `check`, `reclaim_dead`, a full arena) sweeps the emptied slab, and its memory becomes
/// part of a data array. Bytes the array's owner writes into its own elements (here, the
/// old slab header replayed: everything in it is computable from `Arena::id` and the
/// offset) pass every check of `claim_in`, and the next small allocation of the process is
/// a "slot" inside the live array: two objects share memory, and freeing the slot zeroes
/// part of the array.
#[test]
fn a_stale_current_slab_hands_out_a_slot_inside_a_data_array() {
    let _serial = serial();
    set_slabs_for_tests(true);
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = RawValue::new_in(&arena, 1i32).unwrap();
    let s = v.offset() & !(PAGE - 1);
    drop(v);
    // Any process's stats() gives the empty slab back (this process's hint still names it).
    assert_eq!(arena.stats().unwrap().slabs, 0);
    set_slabs_for_tests(false);
    let big = RawArray::<u64>::zeroed_in(&arena, 4096).unwrap();
    set_slabs_for_tests(true);
    let (lo, hi) = (big.offset(), big.offset() + 8 * 4096);
    assert!(
        lo < s - 16 && s + PAGE <= hi,
        "the array [{lo}, {hi}) does not cover the old slab {s}"
    );
    forge_slab(&arena, &big, s);
    let before = big.to_vec();
    let w = RawValue::new_in(&arena, 0x7777_7777i32).unwrap();
    let inside = (lo..hi).contains(&w.offset());
    let changed = big.to_vec() != before;
    let at = w.offset();
    std::mem::forget(w);
    assert!(
        !inside && !changed,
        "a new RawValue was placed at {at}, inside the live array [{lo}, {hi}) (array \
         changed: {changed}); the old slab was at {s}"
    );
}

/// A sweeper (here `stats()` in a child) killed at every step of giving empty slabs
/// back: afterwards `check` passes, the busy slab's object is intact, the counters of
/// allocations and frees did not move (a sweep allocates and frees no object), and the
/// empty slabs are gone after the next sweep.
#[test]
fn a_killed_sweeper_leaves_counts_and_check_right() {
    let _serial = serial();
    let _fork = common::forking();
    set_slabs_for_tests(true);
    let mut killed = 0;
    for step in 1..60 {
        let arena = Arena::with_capacity(4 << 20).unwrap();
        let keep = RawValue::new_in(&arena, 77i32).unwrap();
        drop(RawValue::new_in(&arena, 1u64).unwrap());
        drop(shared_runtime::Lock::new_in(&arena).unwrap());
        drop(RawValue::new_in(&arena, [1u32; 10]).unwrap());
        let before = arena.check().map(|_| ()).and_then(|_| arena.stats());
        // `check` swept already: carve the empty slabs again.
        drop(RawValue::new_in(&arena, 1u64).unwrap());
        drop(shared_runtime::Lock::new_in(&arena).unwrap());
        drop(RawValue::new_in(&arena, [1u32; 10]).unwrap());
        let before = before.unwrap();
        let a = arena.clone();
        let r = common::in_child(move || {
            shared_runtime::test_hooks::crash_after_steps(step);
            let _ = a.stats();
            shared_runtime::test_hooks::crash_after_steps(0);
            1u8
        });
        match r {
            Ok(_) => {
                let s = arena.stats().unwrap();
                assert_eq!(s.slabs, 1, "step {step}");
                break;
            }
            Err(e) => assert!(e.to_string().contains("SIGKILL"), "step {step}: {e}"),
        }
        killed += 1;
        arena
            .check()
            .unwrap_or_else(|e| panic!("step {step}: check: {e}"));
        let s = arena.stats().unwrap();
        assert_eq!(keep.get(), 77, "step {step}");
        assert_eq!(s.live_allocations, 1, "step {step}");
        assert_eq!(s.slabs, 1, "step {step}: empty slabs left");
        assert_eq!(
            (s.allocations, s.frees),
            (before.allocations + 3, before.frees + 3),
            "step {step}: allocations/frees counters moved (before {}/{})",
            before.allocations,
            before.frees
        );
    }
    eprintln!("sweeper killed {killed}");
    assert!(killed >= 3, "only {killed} crash points were exercised");
}

/// A claimer killed at every step of carving its first slab (and claiming in it): the
/// next `reclaim_dead` and sweep leave nothing behind, and `check` passes.
#[test]
fn a_killed_carver_leaves_nothing_behind() {
    let _serial = serial();
    let _fork = common::forking();
    set_slabs_for_tests(true);
    let mut killed = 0;
    for step in 1..60 {
        let arena = Arena::with_capacity(4 << 20).unwrap();
        let keep = RawValue::new_in(&arena, [3u16; 6]).unwrap();
        let a = arena.clone();
        let r = common::in_child(move || {
            shared_runtime::test_hooks::crash_after_steps(step);
            for i in 0..3 {
                std::mem::forget(RawValue::new_in(&a, i).unwrap());
            }
            shared_runtime::test_hooks::crash_after_steps(0);
            1u8
        });
        let done = r.is_ok();
        if !done {
            killed += 1;
        }
        arena.reclaim_dead().unwrap();
        arena
            .check()
            .unwrap_or_else(|e| panic!("step {step}: check: {e}"));
        let s = arena.stats().unwrap();
        assert_eq!(keep.get(), [3u16; 6], "step {step}");
        assert_eq!(s.live_allocations, 1, "step {step}");
        assert_eq!(s.slabs, 1, "step {step}: slabs left");
        assert_eq!(s.allocations - s.frees, 1, "step {step}: {s:?}");
        if done {
            break;
        }
    }
    eprintln!("carver killed {killed}");
    assert!(killed >= 2, "only {killed} crash points were exercised");
}

/// One word of garbage in a slab's block header — its kind tag cleared, everything else
/// (size, USED, `SLAB_OWNER` and canary) left as it was — makes the next `stats()` (of any
/// process) free the whole slab as a "block a carver killed half-way left", although its
/// slots hold live objects: their memory goes back to the heap (zeroed) and is handed out
/// again. Expected: an error (the block is owned by `SLAB_OWNER` but its payload carries a
/// valid slab header / used owner words), or leaving it alone.
#[test]
fn an_untagged_slab_with_live_slots_is_freed_as_a_stray() {
    use std::os::unix::fs::FileExt;
    let _serial = serial();
    set_slabs_for_tests(true);
    let name = format!("rv-slab-stray-{}", std::process::id());
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    let v = RawValue::new_in(&arena, 0x1111_2222i32).unwrap();
    let b = (v.offset() & !(PAGE - 1)) - 16;
    let mut w = [0u8; 8];
    file.read_at(&mut w, b).unwrap();
    let word = u64::from_le_bytes(w);
    assert_eq!(
        word >> 56,
        0x3e,
        "not a slab block header at {b}: {word:#x}"
    );
    // Another process's stray write: the tag bits cleared.
    file.write_at(&(word & !(0x3f << 56)).to_le_bytes(), b)
        .unwrap();
    let stats = arena.stats();
    let value = v.get();
    let check = arena.check();
    let _ = Arena::remove_segment(&name);
    std::mem::forget(v);
    assert_eq!(
        value, 0x1111_2222,
        "a live object's slot was freed and zeroed by stats() ({stats:?}); check says {check:?}"
    );
    assert!(
        matches!(check, Err(shared_runtime::Error::Corrupted(_))),
        "check() does not report the damaged slab: {check:?}"
    );
}

/// `Heap::slot` decides that an offset names a slot when the 16 bytes before its page look
/// like a slab block header, but for an ordinary block whose payload does not start a page
/// those bytes belong to whatever block precedes it — here a data array whose owner wrote
/// a slab header into its own elements (computable from `Arena::id`). The neighbour's
/// legitimate block then resolves as a free "slot": its owner cannot free it (leaked),
/// and no process can open its handle. Slabs need not even be on.
#[test]
fn a_neighbours_data_makes_a_real_block_resolve_as_a_slot() {
    let _serial = serial();
    let _fork = common::forking();
    set_slabs_for_tests(false);
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let h0 = RawArray::<u64>::zeroed_in(&arena, 2).unwrap().offset();
    // A data array ending so that the next block's payload sits at page + 64.
    let k = ((64u64 + 8192 - (h0 + 16) % 4096) % 4096) + 4096;
    let big = RawArray::<u64>::zeroed_in(&arena, (k / 8) as usize).unwrap();
    let victim = RawArray::<u64>::from_slice_in(&arena, &[5u64; 32]).unwrap();
    let _after = RawArray::<u64>::zeroed_in(&arena, 1024).unwrap(); // the heap goes on
    let p = victim.offset();
    let s = p & !(PAGE - 1);
    assert_eq!(
        p - s,
        64,
        "layout: array at {}, victim at {p}",
        big.offset()
    );
    assert!(big.offset() + 8 <= s - 16);
    // The owner of `big` writes a slab header (stride 32: the victim's payload is slot 1).
    let at = |off: u64| ((off - big.offset()) / 8) as usize;
    let id = arena.id();
    let b = s - 16;
    big.set(at(b), PAGE | 1 | (0x3e << 56));
    big.set(at(b + 8), u64::from(u32::MAX - 2) | canary(id, b) << 32);
    let c = canary(id, s);
    big.set(at(s), c << 32);
    big.set(at(s + 8), 32);
    big.set(at(s + 16), 0);
    big.set(at(s + 24), check_word(c, 32, 0));
    // Another process opens the victim's (real, valid) handle.
    let (a, h) = (arena.clone(), victim.handle());
    let opened = common::in_child(move || match RawArray::<u64>::open_handle(&a, &h) {
        Ok(v) => u64::from(v.get(0) == Some(5)),
        Err(e) => {
            eprintln!("child: the victim's handle is refused: {e}");
            2
        }
    })
    .unwrap();
    let live = arena.stats().unwrap().live_allocations;
    drop(victim);
    let after = arena.stats().unwrap().live_allocations;
    assert!(
        opened == 1 && after + 1 == live,
        "a real block at {p} was taken for a slot of a forged slab at {s}: handle opened in \
         another process: {} ; drop freed it: {}",
        opened == 1,
        after + 1 == live
    );
}

/// The same trust, turned into a write: a process holding two data arrays around another
/// process's small block writes, into its own elements only, a slab header (in the first)
/// and a DETACHED owner word (in the second), then takes over the "slot" that spans the
/// other block with the public `from_offset_in` and writes through it: the neighbour's
/// value and two block headers of the heap are overwritten from safe code.
#[test]
fn a_forged_slot_spanning_a_neighbour_is_taken_over_and_written() {
    let _serial = serial();
    set_slabs_for_tests(false);
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let h0 = RawArray::<u64>::zeroed_in(&arena, 2).unwrap().offset();
    // `a`'s block ends (the victim's block starts) at page + 96.
    let n = ((96u64 + 8192 - h0 % 4096) % 4096) + 4096;
    let a = RawArray::<u64>::zeroed_in(&arena, (n / 8) as usize).unwrap();
    let victim = RawValue::new_in(&arena, 0x5555_5555_5555_5555u64).unwrap();
    let c = RawArray::<u64>::zeroed_in(&arena, 8).unwrap();
    let _pad = RawArray::<u64>::zeroed_in(&arena, 1024).unwrap();
    let e = victim.offset() - 16;
    assert_eq!(e, a.offset() + n, "layout");
    assert_eq!(c.offset(), e + 48, "layout");
    let s = e & !(PAGE - 1);
    assert_eq!(e - s, 96);
    let at = |off: u64| ((off - a.offset()) / 8) as usize;
    let id = arena.id();
    let b = s - 16;
    a.set(at(b), PAGE | 1 | (0x3e << 56));
    a.set(at(b + 8), u64::from(u32::MAX - 2) | canary(id, b) << 32);
    let cn = canary(id, s);
    a.set(at(s), cn << 32);
    a.set(at(s + 8), 64);
    a.set(at(s + 16), 0);
    a.set(at(s + 24), check_word(cn, 64, 0));
    // Slot 1 is [e, e + 64): its owner word is bytes 12..16 of `c`'s payload.
    c.set(1, (1u64 << 29) << 32);
    arena
        .check()
        .expect("the heap is sound before the takeover");
    let taken = RawValue::<[u8; 60]>::from_offset_in(&arena, e);
    let took = taken.is_ok();
    if let Ok(t) = &taken {
        t.set([0xaa; 60]);
    }
    let value = victim.get();
    let check = arena.check();
    std::mem::forget(taken);
    std::mem::forget(victim);
    std::mem::forget(c);
    assert!(
        !took && value == 0x5555_5555_5555_5555 && check.is_ok(),
        "took over a forged slot at {e} spanning another block: {took}; the victim now \
         reads {value:#x}; check: {check:?}"
    );
}

/// A slab in constant use counts its claims in its state word until a sweep folds them
/// into the allocator's counters; once the count reached its limit, every claimer was
/// refused and a new slab carved, over and over, until a sweep ran. A refill now folds
/// the count: a million claims and frees of one value reuse one slab.
#[test]
fn a_slab_past_its_claims_limit_is_reused_without_a_sweep() {
    let _serial = serial();
    set_slabs_for_tests(true);
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let before = arena.stats().unwrap().allocations;
    let keep = RawValue::new_in(&arena, 1u64).unwrap();
    let n = 1_100_000u64;
    for i in 0..n {
        drop(RawValue::new_in(&arena, i).unwrap());
    }
    let last = RawValue::new_in(&arena, 2u64).unwrap();
    let (a, b) = (keep.offset() & !(PAGE - 1), last.offset() & !(PAGE - 1));
    let s = arena.stats().unwrap();
    assert_eq!((keep.get(), last.get()), (1, 2));
    assert_eq!(
        s.allocations,
        before + n + 2,
        "claims were lost or double-counted"
    );
    assert_eq!(
        a, b,
        "a new slab was carved past the claims limit of the first"
    );
    assert_eq!(s.slabs, 1);
}

/// A sweeper killed at every step of giving back the last slab and then the slab map:
/// the next sweep finishes (nothing left: no slab, no map, no heap bytes), `check` passes
/// in between, and the counters of allocations and frees do not move.
#[test]
fn a_sweeper_killed_while_freeing_the_slab_map_leaves_nothing_behind() {
    let _serial = serial();
    let _fork = common::forking();
    set_slabs_for_tests(true);
    let mut killed = 0;
    for step in 1..80 {
        let arena = Arena::with_capacity(4 << 20).unwrap();
        let before = arena.stats().unwrap();
        // Freed without a sweep: an empty slab and the map stay until the next one.
        drop(RawValue::new_in(&arena, 1u64).unwrap());
        let a = arena.clone();
        let r = common::in_child(move || {
            shared_runtime::test_hooks::crash_after_steps(step);
            let _ = a.stats();
            shared_runtime::test_hooks::crash_after_steps(0);
            1u8
        });
        let done = r.is_ok();
        if !done {
            killed += 1;
        }
        arena
            .check()
            .unwrap_or_else(|e| panic!("step {step}: check: {e}"));
        let s = arena.stats().unwrap();
        assert_eq!(
            (s.slabs, s.heap_bytes, s.live_allocations),
            (0, 0, 0),
            "step {step}: {s:?}"
        );
        assert_eq!(
            (s.allocations, s.frees),
            (before.allocations + 1, before.frees + 1),
            "step {step}"
        );
        if done {
            break;
        }
    }
    eprintln!("sweeper killed {killed}");
    assert!(killed >= 4, "only {killed} crash points were exercised");
}
