//! Processes: the cached process id, fork, wait and signals.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::{Error, Result};

/// This process's id, cached; 0 until first asked for.
static PID: AtomicI32 = AtomicI32::new(0);
static ATFORK: Once = Once::new();

thread_local! {
    /// This thread's identity (see [`thread_identity`]), cached; 0 until first asked for.
    static IDENTITY: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn refresh_pid_in_child() {
    PID.store(nix::unistd::getpid().as_raw(), Ordering::Relaxed);
    // The child's only thread is the copy of the one that forked: its cached id is stale.
    let _ = IDENTITY.try_with(|t| t.set(0));
}

/// The calling thread's identity: its id (`gettid`) in the low 32 bits and the low 32 bits
/// of its start time (clock ticks after boot) in the high ones, so that a thread id reused
/// after its thread ended is not mistaken for it. Cached per thread (the start time costs
/// one read of `/proc`), refreshed after fork.
#[inline]
pub(crate) fn thread_identity() -> u64 {
    let cached = IDENTITY.with(Cell::get);
    if cached != 0 {
        // Cached only after `current_pid` registered the fork handler that resets it.
        return cached;
    }
    current_pid(); // registers the fork handler that keeps the cache right
    IDENTITY.with(|t| {
        let tid = u64::from(nix::unistd::gettid().as_raw() as u32);
        match read_start_time("/proc/thread-self/stat") {
            // Stamps are never 0, so 0 can mean "not known" (see `thread_alive`).
            Liveness::Alive(start) => {
                let id = tid | u64::from((start as u32).max(1)) << 32;
                t.set(id);
                id
            }
            // No start time to be had (no /proc?): try again next time, don't cache.
            _ => tid,
        }
    })
}

/// The calling thread's id (`gettid`), cached per thread and refreshed after fork.
pub(crate) fn current_tid() -> i32 {
    thread_identity() as u32 as i32
}

/// Whether the thread with this identity (from [`thread_identity`]) may still run. Only
/// proof of the contrary says no: its `/proc` entry is gone, or a zombie, or belongs to a
/// thread that started at another time (a reused id). Anything that keeps us from knowing
/// (no `/proc`, no free descriptor, an unreadable entry) counts as alive, because taking a
/// lock from a live holder would be far worse than waiting.
pub(crate) fn thread_alive(identity: u64) -> bool {
    let (tid, stamp) = (identity as u32, (identity >> 32) as u32);
    match read_start_time(&format!("/proc/{tid}/stat")) {
        Liveness::Gone => false,
        Liveness::Alive(start) => stamp == 0 || (start as u32).max(1) == stamp,
        Liveness::Unknown => true,
    }
}

/// The calling process's id without a system call on the hot path.
///
/// glibc's `getpid` is a real system call; ownership checks run on every drop, so the id
/// is cached and refreshed in the child by a `pthread_atfork` handler (which runs for
/// every `fork()` made through libc, ours or the user's).
pub(crate) fn current_pid() -> i32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    ATFORK.call_once(|| {
        // SAFETY: registering a child handler that only stores to an atomic is
        // async-signal-safe, which is what pthread_atfork(3) requires of a child handler.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(refresh_pid_in_child)) };
        assert_eq!(rc, 0, "pthread_atfork failed");
        PID.store(nix::unistd::getpid().as_raw(), Ordering::Relaxed);
    });
    PID.load(Ordering::Relaxed)
}

/// Which side of a fork the caller is on.
pub(crate) enum Forked {
    Parent(i32),
    Child,
}

/// Forks the calling process.
///
/// # Safety
/// In a multi-threaded program the child may only run code that does not need locks held
/// by other threads of the parent (see `fork(2)`); the caller must keep the child's work to
/// that and end it with [`exit_now`].
pub(crate) unsafe fn fork_process() -> Result<Forked> {
    current_pid(); // make sure the atfork handler is registered before the first fork
                   // SAFETY: the caller upholds fork's contract (see this function's Safety section).
    match unsafe { fork() }.map_err(|e| Error::nix("fork", e))? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        ForkResult::Child => Ok(Forked::Child),
    }
}

/// Ends the calling process at once with `code`, without running `atexit` handlers or
/// flushing stdio buffers inherited from the parent (which would print them twice).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Writes `msg` to standard error with one `write(2)`, taking no lock (safe in a forked
/// child of a multi-threaded parent, where std's stderr lock may be held forever).
pub(crate) fn write_stderr(msg: &[u8]) {
    // SAFETY: the pointer and length describe `msg`, which is alive for the call.
    let _ = unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

fn decode(status: WaitStatus) -> Option<Exit> {
    match status {
        WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
        _ => None,
    }
}

/// Waits for child `pid` to end; `None` waits forever. `Ok(None)` means the time ran out.
pub(crate) fn wait_child(pid: i32, timeout: Option<Duration>) -> Result<Option<Exit>> {
    let pid = Pid::from_raw(pid);
    let Some(timeout) = timeout else {
        loop {
            match waitpid(pid, None) {
                Ok(status) => {
                    if let Some(exit) = decode(status) {
                        return Ok(Some(exit));
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::nix("waitpid", e)),
            }
        }
    };
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(50);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => {
                if let Some(exit) = decode(status) {
                    return Ok(Some(exit));
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::nix("waitpid", e)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

/// Sends `SIGKILL` to `pid`. A process that is already gone is not an error.
pub(crate) fn kill_process(pid: i32) -> Result<()> {
    match kill(Pid::from_raw(pid), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::nix("kill", e)),
    }
}

/// The conventional name of signal `sig`, e.g. `SIGKILL`.
pub(crate) fn signal_name(sig: i32) -> &'static str {
    Signal::try_from(sig)
        .map(Signal::as_str)
        .unwrap_or("unknown signal")
}

/// What `/proc` says about a process or thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// It runs, and started this many clock ticks after boot (field 22 of its `stat`).
    Alive(u64),
    /// It has ended: no such entry, or a zombie.
    Gone,
    /// `/proc` could not tell (not mounted, no free descriptor, an unparsable entry).
    Unknown,
}

/// What `/proc/<pid>/stat` says about process `pid`.
pub(crate) fn start_time(pid: i32) -> Liveness {
    read_start_time(&format!("/proc/{pid}/stat"))
}

fn read_start_time(path: &str) -> Liveness {
    let stat = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {
            return Liveness::Gone;
        }
        Err(_) => return Liveness::Unknown,
    };
    // The command name (field 2) is in parentheses and may hold any bytes: skip past it.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return Liveness::Unknown;
    };
    let rest = String::from_utf8_lossy(&stat[close + 1..]);
    let mut fields = rest.split_whitespace();
    match fields.next() {
        Some("Z" | "X") => return Liveness::Gone,
        None => return Liveness::Unknown,
        Some(_) => {}
    }
    match fields.nth(18).and_then(|f| f.parse().ok()) {
        Some(start) => Liveness::Alive(start),
        None => Liveness::Unknown,
    }
}
