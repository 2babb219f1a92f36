//! `Process`: run a closure in a forked child.

use std::io::Write;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

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
#[must_use = "a Process is joined when dropped; call join() to see whether the child failed"]
pub struct Process<'scope> {
    pid: i32,
    /// How the child ended, once it has been reaped.
    exit: Option<Exit>,
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
    /// [`Error::Os`] if the system cannot fork.
    ///
    /// ```
    /// let p = shared_runtime::Process::start(|| {})?;
    /// assert!(p.pid() > 0);
    /// p.join()?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn start<F: FnOnce() + 'scope>(f: F) -> Result<Process<'scope>> {
        Arena::global();
        install_panic_hook();
        let f: Box<dyn FnOnce() + 'scope> = Box::new(f);
        // Anything the parent buffered would otherwise be printed twice.
        let _ = std::io::stdout().flush();
        // SAFETY: the child runs only `f` (plus the panic hook, which formats into a String
        // and writes it with one write(2)) and then leaves with _exit, never returning into the
        // caller's code; the documentation above tells the caller which locks `f` must avoid.
        match unsafe { sys::fork_process()? } {
            Forked::Parent(pid) => Ok(Process {
                pid,
                exit: None,
                _captured: f,
                _scope: PhantomData,
            }),
            Forked::Child => run_child(f),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the child to end.
    ///
    /// # Errors
    /// [`Error::ChildFailed`] if the child exited with a non-zero code (its closure panicked,
    /// say) or was killed by a signal; the message says which.
    ///
    /// ```
    /// let p = shared_runtime::Process::start(|| panic!("boom"))?;
    /// let err = p.join().unwrap_err();
    /// assert!(err.to_string().contains("exited with code 101"), "{err}");
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn join(mut self) -> Result<()> {
        let exit = match self.exit {
            Some(exit) => exit, // reaped by an earlier join_timeout
            None => sys::wait_child(self.pid, None)?.expect("an unbounded wait returns an exit"),
        };
        self.exit = Some(exit);
        self.judge(exit)
        // `self` drops here, and with it what the closure captured.
    }

    /// Waits at most `timeout` for the child to end.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the child is still running (it keeps running, and is waited
    /// for again when the `Process` is dropped; [`kill`](Self::kill) it first to stop it);
    /// otherwise as [`join`](Self::join).
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
        if let Some(exit) = self.exit {
            return self.judge(exit);
        }
        match sys::wait_child(self.pid, Some(timeout))? {
            Some(exit) => {
                self.exit = Some(exit);
                self.judge(exit)
            }
            None => Err(Error::Timeout(timeout)),
        }
    }

    /// Kills the child with `SIGKILL` (nothing happens if it has already ended). It must
    /// still be joined, which reports the signal.
    ///
    /// # Errors
    /// [`Error::Os`] if the signal cannot be sent.
    pub fn kill(&self) -> Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        sys::kill_process(self.pid)
    }

    fn judge(&self, exit: Exit) -> Result<()> {
        let how = match exit {
            Exit::Code(0) => return Ok(()),
            Exit::Code(code) => format!("exited with code {code}"),
            Exit::Signal(sig) => format!("was killed by signal {sig} ({})", sys::signal_name(sig)),
        };
        Err(Error::ChildFailed { pid: self.pid, how })
    }
}

impl Drop for Process<'_> {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // The closure may borrow the parent's objects: they must outlive the child.
            let _ = sys::wait_child(self.pid, None);
        }
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
