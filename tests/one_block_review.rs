//! One-block locked Values/Arrays (issue 12) as regressions of a review.
//!
//! The map of opened objects is keyed by the *block* of a one-block Value/Array, but a
//! block has more than one data offset a handle may name (`data_offset(kind, align)`: 24
//! for alignments up to 8, 64 for 64, ...). `opened::insert` used to hand back the handle
//! it had for the block without comparing its data offset with the one just checked, and
//! the caller wrapped it with the *new* handle's length and type (out of bounds, or a
//! misaligned guard). Now a handle in the map whose data starts elsewhere is another
//! object's: refused while it lives (by handle, raw or locked, and on adoption). Every
//! wait is bounded.

mod common;

use std::time::Duration;

use common::{finish, forking, in_child, wait_until};
use shared_runtime::arena::{LockKind, ObjectKind};
use shared_runtime::handle::Handle;
use shared_runtime::test_hooks::set_slabs_for_tests;
use shared_runtime::{Arena, Array, Error, Process, RawArray, SharedStruct};

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
struct A64 {
    v: u64,
}

fn arena() -> Arena {
    Arena::with_capacity(1 << 20).unwrap()
}

/// An `Array<A64>` of one element made with its own lock (block: 64-byte lock part, then
/// 64 bytes of data: 128 bytes), the gap the 64-alignment left in front of it filled, and a
/// 64-byte neighbour right after it, filled with 0x11.
fn setup(a: &Arena) -> (Array<A64>, RawArray<u8>, RawArray<u8>) {
    let x = Array::<A64>::zeroed_in(a, 1).unwrap();
    let h = x.handle();
    // The alignment gap in front of the block, taken so a later block can reuse x's. It
    // holds 32 bytes only, which are a slab slot unless slabs are off: the filler must be a
    // block of the heap, so slabs are off for it alone (every test here holds `forking()`,
    // and no other thread of this process allocates meanwhile).
    set_slabs_for_tests(false);
    let filler = RawArray::<u8>::zeroed_in(a, 32);
    set_slabs_for_tests(true);
    let filler = filler.unwrap();
    let neighbour = RawArray::<u8>::from_slice_in(a, &[0x11; 64]).unwrap();
    assert_eq!(h.offset - h.lock, 64, "{h:?}");
    assert!(
        neighbour.handle().offset > h.lock && neighbour.handle().offset - h.lock <= 160,
        "neighbour right after x: {h:?} {:?}",
        neighbour.handle()
    );
    (x, filler, neighbour)
}

/// A forked child inherits the parent's slot for x's block (data at +64). A handle of the
/// same block naming the data at +24 (an `Array<u8>`: the data offset for alignment 8,
/// length `capacity - 24`) passes every check, then `opened::insert` returns the inherited
/// handle (data at +64) and `open_handle` wraps it with length `capacity - 24`: 40 bytes
/// past the block, over the next block's header and the neighbour's data.
#[test]
fn a_handle_naming_another_data_offset_of_the_block_reaches_past_it() {
    let _serial = forking();
    let a = arena();
    let (x, _filler, neighbour) = setup(&a);
    let hx = x.handle();
    let fp = RawArray::<u8>::zeroed_in(&a, 1)
        .unwrap()
        .handle()
        .fingerprint;
    let forged = Handle {
        offset: hx.lock + 24,
        len: 128 - 24,
        fingerprint: fp,
        kind: ObjectKind::Array(LockKind::RLock),
        ..hx
    };
    let wrote = in_child(|| match Array::<u8>::open_handle(&a, &forged) {
        Ok(v) => {
            let n = v.len();
            v.write(0, &vec![0xEE; n]);
            1u8
        }
        Err(_) => 0,
    })
    .unwrap();
    let after = neighbour.to_vec();
    let check = a.check();
    assert!(
        wrote == 0 || (after == vec![0x11; 64] && check.is_ok()),
        "an opened handle wrote past its block: neighbour {after:x?}, check {check:?}"
    );
}

/// The same without forging anything: a child forked while the parent held `x` (so it
/// inherits the parent's slot for x's block) opens the real handle of a new `Array<u8>`
/// the parent made in the same block after dropping `x`. The child never touches its
/// inherited copy of `x`.
#[test]
fn a_child_opening_a_new_array_in_a_reused_block_reaches_past_it() {
    let _serial = forking();
    let a = arena();
    let (x, _filler, neighbour) = setup(&a);
    let mail = RawArray::<u64>::zeroed_in(&a, 5).unwrap();
    let wrote = Process::scope(|s| {
        let child = s.start(|| {
            if !wait_until(|| mail.get(0) == Some(1)) {
                return 2u8;
            }
            let h = Handle {
                offset: mail.get(1).unwrap(),
                lock: mail.get(2).unwrap(),
                len: mail.get(3).unwrap(),
                fingerprint: mail.get(4).unwrap(),
                kind: ObjectKind::Array(LockKind::RLock),
                arena: a.id(),
                owned: false,
            };
            match Array::<u8>::open_handle(&a, &h) {
                Ok(v) => {
                    let n = v.len();
                    v.write(0, &vec![0xEE; n]);
                    1u8
                }
                Err(_) => 0,
            }
        })?;
        let old_block = x.handle().lock;
        drop(x);
        let y = Array::<u8>::zeroed_in(&a, 128 - 24).unwrap();
        let hy = y.handle();
        assert_eq!(hy.lock, old_block, "y reuses x's block");
        mail.write(1, &[hy.offset, hy.lock, hy.len, hy.fingerprint]);
        mail.set(0, 1);
        let r = finish(child);
        std::thread::sleep(Duration::from_millis(1));
        drop(y);
        r
    })
    .unwrap();
    assert_ne!(wrote, 2, "child timed out");
    let after = neighbour.to_vec();
    let check = a.check();
    assert!(
        wrote == 0 || (after == vec![0x11; 64] && check.is_ok()),
        "an opened handle wrote past its block: neighbour {after:x?}, check {check:?}"
    );
}

/// The other direction: the child inherits an `Array<u8>` (data at +24) and opens a handle
/// of the same block as an `Array<A64>` (data at +64): it is given the inherited handle
/// (+24), so its guard is a `&mut [A64]` that is not 64-aligned (undefined behaviour).
#[test]
fn a_handle_naming_another_data_offset_gives_a_misaligned_guard() {
    let _serial = forking();
    let a = arena();
    // An Array<u8> whose block happens to be 64-aligned (keep the others alive).
    let mut kept = Vec::new();
    let x = loop {
        let x = Array::<u8>::zeroed_in(&a, 104).unwrap();
        if x.handle().lock % 64 == 0 {
            break x;
        }
        kept.push(x);
    };
    let hx = x.handle();
    let fp = Array::<A64>::zeroed_in(&a, 1).unwrap().handle().fingerprint;
    let forged = Handle {
        offset: hx.lock + 64,
        len: 1,
        fingerprint: fp,
        ..hx
    };
    let misaligned = in_child(|| match Array::<A64>::open_handle(&a, &forged) {
        Ok(v) => {
            let g = v.lock().unwrap();
            u8::from(g.as_ptr() as usize % 64 != 0)
        }
        // Refused: the child has the block open with its data at +24.
        Err(Error::InvalidHandle { .. }) => 0,
        Err(e) => panic!("{e}"),
    })
    .unwrap();
    assert_eq!(misaligned, 0, "a guard's &mut [A64] is misaligned");
}

/// What a child that inherited `x` (an `Array<A64>`: its slot names the data at +64) does
/// with the handle the parent makes after dropping `x` and making a raw `RawArray<u8>` of
/// the block's whole 128 bytes in the same block: `open` runs in the child on that handle
/// and returns 1 if it wrote through what it got, 0 if refused. The neighbour must be
/// untouched and the arena sound either way; the raw array is handed over with its
/// handle's ownership if `owned`.
fn child_opens_raw_in_reused_block(owned: bool) -> u8 {
    let _serial = forking();
    let a = arena();
    let (x, _filler, neighbour) = setup(&a);
    let mail = RawArray::<u64>::zeroed_in(&a, 5).unwrap();
    let old_block = x.handle().lock;
    let wrote = Process::scope(|s| {
        let child = s.start(|| {
            if !wait_until(|| mail.get(0) == Some(1)) {
                return 2u8;
            }
            let h = Handle {
                offset: mail.get(1).unwrap(),
                len: mail.get(2).unwrap(),
                fingerprint: mail.get(3).unwrap(),
                kind: ObjectKind::RawArray,
                lock: 0,
                arena: a.id(),
                owned: mail.get(4) == Some(1),
            };
            match RawArray::<u8>::open_handle(&a, &h) {
                Ok(v) => {
                    v.write(0, &vec![0xEE; v.len()]);
                    1u8
                }
                Err(Error::InvalidHandle { .. } | Error::AlreadyOpen { .. }) => 0,
                Err(e) => panic!("{e}"),
            }
        })?;
        drop(x);
        let r = RawArray::<u8>::zeroed_in(&a, 128).unwrap();
        assert_eq!(r.offset(), old_block, "r reuses x's block");
        let h = if owned {
            r.into_handle().unwrap()
        } else {
            let h = r.handle();
            // Kept alive until the child is done.
            std::mem::forget(r);
            h
        };
        mail.write(1, &[h.offset, h.len, h.fingerprint, u64::from(h.owned)]);
        mail.set(0, 1);
        finish(child)
    })
    .unwrap();
    assert_ne!(wrote, 2, "child timed out");
    assert_eq!(
        neighbour.to_vec(),
        vec![0x11; 64],
        "an opened handle wrote past its block"
    );
    a.check().unwrap();
    wrote
}

/// A raw handle of data at the start of a block the child has open as the data of an
/// earlier one-block `Array` (at +64) is refused, not given that handle with the raw
/// array's length.
#[test]
fn a_child_opening_raw_data_in_a_reused_block_is_refused() {
    assert_eq!(child_opens_raw_in_reused_block(false), 0);
}

/// The same with an owned handle: adopting the block must not make the inherited part
/// (data at +64) the owner of a block whose data starts at +0.
#[test]
fn a_child_adopting_raw_data_in_a_reused_block_is_refused() {
    assert_eq!(child_opens_raw_in_reused_block(true), 0);
}

/// A view this process keeps of a block that another process has since freed (reclaimed
/// from it once it died) is never given a one-block `Array` made in that block as a second,
/// independent handle: making it is refused with `AlreadyOpen` while the view lives, and
/// works once the view is dropped.
#[test]
fn a_one_block_array_in_a_block_a_stale_view_names_is_refused() {
    let _serial = forking();
    let a = arena();
    let r = RawArray::<u64>::zeroed_in(&a, 8).unwrap();
    let lent = r.handle();
    let off = r.into_offset().unwrap();
    let view = RawArray::<u64>::open_handle(&a, &lent).unwrap();
    // Another process takes the block over and ends without freeing it (its inherited copy
    // of the view, now the owner, is never dropped); this one reclaims it.
    in_child(|| drop(RawArray::<u64>::from_offset_in(&a, off, 8).unwrap())).unwrap();
    assert_eq!(a.reclaim_dead().unwrap().objects, 1);
    // An Array<u8> of 40 bytes is a 64-byte block, as the raw array was.
    let mut held = Vec::new();
    loop {
        match Array::<u8>::zeroed_in(&a, 40) {
            Ok(x) => {
                assert_ne!(x.handle().lock, off, "made in a block a live view names");
                assert!(
                    held.len() < 64,
                    "the freed block was never handed out again"
                );
                held.push(x);
            }
            Err(Error::AlreadyOpen { offset, .. }) => {
                assert_eq!(offset, off);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    view.set(0, 7);
    drop(view);
    let x = loop {
        let x = Array::<u8>::zeroed_in(&a, 40).unwrap();
        if x.handle().lock == off {
            break x;
        }
        assert!(
            held.len() < 128,
            "the freed block was never handed out again"
        );
        held.push(x);
    };
    x.lock().unwrap()[0] = 3;
    assert_eq!(x.get(0), Some(3));
    a.check().unwrap();
}
