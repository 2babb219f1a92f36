//! Resource limits (arena capacity, address space, descriptors) give errors and leave allocated objects intact.
//!
//! - Capacity: a full arena refuses with [`Error::OutOfMemory`], whose message says what to
//!   do; what it holds is intact, and freeing makes room again.
//! - Address space (`RLIMIT_AS`, lowered in a forked child): creating an arena that does not
//!   fit is an [`Error::Os`] naming `mmap`, never a crash; allocation in existing arenas
//!   needs no address space and goes on working; objects made before keep their values.
//! - Descriptors (`RLIMIT_NOFILE`, lowered in a forked child so that nothing new can be
//!   opened): creating or opening an arena is an [`Error::Os`] naming the call and
//!   `EMFILE`; existing objects and allocation in existing arenas keep working.
//!
//! `setrlimit` comes from `libc` (the `nix` features this workspace enables do not include
//! `resource`). Every child is waited for with a timeout ([`common::in_child`], [`common::finish`]).
//! Reproduce with `cargo test --test limits`.

mod common;

use common::{forking, in_child, unique};
use shared_runtime::{Arena, Error, Lock, Process, RLock, RawArray, RawValue, Value};

/// Lowers the soft limit of `resource` to `soft` (the hard limit stays).
fn lower_limit(resource: libc::__rlimit_resource_t, soft: u64) {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct it is given, which we own.
    let rc = unsafe { libc::getrlimit(resource, &mut now) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft.min(now.rlim_max),
        rlim_max: now.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    let rc = unsafe { libc::setrlimit(resource, &new) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

/// Whether `err` is `Error::Os` from `call` with OS error `errno`.
fn is_os(err: &Error, call: &str, errno: i32) -> bool {
    matches!(err, Error::Os { call: c, source } if *c == call && source.raw_os_error() == Some(errno))
}

// ---------------------------------------------------------------------------------------
// Arena capacity
// ---------------------------------------------------------------------------------------

/// Fills a 1 MiB arena with objects of shrinking sizes until not even an empty one fits.
#[test]
fn a_full_arena_refuses_with_out_of_memory_and_keeps_its_objects() {
    const CAP: u64 = 1 << 20;
    let arena = Arena::with_capacity(CAP).unwrap();
    let mut objects: Vec<(RawArray<u64>, u64)> = Vec::new();
    let mut len = 4096usize; // u64s: 32 KiB
    let mut errors = Vec::new();
    loop {
        match RawArray::<u64>::zeroed_in(&arena, len) {
            Ok(a) => {
                let v = objects.len() as u64 + 1;
                a.write(0, &vec![v; len]);
                objects.push((a, v));
            }
            Err(e) => {
                errors.push((len, e));
                if len == 0 {
                    break;
                }
                len /= 2;
            }
        }
    }
    assert!(objects.len() > 30, "{} objects", objects.len());
    // The first refusal: the right variant, true figures, an actionable message.
    let (len, first) = &errors[0];
    match first {
        Error::OutOfMemory {
            requested,
            available,
            capacity,
        } => {
            assert_eq!(*capacity, CAP);
            assert!(*requested >= *len as u64 * 8 + 16, "requested {requested}");
            assert!(available < requested);
            let msg = first.to_string();
            for part in [
                "out of memory".to_string(),
                format!("{requested} bytes requested"),
                format!("{available} of {CAP} bytes still unused"),
                "create a larger arena with Arena::with_capacity".to_string(),
            ] {
                assert!(msg.contains(&part), "{msg:?} does not say {part:?}");
            }
        }
        other => panic!("a full arena answered {other}"),
    }
    // The last: not even an empty object (one smallest block) fits any more.
    match &errors.last().unwrap().1 {
        Error::OutOfMemory { available, .. } => assert!(*available < 32, "{available} left"),
        other => panic!("a full arena answered {other}"),
    }
    let stats = arena.stats().unwrap();
    assert_eq!(stats.live_allocations, objects.len() as u64);
    assert!(
        stats.bytes_in_use > CAP * 99 / 100,
        "only {} of {CAP} bytes in use when full",
        stats.bytes_in_use
    );
    // Locks and synchronized values are refused the same way.
    assert!(matches!(
        Lock::new_in(&arena),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(matches!(
        Value::new_in(&arena, 1u64),
        Err(Error::OutOfMemory { .. })
    ));
    assert_eq!(
        arena.stats().unwrap().live_allocations,
        stats.live_allocations
    );
    // Everything allocated before holds its value; the heap is sound.
    for (a, v) in &objects {
        assert!(a.to_vec() == vec![*v; a.len()], "object {v} changed");
    }
    let report = arena.check().unwrap();
    assert_eq!(report.used_blocks, objects.len() as u64);
    assert_eq!(report.free_blocks, 0);
    // Freeing one object makes room for one of its size, and for nothing larger.
    let (freed, _) = objects.remove(1);
    let size = freed.len();
    drop(freed);
    assert!(matches!(
        RawArray::<u64>::zeroed_in(&arena, size + 512),
        Err(Error::OutOfMemory { .. })
    ));
    let again = RawArray::<u64>::zeroed_in(&arena, size).unwrap();
    assert!(again.to_vec() == vec![0; size], "reused memory is zero");
    again.write(0, &vec![u64::MAX; size]);
    for (a, v) in &objects {
        assert!(a.to_vec() == vec![*v; a.len()], "object {v} changed");
    }
    assert_eq!(again.to_vec(), vec![u64::MAX; size]);
    assert_eq!(arena.check().unwrap().used_blocks, objects.len() as u64 + 1);
}

/// A `Value` with a lock passed in needs two allocations, its lock's and its data's. When
/// only the first fits, the half-made value must give the lock's back. A `Value` made with
/// its own lock is one block: it fits the hole, or nothing is taken.
///
/// Small objects are slots of slabs; where no slab can be had (no room for a 4096-byte
/// one) they are ordinary blocks. So the arena is filled with 80-byte blocks (64-byte
/// payloads, larger than any slot), topped up with small objects (slots until no slab fits,
/// then small blocks), and one 80-byte hole is made: a lock (24 bytes) then takes a 48-byte
/// block of the hole, and 64 bytes of data do not fit in the 32 left.
#[test]
fn a_value_whose_lock_fits_but_not_its_data_leaks_nothing() {
    let arena = Arena::with_capacity(64 << 10).unwrap();
    let mut fill: Vec<RawArray<u64>> = Vec::new();
    for len in [8, 4, 2, 0] {
        while let Ok(a) = RawArray::<u64>::zeroed_in(&arena, len) {
            fill.push(a);
        }
    }
    let block_sized: Vec<usize> = (0..fill.len() - 1)
        .filter(|&i| fill[i].len() == 8)
        .collect();
    assert!(block_sized.len() > 100);
    drop(fill.remove(block_sized[block_sized.len() / 2])); // one hole, between used blocks
    let before = arena.check().unwrap();
    assert_eq!((before.free_blocks, before.free_bytes), (1, 80));
    for attempt in 0..3 {
        // Lock cell and 64 bytes of data: a 96-byte block, larger than the hole.
        let err = Value::new_in(&arena, [7u64; 8]).unwrap_err();
        assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
        let lock = RLock::new_in(&arena).unwrap();
        assert_eq!(
            arena.check().unwrap().free_bytes,
            32,
            "the lock took the hole"
        );
        let err = Value::with_lock_in(&arena, [7u64; 8], lock).unwrap_err();
        assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
        assert_eq!(arena.check().unwrap(), before, "attempt {attempt} leaked");
    }
    // The hole is still there for whoever fits.
    let a = RawArray::<u64>::zeroed_in(&arena, 8).unwrap();
    assert_eq!(arena.check().unwrap().free_blocks, 0);
    drop(a);
    // A lock cell and 40 bytes of data in one 80-byte block: the hole.
    let v = Value::new_in(&arena, [7u64; 5]).unwrap();
    assert_eq!(arena.check().unwrap().free_blocks, 0);
    drop(v);
    assert_eq!(arena.check().unwrap(), before);
}

// ---------------------------------------------------------------------------------------
// Address space
// ---------------------------------------------------------------------------------------

/// This process's address-space size (`VmSize`), in bytes.
fn vm_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .expect("VmSize in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmSize in kB");
    kib * 1024
}

/// A forked child lowers `RLIMIT_AS` to what it uses plus 256 MiB. Arenas that do not fit
/// that are refused with `Error::Os { call: "mmap", .. }` (ENOMEM), named ones leaving no
/// segment behind; one that fits is created; allocation in arenas made before needs no new
/// address space and works (64 MiB objects included); objects made before keep their values.
/// The child exits 0 only if all of that held.
#[test]
fn lowering_the_address_space_limit_refuses_new_arenas_not_allocations() {
    let _serial = forking();
    let before = Arena::with_capacity(512 << 20).unwrap();
    let kept = RawArray::from_slice_in(&before, &[11u64; 1000]).unwrap();
    let kept_global = RawArray::from_slice(&[22u32; 1000]).unwrap();
    let name = unique("as");
    in_child(|| {
        lower_limit(libc::RLIMIT_AS, vm_size() + (256 << 20));
        for capacity in [1u64 << 30, 64 << 30] {
            let err = Arena::with_capacity(capacity).unwrap_err();
            assert!(
                is_os(&err, "mmap", libc::ENOMEM),
                "{capacity} bytes: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.starts_with("mmap failed: "), "{msg}");
        }
        let err = Arena::create_segment(&name, 1 << 30).unwrap_err();
        assert!(is_os(&err, "mmap", libc::ENOMEM), "{err:?}");
        assert!(
            matches!(Arena::open_segment(&name), Err(Error::NotFound { .. })),
            "a failed create_segment left its segment behind"
        );
        // What fits, works.
        let small = Arena::with_capacity(4 << 20).unwrap();
        let s = RawValue::new_in(&small, 5u64).unwrap();
        assert_eq!(s.get(), 5);
        // Beyond its capacity, allocation is refused as always.
        assert!(matches!(
            RawArray::<u8>::zeroed_in(&small, 8 << 20),
            Err(Error::OutOfMemory { .. })
        ));
        // Existing arenas: their mapping is already paid for in address space.
        for arena in [&before, Arena::global()] {
            let big = RawArray::<u64>::zeroed_in(arena, 8 << 20).unwrap(); // 64 MiB
            for i in [0, 1 << 20, (8 << 20) - 1] {
                assert_eq!(big.get(i), Some(0));
                big.set(i, i as u64 + 1);
                assert_eq!(big.get(i), Some(i as u64 + 1));
            }
        }
        before.check().unwrap();
        assert_eq!(kept.get(999), Some(11));
        assert!(kept.read(..) == vec![11; 1000]);
        assert!(kept_global.read(..) == vec![22; 1000]);
    })
    .unwrap();
    assert!(kept.read(..) == vec![11; 1000]);
    assert!(kept_global.read(..) == vec![22; 1000]);
    assert_eq!(before.check().unwrap().used_blocks, 1);
    assert!(matches!(
        Arena::open_segment(&name),
        Err(Error::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------------------

/// The lowest descriptor number not in use: what the next `open` would return.
fn lowest_free_fd() -> u64 {
    // SAFETY: dup of standard error (open in every test process) returns a new descriptor
    // or -1; we close the new one at once, touching nothing else.
    let fd = unsafe { libc::dup(2) };
    assert!(fd >= 0, "dup: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by dup and is ours alone.
    unsafe { libc::close(fd) };
    fd as u64
}

/// A forked child lowers `RLIMIT_NOFILE` to the lowest free descriptor number, so that
/// nothing new can be opened. Creating an arena (anonymous or named) and opening a named
/// one are refused with `Error::Os` naming the call and EMFILE (not, say, `NotFound`);
/// objects made before keep their values and can be written; allocation and freeing in
/// existing arenas (anonymous, named, global) works, large objects that reserve new pages
/// included; `check` and `stats` work. The child exits 0 only if all of that held.
#[test]
fn running_out_of_descriptors_refuses_new_arenas_not_allocations() {
    let _serial = forking();
    let name = unique("fd");
    let fresh = unique("fd-new");
    let named = Arena::create_segment(&name, 64 << 20).unwrap();
    let private = Arena::with_capacity(64 << 20).unwrap();
    let in_named = RawArray::from_slice_in(&named, &[3u16; 500]).unwrap();
    let in_private = RawValue::new_in(&private, 4.5f64).unwrap();
    let in_global = RawArray::from_slice(&[6i32; 300]).unwrap();
    in_child(|| {
        lower_limit(libc::RLIMIT_NOFILE, lowest_free_fd());
        let blocked = std::fs::File::open("/dev/null").unwrap_err();
        assert_eq!(blocked.raw_os_error(), Some(libc::EMFILE), "{blocked}");
        let err = Arena::with_capacity(1 << 20).unwrap_err();
        assert!(is_os(&err, "memfd_create", libc::EMFILE), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("memfd_create failed: Too many open files"),
            "{err}"
        );
        let err = Arena::create_segment(&fresh, 1 << 20).unwrap_err();
        assert!(is_os(&err, "shm_open", libc::EMFILE), "{err:?}");
        let err = Arena::open_segment(&name).unwrap_err();
        assert!(is_os(&err, "shm_open", libc::EMFILE), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("shm_open failed: Too many open files"),
            "{err}"
        );
        // Existing objects keep working.
        assert!(in_named.read(..) == vec![3; 500]);
        assert_eq!(in_private.get(), 4.5);
        assert!(in_global.read(..) == vec![6; 300]);
        in_named.set(0, 30);
        in_private.set(5.5);
        // Allocation needs no descriptor: small, and large enough to reserve new pages.
        for arena in [&named, &private, Arena::global()] {
            let small = RawValue::new_in(arena, 9u64).unwrap();
            let big = RawArray::<u8>::zeroed_in(arena, 20 << 20).unwrap();
            big.set((20 << 20) - 1, 1);
            assert_eq!((small.get(), big.get((20 << 20) - 1)), (9, Some(1)));
            drop((small, big));
            arena.check().unwrap();
            arena.stats().unwrap();
        }
    })
    .unwrap();
    assert_eq!(in_named.get(0), Some(30));
    assert_eq!(in_private.get(), 5.5);
    assert_eq!(named.check().unwrap().used_blocks, 1);
    assert_eq!(private.check().unwrap().used_blocks, 1);
    assert!(matches!(
        Arena::open_segment(&fresh),
        Err(Error::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// The global arena, created under a limit
// ---------------------------------------------------------------------------------------

/// Tells the helper below which limit it runs under.
const HELPER_ENV: &str = "SHR_LIMITS_HELPER";

/// Not a test by itself: run by the two tests below, in a fresh process (where the global
/// arena does not exist yet). Lowers the limit its environment names (after the program
/// has started: the dynamic loader itself needs descriptors and address space), then prints
/// how the first `RawValue::new`, then `Process::start`, ended.
#[test]
#[ignore = "helper: run in a fresh process by the global_arena_* tests"]
fn helper_first_use_of_the_global_arena() {
    match std::env::var(HELPER_ENV).as_deref() {
        Ok("as") => lower_limit(libc::RLIMIT_AS, vm_size() + (256 << 20)),
        Ok("nofile") => lower_limit(libc::RLIMIT_NOFILE, lowest_free_fd()),
        _ => return,
    }
    let new = std::panic::catch_unwind(|| RawValue::new(1u64).map(|v| v.get()));
    println!("outcome new: {}", describe(new));
    let start = std::panic::catch_unwind(|| Process::start(|| {}).and_then(|p| p.join()));
    println!("outcome start: {}", describe(start));
}

/// "value …", "error …" or "panic …".
fn describe<T: std::fmt::Debug>(outcome: std::thread::Result<Result<T, Error>>) -> String {
    match outcome {
        Ok(Ok(v)) => format!("value {v:?}"),
        Ok(Err(e)) => format!("error {e:?}"),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("panic {msg}")
        }
    }
}

/// Runs the helper in a fresh copy of this test binary under limit `which` ("as" or
/// "nofile"), and returns how `RawValue::new` and then `Process::start` ended.
fn first_use_of_the_global_arena_under(which: &str) -> (String, String) {
    use std::process::{Command, Stdio};
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_first_use_of_the_global_arena",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, which)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Bounded wait: if the helper outlives PATIENCE, it is killed and the test fails.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = match rx.recv_timeout(common::PATIENCE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill only sends a signal, to the helper this test spawned.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("the helper hung for {:?}", common::PATIENCE);
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helper failed: {stdout}\n{stderr}");
    let outcome = |what: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(what).map(|(_, o)| o.to_string()))
            .unwrap_or_else(|| panic!("no {what:?} from the helper: {stdout}\n{stderr}"))
    };
    (outcome("outcome new: "), outcome("outcome start: "))
}

/// Under an address-space limit (what the process uses plus 256 MiB, far below the
/// machine's memory), the global arena cannot be sized to the machine's memory: it is made
/// smaller instead, and the constructors and `Process::start` work.
#[test]
fn global_arena_under_an_address_space_limit_is_made_smaller() {
    let _serial = forking();
    let (new, start) = first_use_of_the_global_arena_under("as");
    assert!(
        new.starts_with("value 1"),
        "RawValue::new under RLIMIT_AS: {new}"
    );
    assert!(
        start.starts_with("value"),
        "Process::start under RLIMIT_AS: {start}"
    );
}

/// With no descriptor left, the global arena's memory file cannot be created: the first
/// constructor that needs it must return an `Err`, not panic.
#[test]
fn global_arena_without_descriptors_is_an_error() {
    let _serial = forking();
    let (new, start) = first_use_of_the_global_arena_under("nofile");
    assert!(
        new.starts_with("error Os { call: \"memfd_create\""),
        "RawValue::new under RLIMIT_NOFILE: {new}"
    );
    assert!(
        start.starts_with("error Os { call: \"memfd_create\""),
        "Process::start under RLIMIT_NOFILE: {start}"
    );
}
