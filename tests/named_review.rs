//! Regression tests from an attacking review of named objects and handles: stale handles
//! after fork, handles that bypass open records or the guard's borrow check, forged kinds
//! and locks, directory loops (in Rust and in the Python helper), open records written
//! through a data handle, raw-forked children, and blocks leaked by a process killed
//! mid-operation.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common::{finish, forking, in_child, unique, wait_until};
use shared_runtime::arena::{LockKind, ObjectKind};
use shared_runtime::handle::Handle;
use shared_runtime::{Arena, Array, Lock, Process, RawArray, RawValue, Value};

fn arena() -> Arena {
    Arena::with_capacity(1 << 20).unwrap()
}

/// docs/interop.md: "a named object opened by handle gets an open record, as if opened by
/// name" (here: the same handle as the name's, in one process). After `remove` and the
/// name's first handle dropping, the block must stay allocated under the handle's view, not
/// be reused by a new Lock whose lock word the view's writes would hit (two holders).
#[test]
fn a_raw_handle_keeps_a_removed_named_object_alive() {
    let a = arena();
    let v = a.create::<RawValue<u64>>("x", 1).unwrap();
    let h = v.handle();
    let r = RawValue::<u64>::open_handle(&a, &h).unwrap(); // e.g. in another program
    let count = a.objects().unwrap()[0].open_count;
    assert!(a.remove("x").unwrap());
    drop(v);
    // r is still open: the block must stay allocated, never reused.
    let lock = a.create::<Lock>("l", ()).unwrap();
    let lock_at = lock.handle().offset;
    let g = lock.lock().unwrap();
    r.set(0); // the "removed" value, still in use through its handle
    let l2 = lock.clone();
    let second = std::thread::spawn(move || l2.try_lock_for(Duration::from_millis(200)).is_ok())
        .join()
        .unwrap();
    drop(g);
    assert!(
        count == 1 && lock_at != r.offset() && !second,
        "open_count (one process, one handle) {count}; new Lock at the open value's offset: {}; \
         a second thread took the Lock while it was held: {second}",
        lock_at == r.offset()
    );
}

/// A child forked while the parent has named Value "x" open (not captured by the closure);
/// the parent removes and drops "x", creates a `Lock` named "y" in the freed block, and the
/// child opens "y" by name. The per-process map (opened.rs) still holds the child's inherited
/// handle of "x" at that block and hands it out as the Lock: its lock word is x's *data*
/// (block + 24, partly past the block's end), so the parent's and the child's "y" are two
/// different words and both hold the lock at once.
#[test]
fn a_new_object_at_a_reused_offset_never_gets_a_stale_handle() {
    let _serial = forking();
    let a = arena();
    let x = a.create::<Value<u64, Lock>>("x", 0).unwrap();
    let go = RawValue::new_in(&a, 0u8).unwrap();
    // The closure does not capture `x`: the child merely has the parent's memory, in which
    // `x` (and the map's Weak to it) are alive.
    let (a2, go2) = (a.clone(), go.clone());
    let child = Process::start(move || {
        if !wait_until(|| go2.get() == 1) {
            return 0u64;
        }
        let y: Lock = a2.open("y").unwrap();
        let r = y.try_lock_for(Duration::from_millis(200));
        let code = match &r {
            Ok(_) => 1,
            Err(std::sync::TryLockError::WouldBlock) => 0,
            Err(std::sync::TryLockError::Poisoned(_)) => 3,
        };
        drop(r);
        let got = code != 0;
        // offset of the lock it got, and whether it got it while the parent holds "y"
        (y.handle().offset << 1) | got as u64
    })
    .unwrap();
    assert!(a.remove("x").unwrap());
    drop(x);
    let y = a.create::<Lock>("y", ()).unwrap();
    let g = y.lock().unwrap();
    go.set(1);
    let got = finish(child).unwrap();
    drop(g);
    let heap = a.check().map(drop);
    assert!(
        got >> 1 == y.handle().offset && got & 1 == 0,
        "the child's \"y\" is the lock word at {} (the parent's is at {}); \
         child got it while the parent holds it: {}; heap check afterwards: {heap:?}",
        got >> 1,
        y.handle().offset,
        got & 1 == 1
    );
}

/// `RawValue::open_handle` of a `Value`'s own data (its handle from `getobj().handle()`,
/// no forging) must not make a second, independent allocation in the same process, whose
/// raw accessors would not see the guard's borrow mark and write behind the guard's
/// `&mut T`: it is refused (this process owns the block), or gives the same handle.
#[test]
fn opening_an_owned_value_by_raw_handle_is_refused() {
    let a = arena();
    let v = Value::<u64>::new_in(&a, 1).unwrap();
    let r = match RawValue::<u64>::open_handle(&a, &v.getobj().handle()) {
        Ok(r) => r,
        Err(e) => {
            assert!(e.to_string().contains("clone"), "{e}");
            return;
        }
    };
    let mut g = v.lock().unwrap();
    *g = 5;
    let wrote = catch_unwind(AssertUnwindSafe(|| r.set(7))).is_ok();
    let seen = *g;
    drop(g);
    assert!(
        !wrote,
        "a raw write went through while this thread holds the guard (saw {seen})"
    );
}

/// A forked child that inherited an unnamed `Value` and opens its handle gets a second,
/// independent handle (the owner check looks only at the current process, the map only
/// has named objects): with an RLock, `update` on it runs inside the inherited handle's
/// guard, two `&mut T` to one value in one thread.
#[test]
fn a_forked_child_gets_its_inherited_handle_not_a_second_one() {
    let _serial = forking();
    let a = arena();
    let v = Value::<u64>::new_in(&a, 1).unwrap();
    let h = v.handle();
    let (a2, v2) = (a.clone(), v.clone());
    let child = Process::start(move || {
        let w = match Value::<u64>::open_handle(&a2, &h) {
            Ok(w) => w,
            Err(_) => return 0u8, // refused: fine
        };
        let mut g = v2.lock().unwrap();
        *g = 2;
        let aliased = catch_unwind(AssertUnwindSafe(|| w.update(|x| *x = 3))).is_ok();
        drop(g);
        aliased as u8
    })
    .unwrap();
    assert_eq!(
        finish(child).unwrap(),
        0,
        "a second &mut T while a guard lives"
    );
}

/// A forged Array handle into a named RawArray this process has open: the directory's kind
/// is never consulted, and the map hands back the RawArray's allocation (data at the block
/// start), so the Array's data and its lock are the same bytes.
#[test]
fn forged_handles_are_checked_against_the_directory() {
    let a = arena();
    let buf = a.create::<RawArray<u64>>("buf", &[0u64; 8]).unwrap();
    let block = buf.offset();
    let h = Handle {
        arena: a.id(),
        offset: block + 24,
        len: 2,
        fingerprint: buf.handle().fingerprint,
        kind: ObjectKind::Array(LockKind::RLock),
        lock: block,
        owned: false,
    };
    let got = Array::<u64>::open_handle(&a, &h);
    if let Ok(arr) = &got {
        let data = arr.getobj().offset();
        let lock = arr.handle().lock;
        panic!("a RawArray opened as an Array: data at {data}, lock at {lock}");
    }
    // A Value handle whose lock is an unnamed RawArray's bytes is accepted too.
    let other = RawArray::<u64>::zeroed_in(&a, 3).unwrap();
    let v = a.create::<RawValue<u64>>("v", 0).unwrap();
    let vh = Handle {
        arena: a.id(),
        offset: v.offset(),
        len: 1,
        fingerprint: v.handle().fingerprint,
        kind: ObjectKind::Value(LockKind::RLock),
        lock: other.offset(),
        owned: false,
    };
    assert!(
        Value::<u64>::open_handle(&a, &vh).is_err(),
        "a named RawValue opened as a Value whose lock is a RawArray's data"
    );
}

/// A two-entry cycle in the directory of a segment (written through /dev/shm) is only
/// detected after (top - start) / 32 iterations, each pushing a ~330-byte Entry into a Vec:
/// memory and time grow with the heap's high-water mark (gigabytes for a large arena).
#[test]
fn a_directory_cycle_is_caught_in_a_few_steps() {
    use std::os::unix::fs::FileExt;
    let _serial = forking();
    let name = unique("rv-cycle");
    let a = Arena::create_segment(&name, 64 << 20).unwrap();
    let _big = RawArray::<u8>::zeroed_in(&a, 48 << 20).unwrap(); // heap top at ~48 MiB
    a.create::<RawValue<u8>>("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", 1)
        .unwrap();
    a.create::<RawValue<u8>>("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2", 2)
        .unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    let mut head = vec![0u8; 64 << 20];
    let n = f.read_at(&mut head, 0).unwrap();
    let find = |needle: &[u8]| {
        head[..n]
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap() as u64
    };
    let ea = find(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1") - 120; // name is at +120
    let eb = find(b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2") - 120;
    f.write_at(&eb.to_ne_bytes(), ea).unwrap(); // a.next = b: b -> a -> b
    drop(head);
    let a2 = a.clone();
    let p = Process::start(move || {
        let rss = || {
            // SAFETY: all-zero bytes are a valid `rusage` (integers only).
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `u` is a writable rusage that outlives the call.
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
            u.ru_maxrss as u64 // KiB
        };
        let before = rss();
        let t = std::time::Instant::now();
        let err = a2.names().unwrap_err();
        eprintln!(
            "names() took {:?}, maxrss {} -> {} KiB: {err}",
            t.elapsed(),
            before,
            rss()
        );
        eprintln!("{:?}", a2.stats());
        rss() - before
    })
    .unwrap();
    let grew_kib = finish(p).unwrap();
    assert!(
        grew_kib < 16 << 10,
        "reading a 2-entry looping directory grew RSS by {} MiB",
        grew_kib >> 10
    );
}

/// A process killed inside `create` (between the object's allocation and the entry's
/// publication) or inside `remove` (between freeing the entry and orphaning the object)
/// leaves a directory-owned block nobody can reach: never freed, not by reclaim_dead.
#[test]
fn reclaim_frees_directory_blocks_of_a_killed_create_or_remove() {
    let _serial = forking();
    let a = arena();
    let mut leaked = Vec::new();
    for step in 1..40u64 {
        for remove in [false, true] {
            let name = format!("n{step}{remove}");
            let before = a.stats().unwrap().live_allocations;
            if remove {
                a.create::<RawValue<u64>>(&name, 1).map(drop).unwrap();
            }
            let (a2, n2) = (a.clone(), name.clone());
            let p = Process::<()>::start(move || {
                shared_runtime::test_hooks::crash_after_steps(step);
                if remove {
                    let _ = a2.remove(&n2);
                } else {
                    let _ = a2.create::<RawValue<u64>>(&n2, 1).map(drop);
                }
                shared_runtime::test_hooks::crash_after_steps(0);
            })
            .unwrap();
            let _ = finish(p);
            a.reclaim_dead().unwrap();
            let _ = a.remove(&name);
            let now = a.stats().unwrap().live_allocations;
            if now != before {
                leaked.push((step, remove, now - before));
            }
        }
    }
    assert!(
        leaked.is_empty(),
        "leaked after a kill at (step, in remove, blocks): {leaked:?}"
    );
}

/// opened.rs: a child forked while another thread of the parent holds the map's spin lock
/// abandons the map. Its inherited named handles are then unknown to it, and opening the
/// name again gives a second, independent handle: `update` on it runs inside the inherited
/// handle's guard (RLock), two `&mut T` to one value in one thread.
#[test]
fn a_fork_while_the_handle_table_is_locked_keeps_the_table() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let _serial = forking();
    let a = arena();
    let v = a.create::<Value<u64>>("v", 0).unwrap();
    let _other = a.create::<RawValue<u8>>("o", 0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (a3, stop2) = (a.clone(), stop.clone());
    let churn = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            drop(a3.open::<RawValue<u8>>("o").unwrap()); // takes the map lock
        }
    });
    let mut aliased = 0;
    for _ in 0..300 {
        let (a2, v2) = (a.clone(), v.clone());
        let child = Process::start(move || {
            let mut g = v2.lock().unwrap();
            *g += 1;
            let w: Value<u64> = a2.open("v").unwrap();
            let second = catch_unwind(AssertUnwindSafe(|| w.update(|x| *x += 1))).is_ok();
            drop(g);
            second as u8
        })
        .unwrap();
        aliased += finish(child).unwrap() as u32;
        if aliased > 0 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert_eq!(
        aliased, 0,
        "a child got a second handle of \"v\" and a second &mut inside a guard"
    );
}

/// A forked child opening the raw handle of an inherited `Value`'s data gets the inherited
/// handle (one borrow mark), so a raw write inside that Value's guard is stopped.
#[test]
fn forked_child_raw_handle_of_inherited_value_shares_the_borrow_mark() {
    let _serial = forking();
    let a = arena();
    let v = Value::<u64>::new_in(&a, 1).unwrap();
    let h = v.getobj().handle();
    let (a2, v2) = (a.clone(), v.clone());
    let child = Process::start(move || {
        let r = match RawValue::<u64>::open_handle(&a2, &h) {
            Ok(r) => r,
            Err(_) => return 0u8, // refused: fine
        };
        let g = v2.lock().unwrap();
        let wrote = catch_unwind(AssertUnwindSafe(|| r.set(7))).is_ok();
        drop(g);
        wrote as u8
    })
    .unwrap();
    assert_eq!(
        finish(child).unwrap(),
        0,
        "a raw write behind a guard's &mut T"
    );
}

/// Open records are marked blocks that no handle opens as data. A forked child (safe code
/// only) tries every offset of the arena as a `RawArray<u64>` of 2, looking for the
/// parent's open record of "x" to clear its check word; were one found, the parent's
/// `remove("x")` would free the object under the parent's live handle, and the next object
/// created would get the same bytes.
#[test]
fn a_raw_handle_cannot_erase_another_processes_open_record() {
    let _serial = forking();
    let a = arena();
    let x = a.create::<Value<u64, Lock>>("x", 0).unwrap();
    let block = x.handle().lock; // the object's block (lock cell first)
    let a2 = a.clone();
    let erased: u64 = in_child(move || {
        let probe = RawArray::<u64>::zeroed_in(&a2, 2).unwrap().handle();
        let mut n = 0u64;
        for offset in (16..a2.capacity()).step_by(16) {
            let h = Handle { offset, ..probe };
            if let Ok(r) = RawArray::<u64>::open_handle(&a2, &h) {
                if r.get(1) == Some(block) && r.get(0) != Some(0) {
                    r.set(0, 0); // the record's check word
                    n += 1;
                }
            }
        }
        n
    })
    .unwrap();
    assert!(a.remove("x").unwrap());
    let y = a.create::<Value<u64, Lock>>("y", 0).unwrap();
    x.set(7); // the parent still has "x" open
    assert!(
        erased == 0 && y.handle().lock != block && y.get() == 0,
        "the child erased {erased} open record(s) of x through a RawArray handle; \
         y took x's block: {}; y reads x's write: {}",
        y.handle().lock == block,
        y.get()
    );
}

/// A child made by a raw fork system call while another thread held the handle table's
/// lock must fail its uses of the table, never wait for the lock forever. Dropping a named
/// `Value` reaches the table (`opened::forget`, through its data part) before anything
/// else that would notice the fork, so the table itself must notice it first.
#[test]
fn a_raw_forked_child_dropping_a_named_value_does_not_spin_forever() {
    let _serial = forking();
    let a = arena();
    let _x = a.create::<Value<u64, Lock>>("x", 0).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a2, stop2) = (a.clone(), stop.clone());
    // Another thread keeps taking the table lock (open + drop of "x").
    let churn = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let v: Value<u64, Lock> = a2.open("x").unwrap();
            drop(v);
        }
    });
    let mut hung = None;
    for _ in 0..400 {
        let mine: Value<u64, Lock> = a.open("x").unwrap(); // a clone of the one handle
        let v = a.create::<Value<u64, Lock>>("tmp", 0).unwrap();
        // SAFETY: a raw fork (no atfork handlers, on purpose); the child only drops a
        // handle and leaves with `_exit`, running no other code of the test harness.
        let pid = unsafe { libc::syscall(libc::SYS_fork) };
        if pid == 0 {
            drop(v); // the last handle of "tmp": its data part goes first
                     // SAFETY: `_exit` ends the child at once; nothing is left to run or unwind.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0);
        let pid = pid as i32;
        let t = Instant::now();
        let mut status = 0;
        let done = loop {
            // SAFETY: `pid` is this process's child; `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break true;
            }
            if t.elapsed() > Duration::from_secs(3) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if !done {
            let state = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
            // SAFETY: `pid` is this process's child, not yet reaped (so not reused); the
            // wait after the kill is bounded by the kill.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above; `status` is a valid out-pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            hung = Some(state);
            break;
        }
        drop(v);
        a.remove("tmp").unwrap();
        drop(mine);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    assert!(
        hung.is_none(),
        "a raw-forked child hung dropping a named handle (/proc/pid/syscall: {:?}; 24 = \
         sched_yield, the table's spin lock)",
        hung
    );
}

/// The Python helper's directory walk reports a loop at its first repeated entry: a
/// two-entry cycle in a 256 MiB arena (header's top/committed raised, both within the
/// segment) must not cost a step (and an ObjectInfo) per 32 bytes of heap, three times
/// over (its retries), as a walk bounded only by the heap's size would.
#[test]
fn the_python_walk_reports_a_directory_cycle_quickly() {
    let name = format!("named-review-py-{}", std::process::id());
    let a = Arena::create_segment(&name, 256 << 20).unwrap();
    let _p = a.create::<RawValue<u64>>("a", 1).unwrap();
    let _q = a.create::<RawValue<u64>>("b", 2).unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../python");
    let script = format!(
        r#"
import sys, mmap, struct, time, resource
sys.path.insert(0, {dir:?})
import sharedctypes_rs as s
f = open("/dev/shm/{name}", "r+b")
m = mmap.mmap(f.fileno(), 0)
head = struct.unpack_from("<Q", m, s._REGISTRY)[0]       # entry "b"
nxt = struct.unpack_from("<Q", m, head)[0]               # entry "a"
struct.pack_into("<Q", m, nxt, head)                     # a.next = b: a cycle
size = len(m)
struct.pack_into("<Q", m, s._COMMITTED, size)
struct.pack_into("<Q", m, s._TOP, size)
t = time.time()
try:
    s.open_arena("{name}").objects()
    print("no error")
except s.InvalidArena as e:
    print("error:", e)
print("seconds %.1f maxrss_mb %d" % (time.time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))
"#
    );
    let out = std::process::Command::new("timeout")
        .args(["30", "python3", "-c", &script])
        .output();
    let Ok(out) = out else {
        println!("skipped: no python3");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let rust = a.objects().map(|o| o.len()).map_err(|e| e.to_string());
    let secs: f64 = text
        .split_whitespace()
        .skip_while(|w| *w != "seconds")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or(999.0);
    assert!(
        text.contains("loops") && secs < 5.0,
        "python (killed after 30 s if empty): {text}\nrust on the same segment: {rust:?}"
    );
}
