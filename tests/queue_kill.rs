//! Processes killed in the middle of a push or a pop, and a `SIGKILL` storm of producers
//! and consumers: the item in flight is fully out (a push) or fully in (a pop), the others
//! go on, and after the storm the queue holds together and nobody is stuck.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{finish, forking, Rng, PATIENCE};
use shared_runtime::test_hooks::{set_queue_hook, QueueStep};
use shared_runtime::{Event, PopError, Process, PushError, Queue, RawArray, RawValue};

/// Set by the paused process, in that process only (each is a fresh fork).
static PAUSED: OnceLock<(Event, RawValue<u32>)> = OnceLock::new();

/// The hook: says where it paused and sleeps until killed.
fn pause(step: QueueStep) {
    if let Some((paused, at)) = PAUSED.get() {
        at.set(match step {
            QueueStep::PushCopying => 1,
            QueueStep::PopCopying => 2,
        });
        paused.set();
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Starts a child that arms the hook and then runs `f`, waits until it pauses inside a
/// copy, checks where, and kills it there.
fn kill_inside_copy(expected: u32, f: impl FnOnce() + Send + 'static) {
    let paused = Event::new().unwrap();
    let at = RawValue::new(0u32).unwrap();
    let (p2, at2) = (paused.clone(), at.clone());
    let child = Process::start(move || {
        let _ = PAUSED.set((p2, at2));
        set_queue_hook(Some(pause));
        f();
    })
    .unwrap();
    assert!(paused.wait_timeout(PATIENCE), "the child never paused");
    assert_eq!(at.get(), expected, "paused at the wrong step");
    child.kill().unwrap();
    assert!(finish(child).is_err(), "the killed child ended normally");
}

type Item = [u64; 8];

fn item(i: u64) -> Item {
    [i; 8]
}

/// Moves `n` items (`first..first + n`) through `q` with 2 producer and 2 consumer
/// processes; returns how often each was consumed, checking that each is whole.
fn move_items(q: &Queue<Item>, first: u64, n: u64) -> Vec<u32> {
    let seen = RawArray::<u32>::zeroed(n as usize).unwrap();
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let q = q.clone();
            Process::start(move || {
                for i in (p..n).step_by(2) {
                    q.push(item(first + i)).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, seen) = (q.clone(), seen.clone());
            Process::start(move || {
                let mut got = 0u64;
                while got < n {
                    match q.pop_timeout(Duration::from_millis(200)) {
                        Ok(x) => {
                            assert!(x.iter().all(|&w| w == x[0]), "a torn item: {x:x?}");
                            let i = x[0].checked_sub(first).filter(|&i| i < n);
                            let i = i.unwrap_or_else(|| panic!("a stranger: {x:x?}"));
                            seen.fetch_add(i as usize, 1, Relaxed);
                            got += 1;
                        }
                        Err(PopError::Timeout) => {
                            // The other consumer may have taken the rest.
                            if seen.to_vec().iter().map(|&c| u64::from(c)).sum::<u64>() >= n {
                                break;
                            }
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                got
            })
            .unwrap()
        })
        .collect();
    for p in producers {
        finish(p).unwrap();
    }
    let got: u64 = consumers.into_iter().map(|c| finish(c).unwrap()).sum();
    assert_eq!(got, n);
    seen.to_vec()
}

/// A producer killed inside the copy of its item (half the slot overwritten, the tail
/// not advanced): its item is fully out, and 2 + 2 others then move 10 000 items, each
/// exactly once, none torn.
#[test]
fn a_producer_killed_inside_the_copy_leaves_its_item_out() {
    let _f = forking();
    let q = Queue::<Item>::new(4).unwrap();
    q.push(item(1)).unwrap();
    let q2 = q.clone();
    kill_inside_copy(1, move || {
        let _ = q2.push(item(0xDEAD));
    });
    assert_eq!(q.len(), 1, "the dead producer's item was published");
    assert_eq!(q.pop().unwrap(), Some(item(1)));
    assert!(matches!(q.try_pop(), Err(PopError::Empty)), "{q:?}");
    let seen = move_items(&q, 100, 10_000);
    assert!(seen.iter().all(|&c| c == 1), "not exactly once");
    assert!(q.is_empty());
}

/// A consumer killed inside the copy of an item out (read, the head not advanced): the
/// item stays fully in, and the next pop gets it; then 2 + 2 others move 10 000 items.
#[test]
fn a_consumer_killed_inside_the_copy_leaves_its_item_in() {
    let _f = forking();
    let q = Queue::<Item>::new(4).unwrap();
    q.push(item(1)).unwrap();
    q.push(item(2)).unwrap();
    let q2 = q.clone();
    kill_inside_copy(2, move || {
        let _ = q2.pop();
    });
    assert_eq!(q.len(), 2, "the dead consumer's item was removed");
    assert_eq!(q.pop().unwrap(), Some(item(1)));
    assert_eq!(q.pop().unwrap(), Some(item(2)));
    let seen = move_items(&q, 100, 10_000);
    assert!(seen.iter().all(|&c| c == 1), "not exactly once");
}

/// Producers and consumers waiting on a full or empty queue while the lock's holder is
/// killed inside a copy: they are not stranded.
#[test]
fn waiters_go_on_when_the_holder_dies_inside_a_copy() {
    let _f = forking();
    let q = Queue::<Item>::new(1).unwrap();
    let q2 = q.clone();
    let waiter =
        Process::start(move || q2.pop_timeout(PATIENCE).map(|x| x[0]).unwrap_or(0)).unwrap();
    let q3 = q.clone();
    kill_inside_copy(1, move || {
        let _ = q3.push(item(7));
    });
    q.push(item(8)).unwrap();
    assert_eq!(
        finish(waiter).unwrap(),
        8,
        "the waiter got the dead one's item, or none"
    );
}

const SLOTS: usize = 4; // 0, 1 producers; 2, 3 consumers
const MAX_IDS: u64 = 4_000_000;
const STORM: Duration = Duration::from_secs(4);
/// Longer than any wait can take while someone makes progress: a wait this long is a hang.
const STUCK: Duration = Duration::from_secs(10);

fn storm_item(id: u64) -> [u64; 4] {
    [id, !id, id.rotate_left(17), id ^ 0x5555_aaaa_5555_aaaa]
}

struct Shared {
    q: Queue<[u64; 4]>,
    next_id: RawValue<u64>,
    seen: RawArray<u8>,
    /// Torn or unknown items seen; waits that ran out (hangs); pushes and pops done.
    bad: RawValue<u64>,
    stuck: RawValue<u64>,
    stop: RawValue<u32>,
}

impl Clone for Shared {
    fn clone(&self) -> Self {
        Shared {
            q: self.q.clone(),
            next_id: self.next_id.clone(),
            seen: self.seen.clone(),
            bad: self.bad.clone(),
            stuck: self.stuck.clone(),
            stop: self.stop.clone(),
        }
    }
}

fn producer(s: Shared) {
    while s.stop.get() == 0 {
        let id = s.next_id.fetch_add(1, Relaxed);
        if id >= MAX_IDS {
            return;
        }
        match s.q.push_timeout(storm_item(id), STUCK) {
            Ok(()) => {}
            Err(PushError::Closed(_)) => return,
            Err(PushError::Timeout(_)) => {
                s.stuck.fetch_add(1, Relaxed);
                return;
            }
            Err(_) => {
                s.bad.fetch_add(1, Relaxed);
                return;
            }
        }
    }
}

fn consumer(s: Shared) {
    loop {
        match s.q.pop_timeout(STUCK) {
            Ok(x) => {
                let id = x[0];
                if id >= MAX_IDS || x != storm_item(id) {
                    s.bad.fetch_add(1, Relaxed);
                    return;
                }
                s.seen.fetch_add(id as usize, 1, Relaxed);
            }
            Err(PopError::Closed) => return,
            Err(PopError::Timeout) => {
                s.stuck.fetch_add(1, Relaxed);
                return;
            }
            Err(_) => {
                s.bad.fetch_add(1, Relaxed);
                return;
            }
        }
    }
}

fn start(slot: usize, s: &Shared) -> Process<()> {
    let s = s.clone();
    Process::start(move || if slot < 2 { producer(s) } else { consumer(s) }).unwrap()
}

/// Producers and consumers `SIGKILL`ed at random (every 5–40 ms, for 4 s), each
/// replaced at once, while the others go on. Afterwards: no item was torn or delivered
/// twice, items kept flowing, nobody waited as long as a hang, the queue drains and
/// closes normally, and its lock was left in no bad state.
#[test]
fn a_kill_storm_of_producers_and_consumers() {
    let _f = forking();
    let s = Shared {
        q: Queue::new(8).unwrap(),
        next_id: RawValue::new(0).unwrap(),
        seen: RawArray::zeroed(MAX_IDS as usize).unwrap(),
        bad: RawValue::new(0).unwrap(),
        stuck: RawValue::new(0).unwrap(),
        stop: RawValue::new(0).unwrap(),
    };
    let mut rng = Rng(std::process::id() as u64 | 1);
    let mut workers: Vec<Process<()>> = (0..SLOTS).map(|w| start(w, &s)).collect();
    let (begin, mut kills) = (Instant::now(), 0);
    while begin.elapsed() < STORM {
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 35));
        let w = (rng.next() % SLOTS as u64) as usize;
        let fresh = start(w, &s);
        let old = std::mem::replace(&mut workers[w], fresh);
        let _ = old.kill();
        let _ = finish(old); // killed, or ended on its own (an id budget spent)
        kills += 1;
    }
    let consumed_in_storm: u64 = s.seen.to_vec().iter().map(|&c| u64::from(c)).sum();
    s.stop.set(1);
    let (producers, consumers): (Vec<_>, Vec<_>) =
        workers.into_iter().enumerate().partition(|(w, _)| *w < 2);
    for (_, p) in producers {
        finish(p).unwrap();
    }
    s.q.close();
    for (_, c) in consumers {
        finish(c).unwrap();
    }
    let seen = s.seen.to_vec();
    let twice = seen.iter().filter(|&&c| c > 1).count();
    assert_eq!(s.bad.get(), 0, "torn or unknown items, or errors");
    assert_eq!(s.stuck.get(), 0, "a wait ran out: someone was stuck");
    assert_eq!(twice, 0, "items delivered twice");
    assert!(
        consumed_in_storm > 100,
        "only {consumed_in_storm} items moved in the storm ({kills} kills)"
    );
    // Drained and closed; the lock taken and released cleanly.
    assert!(s.q.is_empty() && s.q.is_closed(), "{:?}", s.q);
    assert!(matches!(s.q.try_pop(), Err(PopError::Closed)));
    assert!(matches!(s.q.try_push([0; 4]), Err(PushError::Closed(_))));
    eprintln!("{kills} kills, {consumed_in_storm} items consumed during the storm");
}
