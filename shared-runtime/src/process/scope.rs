//! `Process::scope`: children whose closures borrow, all joined before the scope returns.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use super::child::{Child, Ended};
use super::outcome::{Block, Outcome, Report};
use super::{Captured, Process};
use crate::sys::process::{current_pid, process_key, write_stderr};
use crate::{Error, Result, SharedType};

/// A scope to start processes in, made by [`Process::scope`] (the shape of
/// [`std::thread::Scope`]).
///
/// It keeps, for every child started in it, what the child needs from the parent: the
/// child's pidfd, its report block and the parent's copy of its closure (which may own
/// shared objects whose drop would free memory the child writes). They are let go only
/// once the child has ended, so a [`ScopedProcess`] leaked with `mem::forget` changes
/// nothing: the scope still joins its child, and frees its report block.
///
/// Once the scope's closure has returned, the scope is closing: it waits for every child,
/// then drops the parent's copies of their closures, and [`start`](Scope::start) refuses
/// ([`Error::ScopeClosing`]) any child a destructor running then would start.
///
/// ```
/// use shared_runtime::{Process, RawValue};
///
/// let total = RawValue::new(0u64)?;
/// Process::scope(|s| s.start(|| total.set(7))?.join())?;
/// assert_eq!(total.get(), 7);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    /// Never dropped (no drop glue may touch `'scope` data when the scope itself is dropped,
    /// after `'scope` ended); `Process::scope` empties it, dropping every entry, first.
    children: ManuallyDrop<RefCell<Vec<Entry<'scope>>>>,
    /// Set when the scope's closure has returned: no child may be started from then on.
    closing: Cell<bool>,
    /// The process that made the scope: only it can start children in it.
    owner: u64,
    owner_pid: i32,
    /// Invariant lifetimes, as `std::thread::Scope`'s: nothing may shrink or stretch them.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// What a scope keeps of one child.
struct Entry<'scope> {
    child: Child,
    /// The report block: the scope's, not the handle's (a leaked handle leaks nothing).
    /// Freed when the handle goes after reporting how the child ended, or with the scope.
    block: Option<Block>,
    /// The parent's copy of the closure; dropped once the child has ended.
    captured: Option<Box<dyn Captured + 'scope>>,
    /// Whether a `join`/`join_timeout` has told the user how the child ended (it has).
    reported: bool,
}

/// A child started in a [`Scope`] (the shape of [`std::thread::ScopedJoinHandle`]).
///
/// Dropping it, or leaking it, leaves the child to the scope, which joins it before
/// [`Process::scope`] returns; if the child failed and nobody joined it, `Process::scope`
/// panics, as `std::thread::scope` does for a thread that panicked.
///
/// ```
/// use shared_runtime::{Process, RawArray};
///
/// let squares = RawArray::<u64>::zeroed(4)?;
/// let sum = Process::scope(|s| {
///     let squares = &squares; // borrowed by every child
///     let workers = (0..4)
///         .map(|i| s.start(move || { squares.set(i, (i * i) as u64); i as u64 }))
///         .collect::<Result<Vec<_>, _>>()?;
///     workers.into_iter().map(|w| w.join()).sum::<shared_runtime::Result<u64>>()
/// })?;
/// assert_eq!((sum, squares.to_vec()), (6, vec![0, 1, 4, 9]));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[must_use = "call join() to see whether the child failed (the scope joins it otherwise)"]
pub struct ScopedProcess<'scope, T = ()> {
    /// The scope's entries; this child's is at `index`, and holds all there is of it.
    children: &'scope RefCell<Vec<Entry<'scope>>>,
    index: usize,
    pid: i32,
    value: PhantomData<T>,
}

impl Process {
    /// Runs `f` with a [`Scope`] whose [`start`](Scope::start) takes closures that borrow
    /// from outside the scope, and joins every child started in it before returning what `f`
    /// returned (the shape of [`std::thread::scope`]).
    ///
    /// # Panics
    /// If a child that nobody joined failed (panicked, was killed or exited early), after
    /// every child has been joined, with a message naming each such child; a child joined
    /// with [`ScopedProcess::join`] reports its failure there instead. An unjoined child
    /// reaped by someone else (`SIGCHLD` set to `SIG_IGN`, say) counts as failed unless its
    /// report block says its closure returned. If `f` panics, the panic resumes once every
    /// child has been joined; so does the first panic of a destructor of the parent's
    /// copies of the children's closures (dropped, every one, after every child has ended).
    ///
    /// ```
    /// use shared_runtime::{Process, Value};
    ///
    /// let n = Value::new(7)?;
    /// Process::scope(|s| s.start(|| n.update(|v| *v *= 6))?.join())?;
    /// assert_eq!(n.get(), 42);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn scope<'env, F, R>(f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let scope = Scope {
            children: ManuallyDrop::new(RefCell::new(Vec::new())),
            closing: Cell::new(false),
            owner: process_key(),
            owner_pid: current_pid(),
            scope: PhantomData,
            env: PhantomData,
        };
        // Whatever unwinds out of here, every child is waited for first.
        let closer = Closer(&scope);
        let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
        let (failures, drop_panic) = scope.join_all();
        drop(closer);
        match (result, drop_panic) {
            (Err(payload), _) | (Ok(_), Some(payload)) => panic::resume_unwind(payload),
            (Ok(_), None) if !failures.is_empty() => panic!(
                "{} child process(es) started in Process::scope failed and were not joined: {}",
                failures.len(),
                failures.join("; ")
            ),
            (Ok(value), None) => value,
        }
    }
}

/// Waits for every child of a scope when dropped: what keeps `Process::scope` from
/// returning, or unwinding, while a child that borrows from it may run.
struct Closer<'a, 'scope, 'env>(&'a Scope<'scope, 'env>);

impl Drop for Closer<'_, '_, '_> {
    fn drop(&mut self) {
        self.0.wait_all();
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Forks a child that runs `f`, which may borrow anything that outlives the scope; as
    /// [`Process::start`] otherwise.
    ///
    /// # Errors
    /// As [`Process::start`]; [`Error::ForeignScope`] if called in another process than the
    /// one that made the scope (a child that was handed the scope): its children would
    /// outlive the scope; [`Error::ScopeClosing`] once the scope's closure has returned (from
    /// a destructor the closing scope runs): the scope could not join the child.
    ///
    /// ```
    /// use shared_runtime::{Process, RawValue};
    ///
    /// let x = RawValue::new(2.0f64)?;
    /// let root = Process::scope(|s| s.start(|| x.get().sqrt())?.join())?;
    /// assert_eq!(root, std::f64::consts::SQRT_2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn start<T: SharedType>(
        &'scope self,
        f: impl FnOnce() -> T + 'scope,
    ) -> Result<ScopedProcess<'scope, T>> {
        if process_key() != self.owner {
            return Err(Error::ForeignScope {
                owner: self.owner_pid,
            });
        }
        if self.closing.get() {
            return Err(Error::ScopeClosing);
        }
        let outcome = Outcome::<T>::new()?;
        // Borrowed, and room made, before the fork: once the child runs, nothing may keep
        // it from being recorded.
        let mut children = self.children.borrow_mut();
        children.reserve(1);
        let (child, f) = Child::fork(f, &outcome)?;
        let pid = child.pid();
        children.push(Entry {
            child,
            block: Some(outcome.block().clone()),
            captured: Some(Box::new(f)),
            reported: false,
        });
        Ok(ScopedProcess {
            children: &self.children,
            index: children.len() - 1,
            pid,
            value: PhantomData,
        })
    }

    /// Closes the scope and waits for every child to end (no user code runs). Waiting can
    /// fail only for reasons no documented error covers; the process then aborts, since the
    /// scope can neither return nor unwind while a child that borrows from it may run.
    fn wait_all(&self) {
        self.closing.set(true);
        let Ok(mut children) = self.children.try_borrow_mut() else {
            fatal("the children of a Process::scope are in use while it closes");
        };
        for entry in children.iter_mut() {
            if let Err(e) = entry.child.wait(None) {
                fatal(&format!(
                    "cannot wait for child process {} of a Process::scope: {e}",
                    entry.child.pid()
                ));
            }
        }
    }

    /// Joins every child, then drops the parent's copies of their closures and frees what
    /// the scope kept; returns each failure that no handle reported, and the first panic of
    /// those closures' destructors.
    fn join_all(&self) -> (Vec<String>, Option<Box<dyn Any + Send>>) {
        // First every child has ended; only then does user code (the destructors) run.
        self.wait_all();
        let mut first_panic = None;
        let len = self.children.borrow().len();
        for i in 0..len {
            // Taken out of the list first: a destructor may use the scope (or a handle).
            let captured = self.children.borrow_mut()[i].captured.take();
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(captured))) {
                first_panic.get_or_insert(payload);
            }
        }
        let entries = std::mem::take(&mut *self.children.borrow_mut());
        let failures = entries.iter().filter_map(unreported_failure).collect();
        (failures, first_panic)
    }
}

/// How a child that nobody joined failed, if it did.
fn unreported_failure(entry: &Entry<'_>) -> Option<String> {
    let (Some(block), Some(ended), false) = (&entry.block, entry.child.ended(), entry.reported)
    else {
        return None; // a handle reported it
    };
    match (entry.child.verdict(ended, block), ended) {
        (Ok(()), _) => None,
        (Err(_), Ended::Elsewhere(_)) => {
            let pid = entry.child.pid();
            match block.report() {
                Report::Returned => None,
                Report::Panicked(message) => Some(format!(
                    "child process {pid} panicked: {message} (it was reaped by someone else)"
                )),
                Report::Nothing => Some(format!(
                    "child process {pid} ended before its closure returned (it was reaped by \
                     someone else, so how is unknown)"
                )),
            }
        }
        (Err(e), Ended::Exit(_)) => Some(e.to_string()),
    }
}

/// Reports `msg` and aborts the process: for a scope that can neither return nor unwind.
fn fatal(msg: &str) -> ! {
    write_stderr(format!("shared_runtime: {msg}; aborting\n").as_bytes());
    std::process::abort()
}

impl fmt::Debug for Scope<'_, '_> {
    /// ```
    /// shared_runtime::Process::scope(|s| {
    ///     assert_eq!(format!("{s:?}"), "Scope { children: 0 }");
    /// });
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let children = self.children.try_borrow().map(|c| c.len()).ok();
        f.debug_struct("Scope")
            .field("children", &children.unwrap_or_default())
            .finish()
    }
}

impl<T: SharedType> ScopedProcess<'_, T> {
    /// Waits for the child to end and returns what its closure returned.
    ///
    /// # Errors
    /// As [`Process::join`].
    ///
    /// ```
    /// use shared_runtime::{Error, Process};
    ///
    /// let word = "boom";
    /// let err = Process::scope(|s| s.start(|| -> u8 { panic!("{word}") })?.join()).unwrap_err();
    /// assert!(matches!(err, Error::ChildPanicked { message, .. } if message == "boom"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn join(mut self) -> Result<T> {
        self.join_with(None)
    }

    /// Waits at most `timeout` for the child to end; returns as [`join`](Self::join).
    ///
    /// # Errors
    /// As [`Process::join_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use shared_runtime::{Error, Process};
    ///
    /// Process::scope(|s| {
    ///     let mut p = s.start(|| std::thread::sleep(Duration::from_secs(60)))?;
    ///     assert!(matches!(p.join_timeout(Duration::from_millis(1)), Err(Error::Timeout(_))));
    ///     p.kill()?;
    ///     assert!(matches!(p.join(), Err(Error::ChildKilled { .. })));
    ///     Ok::<(), Error>(())
    /// })?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.join_with(Some(timeout))
    }

    fn join_with(&mut self, timeout: Option<Duration>) -> Result<T> {
        let (verdict, captured) = {
            let mut children = self.children.borrow_mut();
            let entry = &mut children[self.index];
            let Some(block) = &entry.block else {
                unreachable!("a child's report block is kept while its handle lives")
            };
            let verdict = entry
                .child
                .join(timeout, block)
                .map(|()| Outcome::<T>::value_in(block));
            // As `Process`: what the child uses is kept unless it is known to have ended.
            let ended = entry.child.ended().is_some();
            entry.reported |= ended;
            (verdict, if ended { entry.captured.take() } else { None })
        };
        // Dropped outside the borrow: its destructors are user code, which may use the scope.
        drop(captured);
        verdict
    }
}

/// Frees the report block once the handle has told how the child ended; otherwise the scope
/// keeps it, to judge the child when it joins it.
impl<T> Drop for ScopedProcess<'_, T> {
    fn drop(&mut self) {
        if let Ok(mut children) = self.children.try_borrow_mut() {
            if let Some(entry) = children.get_mut(self.index) {
                if entry.reported {
                    entry.block = None;
                }
            }
        }
    }
}

impl<T> ScopedProcess<'_, T> {
    /// The child's process id.
    ///
    /// ```
    /// shared_runtime::Process::scope(|s| {
    ///     let p = s.start(|| {})?;
    ///     assert!(p.pid() > 0);
    ///     p.join()
    /// })?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Kills the child with `SIGKILL`; as [`Process::kill`].
    ///
    /// # Errors
    /// As [`Process::kill`].
    ///
    /// ```
    /// use shared_runtime::{Error, Process};
    ///
    /// let err = Process::scope(|s| {
    ///     let p = s.start::<()>(|| loop { std::thread::park() })?; // never returns: say what T is
    ///     p.kill()?;
    ///     p.join()
    /// }).unwrap_err();
    /// assert!(matches!(err, Error::ChildKilled { signal: 9, .. }));
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.children.borrow()[self.index].child.kill()
    }
}

/// Shows the pid and whether the child runs, or how it ended.
///
/// ```
/// shared_runtime::Process::scope(|s| {
///     let p = s.start(|| {})?;
///     assert!(format!("{p:?}").starts_with(&format!("ScopedProcess {{ pid: {}", p.pid())));
///     p.join()
/// })?;
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl<T> fmt::Debug for ScopedProcess<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ScopedProcess");
        s.field("pid", &self.pid);
        if let Ok(children) = self.children.try_borrow() {
            s.field("state", &children[self.index].child.state());
        }
        s.finish()
    }
}
