//! Object benchmarks: allocating and freeing shared values and locks, filling an arena with
//! locked values, zeroed arrays, and bulk copies in and out of shared arrays against a
//! plain `memcpy`.
//!
//! Run with
//! `cargo bench -p shared-runtime --bench objects -- --warm-up-time 1 --measurement-time 3`.
//! Before the timed groups it prints the arena bytes each kind of object takes and a
//! one-shot timing of 1 000 000 locked values. See `docs/benchmarks.md` for results.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shared_runtime::{synchronized, Arena, Array, Lock, RLock, RawArray, RawValue, Value};

/// A fresh arena big enough for a million locked values (the mapping is sparse).
fn fresh_arena() -> Arena {
    Arena::with_capacity(1 << 30).unwrap()
}

/// Arena bytes (block headers included) per object made by `make`, over 1 000 objects.
fn bytes_per<T>(make: impl Fn(&Arena) -> T) -> f64 {
    const N: usize = 1000;
    let arena = fresh_arena();
    let before = arena.stats().unwrap().bytes_in_use;
    let objects: Vec<T> = (0..N).map(|_| make(&arena)).collect();
    let after = arena.stats().unwrap().bytes_in_use;
    drop(objects);
    (after - before) as f64 / N as f64
}

/// Sizes, and a one-shot run of the 1 000 000-locked-values target, printed before the
/// timed groups.
fn report(_c: &mut Criterion) {
    println!("arena bytes per object (bytes_in_use delta, headers included):");
    let sizes = [
        ("Lock", bytes_per(|a| Lock::new_in(a).unwrap())),
        ("RLock", bytes_per(|a| RLock::new_in(a).unwrap())),
        (
            "RawValue<u8>",
            bytes_per(|a| RawValue::new_in(a, 0u8).unwrap()),
        ),
        (
            "RawValue<i32>",
            bytes_per(|a| RawValue::new_in(a, 0i32).unwrap()),
        ),
        (
            "RawValue<u64>",
            bytes_per(|a| RawValue::new_in(a, 0u64).unwrap()),
        ),
        (
            "RawValue<[u64; 8]>",
            bytes_per(|a| RawValue::new_in(a, [0u64; 8]).unwrap()),
        ),
        (
            "Value<i32> (1 block)",
            bytes_per(|a| Value::new_in(a, 0i32).unwrap()),
        ),
        ("Value<i32> (2 blocks)", bytes_per(|a| two_blocks(a, 0i32))),
        (
            "Value<u64> (1 block)",
            bytes_per(|a| Value::new_in(a, 0u64).unwrap()),
        ),
    ];
    for (name, bytes) in sizes {
        println!("  {name:<20} {bytes:>6.1} B");
    }

    const MILLION: u32 = 1_000_000;
    let rounds = (1..=3).flat_map(|round| [(round, "1 block"), (round, "2 blocks")]);
    for (round, form) in rounds {
        let arena = fresh_arena();
        let start = Instant::now();
        let values: Vec<Value<i32>> = (0..MILLION)
            .map(|i| match form {
                "1 block" => Value::new_in(&arena, i as i32).unwrap(),
                _ => two_blocks(&arena, i as i32),
            })
            .collect();
        let alloc = start.elapsed();
        let in_use = arena.stats().unwrap().bytes_in_use;
        let start = Instant::now();
        drop(values);
        let free = start.elapsed();
        println!(
            "1M locked Value<i32> ({form}) in a fresh arena, round {round}: alloc {:.1} ns/value, \
             free {:.1} ns/value, arena bytes in use {:.1} MiB",
            alloc.as_nanos() as f64 / f64::from(MILLION),
            free.as_nanos() as f64 / f64::from(MILLION),
            in_use as f64 / f64::from(1u32 << 20),
        );
    }
}

/// A `Value` in two blocks (a raw value, then a lock of its own): the layout every
/// unnamed `Value` had before they became one block.
fn two_blocks<T: shared_runtime::SharedType>(arena: &Arena, v: T) -> Value<T> {
    synchronized(RawValue::new_in(arena, v).unwrap(), None).unwrap()
}

fn alloc_free(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_free");
    g.bench_function("Value<i32> (global arena)", |b| {
        b.iter(|| Value::new(black_box(1i32)).unwrap())
    });
    g.bench_function("Value<i32> in 2 blocks (global arena)", |b| {
        b.iter(|| two_blocks(Arena::global(), black_box(1i32)))
    });
    g.bench_function("RawValue<i32> (global arena)", |b| {
        b.iter(|| RawValue::new(black_box(1i32)).unwrap())
    });
    g.bench_function("Lock (global arena)", |b| b.iter(|| Lock::new().unwrap()));
    let private = fresh_arena();
    g.bench_function("RawValue<i32> (private arena)", |b| {
        b.iter(|| RawValue::new_in(&private, black_box(1i32)).unwrap())
    });
    g.bench_function("Box<i32> (reference)", |b| {
        b.iter(|| Box::new(black_box(1i32)))
    });
    // Every handle keeps its block through an `Arc` of about this size: the part of a
    // `RawValue`'s cost that is not the arena's.
    g.bench_function("Arc<[u64; 13]> (reference: a handle's own Arc)", |b| {
        b.iter(|| std::sync::Arc::new(black_box([0u64; 13])))
    });
    g.finish();
}

fn fill_arena(c: &mut Criterion) {
    const N: u64 = 100_000;
    let mut g = c.benchmark_group("fill_fresh_arena");
    g.throughput(Throughput::Elements(N)).sample_size(20);
    g.bench_function("100k Value<i32> alloc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let arena = fresh_arena();
                let start = Instant::now();
                let values: Vec<Value<i32>> = (0..N)
                    .map(|i| Value::new_in(&arena, i as i32).unwrap())
                    .collect();
                total += start.elapsed();
                drop(values);
            }
            total
        })
    });
    g.bench_function("100k RawValue<i32> alloc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let arena = fresh_arena();
                let start = Instant::now();
                let values: Vec<RawValue<i32>> = (0..N)
                    .map(|i| RawValue::new_in(&arena, i as i32).unwrap())
                    .collect();
                total += start.elapsed();
                drop(values);
            }
            total
        })
    });
    g.finish();
}

fn zeroed(c: &mut Criterion) {
    const N: usize = 10_000_000;
    let mut g = c.benchmark_group("zeroed_10M_f64");
    g.sample_size(20);
    // Timed one by one, each array freed before the next (untimed): a batch of thousands of
    // 80 MB arrays alive at once would not fit the global arena.
    g.bench_function("RawArray::zeroed (alloc only)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let a = black_box(RawArray::<f64>::zeroed(N).unwrap());
                total += t.elapsed();
                drop(a);
            }
            total
        })
    });
    g.bench_function("RawArray::zeroed + free", |b| {
        b.iter(|| RawArray::<f64>::zeroed(N).unwrap())
    });
    g.bench_function("RawArray::zeroed + first touch of every page + free", |b| {
        b.iter(|| {
            let a = RawArray::<f64>::zeroed(N).unwrap();
            for i in (0..N).step_by(512) {
                a.set(i, 1.0);
            }
            a
        })
    });
    g.bench_function("vec![0.0; N] + free (reference)", |b| {
        b.iter(|| vec![0.0f64; N])
    });
    g.bench_function(
        "vec![0.0; N] + first touch of every page + free (reference)",
        |b| {
            b.iter(|| {
                let mut v = vec![0.0f64; N];
                for i in (0..N).step_by(512) {
                    v[i] = 1.0;
                }
                black_box(v)
            })
        },
    );
    g.finish();
}

fn bulk(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let src: Vec<f64> = (0..N).map(|i| i as f64).collect();
    let raw = RawArray::from_slice(&src).unwrap();
    let locked = Array::from_slice(&src).unwrap();
    let mut dst = vec![0.0f64; N];

    let mut g = c.benchmark_group("bulk_1M_f64");
    g.throughput(Throughput::Bytes((N * 8) as u64));
    g.bench_function("memcpy: copy_from_slice (reference)", |b| {
        b.iter(|| black_box(&mut dst[..]).copy_from_slice(black_box(&src)))
    });
    g.bench_function("Vec::to_vec (alloc + memcpy, reference)", |b| {
        b.iter(|| black_box(&src).to_vec())
    });
    g.bench_function("RawArray::to_vec", |b| b.iter(|| black_box(&raw).to_vec()));
    g.bench_function("RawArray::write", |b| {
        b.iter(|| black_box(&raw).write(0, black_box(&src)))
    });
    g.bench_function("Array::to_vec (locked)", |b| {
        b.iter(|| black_box(&locked).to_vec())
    });
    g.bench_function("Array::write (locked)", |b| {
        b.iter(|| black_box(&locked).write(0, black_box(&src)))
    });
    g.bench_function("Array::lock + copy_from_slice (locked)", |b| {
        b.iter(|| {
            black_box(&locked)
                .lock()
                .unwrap()
                .copy_from_slice(black_box(&src))
        })
    });
    g.finish();
    assert_eq!(raw.read(N - 1..), [(N - 1) as f64]);
}

criterion_group!(benches, report, alloc_free, fill_arena, zeroed, bulk);
criterion_main!(benches);
