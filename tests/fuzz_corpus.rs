//! Replays the committed fuzz corpus of damaged segments on stable Rust.
//!
//! Every file of `fuzz/corpus/segment/` goes through the same decoder and operations as the
//! `segment` fuzz target (`tests/common/segment_driver.rs`, shared by both), in this process:
//! each must end with every operation answering `Ok` or `Err`. The ignored test
//! `write_seeds` regenerates the seed inputs from real arenas (see `fuzz/README.md`).

#[path = "common/segment_driver.rs"]
mod segment_driver;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use segment_driver::{op, Builder, Outcome, Segment};
use shared_runtime::test_hooks::{crash_after_steps, layout_for_tests};
use shared_runtime::{Arena, Process, RawArray, RawValue};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/segment")
}

#[test]
fn corpus_replays_without_findings() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the fuzz corpus {} is missing: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the fuzz corpus {} is empty",
        dir.display()
    );
    let segment = Segment::new();
    let started = Instant::now();
    let mut total = Outcome::default();
    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        match segment_driver::run_caught(&segment, &data) {
            Ok(outcome) => total += outcome,
            Err(panic) => failures.push(format!("{}: {panic}", file.display())),
        }
    }
    let took = started.elapsed();
    eprintln!("{} inputs in {took:?}: {total:?}", files.len());
    assert!(failures.is_empty(), "findings:\n{}", failures.join("\n"));
    // The corpus reaches both sides: segments that open and ones refused, operations that
    // succeed and ones that report damage.
    assert!(total.opened > 0 && total.refused > 0, "{total:?}");
    assert!(total.ok > 0 && total.err > 0, "{total:?}");
    assert!(total.ok + total.err >= files.len() as u64, "{total:?}");
    assert!(took < Duration::from_secs(20), "the replay took {took:?}");
}

/// The process id that is never alive: above Linux's `PID_MAX_LIMIT`, so `kill(pid, 0)`
/// answers `ESRCH` on every machine (seeds must not depend on which pids run where).
const DEAD_PID: u32 = 0x7fff_fff0;
/// A thread identity that names no thread, for lock words left by a killed holder.
const DEAD_HOLDER: u64 = 0x7fff_fff0;
/// Owner of blocks that must look owned by a live process everywhere: init.
const LIVE_PID: u32 = 1;

/// Header words the seeds rewrite (the layout of `ArenaHeader`, checked against
/// `layout_for_tests` below).
const CREATOR: std::ops::Range<usize> = 32..56;
const TOP: usize = 72;
const REBUILDING: usize = 1168;

fn read_u64(img: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(img[at..at + 8].try_into().unwrap())
}

fn write_u64(img: &mut [u8], at: usize, v: u64) {
    img[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads a named arena's bytes and makes them independent of this run: no creator (pid,
/// start time, pid namespace), a lock word naming no thread, and blocks owned by the
/// processes of this run owned by a pid that is never alive, except the payload offsets in
/// `live`, owned by init.
fn snapshot(name: &str, pids: &[u32], live: &[u64]) -> Vec<u8> {
    let (lock_at, lock_len, heap_start) = layout_for_tests();
    assert_eq!(
        (lock_at, lock_len, heap_start),
        (56, 8, 1216),
        "the header layout changed"
    );
    let mut img = std::fs::read(format!("/dev/shm/{name}")).unwrap();
    img[CREATOR].fill(0);
    if read_u64(&img, lock_at) != 0 {
        write_u64(&mut img, lock_at, DEAD_HOLDER);
    }
    let (mut b, top) = (heap_start as usize, read_u64(&img, TOP) as usize);
    assert_eq!(read_u64(&img, 64), heap_start);
    while b < top {
        let word = read_u64(&img, b);
        let size = (word & !15) as usize;
        if size < 32 {
            break; // a chain cut by a crash: leave the rest as it is
        }
        let owner = read_u64(&img, b + 8) as u32;
        if word & 1 != 0 && pids.contains(&owner) {
            let pid = if live.contains(&(b as u64 + 16)) {
                LIVE_PID
            } else {
                DEAD_PID
            };
            img[b + 8..b + 12].copy_from_slice(&pid.to_le_bytes());
        }
        b += size;
    }
    img
}

/// A seed: the image as pokes, then `script`.
fn seed(img: &[u8], script: impl FnOnce(Builder) -> Builder) -> Vec<u8> {
    let dense = layout_for_tests().2 as usize + 64;
    script(Builder::image(0, img, dense)).build()
}

/// A script that visits every operation once.
fn tour(b: Builder) -> Builder {
    let name = |b: Builder, i: u8| b.u8(i); // an index into NAME_TABLE
    let b = b.op(op::OPEN).u8(0).op(op::INFO).u8(0).op(op::CHECK).u8(0);
    let b = b.op(op::STATS).u8(0).op(op::NAMES).u8(0);
    let b = b.op(op::ALLOC).u8(0).u16(100).op(op::ALLOC).u8(0).u16(5000);
    let b = b.op(op::ALLOC_BIG).u8(0).u32(300_000);
    let b = b.op(op::ALLOC_ALIGNED).u8(0).u8(0).u8(3);
    let b = b.op(op::ALLOC_ALIGNED).u8(0).u8(1).u8(1);
    let b = b.op(op::FREE).u8(0);
    let b = name(b.op(op::CREATE).u8(0), 0).u8(7);
    let b = name(b.op(op::OPEN_VALUE).u8(0), 0);
    let b = name(b.op(op::FIND_OR_CREATE).u8(0), 7).u8(1);
    let b = name(b.op(op::CREATE_ARRAY).u8(0), 14).u8(5);
    let b = name(b.op(op::OPEN_ARRAY).u8(0), 14);
    let b = name(b.op(op::FIND_OR_CREATE_ARRAY).u8(0), 15).u8(3);
    let b = name(b.op(op::OPEN_OTHER).u8(0), 0).u8(0);
    let b = name(b.op(op::OPEN_OTHER).u8(0), 14).u8(1);
    let b = b.op(op::HANDLE).u8(0).u8(0);
    let b = b.op(op::INTO_HANDLE).u8(0).op(op::OPEN_HANDLE).u8(0).u8(0);
    let b = b
        .op(op::INTO_OFFSET)
        .u8(0)
        .op(op::FROM_OFFSET)
        .u8(0)
        .u8(0)
        .u16(100);
    let b = b.op(op::FORGE_HANDLE).u8(0).u32(1232).u16(1).u8(1);
    let text = b"shr1:1:4d0:1:0:vb";
    let b = b.op(op::HANDLE_TEXT).u8(0).u8(text.len() as u8).raw(text);
    let b = b.op(op::FROM_RAW_OFFSET).u8(0).u32(1232).u16(8);
    let b = b
        .op(op::RECLAIM)
        .u8(0)
        .op(op::OPEN)
        .u8(0)
        .op(op::CHECK)
        .u8(1);
    let b = name(b.op(op::REMOVE).u8(1), 9).op(op::NAMES).u8(1);
    let b = b
        .op(op::TOUCH)
        .u8(0)
        .op(op::FREE_ALIGNED)
        .u8(0)
        .op(op::FREE_ALIGNED)
        .u8(1);
    let b = b.op(op::DROP_ALL).op(op::CHECK).u8(0).op(op::CLOSE).u8(1);
    // Another process damages the heap's end under an open arena.
    b.op(op::POKE_WORD)
        .u16(9)
        .u64(3)
        .op(op::CHECK)
        .u8(0)
        .op(op::STATS)
        .u8(0)
}

fn unique(tag: &str) -> String {
    format!("shr-seed-{}-{tag}", std::process::id())
}

/// Regenerates the seed inputs in `fuzz/corpus/segment/` from real arenas:
/// `cargo test -p shared-runtime --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn write_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let me = std::process::id();
    let put = |file: &str, data: Vec<u8>| std::fs::write(dir.join(file), data).unwrap();

    // An empty arena.
    let name = unique("empty");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let img = snapshot(&name, &[me], &[]);
    put("seed-empty", seed(&img, tour));
    // A small one, in another length class.
    drop(arena);
    let arena = Arena::create_segment(&name, 4096).unwrap();
    let img = snapshot(&name, &[me], &[]);
    put(
        "seed-small-tour",
        tour(Builder::image(5, &img, img.len())).build(),
    );
    drop(arena);

    // Objects, with free blocks of many sizes in the bins; some owned by a live process,
    // some left by a dead one, some given up (detached) and waiting for an owner.
    let name = unique("bins");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let objects: Vec<_> = (0..40)
        .map(|i| RawArray::<u8>::zeroed_in(&arena, 100 * i + 1).unwrap())
        .collect();
    let objects: Vec<_> = objects.into_iter().step_by(2).collect();
    let detached = RawValue::new_in(&arena, 5u64)
        .unwrap()
        .into_offset()
        .unwrap();
    let live: Vec<u64> = objects.iter().step_by(3).map(|o| o.offset()).collect();
    let img = snapshot(&name, &[me], &live);
    put("seed-bins", seed(&img, tour));
    let take = |b: Builder| {
        let b = b.op(op::OPEN).u8(0).op(op::FROM_RAW_OFFSET).u8(0);
        let b = b.u32(detached as u32).u16(8).op(op::RECLAIM).u8(0);
        let b = b.op(op::ALLOC).u8(0).u16(450).op(op::ALLOC).u8(0).u16(2000);
        b.op(op::CHECK).u8(0).op(op::DROP_ALL).op(op::CHECK).u8(0)
    };
    put("seed-bins-take", seed(&img, take));
    // Another process claims, gives up or hands to the directory blocks this one owns;
    // then writes this thread's identity into the lock word.
    let owners = |b: Builder| {
        let mut b = b.op(op::OPEN).u8(0);
        for who in 0..5 {
            b = b.op(op::ALLOC).u8(0).u16(40 * who);
            b = b.op(op::POKE_OWNER).u8(who as u8).u8(who as u8);
        }
        let b = b
            .op(op::INTO_OFFSET)
            .u8(0)
            .op(op::FROM_OFFSET)
            .u8(0)
            .u8(0)
            .u16(40);
        let b = b.op(op::HANDLE).u8(1).u8(0).op(op::INTO_OFFSET_VIEW).u8(0);
        let b = b.op(op::FREE).u8(2).op(op::RECLAIM).u8(0).op(op::DROP_ALL);
        let b = b
            .op(op::CHECK)
            .u8(0)
            .op(op::POKE_LOCK_SELF)
            .op(op::STATS)
            .u8(0);
        b.op(op::CHECK).u8(0)
    };
    put("seed-bins-owners", seed(&img, owners));
    // A rebuild (flagged as interrupted) that finds the last block free.
    let mut broken = img.clone();
    let (mut b, top) = (layout_for_tests().2 as usize, read_u64(&img, TOP) as usize);
    let mut last = b;
    while b < top {
        last = b;
        b += (read_u64(&img, b) & !15) as usize;
    }
    broken[last] &= !1;
    write_u64(&mut broken, REBUILDING, 1);
    put("seed-rebuild-free-tail", seed(&broken, tour));
    drop(objects);

    // Named objects, one removed (its blocks are free again).
    let name = unique("named");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    for i in 0..10u64 {
        arena.create::<RawValue<u64>>(&format!("o{i}"), i).unwrap();
    }
    arena
        .create::<RawArray<u32>>("xs", &[1, 2, 3, 4, 5])
        .unwrap();
    arena.create::<RawValue<f64>>("config", 1.5).unwrap();
    arena.remove("o5").unwrap();
    let o3 = arena.open::<RawValue<u64>>("o3").unwrap().offset();
    let img = snapshot(&name, &[me], &[]);
    put("seed-named", seed(&img, tour));
    let lookups = |b: Builder| {
        let b = b.op(op::OPEN).u8(0).op(op::NAMES).u8(0);
        let b = b
            .op(op::OPEN_VALUE)
            .u8(0)
            .u8(7)
            .op(op::OPEN_ARRAY)
            .u8(0)
            .u8(14);
        let b = b.op(op::OPEN_OTHER).u8(0).u8(3).u8(0);
        let b = b.op(op::FORGE_HANDLE).u8(0).u32(o3 as u32).u16(1).u8(0);
        let b = b
            .op(op::REMOVE)
            .u8(0)
            .u8(4)
            .op(op::CREATE)
            .u8(0)
            .u8(9)
            .u8(5);
        b.op(op::CHECK).u8(0)
    };
    put("seed-named-lookups", seed(&img, lookups));
    drop(arena);

    // A free run large enough to have had its pages returned to the system.
    let name = unique("punched");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let a = RawValue::new_in(&arena, 1u64).unwrap();
    let big = RawArray::<u8>::zeroed_in(&arena, 600_000).unwrap();
    let b = RawValue::new_in(&arena, 2u64).unwrap();
    drop(big);
    let img = snapshot(&name, &[me], &[a.offset()]);
    put("seed-punched", seed(&img, tour));
    let reuse = |b: Builder| {
        let b = b.op(op::OPEN).u8(0).op(op::ALLOC_BIG).u8(0).u32(400_000);
        let b = b
            .op(op::ALLOC_ALIGNED)
            .u8(0)
            .u8(1)
            .u8(1)
            .op(op::CHECK)
            .u8(0);
        b.op(op::DROP_ALL).op(op::CHECK).u8(0)
    };
    put("seed-punched-reuse", seed(&img, reuse));
    drop((a, b, arena));

    // A process killed in the middle of allocator operations: the lock word names a dead
    // holder, and the next operation rebuilds the allocator from a half-done state.
    for step in [2, 5, 9, 14, 20, 27] {
        let name = unique(&format!("crash{step}"));
        let arena = Arena::create_segment(&name, 1 << 20).unwrap();
        let keep = RawArray::<u8>::zeroed_in(&arena, 700).unwrap();
        arena.create::<RawValue<u64>>("hits", 3).unwrap();
        let arena2 = arena.clone();
        let child = Process::start(move || {
            let x = RawArray::<u8>::zeroed_in(&arena2, 100).unwrap();
            let y = RawArray::<u8>::zeroed_in(&arena2, 5000).unwrap();
            crash_after_steps(step);
            drop(x);
            let z = RawArray::<u8>::zeroed_in(&arena2, 300_000).unwrap();
            arena2.create::<RawValue<u64>>("a", 1).unwrap();
            drop((y, z));
            crash_after_steps(0);
        })
        .unwrap();
        let pid = child.pid() as u32;
        if child.join().is_ok() {
            continue; // the workload has fewer steps
        }
        let img = snapshot(&name, &[me, pid], &[keep.offset()]);
        put(&format!("seed-crashed-{step}"), seed(&img, tour));
        drop((keep, arena));
    }

    // Not arenas: another program's segment, a truncated arena, an empty file.
    let junk: Vec<u8> = (0..2000u32).map(|i| (i * 7 + 3) as u8).collect();
    put("seed-junk", Builder::new(0, &junk).op(op::OPEN).build());
    let name = unique("trunc");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let img = snapshot(&name, &[me], &[]);
    let mut b = Builder::image(1, &img, layout_for_tests().2 as usize);
    b = b.op(op::OPEN).u8(0);
    put("seed-wrong-length", b.build());
    put("seed-empty-file", Builder::new(7, &[]).op(op::OPEN).build());
    drop(arena);
}
