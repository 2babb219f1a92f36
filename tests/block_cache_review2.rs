//! Round 2 review of the per-process block cache: give-back at the end of a `Process`
//! child (or at `exit`) and raw forks of the global arena's creator.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{forking, wait_pid, PATIENCE};
use shared_runtime::{Arena, Process, RawValue};

/// `cached_blocks` as `check()` sees it from a raw-forked child (which caches nothing of
/// its own, so reports what the other processes hold).
fn cached_seen_by_a_child() -> i32 {
    // SAFETY: the child only runs the check and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match Arena::global().check() {
            Ok(r) => r.cached_blocks.min(250) as i32,
            Err(_) => 255,
        };
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let status = wait_pid(pid);
    assert!(libc::WIFEXITED(status));
    libc::WEXITSTATUS(status)
}

/// A `Process` child whose `f` leaves a thread freeing small objects: `run_child` calls
/// `flush_global_cache`, which skips the flush entirely when `holds_any` finds the cache
/// busy (it never waits, unlike `drain`), and the thread keeps caching after the flush
/// anyway. The child's cached blocks (and its slot) outlive it: the parent sees them as
/// `cached_blocks` after `join`, until someone calls `reclaim_dead`.
#[test]
fn rv2_process_child_with_a_freeing_thread_ends_with_blocks_cached() {
    let _serial = forking();
    let global = Arena::global();
    global.reclaim_dead().unwrap();
    let mut left = Vec::new();
    for run in 0..10 {
        let mut child = Process::start(|| -> u8 {
            // 64-byte values: the block cache serves 61..=112 bytes (smaller: slab slots).
            let held: Vec<_> = (0..300u64)
                .map(|i| RawValue::new([i; 8]).unwrap())
                .collect();
            drop(held); // now cached in this child
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    drop(RawValue::new([1u64; 8]).unwrap());
                }
            });
            std::thread::sleep(Duration::from_millis(20));
            0
        })
        .unwrap();
        child.join_timeout(PATIENCE).unwrap();
        let s = global.stats().unwrap();
        let seen = cached_seen_by_a_child();
        eprintln!(
            "run {run}: stats cached {} live {}, check from a child: {seen}",
            s.cached_blocks, s.live_allocations
        );
        if s.cached_blocks > 0 || seen > 0 {
            left.push((run, s.cached_blocks));
            global.reclaim_dead().unwrap();
        }
    }
    assert!(
        left.is_empty(),
        "(run, cached_blocks) the parent sees after joining a child that had ended: {left:?}"
    );
}

/// The global arena's creator caches blocks, then forks with libc and the child calls
/// `exit` (running the inherited exit handler): the parent's cached blocks must survive
/// (the handler must not give back what the parent still holds).
#[test]
fn rv2_raw_fork_child_exit_handler_leaves_the_parents_cache_alone() {
    // Values of 64 bytes: the block cache serves 61..=112 (smaller ones are slab slots).
    let _serial = forking();
    let global = Arena::global();
    global.reclaim_dead().unwrap();
    let held: Vec<_> = (0..50u64)
        .map(|i| RawValue::new_in(global, [i; 8]).unwrap())
        .collect();
    drop(held);
    let before = cached_seen_by_a_child();
    // SAFETY: the child allocates a little and calls `exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let v: Vec<_> = (0..20u64)
            .map(|i| RawValue::new_in(Arena::global(), [i; 8]).unwrap())
            .collect();
        drop(v);
        std::process::exit(0);
    }
    assert!(libc::WIFEXITED(wait_pid(pid)));
    let after = cached_seen_by_a_child();
    assert!(before > 0, "the parent caches: {before}");
    assert_eq!(
        before, after,
        "parent's cached blocks after the child's exit"
    );
    // The parent uses its cache again; the arena stays sound.
    let again: Vec<_> = (0..50u64)
        .map(|i| RawValue::new_in(global, [i; 8]).unwrap())
        .collect();
    for (i, v) in again.iter().enumerate() {
        assert_eq!(v.get(), [i as u64; 8]);
    }
    drop(again);
    global.check().unwrap();
}

/// A `Process` child that churns small objects in two threads is killed: a block it had
/// taken out of its cache (`take` counted it out of the slot) but not yet re-marked
/// (still `CACHED`, or `TAKING`) is then "no object" for `check` and `reclaim_dead` (by
/// its tag) but a live allocation for `stats` (by the table). `stats().live_allocations`
/// then drops by more than `reclaim_dead` says it freed, and `stats` and `check` disagree
/// on how many blocks are cached.
#[test]
fn rv2_killed_mid_take_stats_and_reclaim_disagree() {
    let _serial = forking();
    let global = Arena::global();
    global.reclaim_dead().unwrap();
    let mut bad = Vec::new();
    for run in 0..15 {
        let mut child = Process::start(|| -> u8 {
            for _ in 0..2 {
                std::thread::spawn(|| loop {
                    let v: Vec<_> = (0..10u64).map(|i| RawValue::new(i).unwrap()).collect();
                    drop(v);
                });
            }
            std::thread::sleep(Duration::from_secs(30));
            0
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(30 + run * 7));
        child.kill().unwrap();
        let _ = child.join_timeout(PATIENCE);
        let s0 = global.stats().unwrap();
        let seen = cached_seen_by_a_child();
        let r = global.reclaim_dead().unwrap();
        let s1 = global.stats().unwrap();
        let dropped = s0.live_allocations - s1.live_allocations;
        if dropped != r.objects || s0.cached_blocks != seen as u64 {
            bad.push((run, dropped, r.objects, s0.cached_blocks, seen));
        }
    }
    assert!(
        bad.is_empty(),
        "(run, live_allocations dropped by, reclaim_dead objects, stats cached, check cached): \
         {bad:?}"
    );
}

/// Fills a 64 KiB private arena with 112-byte arrays, drops them (the first ones stay in
/// this process's cache, up to a 16th of the capacity) and creates one named array that
/// needs that memory; `flush` says whether `stats()` (which gives the cache back) runs
/// first.
fn big_named_after_a_fill(flush: bool) -> shared_runtime::Result<()> {
    use shared_runtime::RawArray;
    let arena = Arena::with_capacity(1 << 16).unwrap();
    drop(RawValue::new_in(&arena, 0u64).unwrap());
    let mut held = Vec::new();
    while let Ok(a) = RawArray::<u8>::zeroed_in(&arena, 112) {
        held.push(a);
    }
    let n = held.len();
    drop(held);
    if flush {
        arena.stats().unwrap();
    }
    let data = vec![7u8; n * 128 - 1024];
    arena.create::<RawArray<u8>>("big", &data).map(drop)
}

/// The round-1 fix (an allocation that finds the arena full gives this process's cache
/// back and retries) is only in `alloc_marked`: named objects are allocated by the
/// registry with `Heap::alloc` directly, so creating a named object still fails with
/// `OutOfMemory` while this process's own cache holds the memory it needs.
#[test]
fn rv2_named_create_out_of_memory_while_own_cache_holds_it() {
    let _serial = forking();
    let control = big_named_after_a_fill(true);
    assert!(
        control.is_ok(),
        "control: fits once the cache is given back: {control:?}"
    );
    let r = big_named_after_a_fill(false);
    assert!(
        r.is_ok(),
        "no object is alive, yet creating a named array failed while this process's own \
         cache held the memory: {r:?}"
    );
}
