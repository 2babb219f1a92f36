//! Review reproducers for one-block locked Values/Arrays (issue 12).
//!
//! The map of opened objects is keyed by the *block* of a one-block Value/Array, but a
//! block has more than one data offset a handle may name (`data_offset(kind, align)`: 24
//! for alignments up to 8, 64 for 64, ...). `opened::insert` hands back the handle it has
//! for the block without comparing its data offset with the one just checked, and the
//! caller wraps it with the *new* handle's length and type.

mod common;

use std::time::Duration;

use common::{finish, forking, in_child, wait_until};
use shared_runtime::arena::{LockKind, ObjectKind};
use shared_runtime::handle::Handle;
use shared_runtime::{Arena, Array, Process, RawArray, SharedStruct};

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
    // The alignment gap in front of the block, taken so a later block can reuse x's.
    let filler = RawArray::<u8>::zeroed_in(a, 32).unwrap();
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
        Err(e) => panic!("{e}"),
    })
    .unwrap();
    assert_eq!(misaligned, 0, "a guard's &mut [A64] is misaligned");
}
