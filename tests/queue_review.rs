//! Regression tests from the attacking review of `Queue<T>`: a `try_` call on a lock held
//! by a live process, a thread without an identity, garbage in the lock word, a handle
//! forged with a smaller capacity, head and tail near the wrap. Run with
//! `--test-threads=1` (the queue hook is process-global).

mod common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use common::{finish, forking, PATIENCE};
use shared_runtime::handle::Handle;
use shared_runtime::test_hooks::{peek_for_tests, poke_for_tests, set_queue_hook, QueueStep};
use shared_runtime::{Arena, Error, Event, PopError, Process, PushError, Queue, RawValue};

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
            // SAFETY: this child holds no reference into the queue's block.
            unsafe { poke_for_tests(&a, raw.offset, word, value) }.unwrap();
        })
        .unwrap(),
    )
    .unwrap();
}

fn peek(arena: &Arena, raw: Handle, word: usize) -> u64 {
    let a = arena.clone();
    finish(Process::start(move || peek_for_tests(&a, raw.offset, word).unwrap()).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------
// 1. try_pop / try_push waited without bound for the queue's lock while a live (e.g.
//    stopped or slow) process held it. They now wait a short bound for the lock, then say
//    Empty / Full.

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
        let popped = format!("{:?}", q3.try_pop());
        let pushed = format!("{:?}", q3.try_push(3));
        let _ = tx.send((popped, pushed));
    });
    let got = rx.recv_timeout(Duration::from_secs(3));
    child.kill().unwrap();
    let _ = finish(child);
    let (popped, pushed) = got.expect(
        "try_pop()/try_push() were still blocked after 3 s on a lock held by a live process; \
         a `try_` call must not wait without bound",
    );
    // An item was in the queue all along, and there was room: only the busy lock says so.
    assert_eq!(popped, "Err(Empty)");
    assert_eq!(pushed, "Err(Full(..))");
    assert_eq!(
        q.try_pop().unwrap(),
        1,
        "the item is still there once the lock is free"
    );
}

// ---------------------------------------------------------------------------------------
// 2. A thread that cannot establish its identity (no free descriptor) panicked inside
//    push/pop/close. Now try_push/try_pop say `Failed` and close() closes without the lock.

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
            let mut wrong = 0;
            match catch_unwind(AssertUnwindSafe(|| q2.try_push(3))) {
                Ok(Err(PushError::Failed(3, _))) => {}
                _ => wrong |= 1,
            }
            match catch_unwind(AssertUnwindSafe(|| q2.try_pop())) {
                Ok(Err(PopError::Failed(_))) => {}
                _ => wrong |= 2,
            }
            if catch_unwind(AssertUnwindSafe(|| q2.close())).is_err() {
                wrong |= 4;
            }
            drop(files);
            wrong
        })
        .join()
        .unwrap()
    })
    .unwrap();
    let wrong = finish(child).unwrap();
    assert_eq!(
        wrong, 0,
        "wrong outcome (bits: 1 try_push not Failed, 2 try_pop not Failed, 4 close panicked)"
    );
    assert!(
        q.is_closed(),
        "close() from the unidentifiable thread did not close the queue"
    );
    assert_eq!(
        q.pop().unwrap(),
        Some(1),
        "the item pushed before is still there"
    );
    assert_eq!(q.pop().unwrap(), None);
}

// ---------------------------------------------------------------------------------------
// 3. Garbage in the queue's lock word (the one word the crate's own damaged-header test
//    left alone): a value naming the calling thread made try_pop/pop/push panic with
//    "deadlock: this thread already holds this Lock"; a foreign-marked value made every
//    pop/push/close wait forever. Now the first is `Error::Corrupted` (the queue never
//    takes its lock twice), and close() is bounded.

static CAPTURE: OnceLock<(Arena, Handle, RawValue<u64>)> = OnceLock::new();
thread_local!(static CAPTURING: Cell<bool> = const { Cell::new(false) });

fn capture_lock_word(step: QueueStep) {
    if step != QueueStep::PushCopying || !CAPTURING.with(Cell::get) {
        return;
    }
    let (a, raw, out) = CAPTURE.get().unwrap().clone();
    let child = Process::start(move || {
        out.set(peek_for_tests(&a, raw.offset, 0).unwrap());
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
    let r = catch_unwind(AssertUnwindSafe(|| {
        let corrupted = |e: &Error| matches!(e, Error::Corrupted(m) if m.contains("this thread"));
        [
            matches!(q.try_pop(), Err(PopError::Failed(ref e)) if corrupted(e)),
            matches!(q.pop(), Err(ref e) if corrupted(e)),
            matches!(q.try_push(6), Err(PushError::Failed(6, ref e)) if corrupted(e)),
            matches!(q.push(6), Err(ref e) if corrupted(e)),
        ]
    }));
    let shown = match &r {
        Ok(v) => format!("{v:?}"),
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or(p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    };
    // close() on it: closed without the lock, at once.
    let closed = catch_unwind(AssertUnwindSafe(|| q.close())).is_ok() && q.is_closed();
    // Restore, so that nothing else is affected.
    poke(&arena, raw, 0, 0);
    assert!(
        matches!(r, Ok([true, true, true, true])),
        "garbage naming this thread in the lock word: try_pop, pop, try_push, push gave \
         Corrupted: {shown}"
    );
    assert!(
        closed,
        "close() on that lock word panicked or did not close"
    );
    assert_eq!(
        q.pop().unwrap(),
        Some(5),
        "the item is still there once the word is clean"
    );
    assert_eq!(q.pop().unwrap(), None);
}

// The reviewer asked that pop() return too. Decided otherwise: a lock word naming another
// process that cannot be proven dead is, for pop() and push(), a live holder, and they wait
// for it as any lock waiter does ("cannot tell" means alive; documented on `Queue`). What
// must not wait on it: try_pop/try_push (a short bound, then Empty / Closed) and close()
// (a bounded wait, then closing without the lock), which also ends the pop's wait for an
// item once the word is clean again.
#[test]
fn a_foreign_garbage_lock_word_does_not_hang_try_forms_or_close() {
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
    let (ttx, trx) = mpsc::channel();
    let q3 = q.clone();
    std::thread::spawn(move || {
        let popped = format!("{:?}", q3.try_pop());
        q3.close();
        let pushed = format!("{:?}", q3.try_push(6));
        let _ = ttx.send((popped, pushed));
    });
    let tried = trx.recv_timeout(Duration::from_secs(5));
    // The garbage is still there: the pop cannot have taken the lock.
    let popped_early = rx.try_recv().ok();
    poke(&arena, raw, 0, 0); // let the waiting pop go
    let (popped, pushed) = tried.expect("try_pop() or close() still waited after 5 s");
    assert_eq!(popped, "Err(Empty)");
    assert_eq!(
        pushed, "Err(Closed(..))",
        "closed is known without the lock"
    );
    assert!(q.is_closed());
    assert_eq!(
        popped_early, None,
        "pop() returned while the lock word named a live holder"
    );
    let got = rx
        .recv_timeout(PATIENCE)
        .expect("pop() still waits with a clean lock word");
    assert_eq!(got, "Ok(Some(5))");
    assert_eq!(q.pop().unwrap(), None);
}

// ---------------------------------------------------------------------------------------
// 4. Garbage near the u64 wrap of head/tail (passed at review, kept), and a handle forged
//    with a smaller capacity: it used to open, and its close() closed the real queue; now
//    open_handle compares it with the header's and refuses it.

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
    assert!(matches!(
        q.try_pop(),
        Err(PopError::Failed(_)) | Err(PopError::Empty) | Ok(_)
    ));
    assert!(matches!(
        q.try_push(9),
        Err(PushError::Failed(..)) | Ok(()) | Err(PushError::Full(_))
    ));
}

#[test]
fn a_handle_forged_with_a_smaller_capacity_is_refused() {
    let _f = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let q = Queue::<u64>::new_in(&arena, 8).unwrap();
    for len in [2, 7, 9] {
        let h = Handle { len, ..q.handle() };
        let a = arena.clone();
        let refused: u8 = finish(
            Process::start(move || match Queue::<u64>::open_handle(&a, &h) {
                Ok(wrong) => {
                    wrong.close();
                    0
                }
                Err(e) => matches!(e, Error::InvalidHandle { .. }) as u8,
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            refused, 1,
            "a handle of capacity {len} for a queue of 8 was not InvalidHandle"
        );
    }
    assert!(
        !q.is_closed(),
        "a handle of the wrong capacity closed the queue"
    );
    let (a, h) = (arena.clone(), q.handle());
    let pushed = finish(
        Process::start(move || {
            Queue::<u64>::open_handle(&a, &h)
                .unwrap()
                .try_push(4)
                .is_ok() as u8
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(pushed, 1, "the true handle still opens and pushes");
    assert_eq!(q.try_pop().unwrap(), 4);
}
