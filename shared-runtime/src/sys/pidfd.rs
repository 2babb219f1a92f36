//! Process file descriptors: `pidfd_open(2)`, `pidfd_send_signal(2)`, `waitid(2)` on
//! `P_PIDFD` and `poll(2)` on a pidfd.
//!
//! A pidfd names one process, not a process id: once that process is gone the descriptor
//! names nobody, even after the id is given to another process. Signalling and waiting
//! through it therefore never reach a process that merely reused the id. Needs Linux 5.3
//! (`pidfd_open`, `poll`) and 5.4 (`waitid(P_PIDFD)`); [`PidFd::for_child`] says when they
//! are missing, so that the caller can fall back to the process id.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::sys::process::Exit;
use crate::{Error, Result};

/// An open pidfd, closed when dropped (it is close-on-exec, as every pidfd).
#[derive(Debug)]
pub(crate) struct PidFd(OwnedFd);

/// `pidfd_open` flag for a thread rather than a thread-group leader (`O_EXCL`'s value).
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
/// `_IO(PIDFS_IOCTL_MAGIC = 0xFF, 5)`.
const PIDFD_GET_PID_NAMESPACE: libc::c_ulong = 0xFF05;

/// What [`PidFd::for_child`] found.
#[derive(Debug)]
pub(crate) enum Opened {
    /// A pidfd for the child.
    Fd(PidFd),
    /// The child has already been reaped by someone else (it ended; how is unknown).
    ReapedElsewhere,
    /// No pidfd to be had: the kernel lacks the calls (`ENOSYS`, or `EINVAL` from a 5.3
    /// `waitid`), a seccomp filter forbids them (`EPERM`), or no descriptor is free
    /// (`EMFILE`, `ENFILE`).
    Unavailable,
}

/// What a wait through a pidfd found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The process still runs (only from a wait that does not block).
    Running,
    /// The process ended so, and has been reaped (unless the wait was `WNOWAIT`).
    Ended(Exit),
    /// The process is not (or no longer) a child of the caller's: `ECHILD`. For a child
    /// this means someone else reaped it (a wait for any child elsewhere in the process,
    /// or `SIGCHLD` set to `SIG_IGN`, which makes the kernel reap children itself).
    ReapedElsewhere,
}

impl PidFd {
    /// Opens a pidfd for process `pid` (`pidfd_open(2)`).
    ///
    /// # Errors
    /// The errno: `ESRCH` if no process has that id (a child already reaped), `ENOSYS` before
    /// Linux 5.3, `EMFILE`/`ENFILE` when no descriptor is free, `EPERM` under a seccomp
    /// filter that forbids the call.
    pub(crate) fn open(pid: i32) -> std::result::Result<PidFd, Errno> {
        PidFd::open_with(pid, 0)
    }

    /// Opens a pidfd for thread `tid`, which need not lead its thread group
    /// (`PIDFD_THREAD`, Linux 6.9), or for the process if `tid` is a process id.
    ///
    /// # Errors
    /// As [`open`](Self::open); `EINVAL` where the kernel has no thread pidfds.
    pub(crate) fn open_task(tid: i32) -> std::result::Result<PidFd, Errno> {
        match PidFd::open_with(tid, 0) {
            Err(Errno::EINVAL) => PidFd::open_with(tid, PIDFD_THREAD),
            other => other,
        }
    }

    fn open_with(pid: i32, flags: libc::c_uint) -> std::result::Result<PidFd, Errno> {
        // SAFETY: pidfd_open takes two integers (a pid and flags) and touches no memory of
        // ours.
        let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
        let fd = Errno::result(rc)? as RawFd;
        // SAFETY: on success the kernel returned a new descriptor that nothing else owns.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Whether the process (or thread) has exited: the pidfd polls readable at once.
    pub(crate) fn has_exited(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a zero timeout; poll writes only `revents`.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }

    /// The inode of the process's pid namespace (`PIDFD_GET_PID_NAMESPACE`, Linux 6.11),
    /// which needs no `/proc`.
    ///
    /// # Errors
    /// The errno: `ENOTTY`/`EINVAL` before Linux 6.11, `EMFILE`/`ENFILE` when no
    /// descriptor is free for the namespace's.
    pub(crate) fn pid_namespace(&self) -> std::result::Result<u64, Errno> {
        // SAFETY: the ioctl takes no argument and returns a new namespace descriptor or -1.
        let ns = unsafe { libc::ioctl(self.0.as_raw_fd(), PIDFD_GET_PID_NAMESPACE, 0) };
        if ns < 0 {
            return Err(Errno::last());
        }
        // SAFETY: a new descriptor nothing else owns.
        let ns = unsafe { OwnedFd::from_raw_fd(ns) };
        nix::sys::stat::fstat(&ns).map(|st| st.st_ino)
    }

    /// Opens a pidfd for `pid`, a child of the caller's just returned by `fork`, and checks
    /// that it names a child of the caller's.
    ///
    /// The check (`waitid` with `WNOWAIT`, which reaps nothing) is what makes the pidfd
    /// trustworthy: `pidfd_open` goes by pid, so if the child was reaped elsewhere before
    /// this call and its pid already reused, the pidfd would name that other process; it is
    /// not our child, so the check says `ECHILD`. What it cannot catch is the pid reused by
    /// another child of this same process. The check also probes `waitid(P_PIDFD)`, which
    /// came one kernel release after `pidfd_open`.
    pub(crate) fn for_child(pid: i32) -> Opened {
        let fd = match PidFd::open(pid) {
            Ok(fd) => fd,
            Err(Errno::ESRCH) => return Opened::ReapedElsewhere,
            Err(_) => return Opened::Unavailable,
        };
        match fd.waitid(libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) {
            Ok(Wait::ReapedElsewhere) => Opened::ReapedElsewhere,
            Ok(Wait::Running | Wait::Ended(_)) => Opened::Fd(fd),
            Err(_) => Opened::Unavailable,
        }
    }

    /// Sends `sig` to the process (`pidfd_send_signal(2)`). A process that has already
    /// ended (`ESRCH`) is not an error: the signal reaches nobody.
    ///
    /// # Errors
    /// [`Error::Os`] if the signal cannot be sent (`EPERM`, say).
    pub(crate) fn send_signal(&self, sig: Signal) -> Result<()> {
        // SAFETY: the descriptor is open (owned by `self`); a null siginfo asks for the
        // siginfo kill(2) would send, so the kernel reads no memory of ours; flags are 0.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_uint,
            )
        };
        match Errno::result(rc) {
            Ok(_) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::nix("pidfd_send_signal", e)),
        }
    }

    /// Waits for the process to end and reaps it. Never [`Wait::Running`].
    ///
    /// # Errors
    /// [`Error::Os`] if `waitid` fails other than with `ECHILD`.
    pub(crate) fn wait(&self) -> Result<Wait> {
        loop {
            let wait = self.waitid(libc::WEXITED);
            // Running cannot happen without WNOHANG; if it did, wait again.
            if wait != Ok(Wait::Running) {
                return wait.map_err(|e| Error::nix("waitid", e));
            }
        }
    }

    /// Reaps the process if it has ended; [`Wait::Running`] if it has not.
    ///
    /// # Errors
    /// [`Error::Os`] if `waitid` fails other than with `ECHILD`.
    pub(crate) fn try_wait(&self) -> Result<Wait> {
        self.waitid(libc::WEXITED | libc::WNOHANG)
            .map_err(|e| Error::nix("waitid", e))
    }

    /// Waits at most `timeout` for the process to end and reaps it; [`Wait::Running`] if the
    /// time ran out. Sleeps in `poll(2)`, which wakes as soon as the process has ended (a
    /// pidfd is readable then), not in steps.
    ///
    /// # Errors
    /// [`Error::Os`] if `waitid` (other than with `ECHILD`) or `poll` fails.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> Result<Wait> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.wait(); // further away than any clock can tell
        };
        let mut readable = false;
        loop {
            match self.try_wait()? {
                Wait::Running => {}
                done => return Ok(done),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Wait::Running);
            }
            if readable {
                // Readable yet not waitable: not a state the kernel documents; don't spin.
                std::thread::sleep(Duration::from_millis(1).min(deadline - now));
            }
            // Rounded up, so that the poll does not end just short of the deadline.
            let millis = (deadline - now).as_nanos().div_ceil(1_000_000);
            let left = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, left) {
                Ok(n) => readable = n > 0,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::nix("poll", e)),
            }
        }
    }

    /// `waitid(P_PIDFD, fd, &info, flags)`, retried on `EINTR`, with the `siginfo_t` decoded
    /// and `ECHILD` as [`Wait::ReapedElsewhere`].
    ///
    /// Not nix's `waitid`: it decodes the signal into its `Signal` enum and fails with
    /// `EINVAL` on one it does not know (a real-time signal), after the child is reaped, so
    /// how the child ended would be lost.
    fn waitid(&self, flags: libc::c_int) -> nix::Result<Wait> {
        loop {
            // SAFETY: siginfo_t is plain C data, for which all-zero bytes are a valid value.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: the descriptor is open (owned by `self`) and `info` is a writable
            // siginfo_t that outlives the call.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.0.as_raw_fd() as libc::id_t,
                    &mut info,
                    flags,
                )
            };
            if rc == -1 {
                match Errno::last() {
                    Errno::EINTR => continue,
                    Errno::ECHILD => return Ok(Wait::ReapedElsewhere),
                    e => return Err(e),
                }
            }
            // SAFETY: after a successful waitid, `info` is either still all zero (WNOHANG and
            // nothing to report) or a SIGCHLD siginfo, whose pid and status fields the kernel
            // filled in; both readings are of initialised memory.
            let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
            if pid == 0 {
                return Ok(Wait::Running);
            }
            return match info.si_code {
                libc::CLD_EXITED => Ok(Wait::Ended(Exit::Code(status))),
                libc::CLD_KILLED | libc::CLD_DUMPED => Ok(Wait::Ended(Exit::Signal(status))),
                // Stops, continues and traps are reported only to waits that ask for them
                // (WSTOPPED, WCONTINUED); WEXITED alone never sees them.
                _ => Err(Errno::EINVAL),
            };
        }
    }
}
