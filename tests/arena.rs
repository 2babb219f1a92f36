//! The shared arena's allocator: invariants under random work, bad sizes, exhaustion.

mod common;

use common::Rng;
use shared_runtime::{Arena, Error, RawArray, RawValue};

/// CPython's test_heap, ported: 5 000 random allocations and frees with lognormal sizes
/// around 1 KB and at most 50 alive; the invariants hold throughout and nothing leaks.
#[test]
fn random_alloc_free_keeps_invariants() {
    let arena = Arena::with_capacity(64 << 20).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut alive: Vec<(RawArray<u8>, u8)> = Vec::new();
    for step in 0..5_000 {
        let size = (rng.normal() * 1.0 + 7.0).exp() as usize; // median ~1.1 KB
        let fill = (step % 251) as u8 + 1;
        let a = RawArray::<u8>::zeroed_in(&arena, size).unwrap();
        assert!(
            a.to_vec().iter().all(|&b| b == 0),
            "step {step}: fresh memory is not zero"
        );
        a.write(0, &vec![fill; size]);
        alive.push((a, fill));
        if alive.len() > 50 {
            let victim = (rng.next() % alive.len() as u64) as usize;
            let (a, fill) = alive.swap_remove(victim);
            assert!(
                a.to_vec().iter().all(|&b| b == fill),
                "step {step}: data was overwritten"
            );
        }
        if step % 100 == 0 {
            arena.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
        }
    }
    let report = arena.check().unwrap();
    assert_eq!(report.used_blocks, alive.len() as u64);
    assert_eq!(report.used_bytes + report.free_bytes, report.heap_bytes);
    drop(alive);
    let report = arena.check().unwrap();
    assert_eq!((report.used_blocks, report.used_bytes), (0, 0));
    // Everything freed went back to the unused tail.
    assert_eq!(report.heap_bytes, 0);
    let stats = arena.stats().unwrap();
    assert_eq!(stats.allocations, stats.frees);
    assert_eq!(stats.bytes_in_use, 0);
}

#[test]
fn freed_blocks_are_reused_and_zeroed() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let keep = RawValue::new_in(&arena, 1u64).unwrap(); // keeps the hole below the top
    let a = RawArray::from_slice_in(&arena, &[0xffu8; 500]).unwrap();
    let guard = RawValue::new_in(&arena, 2u64).unwrap();
    let hole = a.offset();
    drop(a);
    let b = RawArray::<u8>::zeroed_in(&arena, 400).unwrap();
    assert_eq!(b.offset(), hole, "the freed block is reused");
    assert!(
        b.to_vec().iter().all(|&x| x == 0),
        "reused memory is zeroed"
    );
    arena.check().unwrap();
    drop((keep, guard, b));
}

#[test]
fn neighbours_coalesce() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let parts: Vec<_> = (0..4)
        .map(|_| RawArray::<u8>::zeroed_in(&arena, 100).unwrap())
        .collect();
    // A block (larger than any slab slot) right after them keeps them below the top.
    let end = RawArray::<u8>::zeroed_in(&arena, 100).unwrap();
    let first = parts[0].offset();
    drop(parts);
    let report = arena.check().unwrap();
    assert_eq!(
        report.free_blocks, 1,
        "four freed neighbours become one block"
    );
    let big = RawArray::<u8>::zeroed_in(&arena, 400).unwrap();
    assert_eq!(big.offset(), first);
    drop((big, end));
}

#[test]
fn large_runs_go_back_to_the_os() {
    let arena = Arena::with_capacity(256 << 20).unwrap();
    let big = RawArray::<u8>::zeroed_in(&arena, 64 << 20).unwrap();
    big.write(0, &vec![1u8; 64 << 20]);
    let reserved = arena.stats().unwrap().reserved_bytes;
    assert!(reserved >= 64 << 20);
    drop(big);
    let after = arena.stats().unwrap().reserved_bytes;
    assert!(
        after < 4 << 20,
        "reserved {reserved} before the free, {after} after"
    );
    // And the memory reads as zero when it is handed out again.
    let again = RawArray::<u8>::zeroed_in(&arena, 64 << 20).unwrap();
    assert!(again.read(..4096).iter().all(|&b| b == 0));
    assert!(again.read((64 << 20) - 4096..).iter().all(|&b| b == 0));
    arena.check().unwrap();
}

#[test]
fn large_free_holes_are_punched_and_reused() {
    let arena = Arena::with_capacity(64 << 20).unwrap();
    let big = RawArray::from_slice_in(&arena, &vec![7u8; 4 << 20]).unwrap();
    let pin = RawValue::new_in(&arena, 0u8).unwrap(); // keeps the hole off the tail
    drop(big);
    let small = RawArray::<u8>::zeroed_in(&arena, 100_000).unwrap();
    assert!(small.to_vec().iter().all(|&b| b == 0));
    small.write(0, &vec![3u8; 100_000]);
    arena.check().unwrap();
    drop((small, pin));
    arena.check().unwrap();
}

#[test]
fn alignment_is_honoured() {
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Line([u64; 8]);
    // SAFETY: an array of u64 with alignment 64 and no padding: every bit pattern valid.
    unsafe impl shared_runtime::SharedType for Line {
        const LAYOUT: shared_runtime::layout::TypeLayout = shared_runtime::layout::TypeLayout {
            name: "Line",
            size: 64,
            align: 64,
            kind: shared_runtime::layout::LayoutKind::Array {
                elem: &<u64 as shared_runtime::SharedType>::LAYOUT,
                len: 8,
            },
        };
    }
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let mut keep = Vec::new();
    for i in 0..20 {
        let small = RawValue::new_in(&arena, i as u8).unwrap();
        let line = RawValue::new_in(&arena, Line([i; 8])).unwrap();
        // The arena is page-aligned in every process, so an aligned offset is an aligned
        // address.
        assert_eq!(
            line.offset() % 64,
            0,
            "object {i} at offset {} is misaligned",
            line.offset()
        );
        assert_eq!(line.get().0, [i; 8]);
        keep.push((small, line));
        arena.check().unwrap();
    }
    keep.truncate(5);
    arena.check().unwrap();
}

#[test]
fn too_large_alignment_is_an_error() {
    #[derive(Clone, Copy, Debug)]
    #[repr(C, align(8192))]
    struct Huge(u8);
    // SAFETY: one u8 and padding; every bit pattern valid.
    unsafe impl shared_runtime::SharedType for Huge {
        const LAYOUT: shared_runtime::layout::TypeLayout = shared_runtime::layout::TypeLayout {
            name: "Huge",
            size: 8192,
            align: 8192,
            kind: shared_runtime::layout::LayoutKind::Primitive(
                shared_runtime::layout::Primitive::U8,
            ),
        };
    }
    let err = RawValue::new(Huge(1)).unwrap_err();
    assert!(matches!(err, Error::Alignment { align: 8192, .. }), "{err}");
}

#[test]
fn byte_count_overflow_is_an_error() {
    let err = RawArray::<u64>::zeroed(usize::MAX / 4).unwrap_err();
    assert!(matches!(err, Error::SizeOverflow { count, elem_size: 8 } if count == usize::MAX / 4));
    assert!(err.to_string().contains("overflow"), "{err}");
}

#[test]
fn exhausted_capacity_is_an_error_not_sigbus() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let err = RawArray::<u8>::zeroed_in(&arena, 2 << 20).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
    // Fill it with small objects until it is full: the last one fails cleanly.
    let mut objects = Vec::new();
    let err = loop {
        match RawArray::<u8>::zeroed_in(&arena, 4000) {
            Ok(a) => {
                a.set(3999, 1); // touching every object must be fine
                objects.push(a);
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
    assert!(objects.len() > 200);
    arena.check().unwrap();
    objects.clear();
    assert_eq!(arena.check().unwrap().used_blocks, 0);
}

#[test]
fn tiny_capacity_is_rejected() {
    let err = Arena::with_capacity(10).unwrap_err();
    assert!(matches!(err, Error::InvalidCapacity { .. }), "{err}");
}

#[test]
fn zero_length_arrays_work() {
    let a = RawArray::<f64>::zeroed(0).unwrap();
    assert!(a.is_empty());
    assert_eq!(a.to_vec(), Vec::<f64>::new());
    assert_eq!(a.get(0), None);
    a.write(0, &[]);
    assert_eq!(a.read(..), Vec::<f64>::new());
    let b = RawArray::<u8>::from_slice(&[]).unwrap();
    assert_eq!(b.len(), 0);
}

#[test]
fn offsets_can_be_handed_over() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = RawValue::new_in(&arena, 5u32).unwrap();
    let off = v.into_offset().unwrap();
    assert_eq!(
        arena.stats().unwrap().live_allocations,
        1,
        "given up, not freed"
    );
    let w = RawValue::<u32>::from_offset_in(&arena, off).unwrap();
    assert_eq!(w.get(), 5);
    // It can be taken over only once.
    let again = RawValue::<u32>::from_offset_in(&arena, off).unwrap_err();
    assert!(matches!(again, Error::Corrupted(_)), "{again}");
    // Nonsense offsets are refused, not followed.
    for bad in [0, 3, 17, u64::MAX, arena.capacity() - 8] {
        assert!(
            RawValue::<u32>::from_offset_in(&arena, bad).is_err(),
            "offset {bad}"
        );
    }
    drop(w);
    assert_eq!(arena.stats().unwrap().live_allocations, 0);
}

#[test]
fn threads_share_the_arena() {
    let arena = Arena::with_capacity(32 << 20).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let arena = &arena;
            s.spawn(move || {
                for i in 0..2_000usize {
                    let a = RawArray::from_slice_in(arena, &vec![t; i % 300 + 1]).unwrap();
                    assert!(a.to_vec().iter().all(|&b| b == t));
                }
            });
        }
    });
    let report = arena.check().unwrap();
    assert_eq!(report.used_blocks, 0);
}

/// Like the test above, with sizes from 16 bytes to 2 MB, so that splitting, merging, hole
/// punching and reuse of punched holes all happen many times.
#[test]
fn random_mixed_sizes_keep_invariants() {
    let arena = Arena::with_capacity(256 << 20).unwrap();
    let mut rng = Rng(42);
    let mut alive: Vec<(RawArray<u8>, u8)> = Vec::new();
    for step in 0..1_500 {
        let size = (rng.normal() * 2.5 + 9.0).exp().min(2e6) as usize;
        let fill = (step % 251) as u8 + 1;
        let a = RawArray::<u8>::zeroed_in(&arena, size).unwrap();
        assert!(
            a.read(..size.min(64)).iter().all(|&b| b == 0),
            "step {step}"
        );
        assert!(
            a.read(size - size.min(64)..).iter().all(|&b| b == 0),
            "step {step}"
        );
        a.write(0, &vec![fill; size]);
        alive.push((a, fill));
        while alive.len() > 30 || (rng.next() % 3 == 0 && !alive.is_empty()) {
            let victim = (rng.next() % alive.len() as u64) as usize;
            let (a, fill) = alive.swap_remove(victim);
            assert!(
                a.to_vec().iter().all(|&b| b == fill),
                "step {step}: data was overwritten"
            );
        }
        if step % 50 == 0 {
            arena.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
        }
    }
    drop(alive);
    assert_eq!(arena.check().unwrap().heap_bytes, 0);
}

/// An offset inside an object, dressed up to look like a block header, is not taken for
/// one: the owner word carries a per-arena check value.
#[test]
fn forged_offsets_are_refused() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let a = RawArray::<u64>::zeroed_in(&arena, 64).unwrap();
    let fake_payload = a.offset() + 8 * 8;
    // Fake header: a 64-byte used block, owner word 0 (as a given-up block has).
    a.write(6, &[64 | 1, 0]);
    let err = RawValue::<u64>::from_offset_in(&arena, fake_payload).unwrap_err();
    assert!(
        err.to_string().contains("no object starts at offset"),
        "{err}"
    );
    let h = shared_runtime::handle::Handle {
        offset: fake_payload,
        ..a.handle()
    };
    assert!(RawArray::<u64>::open_handle(&arena, &h).is_err());
    arena.check().unwrap();
}
