//! `membarrier(2)`: the system-wide memory barrier that lets a lock release with a plain
//! store (see `counted_lock` for the protocol and the argument).
//!
//! A process *registers* with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`; from then on a
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED` issued by any thread of any process returns only after
//! every CPU running a thread of a registered process has executed a full memory barrier
//! (a CPU running something else, or a thread not running, is in such a state already: a
//! context switch is a full barrier). Registration belongs to the address space: the
//! kernel copies it into a forked child's (Linux 6.18 reports it there), and an `exec`ed
//! image starts unregistered. A child registers again anyway when it renews its caches
//! (`process::refresh_pid_in_child`): registering twice is harmless, and the wipe page's
//! bit that records it is the child's own.
//!
//! Either call may be refused (a kernel before 4.16, or a seccomp filter): `false` then, and
//! the callers fall back to what needs no membarrier. A filter may also fake the
//! registration's success; where the kernel can report registrations (6.3 and later) it is
//! asked, and a registration it does not report is not trusted.

/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (linux/membarrier.h).
const GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
/// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`.
const REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

fn membarrier(cmd: libc::c_int) -> bool {
    // SAFETY: membarrier takes two integers (command, flags; and a cpu id that these
    // commands ignore) and touches no memory of ours. A refusal is an error return.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
}

/// Registers this process (its address space) to receive global expedited barriers;
/// whether the kernel accepted. Async-signal-safe (one system call): it runs in a child
/// right after `fork`.
pub(crate) fn register_global() -> bool {
    membarrier(REGISTER_GLOBAL_EXPEDITED) && registration_holds()
}

/// `MEMBARRIER_CMD_GET_REGISTRATIONS` (Linux 6.3): the commands this process is
/// registered for.
const GET_REGISTRATIONS: libc::c_int = 1 << 9;

/// Whether the kernel confirms the registration just made. A seccomp filter may fake the
/// registration's success (an error return of 0) without the kernel registering anything:
/// then barriers would skip this process, and its plain releases could lose a wake-up. A
/// kernel that cannot be asked (before 6.3, as its list of commands says) leaves the
/// registration's own answer standing.
fn registration_holds() -> bool {
    // SAFETY: as in `membarrier`: two integers in, a bit mask or an error out.
    let got = unsafe { libc::syscall(libc::SYS_membarrier, GET_REGISTRATIONS, 0, 0) };
    if got >= 0 {
        return got & libc::c_long::from(REGISTER_GLOBAL_EXPEDITED) != 0;
    }
    // Refused: trusted only where the kernel has no such question (its list of commands
    // lacks it). A kernel that has it but does not answer cannot tell: not trusted (the
    // releases are then the fenced ones, slower but always right).
    // SAFETY: as above (`MEMBARRIER_CMD_QUERY` is 0).
    let commands = unsafe { libc::syscall(libc::SYS_membarrier, 0, 0, 0) };
    commands >= 0
        && commands & libc::c_long::from(GET_REGISTRATIONS) == 0
        // A kernel that just accepted the registration lists the command (a faked answer
        // is 0).
        && commands & libc::c_long::from(REGISTER_GLOBAL_EXPEDITED) != 0
}

/// Runs a full memory barrier on every CPU that runs a thread of a registered process,
/// and returns after all of them did; whether it ran (`false`: refused, nothing is
/// guaranteed).
pub(crate) fn global_barrier() -> bool {
    #[cfg(feature = "test-hooks")]
    if REFUSED.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    membarrier(GLOBAL_EXPEDITED)
}

/// Set by [`refuse_for_tests`].
#[cfg(feature = "test-hooks")]
static REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes this process behave as one where membarrier is refused: its releases are the
/// fenced ones and its waiters nap briefly (a test hook).
#[cfg(feature = "test-hooks")]
pub fn refuse_for_tests() {
    REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
    crate::sys::process::force_fenced_release();
}

#[cfg(test)]
mod tests {
    #[test]
    fn registered_barrier_runs() {
        // This test machine's kernel has membarrier; where it is refused, both are refused.
        assert_eq!(super::register_global(), super::global_barrier());
    }
}
