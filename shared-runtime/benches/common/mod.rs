//! Baselines and process plumbing shared by the benchmarks: glibc process-shared pthread
//! mutexes set up by hand, the bare compare-and-swap floor, shared flags, and a runner that
//! starts N processes on one lock with fork and exit outside the timed span.

#![allow(dead_code)] // each benchmark uses its own part

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shared_runtime::Process;

/// What the hand-made pthread baselines put in their shared mapping: a mutex and the
/// counter it guards (in the mutex's cache line: the mutex is 40 bytes).
#[repr(C, align(64))]
pub struct PthreadShared {
    mutex: libc::pthread_mutex_t,
    counter: AtomicU64,
}

/// A glibc process-shared pthread mutex (robust or not) in its own `MAP_SHARED` anonymous
/// mapping, so a forked child shares it.
pub struct PthreadBaseline {
    shared: SharedBox<PthreadShared>,
}

impl PthreadBaseline {
    /// `kind` is a `PTHREAD_MUTEX_*` type.
    pub fn new(robust: bool, kind: libc::c_int) -> Self {
        // SAFETY: all-zero bytes are a valid (if uninitialised) mutex and counter; the
        // mutex is initialised below before any use.
        let shared = unsafe { SharedBox::<PthreadShared>::zeroed() };
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is initialised by pthread_mutexattr_init before any other use and
        // destroyed after; the mutex lies in a fresh, zeroed, page-aligned mapping used by
        // no one yet.
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
            assert_eq!(libc::pthread_mutex_init(shared.mutex_ptr(), a), 0);
            libc::pthread_mutexattr_destroy(a);
        }
        PthreadBaseline { shared }
    }

    /// Locks the mutex, runs `f` on the counter (relaxed load + store, as `RawValue`
    /// does), unlocks.
    #[inline]
    pub fn with_lock<R>(&self, f: impl FnOnce(&AtomicU64) -> R) -> R {
        let m = self.shared.mutex_ptr();
        // SAFETY: the mutex was initialised in `new` and lives until `drop`; this thread
        // unlocks what it just locked.
        let rc = unsafe { libc::pthread_mutex_lock(m) };
        debug_assert_eq!(rc, 0);
        let r = f(&self.shared.counter);
        // SAFETY: as above: this thread holds the mutex.
        unsafe { libc::pthread_mutex_unlock(m) };
        r
    }

    /// Lock, increment the counter, unlock.
    #[inline]
    pub fn increment(&self) {
        self.with_lock(|c| c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed));
    }

    /// Lock (timing how long that took), increment, unlock; the wait.
    #[inline]
    pub fn timed_increment(&self) -> Duration {
        let start = Instant::now();
        self.with_lock(|c| {
            let waited = start.elapsed();
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            waited
        })
    }

    pub fn counter(&self) -> u64 {
        self.shared.counter.load(Ordering::Relaxed)
    }
}

impl SharedBox<PthreadShared> {
    fn mutex_ptr(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: `ptr` points to a live mapping holding a PthreadShared; only the field's
        // address is taken.
        unsafe { std::ptr::addr_of_mut!((*self.ptr).mutex) }
    }
}

impl Drop for PthreadBaseline {
    fn drop(&mut self) {
        // SAFETY: the mutex is unlocked (every increment unlocks) and no child that uses it
        // is still running (every fork is joined). The mapping is unmapped by SharedBox.
        unsafe { libc::pthread_mutex_destroy(self.shared.mutex_ptr()) };
    }
}

/// The floor: take a lock word with one CAS, release it with one store.
#[derive(Default)]
pub struct CasLock {
    word: AtomicU32,
    counter: AtomicU64,
}

impl CasLock {
    pub fn new() -> Self {
        CasLock {
            word: AtomicU32::new(0),
            counter: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn increment(&self) {
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

/// An owned `MAP_SHARED` anonymous mapping holding one `T` that is valid when all zero.
pub struct SharedBox<T> {
    ptr: *mut T,
}

impl<T> SharedBox<T> {
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    pub unsafe fn zeroed() -> Self {
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

/// The most processes [`run_processes`] starts.
pub const MAX_PROCESSES: usize = 64;

/// Flags the processes of one run synchronise on, in a `MAP_SHARED` mapping.
#[repr(C)]
pub struct Flags {
    /// Processes ready to start.
    ready: AtomicU32,
    /// Start.
    go: AtomicU32,
    /// Processes that have finished their work.
    done: AtomicU32,
    /// Per process: the longest single wait it saw, in nanoseconds.
    worst: [AtomicU64; MAX_PROCESSES],
}

/// Spins (yielding) until `flag` reads at least `want`; panics after 30 s so a lost child
/// cannot hang the run.
fn wait_at_least(flag: &AtomicU32, want: u32, nap: bool) {
    let start = Instant::now();
    while flag.load(Ordering::Acquire) < want {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "benchmark handshake timed out"
        );
        if nap {
            std::thread::sleep(Duration::from_micros(50));
        } else {
            std::thread::yield_now();
        }
    }
}

/// What one run of [`run_processes`] measured.
pub struct Run {
    /// From the moment all were ready until all were done.
    pub wall: Duration,
    /// The longest single wait any process reported.
    pub worst: Duration,
}

/// Runs `work(n, i)` in `procs` processes at once (the caller's and `procs - 1` forked
/// children; `i` is the process's index), each with `n` of the `total` iterations
/// (`total` rounded up to a multiple of `procs`). `work` returns the longest single wait
/// it saw (or zero). Fork and exit are outside the timed span. Returns the run and the
/// iterations done.
pub fn run_processes(procs: usize, total: u64, work: &dyn Fn(u64) -> Duration) -> (Run, u64) {
    assert!((1..=MAX_PROCESSES).contains(&procs));
    let n = total.div_ceil(procs as u64).max(1);
    // SAFETY: all-zero atomics are valid.
    let flags = unsafe { SharedBox::<Flags>::zeroed() };
    let flags = &*flags;
    let report = |i: usize, waited: Duration| {
        flags.worst[i].store(waited.as_nanos() as u64, Ordering::Relaxed);
        flags.done.fetch_add(1, Ordering::AcqRel);
    };
    let wall = Process::scope(|s| {
        let children: Vec<_> = (1..procs)
            .map(|i| {
                s.start(move || {
                    flags.ready.fetch_add(1, Ordering::AcqRel);
                    wait_at_least(&flags.go, 1, false);
                    report(i, work(n));
                })
                .unwrap()
            })
            .collect();
        wait_at_least(&flags.ready, procs as u32 - 1, false);
        let start = Instant::now();
        flags.go.store(1, Ordering::Release);
        report(0, work(n));
        // Napping, not yielding: the parent is done and must not take the CPU from those
        // still at work.
        wait_at_least(&flags.done, procs as u32, true);
        let wall = start.elapsed();
        for child in children {
            child.join().unwrap();
        }
        wall
    });
    let worst = flags.worst[..procs]
        .iter()
        .map(|w| w.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let run = Run {
        wall,
        worst: Duration::from_nanos(worst),
    };
    (run, n * procs as u64)
}

/// Restricts this process (and the children it forks afterwards) to at most `cpus` of the
/// CPUs it may run on, so that "N processes on 2 cores" means that on any machine; the
/// previous set, for [`restore_cpus`], if it could be read.
pub fn limit_cpus(cpus: usize) -> Option<nix::sched::CpuSet> {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let allowed = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let mut set = CpuSet::new();
    let mut n = 0;
    for cpu in 0..CpuSet::count() {
        if n < cpus && allowed.is_set(cpu).unwrap_or(false) {
            let _ = set.set(cpu);
            n += 1;
        }
    }
    let _ = sched_setaffinity(Pid::from_raw(0), &set);
    Some(allowed)
}

/// Gives back the CPUs [`limit_cpus`] took away.
pub fn restore_cpus(previous: Option<nix::sched::CpuSet>) {
    if let Some(set) = previous {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}
