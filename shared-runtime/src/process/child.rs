//! `Child`: one forked child as its parent sees it (pid, pidfd, how it ended), shared by
//! [`Process`](super::Process) and [`ScopedProcess`](super::ScopedProcess).

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::outcome::{Block, Outcome, Report};
use super::{install_panic_hook, run_child, PANIC_EXIT_CODE};
use crate::sys::pidfd::{Opened, PidFd, Wait};
use crate::sys::process::{self as sys, Exit, Forked};
use crate::{Arena, Error, Result, SharedType};

/// A forked child, from the parent's side.
pub(crate) struct Child {
    pid: i32,
    /// The child's pidfd, opened right after the fork; `None` if none could be had (the
    /// child is then waited for and signalled by pid), and closed once the child is reaped.
    pidfd: Option<PidFd>,
    /// How the child ended, once that is known.
    ended: Option<Ended>,
}

/// How a child ended, as far as its parent can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Reaped here, so.
    Exit(Exit),
    /// Reaped by someone else, as `call` found (`ECHILD`, or `ESRCH` from `pidfd_open`).
    Elsewhere(&'static str),
}

impl Child {
    /// Forks a child that runs `f`, reports through `outcome` and exits; returns the child
    /// and, to the parent, `f` back (the parent's copy, which must be kept, unused, until
    /// the child has ended: it owns what the child's copy uses).
    ///
    /// # Errors
    /// [`Error::Os`] if the global arena cannot be created or the system cannot fork.
    pub(crate) fn fork<T: SharedType, F: FnOnce() -> T>(
        f: F,
        outcome: &Outcome<T>,
    ) -> Result<(Child, F)> {
        Arena::try_global()?;
        install_panic_hook();
        // Anything the parent buffered would otherwise be printed twice.
        let _ = io::stdout().flush();
        // SAFETY: the child runs only `f` (plus the panic hook, which formats into a String
        // and writes it with one write(2)), reports through `outcome` and leaves with _exit,
        // never returning into the caller's code; `Process::start` documents which locks `f`
        // must avoid.
        match unsafe { sys::fork_process()? } {
            Forked::Parent(pid) => {
                // Before anything else, so that nothing has had time to reap the child.
                let (pidfd, ended) = match PidFd::for_child(pid) {
                    Opened::Fd(fd) => (Some(fd), None),
                    Opened::ReapedElsewhere => (None, Some(Ended::Elsewhere("pidfd_open"))),
                    Opened::Unavailable => (None, None), // by pid, as waitpid and kill do
                };
                Ok((Child { pid, pidfd, ended }, f))
            }
            Forked::Child => run_child(f, outcome),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// How the child ended, if a wait has seen it end (here or, as `ECHILD` said, elsewhere).
    pub(crate) fn ended(&self) -> Option<Ended> {
        self.ended
    }

    /// Waits at most `timeout` (`None`: as long as it takes) for the child to end, reaps it
    /// and remembers how it ended; `None` if the time ran out.
    ///
    /// # Errors
    /// [`Error::Os`] if waiting fails (a child reaped elsewhere is not an error here).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<Ended>> {
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
        if ended.is_some() {
            self.pidfd = None; // it names nobody now; give the descriptor back
        }
        self.ended = ended;
        Ok(ended)
    }

    /// Waits with [`wait`](Self::wait) and judges the end with [`verdict`](Self::verdict):
    /// `Ok` if the closure returned, [`Error::Timeout`] if the time ran out.
    pub(crate) fn join(&mut self, timeout: Option<Duration>, block: &Block) -> Result<()> {
        match self.wait(timeout)? {
            Some(ended) => self.verdict(ended, block),
            None => Err(Error::Timeout(timeout.unwrap_or(Duration::MAX))),
        }
    }

    /// `Ok` if the child's closure returned (its value is in `block`); otherwise the typed
    /// failure.
    pub(crate) fn verdict(&self, ended: Ended, block: &Block) -> Result<()> {
        let pid = self.pid;
        match (ended, block.report()) {
            (Ended::Exit(Exit::Code(0)), Report::Returned) => Ok(()),
            (Ended::Exit(Exit::Code(PANIC_EXIT_CODE)), Report::Panicked(message)) => {
                Err(Error::ChildPanicked { pid, message })
            }
            (Ended::Exit(Exit::Code(code)), _) => Err(Error::ChildExited { pid, code }),
            (Ended::Exit(Exit::Signal(signal)), _) => Err(Error::ChildKilled { pid, signal }),
            (Ended::Elsewhere(call), _) => {
                let msg = format!(
                    "child process {pid} was reaped by someone else (a wait for any child \
                     elsewhere in this process, or SIGCHLD set to SIG_IGN): it has ended, \
                     but how is unknown"
                );
                let source = io::Error::new(io::ErrorKind::NotFound, msg);
                Err(Error::Os { call, source })
            }
        }
    }

    /// Kills the child with `SIGKILL`, through its pidfd when it has one; nothing happens
    /// if it is known to have ended.
    ///
    /// # Errors
    /// [`Error::Os`] if the signal cannot be sent.
    pub(crate) fn kill(&self) -> Result<()> {
        if self.ended.is_some() {
            return Ok(());
        }
        match &self.pidfd {
            Some(fd) => fd.send_signal(Signal::SIGKILL),
            None => sys::kill_process(self.pid),
        }
    }

    /// What `Debug` shows of the child: how it ended, or whether it runs.
    pub(crate) fn state(&self) -> State {
        match (self.ended, &self.pidfd) {
            (Some(ended), _) => State::Ended(ended),
            (None, Some(fd)) if fd.has_exited() => State::Unjoined,
            (None, Some(_)) => State::Running,
            (None, None) => State::Unknown,
        }
    }
}

/// A child's state, as `Debug` shows it.
pub(crate) enum State {
    Running,
    /// Ended, not yet joined.
    Unjoined,
    Ended(Ended),
    /// Not joined, and without a pidfd nothing tells whether it runs.
    Unknown,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Running => f.write_str("running"),
            State::Unjoined => f.write_str("ended, not joined"),
            State::Unknown => f.write_str("not joined"),
            State::Ended(Ended::Exit(Exit::Code(code))) => write!(f, "exited with code {code}"),
            State::Ended(Ended::Exit(Exit::Signal(sig))) => {
                write!(f, "killed by signal {sig} ({})", sys::signal_name(*sig))
            }
            State::Ended(Ended::Elsewhere(_)) => f.write_str("reaped elsewhere"),
        }
    }
}
