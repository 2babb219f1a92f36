//! Reviewer reproducers for Condition and Barrier (issue 11). Every wait is bounded.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{finish, forking, wait_until};
use shared_runtime::handle::Handle;
use shared_runtime::{Barrier, Condition, Lock, Process, RawValue, Value};

/// How long a reproducer lets a bounded call run before calling it hung.
const BOUND: Duration = Duration::from_secs(5);

/// `Barrier::wait_timeout` is documented as the robust, bounded form ("when its time runs
/// out it breaks the barrier"), but it first takes the barrier's internal lock with an
/// *unbounded* `lock()` (and `time_out` does again). A live party that stalls inside the
/// barrier's critical section (SIGSTOPped, swapped out, or a lock word overwritten with a
/// live thread's identity) makes every `wait_timeout` block for ever, whatever its timeout.
#[test]
fn barrier_wait_timeout_is_not_bounded_by_its_timeout() {
    let _f = forking();
    let b = Barrier::new(2).unwrap();
    let holding = RawValue::new(0u32).unwrap();
    let (b2, h2) = (b.clone(), holding.clone());
    // A live party stalled inside the barrier's lock (the hidden test hook stands for a
    // party stopped at that point: alive, so nobody may take the lock over).
    let stalled = Process::<()>::start(move || {
        let _g = b2.hold_lock_for_tests();
        h2.set(1);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .unwrap();
    assert!(wait_until(|| holding.get() == 1));
    let (tx, rx) = mpsc::channel();
    let b3 = b.clone();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let r = b3.wait_timeout(Duration::from_millis(50));
        let _ = tx.send(r.is_err());
    });
    let got = rx.recv_timeout(BOUND);
    stalled.kill().unwrap();
    let _ = finish(stalled);
    // (Once the stalled party is killed, the waiter takes the lock over and returns.)
    assert!(
        got.is_ok(),
        "wait_timeout(50ms) had not returned after {:?}: its timeout does not bound the \
         acquisition of the barrier's lock",
        t0.elapsed()
    );
}

/// A forged handle of the wrong kind aliases a `Value`'s data in the same process: a
/// process that has a `Value` of another process open (by handle) opens a `Condition`
/// handle carrying the Value's data offset. `open_state_block` checks only the handle's
/// own kind letter; `opened::insert` (lock 0 = "either has none") then returns the
/// Value's own allocation. `notify_one` (safe code) then writes the bytes a live
/// `SyncGuard` hands out as `&mut` on the same thread: the data changes under a `&mut`.
#[test]
fn a_forged_condition_handle_aliases_a_values_data_under_a_live_guard() {
    let _f = forking();
    let v = Value::with_lock([0u64; 4], Lock::new().unwrap()).unwrap();
    let (vh, arena) = (v.handle(), shared_runtime::Arena::global().clone());
    let cond_kind = Condition::new_in(&arena).unwrap().handle().kind;
    let child = Process::start(move || {
        let mine = Value::<[u64; 4], Lock>::open_handle(&arena, &vh).expect("open the value");
        let forged = Handle {
            kind: cond_kind,
            offset: vh.offset,
            len: 1,
            fingerprint: 0,
            lock: 0,
            owned: false,
            ..vh
        };
        let cond = match Condition::open_handle(&arena, &forged) {
            Ok(c) => c,
            Err(_) => return 0u64, // refused: the fix
        };
        let g = mine.lock().unwrap();
        let before = g[0];
        cond.notify_one(); // safe code, same thread, while `g` gives &mut access
        let after = g[0];
        drop(g);
        u64::from(before != after)
    })
    .unwrap();
    assert_eq!(
        finish(child).unwrap(),
        0,
        "a Condition opened from a forged handle wrote into the data a live SyncGuard of \
         this process borrows mutably (aliasing &mut: UB)"
    );
}
