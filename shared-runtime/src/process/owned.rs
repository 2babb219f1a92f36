//! `Process<T>`: a child running a closure that owns what it uses.

use std::fmt;
use std::time::Duration;

use super::child::Child;
use super::outcome::Outcome;
use super::Captured;
use crate::{Result, SharedType};

/// A child process running a closure, started by [`Process::start`] (ctypes' `Process`,
/// shaped like [`std::thread::JoinHandle`]).
///
/// The child is a `fork` of the caller: it sees every shared object the parent had at that
/// moment, at the same addresses, and shares their memory. The closure owns what it uses
/// (`'static`): shared objects are cheap [`Clone`] handles, so move a clone in. For a
/// closure that borrows, use [`Process::scope`]. The child's return value, of any
/// [`SharedType`] (`()` included), comes back through [`join`](Self::join).
///
/// A closure without `move` that uses a local borrows it, and `start` refuses it (rustc
/// says "closure may outlive the current function" and suggests `move`). Either move a clone
/// in, or borrow in a [`Process::scope`]:
///
/// ```
/// use shared_runtime::{Process, RawValue};
///
/// let n = RawValue::new(0u32)?;
/// // Process::start(|| n.set(1))          // error[E0373]: the closure borrows `n`
/// let n2 = n.clone(); // the same shared value
/// Process::start(move || n2.set(1))?.join()?; // owns its clone
/// Process::scope(|s| s.start(|| n.set(n.get() + 1))?.join())?; // borrows `n`
/// assert_eq!(n.get(), 2);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
///
/// Children of every kind of shared type return values:
///
/// ```
/// use shared_runtime::{Process, RawArray};
///
/// let squares = RawArray::<u64>::zeroed(4)?;
/// let workers: Vec<Process<u64>> = (0..4)
///     .map(|i| {
///         let squares = squares.clone(); // the same shared array
///         Process::start(move || {
///             squares.set(i, (i * i) as u64);
///             (i * i) as u64 // returned to the parent
///         })
///     })
///     .collect::<Result<_, _>>()?;
/// let total: u64 = workers.into_iter().map(|w| w.join()).sum::<Result<_, _>>()?;
/// assert_eq!(squares.to_vec(), [0, 1, 4, 9]);
/// assert_eq!(total, 14);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
///
/// A `Process` that is dropped without being joined is joined then (the drop waits for the
/// child). One that is leaked (`mem::forget`) keeps its copy of the closure, and so the
/// objects it owns, forever: nothing the child's closure owns is freed while the child
/// runs (for the child's own children, see [Descendants](Self#descendants)).
///
/// # Descendants
///
/// A child may itself start children, and leak their `Process`es. Those grandchildren use
/// clones that the *child's* copy of its closure keeps alive, not the parent's: once the
/// child has ended, the parent may free the objects while a grandchild still writes them.
/// So a child whose closure returns or panics waits, before it ends, for every descendant
/// it still has: it is a *child subreaper* (`PR_SET_CHILD_SUBREAPER`), so its orphaned
/// grandchildren come back to it too, and it reaps them all (`waitpid(-1)`) before it
/// reports. [`join`](Self::join) returns only after all of them have ended (and waits as
/// long as they run, a daemon the closure started included).
///
/// What this cannot cover is a child that ends without its closure returning or
/// panicking: by `std::process::exit` (or `abort`, or a panic under `panic = "abort"`), or
/// killed by a signal ([`kill`](Self::kill) included). Descendants it leaked keep running,
/// given to the nearest subreaper above or to `init`, and may write objects the parent
/// frees after joining it. No undefined behaviour follows in any process (every access to
/// shared memory is atomic and within the mapping), but other objects' data can be
/// overwritten. Join (or drop) every `Process` a child starts, or end such children
/// before ending their parent.
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
/// The pidfd is one file descriptor per running child, close-on-exec, closed once the child
/// has been reaped.
#[must_use = "a Process is joined when dropped; call join() to see whether the child failed"]
pub struct Process<T = ()> {
    child: Child,
    /// The block the child reports its value or panic through; freed after it ended.
    outcome: Outcome<T>,
    /// The parent's copy of the closure: it owns whatever the closure captured (shared
    /// objects moved into it among them), which must stay alive, and unfreed, until the
    /// child that uses them has ended. `None` only while dropping.
    captured: Option<Box<dyn Captured>>,
}

impl<T: SharedType> Process<T> {
    /// Forks a child that runs `f` and exits: with code 0 if `f` returns (its value goes
    /// back to the parent through the arena), with code [`PANIC_EXIT_CODE`](crate::PANIC_EXIT_CODE) if it panics
    /// (the panic message goes to standard error, and to the parent).
    ///
    /// `f` must own what it uses: move clones of shared objects into it. A closure that
    /// borrows from the caller's stack does not compile; [`Process::scope`] takes those.
    /// A closure that never returns (it ends in `loop`, `panic!` or `exit`) leaves `T` for
    /// the caller to name: `Process::<()>::start(|| loop { .. })`.
    ///
    /// The [global arena](crate::Arena::global) is created first if it does not exist yet,
    /// so that objects either side allocates from it are visible to both.
    ///
    /// In the child only `f` runs; it should not need locks that other threads of the parent
    /// may have held at the fork (standard output's lock among them: a `println!` in the
    /// child of a multi-threaded parent can hang). Output the child leaves in its buffers is
    /// not flushed: end lines with a newline or flush them in `f`.
    ///
    /// # Errors
    /// [`Error::Os`](crate::Error::Os) if the system cannot fork,
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena has no room for the
    /// child's report. Not being able to open a pidfd for the child is not an error (see
    /// [Pid reuse](Self#pid-reuse)).
    ///
    /// ```
    /// use shared_runtime::{Process, RawValue};
    ///
    /// let n = RawValue::new(0)?;
    /// let n2 = n.clone();
    /// let p = Process::start(move || n2.set(1))?;
    /// assert!(p.pid() > 0);
    /// p.join()?;
    /// assert_eq!(n.get(), 1);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn start<F>(f: F) -> Result<Process<T>>
    where
        F: FnOnce() -> T + 'static, // borrowing closure? use Process::scope
    {
        let outcome = Outcome::new()?;
        let (child, f) = Child::fork(f, &outcome)?;
        Ok(Process {
            child,
            outcome,
            captured: Some(Box::new(f)),
        })
    }

    /// Waits for the child to end and returns what its closure returned.
    ///
    /// # Errors
    /// - [`Error::ChildPanicked`](crate::Error::ChildPanicked) if the closure panicked
    ///   (with the panic's message, cut to about a kilobyte);
    /// - [`Error::ChildKilled`](crate::Error::ChildKilled) if a signal killed the child;
    /// - [`Error::ChildExited`](crate::Error::ChildExited) if the child exited before its
    ///   closure returned (`std::process::exit` in it, say; code 0 included);
    /// - [`Error::Os`](crate::Error::Os) if the child was reaped by someone else (a
    ///   `waitpid(-1)` in another thread, or `SIGCHLD` set to `SIG_IGN`): it has ended, but
    ///   how is unknown. The error's source has kind
    ///   [`NotFound`](std::io::ErrorKind::NotFound) and says so. Otherwise
    ///   [`Error::Os`](crate::Error::Os) if waiting fails.
    ///
    /// ```
    /// use shared_runtime::{Error, Process};
    ///
    /// assert_eq!(Process::start(|| 6 * 7)?.join()?, 42);
    /// let err = Process::start(|| -> u32 { panic!("boom") })?.join().unwrap_err();
    /// assert!(matches!(err, Error::ChildPanicked { ref message, .. } if message == "boom"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn join(mut self) -> Result<T> {
        self.child.join(None, self.outcome.block())?;
        Ok(self.outcome.value())
        // `self` drops here, and with it the closure's captures and the report block.
    }

    /// Waits at most `timeout` for the child to end; returns as [`join`](Self::join).
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout) if the child is still running (it keeps
    /// running, and is waited for again when the `Process` is dropped;
    /// [`kill`](Self::kill) it first to stop it); otherwise as [`join`](Self::join), a
    /// child reaped elsewhere included. Once the child has ended, every later call (and
    /// `join`) reports the same.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shared_runtime::{Error, Process};
    ///
    /// let mut p = Process::start(|| std::thread::sleep(Duration::from_secs(60)))?;
    /// assert!(matches!(p.join_timeout(Duration::from_millis(10)), Err(Error::Timeout(_))));
    /// p.kill()?;
    /// let err = p.join_timeout(Duration::from_secs(10)).unwrap_err();
    /// assert!(matches!(err, Error::ChildKilled { signal: 9, .. }));
    /// assert!(err.to_string().contains("SIGKILL"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.child.join(Some(timeout), self.outcome.block())?;
        Ok(self.outcome.value())
    }
}

impl<T> Process<T> {
    /// The child's process id. Once the child has been reaped, the number may be given to
    /// another process.
    ///
    /// ```
    /// let p = shared_runtime::Process::start(|| {})?;
    /// assert_ne!(p.pid(), std::process::id() as i32);
    /// # p.join()?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// Kills the child with `SIGKILL` (nothing happens if it has already ended). It must
    /// still be joined, which reports the signal.
    ///
    /// The signal goes through the child's pidfd: if the child has ended, reaped here or
    /// elsewhere, it reaches nobody, even should its pid have been reused (see
    /// [Pid reuse](Self#pid-reuse) for the fallback without a pidfd).
    ///
    /// # Errors
    /// [`Error::Os`](crate::Error::Os) if the signal cannot be sent. A child that has
    /// already ended, or was reaped elsewhere, is not an error.
    ///
    /// ```
    /// use shared_runtime::{Error, Process};
    ///
    /// let p = Process::<()>::start(|| loop { std::thread::park() })?; // never returns: say what T is
    /// p.kill()?;
    /// assert!(matches!(p.join(), Err(Error::ChildKilled { .. })));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.child.kill()
    }
}

/// Shows the pid and whether the child runs, or how it ended.
///
/// ```
/// use std::time::Duration;
///
/// let mut p = shared_runtime::Process::<()>::start(|| std::process::exit(3))?;
/// assert!(format!("{p:?}").starts_with("Process { pid: "));
/// assert!(p.join_timeout(Duration::from_secs(60)).is_err());
/// assert!(format!("{p:?}").ends_with("state: exited with code 3 }"), "{p:?}");
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<T> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.child.pid())
            .field("state", &self.child.state())
            .finish()
    }
}

impl<T> Drop for Process<T> {
    fn drop(&mut self) {
        // What the closure owns, and the report block, must outlive the child. A child
        // reaped elsewhere has ended too. If even waiting fails, both are leaked: the child
        // may still be using them.
        if !matches!(self.child.wait(None), Ok(Some(_))) {
            std::mem::forget(self.captured.take());
            std::mem::forget(self.outcome.block().clone());
        }
    }
}
