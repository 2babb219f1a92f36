//! Reproducer kept from the fourth review of the renewal of a child made by a raw `fork`;
//! every wait is bounded. A signal handler of the renewing thread, which cannot wait for
//! the renewal, went on with the caches the renewal had not emptied yet (its parent's pid,
//! its parent thread's identity) and re-entered an `RLock` its parent held: two processes
//! inside one lock. Such a handler now makes those caches the child's itself.

use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::seccomp::exit_now as exit;

/// Seccomp filter on the calling thread: `getpid` returns `action`.
fn filter_getpid(action: u32) {
    common::seccomp::filter(libc::SYS_getpid, None, action);
}

use shared_runtime::RLock;

fn reap_within(pid: i32, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                200 + libc::WTERMSIG(status)
            });
        }
        if Instant::now() > deadline {
            // SAFETY: our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let mut status = 0;
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

static R_LOCK: AtomicPtr<RLock> = AtomicPtr::new(std::ptr::null_mut());
static A_PID: AtomicU32 = AtomicU32::new(0);
/// 0 not run, 1 try_lock refused (right), 2 try_lock succeeded (the breach), 3 error.
static VERDICT: AtomicI32 = AtomicI32::new(0);

static IN_HANDLER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_sigsys_try_rlock(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Once: the handler's own `getpid` traps again (SA_NODEFER) and is only answered.
    if !IN_HANDLER.swap(true, Ordering::SeqCst) {
        // SAFETY: set before the filter, alive for the child's life.
        let l = unsafe { &*R_LOCK.load(Ordering::SeqCst) };
        let v = match l.try_lock() {
            Ok(g) => {
                std::mem::forget(g);
                2
            }
            Err(std::sync::TryLockError::WouldBlock) => 1,
            Err(_) => 3,
        };
        VERDICT.store(v, Ordering::SeqCst);
    }
    // SAFETY: the kernel passes the interrupted context; rax is the system call's result.
    unsafe {
        let uc = ctx.cast::<libc::ucontext_t>();
        (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = i64::from(A_PID.load(Ordering::SeqCst));
    }
}

/// Renewal 1. A signal handler of the renewing thread "goes on with caches that the renewal,
/// once resumed, empties again": those caches are the parent's forking thread's identity.
/// An RLock held by that parent thread at the raw fork is re-entered by the child's handler
/// (identity match -> depth + 1): two processes inside one RLock at once.
#[test]
fn handler_of_renewing_thread_reenters_rlock_held_by_parent() {
    let _f = common::forking();
    let r = RLock::new().unwrap();
    let other = RLock::new().unwrap();
    drop(other.lock().unwrap()); // establish identity, caches
    let held = r.lock().unwrap(); // the parent holds r across the raw fork, and after
    let pid = common::raw_fork();
    if pid == 0 {
        // SAFETY: getpid before the filter.
        A_PID.store(
            unsafe { libc::syscall(libc::SYS_getpid) } as u32,
            Ordering::SeqCst,
        );
        std::mem::forget(held); // the child's copy of the guard is not the child's
        R_LOCK.store(Box::into_raw(Box::new(r.clone())), Ordering::SeqCst);
        // SAFETY: handler installation.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys_try_rlock as *const () as usize;
            // SA_NODEFER: as in `renewal_review2.rs`, the handler's own `getpid` traps too.
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            assert_eq!(libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()), 0);
        }
        filter_getpid(libc::SECCOMP_RET_TRAP);
        let _ = other.try_lock(); // claims the renewal, traps in getpid
        exit(10 + VERDICT.load(Ordering::SeqCst));
    }
    let code = reap_within(pid, Duration::from_secs(5));
    drop(held);
    assert_eq!(
        code,
        Some(11),
        "11 = the child's handler was refused the RLock the parent holds; 12 = it re-entered \
         it (mutual exclusion across processes broken); 13 = error; None = hung"
    );
}
