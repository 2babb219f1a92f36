//! Lock benchmarks: this crate's `Lock`/`RLock`/`Value` against glibc process-shared
//! pthread mutexes set up by hand, a bare compare-and-swap (the floor) and
//! `std::sync::Mutex`, all in one run so that the ratios between them are meaningful.
//!
//! Run with
//! `cargo bench -p shared-runtime --bench locks -- --warm-up-time 1 --measurement-time 3`.
//! See `docs/benchmarks.md` for results.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{run_processes, CasLock, PthreadBaseline};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use shared_runtime::{synchronized, Lock, RLock, RawValue, Value};

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended_increment");

    let lock = Lock::new().unwrap();
    let v = RawValue::new(0u64).unwrap();
    g.bench_function("Lock+RawValue", |b| {
        b.iter(|| {
            let _held = lock.lock().unwrap();
            v.set(v.get() + 1);
        })
    });

    let rlock = RLock::new().unwrap();
    g.bench_function("RLock+RawValue", |b| {
        b.iter(|| {
            let _held = rlock.lock().unwrap();
            v.set(v.get() + 1);
        })
    });

    let value = Value::new(0u64).unwrap();
    g.bench_function("Value::update", |b| b.iter(|| value.update(|x| *x += 1)));

    // The same with the value and its lock in two blocks (as `synchronized(raw, None)`
    // makes it), for the one-block layout's gain.
    let split = synchronized(RawValue::new(0u64).unwrap(), None).unwrap();
    g.bench_function("Value::update (2 blocks)", |b| {
        b.iter(|| split.update(|x| *x += 1))
    });

    let locked_value = Value::with_lock(0u64, Lock::new().unwrap()).unwrap();
    g.bench_function("Value<Lock>::update", |b| {
        b.iter(|| locked_value.update(|x| *x += 1))
    });

    g.bench_function("Value::lock (guard)", |b| {
        b.iter(|| *value.lock().unwrap() += 1)
    });

    let robust = PthreadBaseline::new(true, libc::PTHREAD_MUTEX_NORMAL);
    g.bench_function("pthread robust pshared", |b| b.iter(|| robust.increment()));

    let robust_rec = PthreadBaseline::new(true, libc::PTHREAD_MUTEX_RECURSIVE);
    g.bench_function("pthread robust pshared recursive", |b| {
        b.iter(|| robust_rec.increment())
    });

    let robust_err = PthreadBaseline::new(true, libc::PTHREAD_MUTEX_ERRORCHECK);
    g.bench_function("pthread robust pshared errorcheck", |b| {
        b.iter(|| robust_err.increment())
    });

    let plain = PthreadBaseline::new(false, libc::PTHREAD_MUTEX_NORMAL);
    g.bench_function("pthread plain pshared", |b| b.iter(|| plain.increment()));

    let cas = CasLock::new();
    g.bench_function("bare CAS + store", |b| {
        b.iter(|| black_box(&cas).increment())
    });

    let std_mutex = std::sync::Mutex::new(0u64);
    g.bench_function("std::sync::Mutex", |b| {
        b.iter(|| *black_box(&std_mutex).lock().unwrap() += 1)
    });

    g.finish();
}

/// Runs `work(n)` in the parent and in a forked child at the same time and returns the
/// wall time from the moment both are ready until both are done, scaled to `iters`
/// increments. Fork and exit are outside the timed span.
fn two_processes(iters: u64, work: &dyn Fn(u64)) -> Duration {
    let (run, done) = run_processes(2, iters, &|n| {
        work(n);
        Duration::ZERO
    });
    run.wall.mul_f64(iters as f64 / done as f64)
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_2proc_increment");
    g.sampling_mode(SamplingMode::Flat).sample_size(30);

    let value = Value::new(0u64).unwrap();
    g.bench_function("Value::update", |b| {
        b.iter_custom(|iters| {
            let before = value.get();
            let t = two_processes(iters, &|n| {
                for _ in 0..n {
                    value.update(|x| *x += 1);
                }
            });
            assert_eq!(value.get() - before, 2 * iters.div_ceil(2).max(1));
            t
        })
    });

    let robust = PthreadBaseline::new(true, libc::PTHREAD_MUTEX_NORMAL);
    let robust = &robust;
    g.bench_function("pthread robust pshared", |b| {
        b.iter_custom(|iters| {
            let before = robust.counter();
            let t = two_processes(iters, &|n| {
                for _ in 0..n {
                    robust.increment();
                }
            });
            assert_eq!(robust.counter() - before, 2 * iters.div_ceil(2).max(1));
            t
        })
    });

    g.finish();
}

fn reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("get");
    let v = Value::new(7u64).unwrap();
    let r = RawValue::new(7u64).unwrap();
    let v8 = Value::new([7u64; 8]).unwrap();
    let r8 = RawValue::new([7u64; 8]).unwrap();
    g.bench_function(BenchmarkId::new("Value::get", "u64"), |b| {
        b.iter(|| black_box(&v).get())
    });
    g.bench_function(BenchmarkId::new("RawValue::get", "u64"), |b| {
        b.iter(|| black_box(&r).get())
    });
    g.bench_function(BenchmarkId::new("Value::get", "[u64; 8]"), |b| {
        b.iter(|| black_box(&v8).get())
    });
    g.bench_function(BenchmarkId::new("RawValue::get", "[u64; 8]"), |b| {
        b.iter(|| black_box(&r8).get())
    });
    g.finish();
}

criterion_group!(benches, uncontended, contended, reads);
criterion_main!(benches);
