//! Panics on bad input point at the caller's line, not into the library
//! (`#[track_caller]`).
//!
//! One test in its own binary: the panic hook it installs is global to the process, so
//! no other test may panic meanwhile.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use shared_runtime::place::HasPlace;
use shared_runtime::{Array, RawArray, SyncGuard, Value};

/// Runs `f`, which must panic, and returns the file and line the panic reported.
fn panic_location(f: impl FnOnce()) -> (String, u32) {
    let seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&seen);
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let at = info.location().map(|l| (l.file().to_owned(), l.line()));
        *sink.lock().unwrap() = at;
    }));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(previous);
    assert!(outcome.is_err(), "the call did not panic");
    let at = seen.lock().unwrap().take();
    at.expect("the panic had no location")
}

/// The location `$call` panicked at, and the line it was written on.
macro_rules! located {
    ($call:expr) => {
        (
            stringify!($call),
            panic_location(|| {
                let _ = $call;
            }),
            line!(),
        )
    };
}

#[test]
fn out_of_range_panics_point_at_the_caller() {
    let raw = RawArray::<u32>::zeroed(3).unwrap();
    let locked = Array::<u32>::zeroed(3).unwrap();
    let nested = Value::new([0u8; 2]).unwrap();
    let (one, two) = (1, 2); // a range that starts after it ends

    let mut checks = vec![
        located!(raw.set(3, 1)),
        located!(raw.at(7)),
        located!(raw.read(1..9)),
        located!(raw.read(2..usize::MAX)),
        located!(raw.read(two..one)),
        located!(raw.write(2, &[1, 2])),
        located!(raw.write(usize::MAX, &[1])),
        located!(locked.set(3, 1)),
        located!(locked.update(5, |v| *v += 1)),
        located!(locked.at(3)),
        located!(locked.read(..=3)),
        located!(locked.write(3, &[1])),
        located!(nested.place().at(2)),
        located!(raw.fetch_add(3, 1, Relaxed)),
        located!(raw.compare_exchange(4, 0, 1, Relaxed, Relaxed)),
        located!(raw.load(3, Relaxed)),
    ];
    let mut guard = locked.lock().unwrap();
    checks.push(located!(SyncGuard::at(&mut guard, 3)));
    drop(guard);

    for (call, (file, line), written_at) in checks {
        assert_eq!(
            (file.as_str(), line),
            (file!(), written_at),
            "{call} panicked at {file}:{line}, not at its caller"
        );
    }
}
