//! Regressions from the attacking review of Condition and Barrier (issue 11), and of
//! handles of one kind forged to name another kind's block. Every wait is bounded.

mod common;

use std::any::Any;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{finish, forking, wait_until};
use shared_runtime::handle::Handle;
use shared_runtime::{
    Arena, Barrier, BoundedSemaphore, Condition, Error, Event, Lock, Process, Queue, RawValue,
    Semaphore, Value,
};

/// How long a reproducer lets a bounded call run before calling it hung.
const BOUND: Duration = Duration::from_secs(5);

/// A child that takes `b`'s internal lock and stays alive holding it (the hidden test hook
/// stands for a party stopped at that point: alive, so nobody may take the lock over);
/// returns once the lock is held.
fn stalled_party(b: &Barrier) -> Process<()> {
    let holding = RawValue::new(0u32).unwrap();
    let (b2, h2) = (b.clone(), holding.clone());
    let stalled = Process::<()>::start(move || {
        let _g = b2.hold_lock_for_tests();
        h2.set(1);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .unwrap();
    assert!(wait_until(|| holding.get() == 1));
    stalled
}

/// `Barrier::wait_timeout` is documented as the robust, bounded form ("when its time runs
/// out it breaks the barrier"), but it first takes the barrier's internal lock with an
/// *unbounded* `lock()` (and `time_out` does again). A live party that stalls inside the
/// barrier's critical section (SIGSTOPped, swapped out, or a lock word overwritten with a
/// live thread's identity) makes every `wait_timeout` block for ever, whatever its timeout.
#[test]
fn barrier_wait_timeout_is_not_bounded_by_its_timeout() {
    let _f = forking();
    let b = Barrier::new(2).unwrap();
    let stalled = stalled_party(&b);
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

/// A value big enough that every kind's forged handle passes the size check, so that what
/// refuses it is the kind.
type Big = [u64; 64];

/// Opens a handle as one kind of synchronization object, keeping it open until dropped.
type Opener = fn(&Arena, &Handle) -> shared_runtime::Result<Box<dyn Any>>;

fn kept<T: 'static>(r: shared_runtime::Result<T>) -> shared_runtime::Result<Box<dyn Any>> {
    r.map(|x| Box::new(x) as Box<dyn Any>)
}

/// Whether opening was refused as another kind of object.
fn refused_as_kind<T>(r: shared_runtime::Result<T>) -> bool {
    matches!(r, Err(Error::KindMismatch { .. }))
}

/// A `Value`'s data block and an object of another kind (handle `x`, opened by `open_x`),
/// both another process's, each named by a forged handle of the other kind: refused with
/// `KindMismatch` in a process that has the `Value` open first, in one that has the other
/// object open first, and in one that has neither open.
fn forged_kinds_are_refused(x: Handle, open_x: Opener) {
    let _f = forking();
    let arena = Arena::global().clone();
    let v = Value::with_lock([7u64; 64], Lock::new().unwrap()).unwrap();
    let vh = v.handle();
    // A small value, so that its handle naming `x`'s block passes the size check.
    let small = Value::with_lock(0u64, Lock::new().unwrap()).unwrap();
    // An `x`-kind handle naming the value's data, and a value handle naming `x`'s block.
    let forged_x = Handle {
        offset: vh.offset,
        ..x
    };
    let forged_v = Handle {
        offset: x.offset,
        ..small.handle()
    };
    let a = arena.clone();
    let value_first = Process::start(move || {
        let mine = Value::<Big, Lock>::open_handle(&a, &vh).expect("open the value");
        let mut bad = 0u64;
        if !refused_as_kind(open_x(&a, &forged_x)) {
            bad |= 1;
        }
        if mine.lock().unwrap()[0] != 7 {
            bad |= 2;
        }
        bad
    })
    .unwrap();
    assert_eq!(
        finish(value_first).unwrap(),
        0,
        "a forged {} handle naming a Value's data opened in a process that has the Value \
         open (or the Value changed)",
        x.kind
    );
    let a = arena.clone();
    let other_first = Process::start(move || {
        let _mine = open_x(&a, &x).expect("open the genuine object");
        u64::from(!refused_as_kind(Value::<u64, Lock>::open_handle(
            &a, &forged_v,
        )))
    })
    .unwrap();
    assert_eq!(
        finish(other_first).unwrap(),
        0,
        "a forged Value handle naming a {}'s block opened in a process that has it open",
        x.kind
    );
    let a = arena.clone();
    let neither = Process::start(move || {
        u64::from(!refused_as_kind(open_x(&a, &forged_x)))
            | u64::from(!refused_as_kind(Value::<u64, Lock>::open_handle(
                &a, &forged_v,
            ))) << 1
    })
    .unwrap();
    assert_eq!(
        finish(neither).unwrap(),
        0,
        "a forged handle of one kind opened another kind's block ({} and Value)",
        x.kind
    );
    drop((v, small));
}

#[test]
fn a_forged_event_handle_and_a_value_handle_never_share_a_block() {
    let e = Event::new().unwrap();
    forged_kinds_are_refused(e.handle(), |a, h| kept(Event::open_handle(a, h)));
}

#[test]
fn a_forged_condition_handle_and_a_value_handle_never_share_a_block() {
    let c = Condition::new().unwrap();
    forged_kinds_are_refused(c.handle(), |a, h| kept(Condition::open_handle(a, h)));
}

#[test]
fn a_forged_semaphore_handle_and_a_value_handle_never_share_a_block() {
    let s = Semaphore::new(1).unwrap();
    forged_kinds_are_refused(s.handle(), |a, h| kept(Semaphore::open_handle(a, h)));
    let b = BoundedSemaphore::new(1).unwrap();
    forged_kinds_are_refused(b.handle(), |a, h| kept(BoundedSemaphore::open_handle(a, h)));
}

#[test]
fn a_forged_barrier_handle_and_a_value_handle_never_share_a_block() {
    let b = Barrier::new(2).unwrap();
    forged_kinds_are_refused(b.handle(), |a, h| kept(Barrier::open_handle(a, h)));
}

#[test]
fn a_forged_queue_handle_and_a_value_handle_never_share_a_block() {
    let q = Queue::<u64>::new(4).unwrap();
    forged_kinds_are_refused(q.handle(), |a, h| kept(Queue::<u64>::open_handle(a, h)));
}

/// Synchronization objects of two kinds never share a block either: a condition handle
/// forged to name a semaphore's block (big enough for a condition) is refused.
#[test]
fn a_forged_handle_of_one_sync_kind_never_opens_another() {
    let _f = forking();
    let arena = Arena::global().clone();
    let c = Condition::new().unwrap();
    let s = Semaphore::new(0).unwrap();
    let forged = Handle {
        offset: s.handle().offset,
        ..c.handle()
    };
    let sh = s.handle();
    let child = Process::start(move || {
        let _s = Semaphore::open_handle(&arena, &sh).expect("open the semaphore");
        u64::from(!refused_as_kind(Condition::open_handle(&arena, &forged)))
    })
    .unwrap();
    assert_eq!(
        finish(child).unwrap(),
        0,
        "a Condition opened a Semaphore's block"
    );
}

/// With a live party stalled inside the barrier's lock, `abort` (lock-free) and a timed
/// wait return, the wait with `BrokenBarrier`, and the barrier is broken; once the stalled
/// party is gone, `reset` repairs it.
#[test]
fn abort_and_a_timed_wait_do_not_wait_for_a_stalled_party() {
    let _f = forking();
    let b = Barrier::new(2).unwrap();
    let stalled = stalled_party(&b);
    let (tx, rx) = mpsc::channel();
    let b3 = b.clone();
    std::thread::spawn(move || {
        let timed = b3.wait_timeout(Duration::from_millis(20));
        let _ = tx.send(matches!(timed, Err(shared_runtime::Error::BrokenBarrier)));
        b3.reset(); // takes the lock: returns once the stalled party is killed
        b3.abort();
        let _ = tx.send(b3.is_broken());
    });
    let timed_broke = rx.recv_timeout(BOUND);
    let broken_after_timeout = b.is_broken();
    let (tx2, rx2) = mpsc::channel();
    let b4 = b.clone();
    std::thread::spawn(move || {
        b4.abort();
        let _ = tx2.send(());
    });
    let aborted = rx2.recv_timeout(BOUND);
    stalled.kill().unwrap();
    let _ = finish(stalled);
    assert_eq!(
        timed_broke,
        Ok(true),
        "wait_timeout did not end with BrokenBarrier"
    );
    assert!(
        broken_after_timeout,
        "a timed-out wait left the barrier unbroken"
    );
    assert!(
        aborted.is_ok(),
        "abort waited for the party stalled in the lock"
    );
    assert_eq!(
        rx.recv_timeout(BOUND),
        Ok(true),
        "reset then abort: broken again"
    );
    b.reset();
    assert!(!b.is_broken());
}
