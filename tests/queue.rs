//! `Queue<T>`: first in first out, closing, timeouts, names and handles, a damaged
//! header, and 2 producer + 2 consumer processes moving 100 000 items, each consumed
//! exactly once.

mod common;

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use common::{finish, forking, wait_until, Rng, PATIENCE};
use shared_runtime::handle::Handle;
use shared_runtime::{
    Arena, Error, Event, PopError, Process, PushError, Queue, RawArray, RawValue, SharedStruct,
};

const SHORT: Duration = Duration::from_millis(20);

#[test]
fn handles_are_send_sync_and_clone() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    shareable::<Queue<u64>>();
    shareable::<Queue<Job>>();
}

#[test]
fn first_in_first_out_in_one_process() {
    let q = Queue::<u32>::new(4).unwrap();
    assert_eq!((q.capacity(), q.len(), q.is_empty()), (4, 0, true));
    for i in 1..=4 {
        q.push(i).unwrap();
    }
    assert_eq!(q.len(), 4);
    assert!(matches!(q.try_push(5), Err(PushError::Full(5))));
    assert!(
        format!("{q:?}").contains("len: 4, capacity: 4, closed: false"),
        "{q:?}"
    );
    for i in 1..=4 {
        assert_eq!(q.pop().unwrap(), Some(i));
    }
    assert!(matches!(q.try_pop(), Err(PopError::Empty)));
    assert!(q.is_empty());
}

/// Many laps around a small ring, with the queue's length varying: order is kept.
#[test]
fn order_is_kept_around_the_ring() {
    let q = Queue::<u64>::new(3).unwrap();
    let (mut next_in, mut next_out) = (0u64, 0u64);
    let mut rng = Rng(7);
    for _ in 0..5000 {
        if rng.next() % 2 == 0 {
            match q.try_push(next_in) {
                Ok(()) => next_in += 1,
                Err(PushError::Full(x)) => assert_eq!((x, q.len()), (next_in, 3)),
                Err(e) => panic!("{e}"),
            }
        } else {
            match q.try_pop() {
                Ok(x) => {
                    assert_eq!(x, next_out);
                    next_out += 1;
                }
                Err(PopError::Empty) => assert_eq!(next_in, next_out),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(q.len() as u64, next_in - next_out);
    }
    assert!(next_out > 1000, "the ring went round only {next_out} times");
}

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Job {
    id: u32,
    weight: f64,
    tag: [u8; 3],
}

#[test]
fn structs_with_padding_go_through_whole() {
    let q = Queue::<Job>::new(2).unwrap();
    let j = Job {
        id: 3,
        weight: 0.25,
        tag: *b"abc",
    };
    q.push(j).unwrap();
    assert_eq!(q.pop().unwrap(), Some(j));
}

#[test]
fn a_capacity_of_zero_is_refused_everywhere() {
    let arena = Arena::with_capacity(1 << 16).unwrap();
    for err in [
        Queue::<u8>::new(0).unwrap_err(),
        Queue::<u8>::new_in(&arena, 0).unwrap_err(),
        arena.create::<Queue<u8>>("q", 0).unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::InvalidQueueCapacity { capacity: 0, .. }),
            "{err}"
        );
    }
    assert!(arena.names().unwrap().is_empty());
    let huge = Queue::<u64>::new_in(&arena, usize::MAX / 4).unwrap_err();
    assert!(
        matches!(
            huge,
            Error::InvalidQueueCapacity { .. } | Error::OutOfMemory { .. }
        ),
        "{huge}"
    );
}

#[test]
fn close_drains_then_ends_and_refuses_pushes() {
    let q = Queue::<u16>::new(4).unwrap();
    q.push(1).unwrap();
    q.push(2).unwrap();
    q.close();
    q.close(); // again: nothing changes
    assert!(q.is_closed());
    assert!(matches!(q.push(3), Err(Error::QueueClosed)));
    assert!(matches!(q.try_push(3), Err(PushError::Closed(3))));
    assert!(matches!(
        q.push_timeout(3, SHORT),
        Err(PushError::Closed(3))
    ));
    assert_eq!(q.try_pop().unwrap(), 1);
    assert_eq!(q.pop_timeout(SHORT).unwrap(), 2);
    assert_eq!(q.pop().unwrap(), None);
    assert!(matches!(q.try_pop(), Err(PopError::Closed)));
    assert!(matches!(q.pop_timeout(SHORT), Err(PopError::Closed)));
}

#[test]
fn timeouts_give_the_item_back() {
    let q = Queue::<u8>::new(1).unwrap();
    assert!(matches!(q.pop_timeout(SHORT), Err(PopError::Timeout)));
    assert!(matches!(
        q.pop_timeout(Duration::ZERO),
        Err(PopError::Timeout)
    ));
    q.push_timeout(1, SHORT).unwrap();
    let err = q.push_timeout(2, SHORT).unwrap_err();
    assert!(matches!(err, PushError::Timeout(2)), "{err:?}");
    assert_eq!(err.into_inner(), 2);
    assert!(matches!(
        q.push_timeout(2, Duration::ZERO),
        Err(PushError::Timeout(2))
    ));
    // A timeout too long for the clock is none.
    assert_eq!(q.pop_timeout(Duration::MAX).unwrap(), 1);
}

/// Waiters in other processes are released by a push or pop from another one, and by
/// `close`: a pusher on a full queue gets `QueueClosed`, a popper on an empty one `None`.
#[test]
fn waiters_in_other_processes_are_released() {
    let _f = forking();
    let q = Queue::<u64>::new(1).unwrap();
    let asleep = RawValue::new(0u32).unwrap();
    let (q2, asleep2) = (q.clone(), asleep.clone());
    let popper = Process::start(move || {
        asleep2.fetch_add(1, SeqCst);
        q2.pop_timeout(PATIENCE).unwrap()
    })
    .unwrap();
    assert!(wait_until(|| asleep.get() == 1));
    std::thread::sleep(SHORT); // most likely asleep in the queue by now
    q.push(42).unwrap();
    assert_eq!(finish(popper).unwrap(), 42);

    q.push(1).unwrap(); // full now
    let (q2, asleep2) = (q.clone(), asleep.clone());
    let pusher = Process::start(move || {
        asleep2.fetch_add(1, SeqCst);
        q2.push_timeout(2, PATIENCE).is_ok() as u32
    })
    .unwrap();
    assert!(wait_until(|| asleep.get() == 2));
    std::thread::sleep(SHORT);
    assert_eq!(q.pop().unwrap(), Some(1));
    assert_eq!(finish(pusher).unwrap(), 1);
    assert_eq!(q.pop().unwrap(), Some(2));

    // Close releases both kinds of waiters.
    let empty = Queue::<u64>::new(1).unwrap();
    let full = Queue::<u64>::new(1).unwrap();
    full.push(0).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let (e, asleep) = (empty.clone(), asleep.clone());
            Process::start(move || {
                asleep.fetch_add(1, SeqCst);
                u64::from(e.pop().unwrap().is_none())
            })
            .unwrap()
        })
        .chain((0..2).map(|_| {
            let (f, asleep) = (full.clone(), asleep.clone());
            Process::start(move || {
                asleep.fetch_add(1, SeqCst);
                u64::from(matches!(f.push(9), Err(Error::QueueClosed)))
            })
            .unwrap()
        }))
        .collect();
    assert!(wait_until(|| asleep.get() == 6));
    std::thread::sleep(SHORT);
    empty.close();
    full.close();
    for c in children {
        assert_eq!(finish(c).unwrap(), 1, "a waiter was not released by close");
    }
    assert_eq!(full.pop().unwrap(), Some(0));
    assert_eq!(full.pop().unwrap(), None);
}

#[test]
fn a_named_queue_is_opened_by_name_and_checked() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let q = arena.create::<Queue<u64>>("jobs", 8).unwrap();
    assert_eq!(q.capacity(), 8);
    assert!(matches!(
        arena.open::<Queue<u32>>("jobs"),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(matches!(
        arena.open::<Event>("jobs"),
        Err(Error::KindMismatch { .. })
    ));
    let a = arena.clone();
    let child = Process::start(move || {
        // Another capacity is another layout, and the message says so.
        let err = a.find_or_create::<Queue<u64>>("jobs", 3).unwrap_err();
        assert!(matches!(err, Error::LayoutMismatch { .. }), "{err}");
        assert!(err.to_string().contains("of length 3"), "{err}");
        let (q, created) = a.find_or_create::<Queue<u64>>("jobs", 8).unwrap();
        assert!(!created);
        assert_eq!(q.capacity(), 8);
        for i in 0..8 {
            q.push(i * 10).unwrap();
        }
        // By handle too, in the same process: the same queue.
        let h: Handle = q.handle().to_string().parse().unwrap();
        let again = Queue::<u64>::open_handle(&a, &h).unwrap();
        assert!(matches!(again.try_push(1), Err(PushError::Full(1))));
        again.len() as u64
    })
    .unwrap();
    assert_eq!(finish(child).unwrap(), 8);
    let opened = arena.open::<Queue<u64>>("jobs").unwrap();
    assert_eq!(opened.pop().unwrap(), Some(0));
    assert_eq!(q.pop().unwrap(), Some(10));
    let listed = arena.objects().unwrap();
    assert!(listed.iter().any(|o| o.name == "jobs"), "{listed:?}");
    // Removed, it stays usable by those that have it open.
    assert!(arena.remove("jobs").unwrap());
    assert_eq!(q.pop().unwrap(), Some(20));
}

#[test]
fn an_unnamed_queue_is_handed_over_by_handle() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let q = Queue::<[u32; 2]>::new_in(&arena, 2).unwrap();
    let text = q.handle().to_string();
    let a = arena.clone();
    let child = Process::start(move || {
        let h: Handle = text.parse().unwrap();
        assert!(matches!(
            Queue::<u64>::open_handle(&a, &h),
            Err(Error::LayoutMismatch { .. })
        ));
        assert!(Event::open_handle(&a, &h).is_err());
        let bigger = Handle { len: 1000, ..h };
        assert!(matches!(
            Queue::<[u32; 2]>::open_handle(&a, &bigger),
            Err(Error::InvalidHandle { .. })
        ));
        let owned = Handle { owned: true, ..h };
        assert!(Queue::<[u32; 2]>::open_handle(&a, &owned).is_err());
        let q = Queue::<[u32; 2]>::open_handle(&a, &h).unwrap();
        q.push([1, 2]).unwrap();
    })
    .unwrap();
    finish(child).unwrap();
    assert_eq!(q.pop().unwrap(), Some([1, 2]));
    // This process owns it: it clones the handle it has instead.
    assert!(Queue::<[u32; 2]>::open_handle(&arena, &q.handle()).is_err());
}

/// Overwrites the queue's header from another process (as a hostile one could, through a
/// raw-array handle of its block): every operation reports the damage or gives a wrong
/// but bounded answer; none hangs or crashes. Repaired, the queue works again.
#[test]
fn a_damaged_header_is_reported_not_trusted() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let q = Queue::<u64>::new_in(&arena, 4).unwrap();
    q.push(5).unwrap();
    // (A raw-array handle of the queue's block is refused: it is tagged as a queue's.)
    let at = q.handle().offset;
    // Words of the header: 3 head, 4 tail, 5 capacity (after the 24-byte lock cell).
    let poke = |word: usize, value: u64| {
        let a = arena.clone();
        finish(
            Process::start(move || {
                // SAFETY: this child holds no reference to the queue's words.
                unsafe { shared_runtime::test_hooks::poke_for_tests(&a, at, word, value) }.unwrap();
            })
            .unwrap(),
        )
        .unwrap();
    };
    let damaged = |q: &Queue<u64>| {
        assert!(matches!(q.push(1), Err(Error::Corrupted(_))));
        assert!(matches!(
            q.try_push(1),
            Err(PushError::Failed(1, Error::Corrupted(_)))
        ));
        assert!(matches!(q.pop(), Err(Error::Corrupted(_))));
        assert!(matches!(q.pop_timeout(SHORT), Err(PopError::Failed(_))));
        assert!(q.len() <= q.capacity());
        let _ = format!("{q:?}");
    };
    poke(3, 7); // head past tail
    damaged(&q);
    poke(3, 0);
    poke(4, 100); // tail past head + capacity
    damaged(&q);
    poke(4, 1);
    poke(5, 1 << 40); // another capacity
    damaged(&q);
    poke(5, 4);
    assert_eq!(q.pop().unwrap(), Some(5), "repaired, it works again");

    // Random garbage in everything after the lock word, with bounded waits only.
    let mut rng = Rng(11);
    for _ in 0..50 {
        let (a, seed) = (arena.clone(), rng.next());
        finish(
            Process::start(move || {
                let mut r = Rng(seed);
                for w in 1..16 {
                    if r.next() % 3 == 0 {
                        let value = r.next() >> (r.next() % 64);
                        // SAFETY: this child holds no reference to the queue's words.
                        unsafe { shared_runtime::test_hooks::poke_for_tests(&a, at, w, value) }
                            .unwrap();
                    }
                }
            })
            .unwrap(),
        )
        .unwrap();
        let _ = q.push_timeout(1, Duration::from_millis(1));
        let _ = q.pop_timeout(Duration::from_millis(1));
        let _ = q.try_pop();
        assert!(q.len() <= q.capacity());
    }
    q.close();
    assert!(q.is_closed());
}

const ITEMS: u64 = 100_000;

/// Two producer and two consumer processes move 100 000 items through a small queue:
/// every item is consumed exactly once (a per-item count), and each consumer sees each
/// producer's items in order.
#[test]
fn two_producers_two_consumers_move_every_item_exactly_once() {
    let _f = forking();
    let q = Queue::<u64>::new(64).unwrap();
    let seen = RawArray::<u32>::zeroed(ITEMS as usize).unwrap();
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let q = q.clone();
            Process::start(move || {
                // Producer p pushes the items i with i % 2 == p, in increasing order.
                for i in (p..ITEMS).step_by(2) {
                    q.push(i).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, seen) = (q.clone(), seen.clone());
            Process::start(move || {
                let mut last = [None::<u64>; 2];
                let mut n = 0u64;
                while let Some(i) = q.pop().unwrap() {
                    assert!(i < ITEMS, "an item that was never pushed: {i}");
                    let from = (i % 2) as usize;
                    assert!(last[from] < Some(i), "producer {from}'s items out of order");
                    last[from] = Some(i);
                    seen.fetch_add(i as usize, 1, Relaxed);
                    n += 1;
                }
                n
            })
            .unwrap()
        })
        .collect();
    for p in producers {
        finish(p).unwrap();
    }
    q.close();
    let consumed: u64 = consumers.into_iter().map(|c| finish(c).unwrap()).sum();
    assert_eq!(consumed, ITEMS);
    let counts = seen.to_vec();
    let wrong: Vec<_> = (0..ITEMS as usize)
        .filter(|&i| counts[i] != 1)
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "items not consumed exactly once: {wrong:?}"
    );
    assert!(q.is_empty());
}
