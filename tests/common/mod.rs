//! Helpers shared by the multi-process tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use shared_runtime::{Process, Result, ScopedProcess, SharedType};

static FORK: Mutex<()> = Mutex::new(());

/// Serialises the tests of one binary that fork: a child forked while another test's thread
/// holds a process-private lock could hang on it.
pub fn forking() -> MutexGuard<'static, ()> {
    FORK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long any test waits for a child before calling it hung.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A child, started either way (`Process::start` or in a `Process::scope`).
pub trait Child {
    /// What its closure returns.
    type Output;
    fn join_timeout(&mut self, timeout: Duration) -> Result<Self::Output>;
    fn kill(&self) -> Result<()>;
    fn pid(&self) -> i32;
}

impl<T: SharedType> Child for Process<T> {
    type Output = T;
    fn join_timeout(&mut self, timeout: Duration) -> Result<T> {
        Process::join_timeout(self, timeout)
    }
    fn kill(&self) -> Result<()> {
        Process::kill(self)
    }
    fn pid(&self) -> i32 {
        Process::pid(self)
    }
}

impl<T: SharedType> Child for ScopedProcess<'_, T> {
    type Output = T;
    fn join_timeout(&mut self, timeout: Duration) -> Result<T> {
        ScopedProcess::join_timeout(self, timeout)
    }
    fn kill(&self) -> Result<()> {
        ScopedProcess::kill(self)
    }
    fn pid(&self) -> i32 {
        ScopedProcess::pid(self)
    }
}

/// Joins `p`, killing it (and failing) if it has not ended within [`PATIENCE`].
pub fn finish<P: Child>(mut p: P) -> Result<P::Output> {
    match p.join_timeout(PATIENCE) {
        Err(shared_runtime::Error::Timeout(_)) => {
            p.kill().unwrap();
            let _ = p.join_timeout(PATIENCE);
            panic!("child {} hung for {PATIENCE:?} and was killed", p.pid());
        }
        other => other,
    }
}

/// Runs `f` in a child (it may borrow: a `Process::scope` joins it) and joins it as
/// [`finish`] does.
pub fn in_child<T: SharedType>(f: impl FnOnce() -> T) -> Result<T> {
    Process::scope(|s| finish(s.start(f)?))
}

/// Polls `cond` until it holds or [`PATIENCE`] runs out; returns whether it held.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

/// The path of example `name`: `cargo test` builds examples next to the test binaries'
/// `deps/` directory.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} was not built; run through `cargo test`",
        path.display()
    );
    path
}

/// A segment name no other test (or run) uses, tagged `tag`.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("shr-test-{tag}-{}-{n}", std::process::id())
}

/// Enters new namespaces (`flags`: `CLONE_NEW*`), in a new user namespace where plain
/// `unshare` is refused; whether that worked. Only for single-threaded forked children.
pub fn unshare_or_userns(flags: libc::c_int) -> bool {
    // SAFETY: unshare takes flags only; callers are single-threaded forked children.
    unsafe { libc::unshare(flags) == 0 || libc::unshare(libc::CLONE_NEWUSER | flags) == 0 }
}

/// Hides `/proc` from the calling process: a private mount namespace (in a new user
/// namespace where plain `unshare` is refused) with an empty tmpfs mounted on `/proc`.
pub fn hide_proc() -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    if !unshare_or_userns(libc::CLONE_NEWNS) {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()));
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    mount(
        Some("none"),
        "/proc",
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mounting tmpfs on /proc: {e}"))?;
    match std::fs::metadata("/proc/self") {
        Ok(_) => Err("/proc/self still visible".into()),
        Err(_) => Ok(()),
    }
}

/// What a probing acquisition got, as a code a child can write into shared memory.
pub mod python;
pub mod seccomp;

pub mod probe {
    use std::sync::TryLockResult;

    /// The lock was held by someone else: the only right answer while its holder lives.
    pub const WOULD_BLOCK: u64 = 1;
    /// Taken over as if the holder had died.
    pub const POISONED: u64 = 2;
    /// Taken as if it were free.
    pub const TAKEN_CLEAN: u64 = 3;
    /// The test could not set up its scenario here.
    pub const SKIPPED: u64 = 9;

    /// The code of a non-blocking acquisition; a guard obtained is kept (forgotten) when
    /// `keep`, released otherwise.
    pub fn outcome<G>(r: TryLockResult<G>, keep: bool) -> u64 {
        use std::sync::TryLockError;
        let (code, guard) = match r {
            Err(TryLockError::WouldBlock) => return WOULD_BLOCK,
            Err(TryLockError::Poisoned(g)) => (POISONED, g.into_inner()),
            Ok(g) => (TAKEN_CLEAN, g),
        };
        if keep {
            std::mem::forget(guard);
        } else {
            drop(guard);
        }
        code
    }

    /// A code in words, for assertion messages.
    pub fn describe(code: u64) -> &'static str {
        match code {
            WOULD_BLOCK => "WouldBlock",
            POISONED => "Poisoned (taken over as if the live holder had died)",
            TAKEN_CLEAN => "Ok (taken while held by another live process)",
            SKIPPED => "skipped",
            _ => "?",
        }
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce from the seed.
/// The state must not be zero.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // not an Iterator: it never ends
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform sample in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Waits for `pid` (a child forked without `Process`) for at most [`PATIENCE`], then kills
/// it and fails; returns its raw wait status.
pub fn wait_pid(pid: libc::pid_t) -> i32 {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live local the call writes; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return status;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: signals our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("child {pid} hung");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for `pid` as [`wait_pid`] does: its exit code, or 200 plus the signal that ended
/// it.
pub fn reap(pid: libc::pid_t) -> i32 {
    let status = wait_pid(pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        200 + libc::WTERMSIG(status)
    }
}

/// A raw `fork` system call: no `pthread_atfork` handler runs, in the parent or the child.
/// The child must run only the test's own code and end with `_exit`.
pub fn raw_fork() -> libc::pid_t {
    // SAFETY: the system call takes no arguments and touches no memory of ours; what the
    // child may do is the caller's contract above.
    unsafe { libc::syscall(libc::SYS_fork) as libc::pid_t }
}
