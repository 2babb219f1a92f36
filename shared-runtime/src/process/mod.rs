//! `Process`: run a closure in a forked child.

use std::io::{self, Write};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::sys::pidfd::{Opened, PidFd, Wait};
use crate::sys::process::{self as sys, Exit, Forked};
use crate::{Arena, Error, Result};

/// The exit code of a child whose closure panicked (the same as a panicking Rust program).
pub const PANIC_EXIT_CODE: i32 = 101;

/// A child process running a closure, started by [`Process::start`] (ctypes' `Process`).
///
/// The child is a `fork` of the caller: it sees every shared object the parent had at that
/// moment, at the same addresses, and shares their memory. The closure may borrow from the
/// parent's stack; the `Process` joins the child when dropped, so borrowed shared objects
/// outlive it.
///
/// ```
/// use shared_runtime::{Process, RawArray};
///
/// let squares = RawArray::<u64>::zeroed(4)?;
/// let squares = &squares;
/// let workers: Vec<_> = (0..4)
///     .map(|i| Process::start(move || squares.set(i, (i * i) as u64)))
///     .collect::<Result<_, _>>()?;
/// for w in workers {
///     w.join()?;
/// }
/// assert_eq!(squares.to_vec(), [0, 1, 4, 9]);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
///
/// # Pid reuse
///
/// Right after the fork, the parent opens a *pidfd* for the child (`pidfd_open(2)`) and
/// from then on waits for it, times waits and signals it through that descriptor. A pidfd
/// names one process, not a number: once the child is gone it names nobody, even after the
/// child's pid has been given to another process. So if something else reaps the child (a
/// `waitpid(-1)` in another thread, or `SIGCHLD` set to `SIG_IGN`, which has the kernel reap
/// children itself), [`kill`](Self::kill) signals nobody and [`join`](Self::join) reports
/// that the child was reaped elsewhere, where going by pid could kill, or wait for, an
/// unrelated process that reused the pid.
///
/// Two limits:
/// - The pidfd is opened by pid, just after `fork` returns. Should the child be reaped
///   elsewhere *and* its pid reused in that instant (the pid counter must come all the way
///   round, through `pid_max` other forks), the pidfd would name the wrong process; it is
///   checked to name a child of the caller's, so only a pid reused by another child of this
///   same process goes unnoticed. Forking with `clone3(CLONE_PIDFD)` would close that gap, but
///   bypasses glibc's `fork` (its `pthread_atfork` handlers, which this crate relies on, and
///   the child-side reset of its own state), which costs far more than it saves.
/// - Without a pidfd (Linux before 5.4, a seccomp filter that forbids the calls, or no free
///   file descriptor at the fork), the child is waited for and signalled by pid, exposed to
///   pid reuse as above.
///
/// The pidfd is one file descriptor per `Process`, close-on-exec, closed when it is dropped.
#[must_use = "a Process is joined when dropped; call join() to see whether the child failed"]
pub struct Process<'scope> {
    pid: i32,
    /// The child's pidfd, opened right after the fork; `None` if none could be had, and the
    /// child is then waited for and signalled by pid.
    pidfd: Option<PidFd>,
    /// How the child ended, once that is known.
    ended: Option<Ended>,
    /// The parent's copy of the closure: it owns whatever the closure captured by value
    /// (shared objects moved into it among them), which must stay alive, and unfreed,
    /// until the child that uses them has ended.
    _captured: Box<dyn FnOnce() + 'scope>,
    _scope: PhantomData<&'scope ()>,
}

impl<'scope> Process<'scope> {
    /// Forks a child that runs `f` and exits: with code 0 if `f` returns, with code
    /// [`PANIC_EXIT_CODE`] if it panics (the panic message goes to standard error).
    ///
    /// The [global arena](Arena::global) is created first if it does not exist yet, so that
    /// objects either side allocates from it are visible to both.
    ///
    /// In the child only `f` runs; it should not need locks that other threads of the parent
    /// may have held at the fork (standard output's lock among them: a `println!` in the
    /// child of a multi-threaded parent can hang). Output the child leaves in its buffers is
    /// not flushed: end lines with a newline or flush them in `f`.
    ///
    /// # Errors
    /// [`Error::Os`] if the system cannot fork. Not being able to open a pidfd for the child
    /// is not an error (see [Pid reuse](Self#pid-reuse)).
    ///
    /// ```
    /// let p = shared_runtime::Process::start(|| {})?;
    /// assert!(p.pid() > 0);
    /// p.join()?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn start<F: FnOnce() + 'scope>(f: F) -> Result<Process<'scope>> {
        Arena::try_global()?;
        install_panic_hook();
        let f: Box<dyn FnOnce() + 'scope> = Box::new(f);
        // Anything the parent buffered would otherwise be printed twice.
        let _ = std::io::stdout().flush();
        // SAFETY: the child runs only `f` (plus the panic hook, which formats into a String
        // and writes it with one write(2)) and then leaves with _exit, never returning into the
        // caller's code; the documentation above tells the caller which locks `f` must avoid.
        match unsafe { sys::fork_process()? } {
            Forked::Parent(pid) => {
                // Before anything else, so that nothing has had time to reap the child.
                let (pidfd, ended) = match PidFd::for_child(pid) {
                    Opened::Fd(fd) => (Some(fd), None),
                    Opened::ReapedElsewhere => (None, Some(Ended::Elsewhere("pidfd_open"))),
                    Opened::Unavailable => (None, None), // by pid, as waitpid and kill do
                };
                Ok(Process {
                    pid,
                    pidfd,
                    ended,
                    _captured: f,
                    _scope: PhantomData,
                })
            }
            Forked::Child => run_child(f),
        }
    }

    /// The child's process id. Once the child has been reaped, the number may be given to
    /// another process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the child to end.
    ///
    /// # Errors
    /// [`Error::ChildFailed`] if the child exited with a non-zero code (its closure panicked,
    /// say) or was killed by a signal; the message says which.
    ///
    /// [`Error::Os`] if the child was reaped by someone else (a `waitpid(-1)` in another
    /// thread, or `SIGCHLD` set to `SIG_IGN`): it has ended, but how is unknown. The error's
    /// source has kind [`NotFound`](std::io::ErrorKind::NotFound) and says so. Otherwise
    /// [`Error::Os`] if waiting fails.
    ///
    /// ```
    /// let p = shared_runtime::Process::start(|| panic!("boom"))?;
    /// let err = p.join().unwrap_err();
    /// assert!(err.to_string().contains("exited with code 101"), "{err}");
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn join(mut self) -> Result<()> {
        let ended = self.wait(None)?.expect("an unbounded wait sees the end");
        self.judge(ended)
        // `self` drops here, and with it what the closure captured.
    }

    /// Waits at most `timeout` for the child to end.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the child is still running (it keeps running, and is waited
    /// for again when the `Process` is dropped; [`kill`](Self::kill) it first to stop it);
    /// otherwise as [`join`](Self::join), a child reaped elsewhere included. Once the child
    /// has ended, every later call (and `join`) reports the same.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut p = shared_runtime::Process::start(|| std::thread::sleep(Duration::from_secs(60)))?;
    /// assert!(p.join_timeout(Duration::from_millis(10)).is_err());
    /// p.kill()?;
    /// assert!(p.join_timeout(Duration::from_secs(10)).unwrap_err().to_string().contains("SIGKILL"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<()> {
        match self.wait(Some(timeout))? {
            Some(ended) => self.judge(ended),
            None => Err(Error::Timeout(timeout)),
        }
    }

    /// Kills the child with `SIGKILL` (nothing happens if it has already ended). It must
    /// still be joined, which reports the signal.
    ///
    /// The signal goes through the child's pidfd: if the child has ended, reaped here or
    /// elsewhere, it reaches nobody, even should its pid have been reused (see
    /// [Pid reuse](Self#pid-reuse) for the fallback without a pidfd).
    ///
    /// # Errors
    /// [`Error::Os`] if the signal cannot be sent. A child that has already ended, or was
    /// reaped elsewhere, is not an error.
    pub fn kill(&self) -> Result<()> {
        if self.ended.is_some() {
            return Ok(());
        }
        match &self.pidfd {
            Some(fd) => fd.send_signal(Signal::SIGKILL),
            None => sys::kill_process(self.pid),
        }
    }

    /// Waits at most `timeout` (`None`: as long as it takes) for the child to end, reaps it
    /// and remembers how it ended; `None` if the time ran out.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<Ended>> {
        if let Some(ended) = self.ended {
            return Ok(Some(ended)); // an earlier wait saw it
        }
        let ended = match &self.pidfd {
            Some(fd) => {
                let wait = match timeout {
                    None => fd.wait()?,
                    Some(timeout) => fd.wait_timeout(timeout)?,
                };
                match wait {
                    Wait::Running => None,
                    Wait::Ended(exit) => Some(Ended::Exit(exit)),
                    Wait::ReapedElsewhere => Some(Ended::Elsewhere("waitid")),
                }
            }
            None => match sys::wait_child(self.pid, timeout) {
                Ok(exit) => exit.map(Ended::Exit),
                Err(Error::Os { source, .. }) if source.raw_os_error() == Some(libc::ECHILD) => {
                    Some(Ended::Elsewhere("waitpid"))
                }
                Err(e) => return Err(e),
            },
        };
        self.ended = ended;
        Ok(ended)
    }

    fn judge(&self, ended: Ended) -> Result<()> {
        let how = match ended {
            Ended::Exit(Exit::Code(0)) => return Ok(()),
            Ended::Exit(Exit::Code(code)) => format!("exited with code {code}"),
            Ended::Exit(Exit::Signal(sig)) => {
                format!("was killed by signal {sig} ({})", sys::signal_name(sig))
            }
            Ended::Elsewhere(call) => {
                let msg = format!(
                    "child process {} was reaped by someone else (a wait for any child \
                     elsewhere in this process, or SIGCHLD set to SIG_IGN): it has ended, \
                     but how is unknown",
                    self.pid
                );
                let source = io::Error::new(io::ErrorKind::NotFound, msg);
                return Err(Error::Os { call, source });
            }
        };
        Err(Error::ChildFailed { pid: self.pid, how })
    }
}

/// How a child ended, as far as its `Process` can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Reaped here, so.
    Exit(Exit),
    /// Reaped by someone else, as `call` found (`ECHILD`, or `ESRCH` from `pidfd_open`).
    Elsewhere(&'static str),
}

impl Drop for Process<'_> {
    fn drop(&mut self) {
        // The closure may borrow the parent's objects: they must outlive the child. A child
        // reaped elsewhere has ended too.
        let _ = self.wait(None);
    }
}

/// Set in a forked child: panics there are reported by [`report_child_panic`].
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Installs, once and in the parent, a panic hook that reports a child's panic with one
/// `write(2)` and defers to the previous hook everywhere else. Installing it in the child
/// instead would take the hook's lock, which another thread of the parent may have held at
/// the fork (a test harness running a panicking test, say): the child would hang forever.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CHILD.load(Ordering::Relaxed) {
                let msg = format!("process {} panicked: {info}\n", sys::current_pid());
                sys::write_stderr(msg.as_bytes());
            } else {
                previous(info);
            }
        }));
    });
}

fn run_child(f: Box<dyn FnOnce() + '_>) -> ! {
    IN_CHILD.store(true, Ordering::Relaxed);
    let code = match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => 0,
        Err(_) => PANIC_EXIT_CODE,
    };
    sys::exit_now(code)
}
