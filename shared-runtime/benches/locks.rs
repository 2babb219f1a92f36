//! Lock benchmarks: this crate's `Lock`/`RLock`/`Value` against glibc process-shared
//! pthread mutexes set up by hand, a bare compare-and-swap (the floor) and
//! `std::sync::Mutex`, all in one run so that the ratios between them are meaningful.
//!
//! Run with
//! `cargo bench -p shared-runtime --bench locks -- --warm-up-time 1 --measurement-time 3`.
//! See `docs/benchmarks.md` for results.

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use shared_runtime::{synchronized, Lock, Process, RLock, RawValue, Value};

/// What the hand-made pthread baselines put in their shared mapping: a mutex and the
/// counter it guards.
#[repr(C)]
struct PthreadShared {
    mutex: libc::pthread_mutex_t,
    counter: AtomicU64,
}

/// A glibc process-shared pthread mutex (robust or not) in its own `MAP_SHARED` anonymous
/// mapping, so a forked child shares it.
struct PthreadBaseline {
    shared: *mut PthreadShared,
}

impl PthreadBaseline {
    fn new(robust: bool, kind: libc::c_int) -> Self {
        let len = std::mem::size_of::<PthreadShared>();
        // SAFETY: an anonymous shared mapping of `len` bytes; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap failed");
        let shared = p.cast::<PthreadShared>();
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is initialised by pthread_mutexattr_init before any other use and
        // destroyed after; `shared` points to a fresh, zeroed, page-aligned mapping large
        // enough for a PthreadShared (zero bytes are a valid AtomicU64), used by no one yet.
        unsafe {
            let a = attr.as_mut_ptr();
            assert_eq!(libc::pthread_mutexattr_init(a), 0);
            assert_eq!(libc::pthread_mutexattr_settype(a, kind), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            if robust {
                assert_eq!(
                    libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST),
                    0
                );
            }
            assert_eq!(
                libc::pthread_mutex_init(std::ptr::addr_of_mut!((*shared).mutex), a),
                0
            );
            libc::pthread_mutexattr_destroy(a);
        }
        PthreadBaseline { shared }
    }

    /// Lock, increment the counter (relaxed load + store, as `RawValue` does), unlock.
    #[inline]
    fn increment(&self) {
        // SAFETY: the mutex was initialised in `new` and lives until `drop`; the counter is
        // only touched through atomics; this thread unlocks what it just locked.
        unsafe {
            let m = std::ptr::addr_of_mut!((*self.shared).mutex);
            let rc = libc::pthread_mutex_lock(m);
            debug_assert_eq!(rc, 0);
            let c = &(*self.shared).counter;
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            libc::pthread_mutex_unlock(m);
        }
    }

    fn counter(&self) -> u64 {
        // SAFETY: the mapping lives until `drop`; the counter is an atomic.
        unsafe { (*self.shared).counter.load(Ordering::Relaxed) }
    }
}

impl Drop for PthreadBaseline {
    fn drop(&mut self) {
        // SAFETY: the mutex is unlocked (every increment unlocks) and no child that uses it
        // is still running (every fork is joined); the mapping is ours to unmap.
        unsafe {
            libc::pthread_mutex_destroy(std::ptr::addr_of_mut!((*self.shared).mutex));
            libc::munmap(
                self.shared.cast::<libc::c_void>(),
                std::mem::size_of::<PthreadShared>(),
            );
        }
    }
}

/// The floor: take a lock word with one CAS, release it with one store.
struct CasLock {
    word: AtomicU32,
    counter: AtomicU64,
}

impl CasLock {
    #[inline]
    fn increment(&self) {
        while self
            .word
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        let c = &self.counter;
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.word.store(0, Ordering::Release);
    }
}

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

    let cas = CasLock {
        word: AtomicU32::new(0),
        counter: AtomicU64::new(0),
    };
    g.bench_function("bare CAS + store", |b| {
        b.iter(|| black_box(&cas).increment())
    });

    let std_mutex = std::sync::Mutex::new(0u64);
    g.bench_function("std::sync::Mutex", |b| {
        b.iter(|| *black_box(&std_mutex).lock().unwrap() += 1)
    });

    g.finish();
}

/// Flags the parent and a forked child synchronise on, in a `MAP_SHARED` mapping.
#[repr(C)]
struct Handshake {
    /// The child is about to start.
    ready: AtomicU32,
    /// Start.
    go: AtomicU32,
    /// The child has finished its work.
    done: AtomicU32,
}

/// An owned `MAP_SHARED` anonymous mapping holding one `T` that is valid when all zero.
struct SharedBox<T> {
    ptr: *mut T,
}

impl<T> SharedBox<T> {
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    unsafe fn zeroed() -> Self {
        // SAFETY: an anonymous shared mapping of `size_of::<T>()` bytes; nothing existing is
        // touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<T>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap failed");
        SharedBox { ptr: p.cast() }
    }
}

impl<T> std::ops::Deref for SharedBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mapping is page-aligned, zero-initialised (a valid `T` per `zeroed`'s
        // contract) and lives until `drop`; `T` is only ever shared, never mutated through
        // a `&mut` here.
        unsafe { &*self.ptr }
    }
}

impl<T> Drop for SharedBox<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; no reference to it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), std::mem::size_of::<T>()) };
    }
}

impl Handshake {
    fn new() -> SharedBox<Handshake> {
        // SAFETY: all-zero atomics are valid.
        unsafe { SharedBox::zeroed() }
    }
}

/// Spins until `flag` reads `want`; panics after 30 s so a lost child cannot hang the run.
fn wait_for(flag: &AtomicU32, want: u32) {
    let start = Instant::now();
    while flag.load(Ordering::Acquire) != want {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "benchmark handshake timed out"
        );
        std::thread::yield_now();
    }
}

/// Runs `work(n)` in the parent and in a forked child at the same time and returns the
/// wall time from the moment both are ready until both are done, scaled to `iters`
/// increments. Fork and exit are outside the timed span.
fn two_processes(iters: u64, work: &dyn Fn(u64)) -> Duration {
    let n = iters.div_ceil(2).max(1);
    let hs = Handshake::new();
    let hs = &*hs;
    let elapsed = Process::scope(|s| {
        let child = s
            .start(|| {
                hs.ready.store(1, Ordering::Release);
                wait_for(&hs.go, 1);
                work(n);
                hs.done.store(1, Ordering::Release);
            })
            .unwrap();
        wait_for(&hs.ready, 1);
        let start = Instant::now();
        hs.go.store(1, Ordering::Release);
        work(n);
        wait_for(&hs.done, 1);
        let elapsed = start.elapsed();
        child.join().unwrap();
        elapsed
    });
    elapsed.mul_f64(iters as f64 / (2 * n) as f64)
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

    let split = synchronized(RawValue::new(0u64).unwrap(), None).unwrap();
    // Lock and value certainly in two lines: a spacer block between them.
    let far_lock = RLock::new().unwrap();
    let _spacer = shared_runtime::RawArray::<u8>::zeroed(64).unwrap();
    let far = Value::with_lock(0u64, far_lock).unwrap();
    for (name, v) in [("1 block", &value), ("2 blocks", &split), ("2 lines", &far)] {
        let h = v.handle();
        println!(
            "Value<u64> ({name}): lock word at byte {} of its 64-byte line, value at byte {} \
             of {}",
            h.lock % 64,
            h.offset % 64,
            if h.lock / 64 == h.offset / 64 {
                "the same line"
            } else {
                "another line"
            },
        );
    }
    g.bench_function("Value::update (2 blocks)", |b| {
        b.iter_custom(|iters| {
            let before = split.get();
            let t = two_processes(iters, &|n| {
                for _ in 0..n {
                    split.update(|x| *x += 1);
                }
            });
            assert_eq!(split.get() - before, 2 * iters.div_ceil(2).max(1));
            t
        })
    });

    g.bench_function("Value::update (2 lines)", |b| {
        b.iter_custom(|iters| {
            let before = far.get();
            let t = two_processes(iters, &|n| {
                for _ in 0..n {
                    far.update(|x| *x += 1);
                }
            });
            assert_eq!(far.get() - before, 2 * iters.div_ceil(2).max(1));
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
