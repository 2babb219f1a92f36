//! Second attacking review of issue 10 (named objects, open records, the handle table,
//! the Python helper): reproducers. Each test fails on the reviewed code.

mod common;

use std::time::{Duration, Instant};

use common::{finish, forking, in_child};
use shared_runtime::arena::ObjectKind;
use shared_runtime::handle::Handle;
use shared_runtime::{Arena, Lock, Process, RawArray, RawValue, Value};

fn arena() -> Arena {
    Arena::with_capacity(1 << 20).unwrap()
}

/// records.rs: "A forged record can only keep an orphan allocated, never free one early."
/// But an open record is an ordinary block owned by its opener, and `resolve` accepts any
/// block of another process as `RawArray` data (it refuses only directory blocks, lock
/// blocks and the caller's own). A forked child (safe code only) opens the parent's open
/// record of "x" as a `RawArray<u64>` of 2 and clears its check word; the parent's
/// `remove("x")` then frees the object under the parent's live handle, and the next object
/// created gets the same bytes.
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

/// opened.rs: "a child made by a raw fork/clone ... while another thread held [the table
/// lock] ... every use then fails with an error rather than waiting forever". `with_map`
/// checks BROKEN before anything has renewed the process caches (`renew_if_forked` runs
/// only inside `current_pid`/`process_key`), and dropping a named `Value` reaches
/// `opened::forget` through its data part (owner 0, no record: no `process_key` call) first.
/// So a raw-forked child whose first act is to drop such a handle spins forever in `take()`.
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
        // SAFETY (test): the child only drops a handle and exits with _exit.
        let pid = unsafe { libc::syscall(libc::SYS_fork) };
        if pid == 0 {
            drop(v); // the last handle of "tmp": its data part goes first
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0);
        let pid = pid as i32;
        let t = Instant::now();
        let mut status = 0;
        let done = loop {
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
            unsafe { libc::kill(pid, libc::SIGKILL) };
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

/// The Python helper's directory walk bounds a loop only by the heap's size
/// ((top - start) / 32 steps), building an ObjectInfo per step: a two-entry cycle in a
/// 256 MiB arena (header's top/committed raised, both within the segment) makes
/// `objects()` run millions of steps, three times over (its retries), holding every
/// ObjectInfo. The Rust walk (Brent's method) reports the loop at once.
#[test]
fn the_python_walk_reports_a_directory_cycle_quickly() {
    let name = format!("rv-named2-py-{}", std::process::id());
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
    let text = String::from_utf8_lossy(&out.stdout).into_owned()
        + &String::from_utf8_lossy(&out.stderr);
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
    let _ = ObjectKind::RawValue;
}
