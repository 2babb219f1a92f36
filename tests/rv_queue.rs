//! Attacking review of `Queue<T>` (issue 11): reproducers. Run with `--test-threads=1`
//! (the queue hook is process-global).

mod common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use common::{finish, forking, PATIENCE};
use shared_runtime::handle::Handle;
use shared_runtime::test_hooks::{set_queue_hook, QueueStep};
use shared_runtime::{Arena, Event, PopError, Process, PushError, Queue, RawArray, RawValue};

fn raw_of(q: &Queue<u64>) -> Handle {
    Handle {
        kind: shared_runtime::arena::ObjectKind::RawArray,
        len: 16,
        fingerprint: <u64 as shared_runtime::SharedType>::LAYOUT.fingerprint(),
        ..q.handle()
    }
}

/// Writes `value` into word `word` of the block `raw` names, from another process.
fn poke(arena: &Arena, raw: Handle, word: usize, value: u64) {
    let a = arena.clone();
    finish(
        Process::start(move || {
            RawArray::<u64>::open_handle(&a, &raw).unwrap().set(word, value);
        })
        .unwrap(),
    )
    .unwrap();
}

fn peek(arena: &Arena, raw: Handle, word: usize) -> u64 {
    let a = arena.clone();
    finish(Process::start(move || RawArray::<u64>::open_handle(&a, &raw).unwrap().get(word).unwrap()).unwrap())
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// 1. try_pop / try_push wait without bound for the queue's lock while a live (e.g. stopped
//    or slow) process holds it: a "try_" call that never returns.

static PAUSED: OnceLock<Event> = OnceLock::new();

fn pause_forever(_: QueueStep) {
    if let Some(e) = PAUSED.get() {
        e.set();
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn try_pop_returns_while_a_live_process_holds_the_lock() {
    let _f = forking();
    let q = Queue::<u64>::new(4).unwrap();
    q.push(1).unwrap();
    let paused = Event::new().unwrap();
    let (q2, p2) = (q.clone(), paused.clone());
    let child = Process::start(move || {
        let _ = PAUSED.set(p2);
        set_queue_hook(Some(pause_forever));
        let _ = q2.try_push(2); // pauses inside the copy, lock held, alive
    })
    .unwrap();
    assert!(paused.wait_timeout(PATIENCE), "the child never paused");
    let (tx, rx) = mpsc::channel();
    let q3 = q.clone();
    std::thread::spawn(move || {
        let _ = tx.send(format!("{:?}", q3.try_pop()));
    });
    let got = rx.recv_timeout(Duration::from_secs(3));
    child.kill().unwrap();
    let _ = finish(child);
    assert!(
        got.is_ok(),
        "try_pop() was still blocked after 3 s on a lock held by a live process \
         (an item was in the queue all along); a `try_` call must not wait without bound"
    );
}

// ---------------------------------------------------------------------------------------
// 2. A thread that cannot establish its identity (no free descriptor) panics inside
//    push/pop/close, although their docs promise an error (`PushError::Failed`: "its lock
//    could not be taken").

#[test]
fn push_and_pop_report_an_unidentifiable_thread_as_an_error() {
    let _f = forking();
    let q = Queue::<u64>::new(4).unwrap();
    q.push(1).unwrap();
    let q2 = q.clone();
    let child = Process::start(move || -> u32 {
        std::thread::spawn(move || {
            // Use up every descriptor (with a low limit, so that it is quick).
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            // SAFETY: plain syscall with a valid struct.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
            let mut files = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                files.push(f);
            }
            let mut panics = 0;
            let r = catch_unwind(AssertUnwindSafe(|| q2.try_push(3)));
            if r.is_err() {
                panics |= 1;
            }
            let r = catch_unwind(AssertUnwindSafe(|| q2.try_pop()));
            if r.is_err() {
                panics |= 2;
            }
            let r = catch_unwind(AssertUnwindSafe(|| q2.close()));
            if r.is_err() {
                panics |= 4;
            }
            drop(files);
            panics
        })
        .join()
        .unwrap()
    })
    .unwrap();
    let panics = finish(child).unwrap();
    assert_eq!(
        panics, 0,
        "push/pop/close panicked (bits 1 push, 2 pop, 4 close) instead of returning an error"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Garbage in the queue's lock word (the one word the crate's own damaged-header test
//    leaves alone): a value naming the calling thread makes try_pop/pop/push panic with
//    "deadlock: this thread already holds this Lock"; a foreign-marked value makes every
//    pop/push/close wait forever.

static CAPTURE: OnceLock<(Arena, Handle, RawValue<u64>)> = OnceLock::new();
thread_local!(static CAPTURING: Cell<bool> = const { Cell::new(false) });

fn capture_lock_word(step: QueueStep) {
    if step != QueueStep::PushCopying || !CAPTURING.with(Cell::get) {
        return;
    }
    let (a, raw, out) = CAPTURE.get().unwrap().clone();
    let child = Process::start(move || {
        out.set(RawArray::<u64>::open_handle(&a, &raw).unwrap().get(0).unwrap());
    })
    .unwrap();
    finish(child).unwrap();
}

#[test]
fn a_lock_word_naming_this_thread_is_an_error_not_a_panic() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let q = Queue::<u64>::new_in(&arena, 4).unwrap();
    let raw = raw_of(&q);
    let word = RawValue::new(0u64).unwrap();
    let _ = CAPTURE.set((arena.clone(), raw, word.clone()));
    CAPTURING.with(|c| c.set(true));
    set_queue_hook(Some(capture_lock_word));
    q.push(5).unwrap();
    set_queue_hook(None);
    CAPTURING.with(|c| c.set(false));
    let me = word.get();
    assert_ne!(me, 0, "the lock word of the held lock was read");
    // Another process writes this thread's identity into the (free) lock word.
    poke(&arena, raw, 0, me);
    let r = catch_unwind(AssertUnwindSafe(|| q.try_pop()));
    let shown = match &r {
        Ok(v) => format!("{v:?}"),
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or(p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    };
    // Restore, so that nothing else is affected.
    poke(&arena, raw, 0, 0);
    assert!(
        r.is_ok(),
        "garbage in the lock word made try_pop() panic: {shown}"
    );
}

#[test]
fn a_foreign_garbage_lock_word_does_not_hang_pop_or_close_forever() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let q = Queue::<u64>::new_in(&arena, 4).unwrap();
    q.push(5).unwrap();
    let raw = raw_of(&q);
    // Bit 30: "foreign identity" (another pid namespace), never proven dead.
    poke(&arena, raw, 0, (1 << 30) | 12345 | (7 << 32));
    let (tx, rx) = mpsc::channel();
    let q2 = q.clone();
    std::thread::spawn(move || {
        let r = q2.pop();
        let _ = tx.send(format!("{r:?}"));
    });
    let got = rx.recv_timeout(Duration::from_secs(5));
    let (tx, rx) = mpsc::channel();
    let q3 = q.clone();
    std::thread::spawn(move || {
        q3.close();
        let _ = tx.send(());
    });
    let closed = rx.recv_timeout(Duration::from_secs(2));
    poke(&arena, raw, 0, 0); // let the stuck threads go
    assert!(
        got.is_ok() && closed.is_ok(),
        "one garbage word in the lock cell: pop() returned {got:?}, close() returned {closed:?} \
         (Err = still waiting after 5 s / 2 s)"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Sanity checks that pass (kept as evidence): garbage near the u64 wrap of head/tail,
//    a forged smaller capacity.

#[test]
fn head_and_tail_near_the_wrap_give_errors_not_panics() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let q = Queue::<u64>::new_in(&arena, 3).unwrap();
    let raw = raw_of(&q);
    poke(&arena, raw, 3, u64::MAX - 1);
    poke(&arena, raw, 4, u64::MAX - 1);
    assert_eq!(peek(&arena, raw, 5), 3);
    let mut results = Vec::new();
    for i in 0..4 {
        results.push(format!("{:?}", q.try_push(i).map_err(|e| e.to_string())));
    }
    for _ in 0..4 {
        results.push(format!("{:?}", q.try_pop().map_err(|e| e.to_string())));
    }
    assert!(q.len() <= q.capacity());
    let _ = format!("{q:?}");
    eprintln!("{results:#?}");
    assert!(matches!(q.try_pop(), Err(PopError::Failed(_)) | Err(PopError::Empty) | Ok(_)));
    assert!(matches!(q.try_push(9), Err(PushError::Failed(..)) | Ok(()) | Err(PushError::Full(_))));
}

#[test]
fn a_handle_forged_with_a_smaller_capacity_is_refused_or_harmless() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let q = Queue::<u64>::new_in(&arena, 8).unwrap();
    let h = Handle { len: 2, ..q.handle() };
    let a = arena.clone();
    let opened: u32 = finish(
        Process::start(move || match Queue::<u64>::open_handle(&a, &h) {
            Ok(small) => {
                let r = small.try_push(1).is_ok() as u32;
                small.close(); // through a handle that cannot even push
                2 | r
            }
            Err(_) => 0,
        })
        .unwrap(),
    )
    .unwrap();
    eprintln!("forged handle opened: {}, pushed: {}", opened & 2 != 0, opened & 1 != 0);
    assert!(!q.is_closed(), "a handle of the wrong capacity (refused for every push) closed the queue");
}
