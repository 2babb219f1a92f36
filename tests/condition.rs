//! `Condition` across processes: CPython's condition tests (`_test_multiprocessing.py`,
//! `test_notify`, `test_notify_all`, `test_timeout`, `test_waitfor`,
//! `test_waitfor_timeout`) ported to forked processes; a producer/consumer through a
//! `Condition` and a `Value` of a derived struct; a waiter whose lock holder is killed.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use common::{finish, forking, wait_until, PATIENCE};
use shared_runtime::handle::Handle;
use shared_runtime::{
    Arena, Condition, Lock, Process, RLock, RawArray, RawValue, SharedStruct, Value,
};

const SHORT: Duration = Duration::from_millis(30);

/// CPython `test_notify`: two sleepers; each `notify_one` lets exactly one more through.
/// (A ticket per notify makes "exactly one" hold despite spurious wake-ups.)
#[test]
fn notify_one_releases_one_waiter_at_a_time() {
    let _f = forking();
    let lock = Lock::new().unwrap();
    let cond = Condition::new().unwrap();
    let (sleeping, woken, tickets) = (
        RawValue::new(0u32).unwrap(),
        RawValue::new(0u32).unwrap(),
        RawValue::new(0u32).unwrap(),
    );
    let children: Vec<_> = (0..2)
        .map(|_| {
            let (lock, cond) = (lock.clone(), cond.clone());
            let (sleeping, woken, tickets) = (sleeping.clone(), woken.clone(), tickets.clone());
            Process::start(move || {
                let g = lock.lock().unwrap();
                sleeping.fetch_add(1, SeqCst);
                let _g = cond.wait_while(g, |_| tickets.get() == 0).unwrap();
                tickets.fetch_sub(1, SeqCst);
                woken.fetch_add(1, SeqCst);
            })
            .unwrap()
        })
        .collect();
    assert!(wait_until(|| sleeping.get() == 2));
    assert_eq!(woken.get(), 0);
    for expected in 1..=2 {
        {
            // Taken after both counted themselves under the lock: both are waiting.
            let _g = lock.lock().unwrap();
            tickets.fetch_add(1, SeqCst);
            cond.notify_one();
        }
        assert!(wait_until(|| woken.get() == expected), "notify_one lost");
        assert_eq!(woken.get(), expected, "one ticket woke two waiters");
    }
    for c in children {
        finish(c).unwrap();
    }
}

/// CPython `test_notify_all`: several sleepers, some with timeouts, all released by one
/// `notify_all` (each sees the state change it waited for).
#[test]
fn notify_all_releases_every_waiter() {
    let _f = forking();
    const N: u32 = 4;
    let v = Value::new(0u32).unwrap();
    let cond = Condition::new().unwrap();
    let sleeping = RawValue::new(0u32).unwrap();
    let children: Vec<_> = (0..N)
        .map(|i| {
            let (v, cond, sleeping) = (v.clone(), cond.clone(), sleeping.clone());
            Process::start(move || {
                let g = v.lock().unwrap();
                sleeping.fetch_add(1, SeqCst);
                if i % 2 == 0 {
                    let g = cond.wait_while(g, |g| **g == 0).unwrap();
                    u64::from(*g)
                } else {
                    let (g, r) = cond.wait_timeout_while(g, PATIENCE, |g| **g == 0).unwrap();
                    assert!(!r.timed_out());
                    u64::from(*g)
                }
            })
            .unwrap()
        })
        .collect();
    assert!(wait_until(|| sleeping.get() == N));
    {
        let mut g = v.lock().unwrap();
        *g = 9;
        cond.notify_all();
    }
    for c in children {
        assert_eq!(finish(c).unwrap(), 9);
    }
}

/// CPython `test_timeout`: a wait that nobody notifies returns after its timeout, timed
/// out, with the lock held again.
#[test]
fn wait_timeout_without_notify_times_out_holding_the_lock() {
    let _f = forking();
    let lock = RLock::new().unwrap();
    let cond = Condition::new().unwrap();
    let start = Instant::now();
    let (g, r) = cond.wait_timeout(lock.lock().unwrap(), SHORT).unwrap();
    assert!(r.timed_out());
    assert!(start.elapsed() >= SHORT, "returned before its timeout");
    let l2 = lock.clone();
    let held = common::in_child(move || u64::from(l2.try_lock().is_err())).unwrap();
    assert_eq!(held, 1, "the lock was not held again after the wait");
    drop(g);
}

/// CPython `test_waitfor`: a child waits for the state to reach 4 while the parent steps
/// it 1, 2, 3, 4, notifying each time.
#[test]
fn wait_while_across_processes() {
    let _f = forking();
    let state = Value::new(0u32).unwrap();
    let cond = Condition::new().unwrap();
    let waiting = RawValue::new(0u32).unwrap();
    let (s2, c2, w2) = (state.clone(), cond.clone(), waiting.clone());
    let child = Process::start(move || {
        let g = s2.lock().unwrap();
        w2.set(1);
        let g = c2.wait_while(g, |g| **g != 4).unwrap();
        let seen = *g;
        drop(g);
        // And a second wait_for that is already satisfied returns at once.
        let (g, r) = c2
            .wait_timeout_while(s2.lock().unwrap(), Duration::ZERO, |g| **g != 4)
            .unwrap();
        assert!(!r.timed_out() && *g == 4);
        u64::from(seen)
    })
    .unwrap();
    assert!(wait_until(|| waiting.get() == 1));
    for i in 1..=4 {
        std::thread::sleep(Duration::from_millis(5));
        let mut g = state.lock().unwrap();
        *g = i;
        cond.notify_all();
    }
    assert_eq!(finish(child).unwrap(), 4);
}

/// CPython `test_waitfor_timeout`: the predicate never becomes true within the timeout,
/// though notifies arrive: the wait times out (after its timeout, not at a notify).
#[test]
fn wait_timeout_while_times_out_despite_notifies() {
    let _f = forking();
    let state = Value::new(0u32).unwrap();
    let cond = Condition::new().unwrap();
    let (waiting, done) = (RawValue::new(0u32).unwrap(), RawValue::new(0u32).unwrap());
    let (s2, c2, w2, d2) = (state.clone(), cond.clone(), waiting.clone(), done.clone());
    let child = Process::start(move || {
        let timeout = Duration::from_millis(200);
        let start = Instant::now();
        let g = s2.lock().unwrap();
        w2.set(1);
        let (g, r) = c2.wait_timeout_while(g, timeout, |g| **g != 4).unwrap();
        assert!(start.elapsed() >= timeout, "timed out early");
        d2.set(1);
        u64::from(r.timed_out()) * 10 + u64::from(*g)
    })
    .unwrap();
    assert!(wait_until(|| waiting.get() == 1));
    for i in 1..=3 {
        let mut g = state.lock().unwrap();
        *g = i;
        cond.notify_all();
    }
    assert!(wait_until(|| done.get() == 1));
    assert_eq!(
        finish(child).unwrap(),
        13,
        "expected a timeout with the state at 3"
    );
}

/// The shared state of the producer/consumer test: a ring of items with its counters.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Ring {
    items: [u32; 8],
    head: u64,
    tail: u64,
    producers_done: u32,
    _pad: u32,
}

/// Two producers and two consumers hand 100 000 items through a `Value<Ring>` guarded by
/// its lock and two conditions: every item is consumed exactly once.
#[test]
fn producer_consumer_through_a_condition_and_a_struct() {
    let _f = forking();
    const ITEMS: u32 = 100_000;
    const PER_PRODUCER: u32 = ITEMS / 2;
    let empty = Ring {
        items: [0; 8],
        head: 0,
        tail: 0,
        producers_done: 0,
        _pad: 0,
    };
    let ring = Value::with_lock(empty, Lock::new().unwrap()).unwrap();
    let (not_empty, not_full) = (Condition::new().unwrap(), Condition::new().unwrap());
    let seen = RawArray::<u32>::zeroed(ITEMS as usize).unwrap();
    let mut children = Vec::new();
    for p in 0..2 {
        let (ring, not_empty, not_full) = (ring.clone(), not_empty.clone(), not_full.clone());
        children.push(
            Process::start(move || {
                for i in 0..PER_PRODUCER {
                    let g = ring.lock().unwrap();
                    let mut g = not_full.wait_while(g, |r| r.tail - r.head == 8).unwrap();
                    let at = (g.tail % 8) as usize;
                    g.items[at] = p * PER_PRODUCER + i;
                    g.tail += 1;
                    not_empty.notify_one();
                }
                ring.lock().unwrap().producers_done += 1;
                not_empty.notify_all();
                0u64
            })
            .unwrap(),
        );
    }
    for _ in 0..2 {
        let (ring, not_empty, not_full, seen) = (
            ring.clone(),
            not_empty.clone(),
            not_full.clone(),
            seen.clone(),
        );
        children.push(
            Process::start(move || {
                let mut consumed = 0u64;
                loop {
                    let g = ring.lock().unwrap();
                    let mut g = not_empty
                        .wait_while(g, |r| r.head == r.tail && r.producers_done < 2)
                        .unwrap();
                    if g.head == g.tail {
                        return consumed; // drained, and both producers are done
                    }
                    let item = g.items[(g.head % 8) as usize];
                    g.head += 1;
                    drop(g);
                    not_full.notify_one();
                    seen.fetch_add(item as usize, 1, SeqCst);
                    consumed += 1;
                }
            })
            .unwrap(),
        );
    }
    let consumed: u64 = children.into_iter().map(|c| finish(c).unwrap()).sum();
    assert_eq!(consumed, u64::from(ITEMS));
    let counts = seen.to_vec();
    let wrong: Vec<_> = counts.iter().enumerate().filter(|(_, &n)| n != 1).collect();
    assert!(
        wrong.is_empty(),
        "items not consumed exactly once: {:?}",
        &wrong[..wrong.len().min(10)]
    );
    let r = ring.get();
    assert_eq!((r.head, r.tail), (u64::from(ITEMS), u64::from(ITEMS)));
}

/// The lock's holder is killed while a waiter sleeps, without notifying: the waiter wakes
/// (it checks on the holder every 50 ms) and gets its guard inside a `PoisonError`.
#[test]
fn a_waiter_whose_lock_holder_is_killed_wakes_with_poison() {
    let _f = forking();
    let v = Value::with_lock(0u32, Lock::new().unwrap()).unwrap();
    let cond = Condition::new().unwrap();
    let (waiting, holding) = (RawValue::new(0u32).unwrap(), RawValue::new(0u32).unwrap());
    let (v2, c2, w2) = (v.clone(), cond.clone(), waiting.clone());
    let waiter = Process::start(move || {
        let g = v2.lock().unwrap();
        w2.set(1);
        match c2.wait(g) {
            Ok(_) => 0u64,
            Err(p) => {
                let g = p.into_inner();
                u64::from(shared_runtime::HoldsLock::poison(&g).is_some()) + 10 * u64::from(*g)
            }
        }
    })
    .unwrap();
    assert!(wait_until(|| waiting.get() == 1));
    let (v3, h3) = (v.clone(), holding.clone());
    let holder = Process::<()>::start(move || {
        // Taken only once the waiter has released it by waiting.
        let mut g = v3.lock().unwrap();
        *g = 7;
        h3.set(1);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .unwrap();
    assert!(wait_until(|| holding.get() == 1));
    holder.kill().unwrap();
    assert!(finish(holder).is_err(), "the killed holder ended normally");
    assert_eq!(
        finish(waiter).unwrap(),
        71,
        "the waiter did not wake with poison seeing the dead holder's write"
    );
    assert!(v.is_poisoned());
}

/// A timed wait whose lock holder died: the poison carries the guard and the result.
#[test]
fn wait_timeout_reports_poison_with_its_result() {
    let _f = forking();
    let lock = Lock::new().unwrap();
    let cond = Condition::new().unwrap();
    let g = lock.lock().unwrap();
    let l2 = lock.clone();
    let waiting = RawValue::new(0u32).unwrap();
    let w2 = waiting.clone();
    let child = Process::start(move || {
        w2.set(1);
        std::mem::forget(l2.lock()); // dies holding it once the parent waits
    })
    .unwrap();
    assert!(wait_until(|| waiting.get() == 1));
    let r = cond.wait_timeout(g, PATIENCE);
    finish(child).unwrap();
    let (g, res) = r.expect_err("not poisoned").into_inner();
    assert!(!res.timed_out(), "waited for the whole timeout");
    drop(g);
    // Sticky, as for lock(): `?` names the dead holder.
    let e: shared_runtime::Error = lock.lock().unwrap_err().into();
    assert!(matches!(e, shared_runtime::Error::Poisoned { .. }), "{e}");
}

/// While a thread waits with a `Value`'s guard, another thread of the process may lock
/// the value (the borrow mark is lifted); once the wait returns, the mark is back.
#[test]
fn a_sync_guard_wait_lifts_and_restores_the_borrow_mark() {
    let v = Value::new(0u32).unwrap();
    let cond = Condition::new().unwrap();
    let (v2, c2) = (v.clone(), cond.clone());
    let g = v.lock().unwrap();
    let t = std::thread::spawn(move || {
        *v2.lock().unwrap() = 5;
        c2.notify_all();
    });
    let g = cond.wait_while(g, |g| **g == 0).unwrap();
    assert_eq!(*g, 5);
    t.join().unwrap();
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.get()));
    assert!(
        again.is_err(),
        "the borrow mark was not restored after the wait"
    );
    drop(g);
    assert_eq!(v.get(), 5);
}

/// An `RLock` held twice cannot be waited on: a clear panic, and the lock is left as it
/// was (still held, twice).
#[test]
fn waiting_with_an_rlock_held_twice_panics() {
    let lock = RLock::new().unwrap();
    let cond = Condition::new().unwrap();
    let outer = lock.lock().unwrap();
    let inner = lock.lock().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = cond.wait_timeout(inner, SHORT);
    }));
    let msg = r.expect_err("no panic");
    let msg = msg
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or("");
    assert!(msg.contains("RLock held 2 times"), "{msg}");
    assert_eq!(
        lock.state().depth,
        1,
        "the inner guard was dropped by the unwind"
    );
    drop(outer);
    assert_eq!(lock.state().depth, 0);
    assert!(format!("{cond:?}").contains("waiters: 0"), "{cond:?}");
}

#[test]
fn a_named_condition_and_a_handed_over_one_notify_across_processes() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let named = arena.create::<Condition>("c", ()).unwrap();
    let unnamed = Condition::new_in(&arena).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let flag = RawValue::new_in(&arena, 0u32).unwrap();
    let text = unnamed.handle().to_string();
    let (a, l2, f2) = (arena.clone(), lock.clone(), flag.clone());
    let g = lock.lock().unwrap();
    let child = Process::start(move || {
        let h: Handle = text.parse().unwrap();
        assert!(Lock::open_handle(&a, &h).is_err());
        let c = Condition::open_handle(&a, &h).unwrap();
        let by_name = a.open::<Condition>("c").unwrap();
        let _g = l2.lock().unwrap();
        f2.set(1);
        c.notify_all();
        by_name.notify_all();
    })
    .unwrap();
    let g = unnamed.wait_while(g, |_| flag.get() == 0).unwrap();
    drop(g);
    finish(child).unwrap();
    assert!(format!("{named:?}").contains("notifies: 1"), "{named:?}");
    assert!(Condition::open_handle(&arena, &unnamed.handle()).is_err());
    let listed = arena.objects().unwrap();
    assert!(listed
        .iter()
        .any(|o| o.name == "c" && o.label == "Condition"));
}

#[test]
fn is_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Condition>();
}
