//! Attacking review of issue 12's slabs (branch `slab`). Every wait is bounded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use shared_runtime::test_hooks::set_slabs_for_tests;
use shared_runtime::{Arena, RawArray, RawValue};

const PAGE: u64 = 4096;

/// `check()` runs while another thread claims a slot, writes into it and frees it, over and
/// over (no lock is taken by claim or free). `verify_slab` reads the owner word (FREE),
/// then the payload (dirty: claimed and written meanwhile), then the owner word again
/// (FREE: freed meanwhile) and reports a sound slab as "free but not zero".
#[test]
fn check_reports_a_sound_slab_corrupted_under_claim_write_free() {
    set_slabs_for_tests(true);
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let _keep = RawValue::new_in(&arena, 1u64).unwrap(); // the slab is never swept
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(20);
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
