//! Regression tests from an attacking review of the locks and synchronized objects: raw
//! handles writing behind a live guard, `Debug` reading without the lock, spurious and
//! torn poison, and how a dead holder is reported. Each failed on the reviewed code.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use shared_runtime::place::HasPlace;
use shared_runtime::{
    Array, CChar, Error, HoldsLock, Lock, Poison, PoisonCause, Process, RawArray, RawValue, Value,
};

/// A write through `&mut *guard`, then a raw write through another handle of the same
/// object, then a read through the `&mut` again. `g` is `noalias`: had the raw write gone
/// through, the optimiser could (and in release builds did) forward the first write to the
/// read. The raw write must panic instead.
#[inline(never)]
fn write_behind(g: &mut u64, raw: &RawValue<u64>) -> u64 {
    *g = 1;
    raw.set(2);
    *g
}

/// Runs `f`, which must panic with the raw accessors' "use the guard" message.
#[track_caller]
fn assert_refused<R>(what: &str, f: impl FnOnce() -> R) {
    let r = catch_unwind(AssertUnwindSafe(f));
    let err = match r {
        Ok(_) => panic!("{what}: a raw access on the thread holding a guard went through"),
        Err(e) => e,
    };
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(
        msg.contains("use the guard"),
        "{what}: unexpected panic {msg:?}"
    );
}

/// `Synchronized::clone` + `into_parts` used to hand out an independent `RawValue` of the
/// wrapped object, whose `set` wrote behind the guard's `&mut u64` on the very thread that
/// holds it (undefined behaviour from safe code; in `--release` the read was folded).
/// Now `into_parts` refuses while clones live, and the raw write panics anyway.
#[test]
fn into_parts_refuses_while_cloned() {
    let v = Value::new(0u64).unwrap();
    let err = v.clone().into_parts().unwrap_err();
    assert!(
        matches!(err, Error::StillCloned { clones: 1, .. }),
        "into_parts of one of two clones: {err:?}"
    );
    let (raw, _lock) = v.into_parts().unwrap(); // the last handle: fine
    raw.set(3);
    assert_eq!(raw.get(), 3);
}

/// `getobj().clone()` is an owned raw handle that outlives any borrow of the wrapper: on
/// the thread that holds a guard, its accessors panic instead of writing behind the
/// guard's `&mut` (in any build mode).
#[test]
fn getobj_clone_cannot_write_behind_live_guard_same_thread() {
    let v = Value::new(0u64).unwrap();
    let raw: RawValue<u64> = v.getobj().clone();
    let mut g = v.lock().unwrap();
    assert_refused("getobj().clone().set", || write_behind(&mut g, &raw));
    assert_refused("getobj().clone().get", || raw.get());
    assert_eq!(*g, 1, "the guard's own write stands");
    drop(g);
    assert_eq!(v.get(), 1, "nothing was written behind the guard");
    // The panic was caught while the guard lived on (it was not dropped unwinding).
    assert!(!v.is_poisoned());
    // With no guard alive, the raw handle works again.
    raw.set(5);
    assert_eq!((raw.get(), v.get()), (5, 5));
}

/// The `&RawValue` from `getobj()`, taken *before* the guard (so `getobj`'s own check
/// passed), and a place made from it, are refused too.
#[test]
fn getobj_ref_taken_before_guard_is_refused() {
    let v = Value::new(0u64).unwrap();
    let raw = v.getobj();
    let place = raw.place();
    let g = v.lock().unwrap();
    assert_refused("&RawValue::set", || raw.set(2));
    assert_refused("&RawValue::get", || raw.get());
    assert_refused("Place<Unlocked>::set", || place.set(2));
    assert_refused("Place<Unlocked>::update", || place.update(|x| *x += 1));
    assert_eq!(*g, 0);
    drop(g);
    assert!(!v.is_poisoned());
    assert_eq!(raw.get(), 0);
}

/// Every data accessor of a raw array (and of a `CChar` array) checks the mark too; the
/// synchronized wrapper's own accessors (which use unchecked paths under their lock) keep
/// working once the guard is gone.
#[test]
fn raw_array_accessors_refuse_behind_own_guard() {
    let a = Array::from_slice(&[1u32, 2, 3]).unwrap();
    let raw: RawArray<u32> = a.getobj().clone();
    let g = a.lock().unwrap();
    assert_refused("get", || raw.get(0));
    assert_refused("set", || raw.set(0, 9));
    assert_refused("read", || raw.read(..));
    assert_refused("to_vec", || raw.to_vec());
    assert_refused("write", || raw.write(0, &[9]));
    assert_refused("at().set", || raw.at(1).set(9));
    assert_eq!(*g, [1, 2, 3]);
    drop(g);
    assert_eq!(a.to_vec(), [1, 2, 3]);
    assert_eq!(format!("{raw:?}"), "RawArray([1, 2, 3])");

    let s = Array::from_slice(CChar::from_bytes(b"ab")).unwrap();
    let raw = s.getobj().clone();
    let g = s.lock().unwrap();
    assert_refused("value", || raw.value());
    assert_refused("raw", || raw.raw());
    assert_refused("set_value", || raw.set_value(b"x"));
    assert_refused("set_raw", || raw.set_raw(b"x"));
    assert_eq!(format!("{raw:?}"), "RawArray(<borrowed by this thread>)");
    drop(g);
    s.set_value(b"z").unwrap();
    assert_eq!((s.value(), raw.value()), (b"z".to_vec(), b"z".to_vec()));
}

/// The check is per thread: another thread's raw read of an object this thread does not
/// have borrowed goes through (raw handles stay usable without a lock).
#[test]
fn raw_access_from_other_thread_is_not_refused() {
    let v = Value::new(4u64).unwrap();
    let raw = v.getobj().clone();
    let seen = std::thread::spawn(move || {
        raw.set(raw.get() + 1);
        raw.get()
    })
    .join()
    .unwrap();
    assert_eq!((seen, v.get()), (5, 5));
}

/// `Debug` of a `Synchronized` used to read the object without the lock whenever the
/// calling thread was not the holder: a data race with the holder's plain stores, printing
/// a half-updated state that never existed outside the lock. Now it takes the lock only
/// if it is free (`try_lock`, as std's `Mutex` does) and shows `<locked>` otherwise.
#[test]
fn debug_never_reads_behind_another_threads_guard() {
    let a = Array::from_slice(&[0u64, 0]).unwrap();
    let mut g = a.lock().unwrap();
    g[0] = 1; // half of an update that must look atomic to everyone else
    let a2 = a.clone();
    let during = std::thread::spawn(move || format!("{a2:?}"))
        .join()
        .unwrap();
    assert!(during.contains("obj: <locked>"), "while held: {during}");
    assert!(
        !during.contains("[1, 0]"),
        "a half-done update leaked: {during}"
    );
    // On the holding thread: its own guard, not a read behind it.
    let here = format!("{a:?}");
    assert!(here.contains("<borrowed by this thread>"), "{here}");
    g[1] = 1;
    drop(g);
    let a2 = a.clone();
    let after = std::thread::spawn(move || format!("{a2:?}"))
        .join()
        .unwrap();
    assert!(after.contains("RawArray([1, 1])"), "after release: {after}");
    // A non-reentrant lock held by this thread without a guard of the object: `<locked>`.
    let v = Value::with_lock(3u8, Lock::new().unwrap()).unwrap();
    let held = v.getlock().lock().unwrap();
    assert!(format!("{v:?}").contains("obj: <locked>"));
    drop(held);
    assert!(format!("{v:#?}").contains("RawValue(\n"), "{v:#?}");
    assert!(!v.is_poisoned());
}

/// Poison used to be decided by `thread::panicking()` at *release* only: a lock taken and
/// released entirely inside a destructor that runs during an unrelated unwind (here
/// `Value::set` in a `Drop`) was poisoned, sticky, for every process, although its critical
/// section ran to completion. Like std's `Mutex`, the guard now records `panicking()` at
/// acquisition.
#[test]
fn lock_used_in_drop_during_unwinding_is_not_poisoned() {
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

/// A level taken before the panic is still poisoned when it is dropped by the unwind, even
/// if an inner level of the same `RLock` was taken (and released) during that unwind.
#[test]
fn level_held_when_panic_starts_still_poisons() {
    let v = Value::new(5u32).unwrap();
    struct SetOnDrop<'a>(&'a Value<u32>);
    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            let _inner = self.0.getlock().lock(); // a level taken while unwinding
        }
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _g = v.lock().unwrap(); // held when the panic starts: dropped last
        let _s = SetOnDrop(&v);
        std::panic::resume_unwind(Box::new("failure under the lock"));
    }));
    assert_eq!(v.poison().map(|p| p.cause), Some(PoisonCause::Panicked));
}

/// The crate's own misuse check (re-entering an object this thread has borrowed) used to
/// panic *after* taking another level of the RLock, so that level was released while
/// panicking and the lock poisoned (sticky, for every process) although no data was
/// touched. The check now runs before the lock is taken.
#[test]
fn borrow_check_panic_does_not_poison_the_lock() {
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

/// A holder that panicked while another thread (or process) called `clear_poison` could
/// leave the record as "panicked, by a holder whose process id is unknown": the cause and
/// the pid were two words, stored and read separately. They are one word now.
#[test]
fn poison_record_is_never_torn_by_clear_poison() {
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

/// A thread of this process that ends holding a lock (a leaked guard) used to be reported
/// as "process <this very process> died while holding it", though the process is alive.
#[test]
fn dead_thread_of_live_process_is_not_reported_as_dead_process() {
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
    let me = std::process::id();
    assert_eq!(
        lock.poison(),
        Some(Poison {
            pid: Some(me as i32),
            cause: PoisonCause::ThreadDied
        })
    );
    assert!(
        msg.contains(&format!("a thread of process {me} ended while holding it")),
        "{msg}"
    );
}

/// A thread of a *live child process* that ends holding a lock: the record names the
/// child's pid and says a thread of it ended (the process did not die).
#[test]
fn dead_thread_of_live_child_process_is_reported_as_thread_died() {
    let _serial = common::forking();
    let lock = Lock::new().unwrap();
    let step = RawValue::new(0u32).unwrap();
    let (poison, pid) = Process::scope(|s| {
        let child = s.start(|| {
            let l = lock.clone();
            std::thread::spawn(move || std::mem::forget(l.lock().unwrap()))
                .join()
                .unwrap();
            step.set(1);
            // Stay alive until the parent has recovered the lock.
            assert!(common::wait_until(|| step.get() == 2));
        })?;
        assert!(
            common::wait_until(|| step.get() == 1),
            "child never got ready"
        );
        let r = lock.try_lock_for(common::PATIENCE);
        let poison = match r {
            Err(std::sync::TryLockError::Poisoned(p)) => HoldsLock::poison(p.get_ref()),
            Err(std::sync::TryLockError::WouldBlock) => panic!("never recovered"),
            Ok(_) => panic!("recovered without poison"),
        };
        step.set(2);
        let pid = child.pid();
        common::finish(child)?;
        Ok::<_, Error>((poison, pid))
    })
    .unwrap();
    assert_eq!(
        poison,
        Some(Poison {
            pid: Some(pid),
            cause: PoisonCause::ThreadDied
        })
    );
}
