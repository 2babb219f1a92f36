//! Attacking review of the lock / synchronized slice (issue 9). Every test here fails on
//! the reviewed code (829635f); see the comment on each for the mode it needs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shared_runtime::{Array, Lock, PoisonCause, RawValue, Value};

/// A write through `&mut *guard`, then a raw write through another handle of the same
/// object, then a read through the `&mut` again. `g` is `noalias`: the optimiser may
/// (and in release builds does) forward the first write to the read.
#[inline(never)]
fn write_behind(g: &mut u64, raw: &RawValue<u64>) -> u64 {
    *g = 1;
    raw.set(2);
    *g
}

/// `Synchronized::clone` + `into_parts` hands out an independent `RawValue` of the wrapped
/// object (so does `getobj().clone()`): on the very thread that holds a guard, its `set`
/// writes behind the guard's `&mut T` without the panic `getobj()` promises. Undefined
/// behaviour from safe code; in `--release` the compiler folds the read (wrong result).
/// Fails with `cargo test --release --test rv_locks`.
#[test]
fn clone_into_parts_writes_behind_live_guard_same_thread() {
    let v = Value::new(0u64).unwrap();
    let (raw, _lock) = v.clone().into_parts(); // no StillCloned check, no mark check
    let mut g = v.lock().unwrap();
    let seen = write_behind(&mut g, &raw);
    drop(g);
    assert_eq!(
        seen,
        v.get(),
        "the guard's &mut u64 saw {seen}, the memory holds {}: a raw handle wrote behind a \
         live &mut on the holding thread",
        v.get()
    );
}

/// The same through `getobj().clone()`, taken before the guard (the `&RawValue` the docs
/// warn about, but cloned into an owned handle that outlives any borrow of the wrapper).
#[test]
fn getobj_clone_writes_behind_live_guard_same_thread() {
    let v = Value::new(0u64).unwrap();
    let raw: RawValue<u64> = v.getobj().clone();
    let mut g = v.lock().unwrap();
    let seen = write_behind(&mut g, &raw);
    drop(g);
    assert_eq!(seen, v.get(), "release build: the &mut read was folded");
}

/// `Debug` of a `Synchronized` reads the object without taking the lock whenever the
/// calling thread is not the holder: from a second thread it does not wait for the guard,
/// it reads (atomically) memory the holder is writing with plain stores (a data race, UB),
/// and it prints a half-updated state that never existed outside the lock.
#[test]
fn debug_reads_behind_another_threads_guard() {
    let a = Array::from_slice(&[0u64, 0]).unwrap();
    let mut g = a.lock().unwrap();
    g[0] = 1; // half of an update that must look atomic to everyone else
    let (tx, rx) = mpsc::channel();
    let a2 = a.clone();
    let t = std::thread::spawn(move || tx.send(format!("{a2:?}")).unwrap());
    let early = rx.recv_timeout(Duration::from_millis(500));
    g[1] = 1;
    drop(g);
    let late = rx.recv_timeout(Duration::from_secs(10));
    t.join().unwrap();
    assert!(
        early.is_err(),
        "Debug from another thread returned while the lock was held: {:?}",
        early
    );
    assert!(late.unwrap().contains("[1, 1]"));
}

/// Poison is decided by `thread::panicking()` at *release* only. A lock taken and released
/// entirely inside a destructor that runs during an unrelated unwind (here `Value::set` in
/// a `Drop`) is poisoned, sticky, for every process, although its critical section ran to
/// completion. std's `Mutex` records `panicking()` at acquisition and does not poison here.
#[test]
fn lock_used_in_drop_during_unwinding_is_poisoned() {
    struct ResetOnDrop<'a>(&'a Value<u32>);
    impl Drop for ResetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.set(0); // one complete, correct critical section
        }
    }
    let v = Value::new(5u32).unwrap();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _reset = ResetOnDrop(&v);
        std::panic::resume_unwind(Box::new("unrelated failure, no lock held"));
    }));
    assert_eq!(v.get(), 0);
    // std for comparison: same pattern, not poisoned.
    let m = std::sync::Mutex::new(5u32);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        struct R<'a>(&'a std::sync::Mutex<u32>);
        impl Drop for R<'_> {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = 0;
            }
        }
        let _r = R(&m);
        std::panic::resume_unwind(Box::new(()));
    }));
    assert!(!m.is_poisoned());
    assert!(
        !v.is_poisoned(),
        "poisoned by a lock that was never held while panicking: {:?}",
        v.poison()
    );
}

/// The crate's own misuse check (re-entering an object this thread has borrowed) panics
/// *after* taking another level of the RLock, so that level is released while panicking
/// and the lock is poisoned (sticky, for every process) although no data was touched.
#[test]
fn borrow_check_panic_poisons_the_lock() {
    let v = Value::new(1u32).unwrap();
    let g = v.lock().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| v.get()));
    assert!(r.is_err(), "re-entry must panic");
    drop(g);
    assert!(
        !v.is_poisoned(),
        "the borrow check's own panic poisoned the lock: {:?}",
        v.poison()
    );
}

/// A holder that panics while another thread (or process) calls `clear_poison` can leave
/// the record as "panicked, by a holder whose process id is unknown": `set_poison` and
/// `clear_poison` each store two words, unordered against each other, and `poison()`
/// reads them separately. `pid: None` is documented to mean "died before recording itself".
#[test]
fn clear_poison_races_leave_cause_without_pid() {
    let lock = Lock::new().unwrap();
    let me = std::process::id() as i32;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (l1, s1) = (lock.clone(), stop.clone());
    let poisoner = std::thread::spawn(move || {
        while !s1.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let _g = l1.lock();
                std::panic::resume_unwind(Box::new(())); // no hook, no noise
            }));
        }
    });
    let (l2, s2) = (lock.clone(), stop.clone());
    let clearer = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            l2.clear_poison();
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut bad = None;
    while Instant::now() < deadline {
        if let Some(p) = lock.poison() {
            if p.pid != Some(me) {
                bad = Some(p);
                break;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poisoner.join().unwrap();
    clearer.join().unwrap();
    assert_eq!(bad, None, "only this process ever poisoned the lock");
}

/// A thread of this process that ends holding a lock (a leaked guard) is reported as
/// "process <this very process> died while holding it", though the process is alive.
#[test]
fn dead_thread_reported_as_dead_process() {
    let lock = Lock::new().unwrap();
    let l2 = lock.clone();
    std::thread::spawn(move || std::mem::forget(l2.lock().unwrap()))
        .join()
        .unwrap();
    // The holder thread is gone: the next taker recovers the lock (waiters poll liveness).
    let (tx, rx) = mpsc::channel();
    let l3 = lock.clone();
    std::thread::spawn(move || {
        let r = l3.try_lock_for(Duration::from_secs(5));
        let msg = match r {
            Err(std::sync::TryLockError::Poisoned(p)) => {
                let e: shared_runtime::Error = p.into();
                Some(e.to_string())
            }
            _ => None,
        };
        tx.send(msg).unwrap();
    });
    let msg = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(lock.poison().map(|p| p.cause), Some(PoisonCause::Died));
    let me = std::process::id();
    assert!(
        !msg.contains(&format!("process {me} died")),
        "the message says this live process died: {msg}"
    );
}
