//! Processes: run a closure in a forked child, `std::thread`'s model.
//!
//! [`Process::start`] takes a closure that owns what it uses (`'static`, like
//! `std::thread::spawn`); [`Process::scope`] lets closures borrow, joining every child
//! before it returns (like `std::thread::scope`). Children return values of any
//! [`SharedType`](crate::SharedType) through the arena, and a child's failure is a typed
//! [`Error`](crate::Error): `ChildPanicked`, `ChildKilled` or `ChildExited`.
//!
//! - `child.rs`: the parent's view of one child (fork, pidfd, wait, kill, verdict);
//! - `outcome.rs`: the arena block a child reports its value or panic message through;
//! - `owned.rs`: [`Process`]; `scope.rs`: [`Scope`] and [`ScopedProcess`].

mod child;
mod outcome;
mod owned;
mod scope;

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

pub use owned::Process;
pub use scope::{Scope, ScopedProcess};

use crate::sys::process as sys;
use crate::SharedType;
use outcome::Outcome;

/// The exit code of a child whose closure panicked (the same as a panicking Rust program).
///
/// ```
/// use shared_runtime::{Error, Process, PANIC_EXIT_CODE};
///
/// // A child that exits with this code without panicking is not taken for a panic.
/// let p = Process::<()>::start(|| std::process::exit(PANIC_EXIT_CODE))?;
/// assert!(matches!(p.join(), Err(Error::ChildExited { code: PANIC_EXIT_CODE, .. })));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub const PANIC_EXIT_CODE: i32 = 101;

/// What the parent keeps of a child's closure: its copy, never called, dropped once the
/// child has ended (it owns what the child's copy uses).
trait Captured {}
impl<F> Captured for F {}

/// Set in a forked child: panics there are reported by the hook of [`install_panic_hook`].
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

/// The child's side: runs `f`, waits for every descendant it left running, reports its
/// value (exit code 0) or its panic message (exit code [`PANIC_EXIT_CODE`]) through
/// `outcome`, and exits without returning.
///
/// The child is a subreaper, and waits for all its children, those it leaked with
/// `mem::forget` and any orphaned grandchildren given to it, before it ends: they may use
/// objects that only the parent's copy of `f` keeps alive, which the parent frees once this
/// child has ended. (A child that ends otherwise, by `std::process::exit` or a signal, skips
/// this: see "Descendants" in [`Process`].)
fn run_child<T: SharedType>(f: impl FnOnce() -> T, outcome: &Outcome<T>) -> ! {
    IN_CHILD.store(true, Ordering::Relaxed);
    // This child gives its cache of the global arena back as it ends (below).
    crate::arena::cache_global_blocks_here();
    sys::become_subreaper();
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    sys::reap_all_children();
    // Blocks this child freed into its cache are given back before its parent can learn
    // that it has ended.
    crate::arena::Arena::flush_global_cache();
    match result {
        Ok(value) => {
            outcome.put_value(value);
            sys::exit_now(0)
        }
        Err(payload) => {
            outcome.block().put_panic(panic_message(&*payload));
            // Not dropped: a payload's destructor is user code that could panic again.
            std::mem::forget(payload);
            sys::exit_now(PANIC_EXIT_CODE)
        }
    }
}

/// A panic payload's message: the `&str` or `String` that `panic!` makes, or what std
/// prints for any other payload.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
