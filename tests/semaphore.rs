//! `Semaphore` and `BoundedSemaphore` across processes: CPython's semaphore tests
//! (`_test_multiprocessing.py`: `test_semaphore`, `test_bounded_semaphore`, `test_timeout`)
//! ported to forked processes, a crowd of processes through a `Semaphore(k)` never more
//! than `k` inside, named and handed-over semaphores, and holders killed: a guard's unit
//! comes back, a plain `acquire`'s is lost (as in Python).

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::{finish, forking, in_child, wait_until, PATIENCE};
use shared_runtime::handle::Handle;
use shared_runtime::{
    Arena, BoundedSemaphore, Boundedness, Error, Event, GenericSemaphore, Process, RawValue,
    Semaphore,
};

const SHORT: Duration = Duration::from_millis(20);

/// CPython's `_test_semaphore`, shared by the two flavours: counting down from 2 and back.
fn count_down_and_up<B: Boundedness>(sem: &GenericSemaphore<B>) {
    assert_eq!(sem.value(), 2);
    sem.acquire();
    assert_eq!(sem.value(), 1);
    sem.acquire();
    assert_eq!(sem.value(), 0);
    assert!(!sem.try_acquire());
    assert_eq!(sem.value(), 0);
    sem.release().unwrap();
    assert_eq!(sem.value(), 1);
    sem.release().unwrap();
    assert_eq!(sem.value(), 2);
}

#[test]
fn semaphore_counts_and_releases_past_its_initial_value() {
    let sem = Semaphore::new(2).unwrap();
    count_down_and_up(&sem);
    sem.release().unwrap();
    assert_eq!(sem.value(), 3);
    sem.release().unwrap();
    assert_eq!(sem.value(), 4);
    assert_eq!(
        format!("{sem:?}"),
        "Semaphore { value: 4, held_by_guards: 0 }"
    );
}

#[test]
fn bounded_semaphore_refuses_a_release_past_its_bound() {
    let sem = BoundedSemaphore::new(2).unwrap();
    count_down_and_up(&sem);
    let err = sem.release().unwrap_err();
    assert!(
        matches!(err, Error::SemaphoreOverflow { bound: 2 }),
        "{err}"
    );
    assert_eq!(sem.value(), 2, "a refused release changed the value");
    assert_eq!(sem.bound(), 2);
    assert!(format!("{sem:?}").contains("bound: 2"), "{sem:?}");
    // A guard's unit, released by someone else meanwhile, is not given back twice.
    let g = sem.access();
    sem.release().unwrap();
    drop(g);
    assert_eq!(sem.value(), 2);
}

#[test]
fn a_plain_semaphore_overflows_only_at_u32_max() {
    let sem = Semaphore::new(u32::MAX).unwrap();
    let err = sem.release().unwrap_err();
    assert!(
        matches!(err, Error::SemaphoreOverflow { bound: u32::MAX }),
        "{err}"
    );
    assert_eq!(sem.value(), u32::MAX);
}

/// CPython's `test_timeout`: a semaphore at 0 refuses at once and after its timeouts.
#[test]
fn acquire_times_out_on_an_empty_semaphore() {
    let sem = Semaphore::new(0).unwrap();
    assert!(!sem.try_acquire());
    assert!(!sem.acquire_timeout(Duration::ZERO));
    assert!(!sem.acquire_timeout(SHORT));
    assert!(sem.access_timeout(SHORT).is_none());
    assert!(sem.try_access().is_none());
    assert_eq!(sem.value(), 0);
    sem.release().unwrap();
    assert!(sem.acquire_timeout(SHORT));
    assert_eq!(sem.value(), 0);
}

#[test]
fn a_release_in_another_process_wakes_the_waiter() {
    let _f = forking();
    let sem = Semaphore::new(0).unwrap();
    let waiting = RawValue::new(0u32).unwrap();
    let (s2, w2) = (sem.clone(), waiting.clone());
    let waiter = Process::start(move || {
        w2.fetch_add(1, SeqCst);
        u64::from(s2.acquire_timeout(PATIENCE))
    })
    .unwrap();
    assert!(wait_until(|| waiting.get() == 1));
    std::thread::sleep(SHORT); // most likely asleep in the futex by now
    sem.release().unwrap();
    assert_eq!(finish(waiter).unwrap(), 1, "the waiter missed the release");
    assert_eq!(sem.value(), 0);
}

/// Many processes through a `Semaphore(K)`, half by guard and half by plain
/// acquire/release: never more than `K` inside at once, every unit back at the end.
#[test]
fn never_more_than_k_processes_inside() {
    let _f = forking();
    const K: u32 = 3;
    const PROCS: usize = 8;
    const ROUNDS: u32 = 200;
    let sem = Semaphore::new(K).unwrap();
    let inside = RawValue::new(0u32).unwrap();
    let most = RawValue::new(0u32).unwrap();
    let entries = RawValue::new(0u32).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|i| {
            let (sem, inside, most, entries) =
                (sem.clone(), inside.clone(), most.clone(), entries.clone());
            Process::start(move || {
                for _ in 0..ROUNDS {
                    let guard = if i % 2 == 0 {
                        Some(sem.access())
                    } else {
                        sem.acquire();
                        None
                    };
                    let now = inside.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    entries.fetch_add(1, SeqCst);
                    std::thread::yield_now();
                    inside.fetch_sub(1, SeqCst);
                    match guard {
                        Some(g) => drop(g),
                        None => sem.release().unwrap(),
                    }
                }
            })
            .unwrap()
        })
        .collect();
    for c in children {
        finish(c).unwrap();
    }
    assert_eq!(entries.get(), PROCS as u32 * ROUNDS);
    assert!(
        most.get() <= K,
        "{} processes were inside at once",
        most.get()
    );
    assert!(most.get() >= 1);
    assert_eq!(sem.value(), K);
    assert!(format!("{sem:?}").contains("held_by_guards: 0"), "{sem:?}");
}

/// Starts a child that takes a unit of `sem` (by guard if `guarded`), says so, and waits
/// to be killed.
fn holder<B: Boundedness>(
    sem: &GenericSemaphore<B>,
    guarded: bool,
) -> (Process<()>, RawValue<u32>) {
    let (sem, never) = (sem.clone(), Event::new().unwrap());
    let holding = RawValue::new(0u32).unwrap();
    let h2 = holding.clone();
    let child = Process::start(move || {
        if guarded {
            let g = sem.access();
            h2.store(1 + u32::from(g.is_recorded()), SeqCst);
            never.wait();
            drop(g);
        } else {
            sem.acquire();
            h2.store(1, SeqCst);
            never.wait();
        }
    })
    .unwrap();
    assert!(
        wait_until(|| holding.get() != 0),
        "the holder never took it"
    );
    (child, holding)
}

/// A guard holder is killed while another process waits: the unit comes back (found by
/// the sleeping waiter's poll) and the waiter proceeds.
fn killed_guard_holder_unit_comes_back<B: Boundedness>(sem: GenericSemaphore<B>) {
    let _f = forking();
    let (victim, holding) = holder(&sem, true);
    assert_eq!(holding.get(), 2, "the guard's unit was not recorded");
    assert_eq!(sem.value(), 0);
    assert!(format!("{sem:?}").contains("held_by_guards: 1"), "{sem:?}");
    let waiting = RawValue::new(0u32).unwrap();
    let (s2, w2) = (sem.clone(), waiting.clone());
    let waiter = Process::start(move || {
        w2.store(1, SeqCst);
        match s2.access_timeout(PATIENCE) {
            Some(g) => {
                drop(g);
                1u64
            }
            None => 0,
        }
    })
    .unwrap();
    assert!(wait_until(|| waiting.get() == 1));
    // The holder lives: its unit is not taken from it.
    assert_eq!(sem.reclaim_dead(), 0);
    assert_eq!(sem.value(), 0);
    victim.kill().unwrap();
    assert!(finish(victim).is_err(), "the killed holder ended normally");
    assert_eq!(
        finish(waiter).unwrap(),
        1,
        "the dead holder's unit never came back"
    );
    assert_eq!(
        sem.value(),
        1,
        "the unit was returned more or less than once"
    );
    assert_eq!(sem.reclaim_dead(), 0);
    assert!(format!("{sem:?}").contains("held_by_guards: 0"), "{sem:?}");
}

#[test]
fn a_killed_guard_holders_unit_comes_back_to_a_waiter() {
    killed_guard_holder_unit_comes_back(Semaphore::new(1).unwrap());
}

#[test]
fn a_killed_guard_holders_unit_comes_back_to_a_bounded_semaphore() {
    killed_guard_holder_unit_comes_back(BoundedSemaphore::new(1).unwrap());
}

/// Python's semantics for a plain `acquire`: the unit is a bare count, lost with its
/// holder.
#[test]
fn a_killed_plain_acquirers_unit_is_lost() {
    let _f = forking();
    let sem = Semaphore::new(1).unwrap();
    let (victim, _) = holder(&sem, false);
    victim.kill().unwrap();
    assert!(finish(victim).is_err());
    assert_eq!(sem.reclaim_dead(), 0);
    assert!(!sem.acquire_timeout(Duration::from_millis(150)));
    assert_eq!(sem.value(), 0);
    // Anyone may still release on its behalf.
    sem.release().unwrap();
    assert!(sem.try_acquire());
}

/// A forgotten guard keeps its unit until its process ends; then it is returned, once.
#[test]
fn a_forgotten_guards_unit_returns_when_its_process_ends() {
    let _f = forking();
    let sem = BoundedSemaphore::new(2).unwrap();
    let s2 = sem.clone();
    finish(
        Process::start(move || {
            std::mem::forget(s2.access());
            std::mem::forget(s2.access());
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sem.value(), 0);
    let g = sem
        .access_timeout(PATIENCE)
        .expect("the units never came back");
    assert_eq!(sem.value(), 1);
    assert_eq!(sem.reclaim_dead(), 0, "a unit came back twice");
    drop(g);
    assert_eq!(sem.value(), 2);
    // In this process, a forgotten guard's unit stays taken.
    std::mem::forget(sem.access());
    assert_eq!(sem.reclaim_dead(), 0);
    assert_eq!(sem.value(), 1);
}

/// A forked child's copy of its parent's guard gives nothing back when dropped.
#[test]
fn a_forked_copy_of_a_guard_releases_nothing() {
    let _f = forking();
    let sem = Semaphore::new(1).unwrap();
    let g = sem.access();
    let seen = in_child(|| {
        // SAFETY: a bitwise copy of the parent's guard, as a fork makes; the child drops it
        // once and never touches the original.
        let copy = unsafe { std::ptr::read(&g) };
        drop(copy);
        sem.value()
    })
    .unwrap();
    assert_eq!(seen, 0, "the child's copy gave the parent's unit back");
    assert_eq!(sem.value(), 0);
    drop(g);
    assert_eq!(sem.value(), 1);
}

/// More guard-holding processes than the table's 16 entries: the 17th holds its unit
/// unrecorded (and says so); when all are killed, the 16 recorded units come back and the
/// unrecorded one is lost.
#[test]
fn holders_past_the_table_hold_unrecorded_units() {
    let _f = forking();
    const HOLDERS: u32 = 17;
    let sem = Semaphore::new(HOLDERS + 1).unwrap();
    let holders: Vec<_> = (0..HOLDERS).map(|_| holder(&sem, true)).collect();
    let recorded = holders.iter().filter(|(_, h)| h.get() == 2).count();
    assert_eq!(recorded, 16);
    assert_eq!(sem.value(), 1);
    for (child, _) in holders {
        child.kill().unwrap();
        assert!(finish(child).is_err());
    }
    assert_eq!(sem.reclaim_dead(), 16);
    assert_eq!(sem.value(), 17);
}

#[test]
fn a_named_semaphore_is_opened_by_name_in_a_child() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let sem = arena.create::<BoundedSemaphore>("slots", 2).unwrap();
    assert_eq!(sem.value(), 2);
    sem.acquire();
    let a = arena.clone();
    let got = in_child(move || {
        let wrong = a.open::<Semaphore>("slots");
        assert!(
            matches!(wrong, Err(Error::KindMismatch { .. })),
            "{wrong:?}"
        );
        let (s, created) = a.find_or_create::<BoundedSemaphore>("slots", 9).unwrap();
        assert!(!created);
        assert_eq!(s.bound(), 2);
        s.release().unwrap();
        let refused = s.release();
        assert!(matches!(
            refused,
            Err(Error::SemaphoreOverflow { bound: 2 })
        ));
        s.value()
    })
    .unwrap();
    assert_eq!(got, 2);
    assert_eq!(sem.value(), 2);
    let listed = arena.objects().unwrap();
    assert!(listed
        .iter()
        .any(|o| o.name == "slots" && o.label == "BoundedSemaphore"));
}

#[test]
fn an_unnamed_semaphore_is_handed_over_by_handle_text() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let sem = BoundedSemaphore::new_in(&arena, 3).unwrap();
    sem.acquire();
    let text = sem.handle().to_string();
    let a = arena.clone();
    let got = in_child(move || {
        let h: Handle = text.parse().unwrap();
        assert!(Semaphore::open_handle(&a, &h).is_err());
        assert!(Event::open_handle(&a, &h).is_err());
        let s = BoundedSemaphore::open_handle(&a, &h).unwrap();
        let g = s.access();
        std::mem::forget(g); // recorded against the child, which then ends
        u64::from(s.bound())
    })
    .unwrap();
    assert_eq!(got, 3);
    assert_eq!(sem.value(), 1);
    assert_eq!(sem.reclaim_dead(), 1);
    assert_eq!(sem.value(), 2);
    // This process owns it: opening its own handle is refused.
    assert!(BoundedSemaphore::open_handle(&arena, &sem.handle()).is_err());
}
