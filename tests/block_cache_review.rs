//! Regressions from the review of the per-process cache of freed small blocks
//! (`arena/cache.rs`, `arena/cache_path.rs`): out of memory while the cache holds it,
//! children that end (or exec) without giving a cache back, a process killed while giving
//! its cache back, garbage in the table, raw forks, kill storms, racing marks.

mod common;

use std::time::{Duration, Instant};

use common::{forking, wait_pid, PATIENCE};
use shared_runtime::{Arena, Process, RawArray, RawValue};

fn warm(arena: &Arena) {
    drop(RawValue::new_in(arena, 0u64).unwrap());
}

/// All objects of a private arena are dropped, yet an allocation that the free memory
/// could hold fails with `OutOfMemory`: up to 128 blocks per class sit in this very
/// process's cache, and the allocator never flushes it before giving up. After `stats()`
/// (which flushes) the same allocation succeeds.
#[test]
fn rv_out_of_memory_while_this_process_cache_holds_the_memory() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 16).unwrap();
    warm(&arena);
    let mut held = Vec::new();
    while let Ok(a) = RawArray::<u8>::zeroed_in(&arena, 112) {
        held.push(a);
        assert!(held.len() < 100_000);
    }
    let n = held.len() as u64;
    assert!(n > 200, "arena too small for the test: {n}");
    drop(held); // every object is gone
                // One array as large as what all those 128-byte blocks spanned.
    let want = (n * 128 - 16) as usize;
    let first = RawArray::<u8>::zeroed_in(&arena, want).map(drop);
    let s = arena.stats().unwrap(); // flushes this process's cache
    assert_eq!(s.live_allocations, 0);
    let second = RawArray::<u8>::zeroed_in(&arena, want).map(drop);
    assert!(
        second.is_ok(),
        "control: after the flush the allocation fits: {second:?}"
    );
    assert!(
        first.is_ok(),
        "no object is alive, yet allocating {want} bytes failed while this process's own \
         cache held the memory: {first:?}"
    );
}

/// A child that had cached blocks is killed while `stats()` gives its cache back: `drain`
/// zeroed its slot's counts before the blocks were freed, so the blocks still marked
/// CACHED (and still the dead child's) are counted as live objects by `stats()` and as
/// reclaimed objects by `reclaim_dead()` — up to 896 of them, not "off by one".
#[test]
fn rv_killed_while_flushing_its_cache_its_cached_blocks_count_as_objects() {
    use shared_runtime::test_hooks::crash_after_steps;
    let _serial = forking();
    let global = Arena::global();
    global.reclaim_dead().unwrap();
    // `flush`: whether the child calls `stats()` (armed to die at the first step inside).
    let run = |flush: bool| {
        let before = global.stats().unwrap();
        let mut child = Process::start(move || -> u8 {
            let g = Arena::global();
            warm(g);
            let vs: Vec<_> = (0..50).map(|i| RawValue::new(i as u64).unwrap()).collect();
            drop(vs); // cached, still this child's blocks
            if flush {
                crash_after_steps(1);
                let _ = g.stats();
            } else {
                shared_runtime::test_hooks::crash_after_steps(0);
                // SAFETY: kills this (child) process; nothing runs after it.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            0
        })
        .unwrap();
        assert!(
            child.join_timeout(PATIENCE).is_err(),
            "the child was killed"
        );
        let dead = global.stats().unwrap();
        let r = global.reclaim_dead().unwrap();
        (
            dead.live_allocations as i64 - before.live_allocations as i64,
            r.objects,
        )
    };
    let killed_idle = run(false);
    let killed_flushing = run(true);
    assert_eq!(
        killed_flushing, killed_idle,
        "(objects seen alive after the kill, objects reclaimed): the child held no object in \
         either run, but blocks it had cached were reported as objects"
    );
}

/// Children made by `fork()` (not `Process`) that free their small objects and exit
/// normally must not leave caches behind (they would stay allocated to the dead children,
/// their slots of the 11-slot table taken, until somebody calls `reclaim_dead()`): such
/// children do not cache at all.
#[test]
fn rv_a_forked_child_that_exits_normally_leaves_its_cache_allocated() {
    let _serial = forking();
    let global = Arena::global();
    global.reclaim_dead().unwrap();
    warm(global);
    let before = global.stats().unwrap();
    for _ in 0..3 {
        // SAFETY: the test holds `forking()`, so no other test thread forks or holds the
        // allocator lock meanwhile; the child only allocates, frees and ends with `_exit`.
        match unsafe { libc::fork() } {
            0 => {
                warm(Arena::global()); // takes a slot
                let vs: Vec<_> = (0..20).map(|_| RawValue::new(1u64).unwrap()).collect();
                drop(vs);
                // Every object of this child is dropped; it ends normally.
                // SAFETY: ends the child at once, running no destructor or exit handler.
                unsafe { libc::_exit(0) };
            }
            -1 => panic!("fork failed"),
            pid => assert_eq!(wait_pid(pid), 0),
        }
    }
    let after = global.stats().unwrap();
    let check = global.check().unwrap();
    assert_eq!(
        (
            after.cached_blocks,
            check.cached_blocks,
            after.heap_bytes - after.bytes_in_use
        ),
        (
            before.cached_blocks,
            before.cached_blocks,
            before.heap_bytes - before.bytes_in_use
        ),
        "children that freed everything and exited left blocks allocated: {before:?} {after:?}"
    );
}

/// Garbage written into the 11 words of the cache table (by another process writing the
/// segment) must give wrong counts at worst: no panic, hang or block handed out twice.
#[test]
fn rv_garbage_in_the_cache_table_gives_safe_wrong_counts() {
    use std::os::unix::fs::FileExt;
    let _serial = forking();
    let name = format!("rv-cache-garbage-{}", std::process::id());
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    warm(&arena);
    let keep: Vec<_> = (0..10)
        .map(|i| RawValue::new_in(&arena, i as u64).unwrap())
        .collect();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    // 64 (heap state) + 8 * (7 counters + 2 bitmap words + 117 bins).
    let table = 64 + 8 * (7 + 2 + 117);
    let me = std::process::id() as u64;
    let garbage = [
        u64::MAX,
        me | 0xfff << 32 | 0xffff << 44,
        1 | 0xfff << 32,
        0x7fff_fff0 | 0xfff << 32 | 0xffff << 44,
        me,
        0,
        u64::MAX >> 1,
        0xffff_ffff,
        me | 1 << 60,
        1 << 63,
        me | 0x1 << 32,
    ];
    for (i, g) in garbage.iter().enumerate() {
        file.write_all_at(&g.to_le_bytes(), table + 8 * i as u64)
            .unwrap();
    }
    let t = Instant::now();
    let _ = arena.stats();
    let _ = arena.check();
    let _ = arena.reclaim_dead();
    let mut offsets: Vec<u64> = Vec::new();
    for round in 0..3 {
        let vs: Vec<_> = (0..200)
            .map(|i| RawValue::new_in(&arena, i as u64).unwrap())
            .collect();
        for v in &vs {
            assert!(!offsets.contains(&v.offset()) || round > 0);
        }
        offsets = vs.iter().map(|v| v.offset()).collect();
        let mut sorted = offsets.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), offsets.len(), "a block handed out twice");
        for (i, v) in vs.iter().enumerate() {
            assert_eq!(v.get(), i as u64);
        }
    }
    assert!(t.elapsed() < Duration::from_secs(20));
    for (i, v) in keep.iter().enumerate() {
        assert_eq!(v.get(), i as u64);
    }
    drop(keep);
    let s = arena.stats().unwrap();
    let _ = arena.check().unwrap();
    eprintln!("stats with garbage in the table: {s:?}");
    drop(arena);
    let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
}

/// A child made by the raw `fork` system call (not libc's `fork`, so no atfork handler)
/// must not take its parent's cached blocks.
#[test]
fn rv_a_raw_syscall_fork_child_never_takes_its_parents_cached_blocks() {
    let _serial = forking();
    let global = Arena::global();
    warm(global);
    let flag = RawValue::new(0u64).unwrap();
    let v = RawValue::new(7u64).unwrap();
    let cached = v.offset();
    drop(v);
    // SAFETY: as for `fork` (under `forking()`); the child only allocates and `_exit`s.
    let pid = unsafe { libc::syscall(libc::SYS_fork) } as libc::pid_t;
    if pid == 0 {
        let held: Vec<_> = (0..200).map(|_| RawValue::new(1u64).unwrap()).collect();
        let clash = held.iter().any(|v| v.offset() == cached);
        flag.set(if clash { 2 } else { 1 });
        drop(held);
        // SAFETY: ends the child at once, running no destructor or exit handler.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0);
    assert_eq!(wait_pid(pid), 0);
    assert_eq!(
        flag.get(),
        1,
        "the raw-forked child was handed its parent's cached block"
    );
    let again = RawValue::new(0u64).unwrap();
    assert_eq!(again.offset(), cached);
    drop(again);
    global.reclaim_dead().unwrap();
    global.check().unwrap();
}

/// Workers (children run by `Process`, which cache) allocate, fill, verify and free small
/// objects of every cached class in the global arena while being SIGKILLed at random; the
/// parent does the same and reclaims. A block handed out twice, or reused while still
/// held, shows as a pattern mismatch (exit code 3); a non-zero "zeroed" array as exit
/// code 4.
#[test]
fn rv_kill_storm_of_caching_workers() {
    let _serial = forking();
    let global = Arena::global();
    global.reclaim_dead().unwrap();
    fn work(seed: u64, rounds: u64) -> i32 {
        let mut x = seed | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let tag = seed << 20;
        let mut live: Vec<(RawArray<u64>, u64)> = Vec::new();
        for i in 0..rounds {
            let n = 1 + (rnd() % 14) as usize;
            let a = match RawArray::<u64>::zeroed(n) {
                Ok(a) => a,
                Err(_) => continue,
            };
            if a.to_vec().iter().any(|&w| w != 0) {
                return 4;
            }
            let t = tag | i;
            for j in 0..n {
                a.set(j, t);
            }
            live.push((a, t));
            if live.len() > 64 || rnd() % 3 == 0 {
                let k = (rnd() % live.len() as u64) as usize;
                let (a, t) = live.swap_remove(k);
                if a.to_vec().iter().any(|&w| w != t) {
                    return 3;
                }
            }
            if i % 997 == 0 {
                for (a, t) in &live {
                    if a.to_vec().iter().any(|w| w != t) {
                        return 3;
                    }
                }
            }
        }
        for (a, t) in &live {
            if a.to_vec().iter().any(|w| w != t) {
                return 3;
            }
        }
        0
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut kids: Vec<Process<i32>> = Vec::new();
    let mut seed = 1u64;
    let mut bad = Vec::new();
    while Instant::now() < deadline {
        while kids.len() < 4 {
            seed += 1;
            let s = seed;
            kids.push(Process::start(move || work(s, u64::MAX)).unwrap());
        }
        std::thread::sleep(Duration::from_micros(200 + (seed * 7919) % 3000));
        let mut victim = kids.remove((seed % kids.len() as u64) as usize);
        victim.kill().unwrap();
        match victim.join_timeout(PATIENCE) {
            Err(shared_runtime::Error::ChildKilled { signal: 9, .. }) => {}
            other => bad.push(format!("worker {} ended with {other:?}", victim.pid())),
        }
        seed += 1;
        let code = work(seed | 1 << 40, 200);
        if code != 0 {
            bad.push(format!("parent saw code {code}"));
        }
        if seed % 5 == 0 {
            if let Err(e) = global.reclaim_dead() {
                bad.push(format!("reclaim: {e}"));
            }
            if let Err(e) = global.check() {
                bad.push(format!("check: {e}"));
            }
        }
        if !bad.is_empty() {
            break;
        }
    }
    for mut kid in kids {
        kid.kill().unwrap();
        let _ = kid.join_timeout(PATIENCE);
    }
    global.reclaim_dead().unwrap();
    global.check().unwrap();
    assert!(bad.is_empty(), "{bad:?}");
}

/// One thread caches and uncaches block `x` (lock-free marks on its header) while another
/// frees and reallocates `x`'s left neighbour under the allocator lock (which flips `x`'s
/// PREV_USED): neither change may undo the other (`check()` verifies PREV_USED).
#[test]
fn rv_owner_marks_race_a_neighbours_prev_used_flip() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    warm(&arena);
    let a0 = RawArray::<u8>::zeroed_in(&arena, 200).unwrap();
    let x0 = RawValue::new_in(&arena, 1u64).unwrap();
    let _c = RawArray::<u8>::zeroed_in(&arena, 200).unwrap();
    let (a_at, x_at) = (a0.handle().offset, x0.offset());
    assert!(a_at < x_at);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut moved_a, mut moved_x) = (0u64, 0u64);
    std::thread::scope(|s| {
        let arena = &arena;
        let stop = &stop;
        let tx = s.spawn(move || {
            let mut x = x0;
            let mut moved = 0;
            for i in 0..200_000u64 {
                drop(x);
                x = RawValue::new_in(arena, i).unwrap();
                moved += u64::from(x.offset() != x_at);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            drop(x);
            moved
        });
        let ta = s.spawn(move || {
            let mut a = a0;
            let mut moved = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                drop(a);
                a = RawArray::<u8>::zeroed_in(arena, 200).unwrap();
                moved += u64::from(a.handle().offset != a_at);
            }
            drop(a);
            moved
        });
        moved_x = tx.join().unwrap();
        moved_a = ta.join().unwrap();
    });
    eprintln!("x moved {moved_x} times, a moved {moved_a} times");
    arena.check().unwrap();
}

/// A process that frees its small objects and then `exec`s (same pid, alive) keeps its
/// cached blocks and its slot of the table for as long as the new program runs:
/// `reclaim_dead` cannot take them back (the owner is alive), nothing else can.
#[test]
fn rv_exec_after_freeing_keeps_the_cache_for_the_life_of_the_new_program() {
    let _serial = forking();
    let global = Arena::global();
    global.reclaim_dead().unwrap();
    warm(global);
    let ready = RawValue::new(0u64).unwrap();
    let before = global.stats().unwrap();
    // SAFETY: the test holds `forking()`, so no other test thread forks or holds the
    // allocator lock meanwhile; the child only allocates, frees and `exec`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Objects the block cache serves (61..=112 bytes), and slab slots.
        drop(RawValue::new([0u64; 8]).unwrap());
        let vs: Vec<_> = (0..40).map(|_| RawValue::new([1u64; 8]).unwrap()).collect();
        let small: Vec<_> = (0..40).map(|_| RawValue::new(1u64).unwrap()).collect();
        drop((vs, small)); // every object of this process is dropped
        ready.set(1);
        let sleep = std::ffi::CString::new("/bin/sleep").unwrap();
        let arg = std::ffi::CString::new("30").unwrap();
        // SAFETY: the strings are NUL-terminated and alive; the list ends with a null
        // pointer; `_exit` only runs if `execl` failed.
        unsafe {
            libc::execl(
                sleep.as_ptr(),
                sleep.as_ptr(),
                arg.as_ptr(),
                std::ptr::null::<libc::c_char>(),
            );
            libc::_exit(127);
        }
    }
    assert!(common::wait_until(|| ready.get() == 1));
    std::thread::sleep(Duration::from_millis(200)); // the exec has happened
    let reclaimed = global.reclaim_dead().unwrap();
    let after = global.stats().unwrap();
    // SAFETY: signals our own child, which has not been reaped yet.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_pid(pid);
    global.reclaim_dead().unwrap();
    // What a process holds: objects (slots count their whole slab), cached blocks, and
    // empty slabs not yet given back. (Not `heap_bytes - bytes_in_use`: a slab is carved at
    // a page boundary, and the free block left in front of it, free for anyone, is heap.)
    let held = |s: &shared_runtime::arena::ArenaStats| {
        (
            s.live_allocations,
            s.bytes_in_use,
            s.cached_blocks,
            s.cached_bytes,
            s.slab_spare_bytes,
        )
    };
    assert_eq!(
        held(&after),
        held(&before),
        "a process that freed everything and exec'd still holds blocks: {reclaimed:?} {after:?}"
    );
}

/// A forked child that caches nothing can still allocate what the parent's frees left,
/// and a `Process` child, which caches, gives its cache back as it ends: after it, nothing
/// of it is cached or allocated.
#[test]
fn a_process_child_caches_and_gives_everything_back_as_it_ends() {
    let _serial = forking();
    let global = Arena::global();
    global.reclaim_dead().unwrap();
    warm(global);
    let before = global.stats().unwrap();
    let mut child = Process::start(|| -> u64 {
        let vs: Vec<_> = (0..40).map(|_| RawValue::new(1u64).unwrap()).collect();
        let last = vs[39].offset();
        drop(vs);
        // Cached: the next allocation of the size reuses the block freed last.
        let again = RawValue::new(2u64).unwrap();
        u64::from(again.offset() != last)
    })
    .unwrap();
    let moved = child.join_timeout(PATIENCE).unwrap();
    drop(child); // its outcome block
    let after = global.stats().unwrap();
    assert_eq!(
        (
            after.cached_blocks,
            after.live_allocations,
            after.bytes_in_use
        ),
        (
            before.cached_blocks,
            before.live_allocations,
            before.bytes_in_use
        ),
        "the child ended with blocks allocated"
    );
    // The child cached: its last freed block came back at once (one thread: the cache
    // was never busy).
    assert_eq!(moved, 0, "a child run by Process caches its frees");
}

/// In a small arena the cache holds at most a 16th of the capacity, so other processes'
/// caches never hold most of it; and this process's own cache is given back when an
/// allocation would otherwise fail.
#[test]
fn a_small_arena_caches_little() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 16).unwrap();
    warm(&arena);
    let held: Vec<_> = (0..200)
        .map(|_| RawArray::<u8>::zeroed_in(&arena, 112).unwrap())
        .collect();
    let before = arena.check().unwrap();
    drop(held);
    // `stats()` would give the cache back: the heap walk of another process is what
    // counts here, so look from a forked child (which does not cache, and does not flush
    // its parent's cache).
    let seen = RawValue::new_in(&arena, 0u64).unwrap();
    // SAFETY: the test holds `forking()`, so no other test thread forks or holds the
    // allocator lock meanwhile; the child only checks the arena and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let r = arena.check().map(|r| r.cached_bytes).unwrap_or(u64::MAX);
        seen.set(r);
        // SAFETY: ends the child at once, running no destructor or exit handler.
        unsafe { libc::_exit(0) };
    }
    assert_eq!(wait_pid(pid), 0);
    let cached = seen.get();
    assert!(cached > 0, "the creator caches its frees");
    assert!(
        cached <= (1 << 16) / 16,
        "cached {cached} bytes of a 64 KiB arena"
    );
    assert!(before.used_blocks >= 200);
}
