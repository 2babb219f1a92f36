//! Reproducers kept from the third review of the renewal of a child made by a raw `fork`;
//! every wait is bounded. Each failed before its fix:
//! - a raw-fork child whose map was held at the fork hung in libc `fork`'s prepare handler
//!   (it took the map's lock before learning the map was broken; it now renews first);
//! - a signal handler of the renewing thread that used a lock waited forever for its own
//!   renewal (the waiter now knows the renewing thread by id and does not wait for itself);
//! - a renewing thread that ended mid-renewal left every other thread waiting forever (a
//!   waiter now takes the renewal over once that thread is proven gone);
//! - a seccomp filter faking membarrier's command list as well as the registration got
//!   the registration trusted (the list must now show the registration's command).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::seccomp::exit_now as exit;

/// Seccomp filter on the calling thread: `getpid` returns `action`.
fn filter_getpid(action: u32) {
    common::seccomp::filter(libc::SYS_getpid, None, action);
}

use shared_runtime::{Arena, Lock, RawValue, Value};

/// State letter of task `tid` of process `pid` (R, S, ...).
fn task_state(pid: i32, tid: i32) -> Option<u8> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let after = s.rfind(')')?;
    s.as_bytes().get(after + 2).copied()
}

/// Waits up to `limit` for `pid`: `Ok(code)` (200+signal if killed by one), or
/// `Err(state of its thread tid)` after killing it on timeout.
fn reap_within(pid: i32, tid: i32, limit: Duration) -> Result<i32, Option<u8>> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
        if r == pid {
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                200 + libc::WTERMSIG(status)
            });
        }
        if Instant::now() > deadline {
            let st = task_state(pid, tid);
            // SAFETY: our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let mut status = 0;
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
            return Err(st);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Finding 1. A child made by a raw fork while another thread of the parent held the map of
/// opened objects, whose first act is a libc `fork()`: the prepare handler
/// (`before_fork` -> `take()`) spins forever, because `BROKEN` is only set by the renewal,
/// and nothing on the prepare path renews (`prepare_fork` never calls `renew_if_forked`).
/// The commit's "take() gives up once the map is broken" never triggers here.
#[test]
fn raw_fork_child_with_held_map_hangs_in_libc_fork_prepare_handler() {
    let _f = common::forking();
    let a = Arena::with_capacity(1 << 22).unwrap();
    let busy_arena = Arena::with_capacity(1 << 22).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(Value::new_in(&busy_arena, 0u64).unwrap());
            }
        })
    };
    let mut codes = Vec::new();
    let mut verdict = None;
    for _ in 0..400 {
        let pid = common::raw_fork();
        if pid == 0 {
            // First thing: a libc fork (as Command::spawn with pre_exec, or any library).
            // SAFETY: fork; the grandchild only _exits.
            let g = unsafe { libc::fork() };
            if g == 0 {
                exit(0);
            }
            let mut st = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(g, &mut st, 0) };
            let name = format!("rvrenew-{}", std::process::id());
            match a.create::<RawValue<u8>>(&name, 0) {
                Ok(_) => exit(10), // the map was not held at the fork: try again
                Err(shared_runtime::Error::Corrupted(_)) => exit(0), // held, and no hang
                Err(_) => exit(20),
            }
        }
        match reap_within(pid, pid, Duration::from_secs(2)) {
            Ok(10) => continue,
            Ok(code) => {
                verdict = Some(code);
                break;
            }
            // Spinning (yield loop) in take(): the finding.
            Err(Some(b'R')) => {
                verdict = Some(1);
                break;
            }
            // Blocked elsewhere (a malloc lock copied held): not this finding.
            Err(_) => {
                codes.push(97);
                continue;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    let verdict = verdict.unwrap_or_else(|| panic!("never forked with the map held {codes:?}"));
    assert_eq!(
        verdict, 0,
        "a raw-fork child whose map was held at the fork hung spinning in libc fork's \
         prepare handler (take() waits for a lock no thread of the child holds)"
    );
}

static IN_HANDLER: AtomicBool = AtomicBool::new(false);
static HANDLER_LOCK: std::sync::atomic::AtomicPtr<Lock> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
static A_PID: AtomicU32 = AtomicU32::new(0);

/// SIGSYS on the renewing thread's `getpid` (between the CAS to RENEWING and the word's
/// final store): the handler does what an asynchronous signal handler (SIGALRM, SIGPROF)
/// arriving at that instant might: a non-blocking `try_lock`.
extern "C" fn on_sigsys_try_lock(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if !IN_HANDLER.swap(true, Ordering::SeqCst) {
        let l = HANDLER_LOCK.load(Ordering::SeqCst);
        // SAFETY: set before the filter, alive for the child's life.
        let _ = unsafe { &*l }.try_lock();
        // Reached only if try_lock returned.
        // SAFETY: write(2) of a static message.
        unsafe { libc::write(2, b"try_lock returned\n".as_ptr().cast(), 18) };
    }
    // SAFETY: the kernel passes the interrupted context; rax is the system call's result.
    unsafe {
        let uc = ctx.cast::<libc::ucontext_t>();
        (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = i64::from(A_PID.load(Ordering::SeqCst));
    }
}

/// Finding 2. A signal handler on the renewing thread that uses the crate (here a
/// non-blocking `try_lock`) while the word is RENEWING: `renew_for(RENEWING)` ->
/// `renew_raw_child` -> the CAS fails -> it waits for RENEWING to change, which only the
/// interrupted thread (itself) can do: the thread spins forever. Before the commit the
/// handler renewed again (generation counted twice) but returned.
#[test]
fn signal_handler_on_renewing_thread_self_deadlocks() {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    let other = Lock::new().unwrap();
    drop(lock.lock().unwrap());
    let pid = common::raw_fork();
    if pid == 0 {
        // SAFETY: getpid before the filter.
        A_PID.store(
            unsafe { libc::syscall(libc::SYS_getpid) } as u32,
            Ordering::SeqCst,
        );
        HANDLER_LOCK.store(Box::into_raw(Box::new(lock.clone())), Ordering::SeqCst);
        // SAFETY: handler installation.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys_try_lock as *const () as usize;
            // SA_NODEFER: the handler's own `getpid` (the crate renews its caches there)
            // traps too, and is answered by the handler in the same way; blocked, that
            // nested trap would kill the child (an artifact of trapping every `getpid`).
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            assert_eq!(libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()), 0);
        }
        filter_getpid(libc::SECCOMP_RET_TRAP);
        drop(other.lock().unwrap()); // this thread claims the renewal, traps in getpid
        exit(0);
    }
    let r = reap_within(pid, pid, Duration::from_secs(3));
    assert_eq!(
        r,
        Ok(0),
        "a try_lock in a signal handler on the renewing thread never returned (Err = killed \
         after 3 s, thread state)"
    );
}

static T2_TID: AtomicU32 = AtomicU32::new(0);
static T1_GONE: AtomicBool = AtomicBool::new(false);

/// Finding 3. The renewing thread ends between the CAS to RENEWING and the final store
/// (here: seccomp SECCOMP_RET_KILL_THREAD on its getpid; likewise pthread_exit or
/// asynchronous cancellation from a handler): the word stays RENEWING and every other thread
/// of the child that uses the crate spins forever in `renew_raw_child` (no bound, no error).
#[test]
fn renewing_thread_ending_mid_renewal_leaves_others_spinning_forever() {
    let _f = common::forking();
    let lock = Lock::new().unwrap();
    drop(lock.lock().unwrap());
    let pid = common::raw_fork();
    if pid == 0 {
        let l2 = lock.clone();
        let t2 = std::thread::spawn(move || {
            // SAFETY: gettid.
            T2_TID.store(
                unsafe { libc::syscall(libc::SYS_gettid) } as u32,
                Ordering::SeqCst,
            );
            let start = Instant::now();
            while !T1_GONE.load(Ordering::SeqCst) {
                if start.elapsed() > Duration::from_secs(5) {
                    exit(96);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(l2.lock().unwrap());
            exit(0);
        });
        std::mem::forget(t2);
        while T2_TID.load(Ordering::SeqCst) == 0 {
            std::hint::spin_loop();
        }
        // A watcher thread (no crate use) notices when this thread is gone.
        // SAFETY: gettid.
        let me = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        std::thread::spawn(move || loop {
            let s =
                std::fs::read_to_string(format!("/proc/self/task/{me}/stat")).unwrap_or_default();
            if s.is_empty() || s.contains(") Z") || s.contains(") X") {
                T1_GONE.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        });
        filter_getpid(0 /* SECCOMP_RET_KILL_THREAD */);
        let _ = lock.try_lock(); // claims the renewal, killed in getpid
        exit(95);
    }
    // Give T2 time to be created before asking for its tid.
    std::thread::sleep(Duration::from_millis(300));
    let tid = T2_TID.load(Ordering::SeqCst) as i32; // not shared: read /proc instead
    let _ = tid;
    let t2 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&t| t != pid)
                .min()
        })
        .unwrap_or(pid);
    let r = reap_within(pid, t2, Duration::from_secs(3));
    assert_eq!(
        r,
        Ok(0),
        "another thread of the child spun forever on the RENEWING word left by a thread that \
         ended mid-renewal (Err = killed after 3 s, that thread's state)"
    );
}

/// Finding 4 (minor). `registration_holds` trusts a registration when GET_REGISTRATIONS is
/// refused and QUERY "answers" a mask without bit 9; but a seccomp filter can only make a
/// call return 0 or an error, so a faked QUERY returns 0 — a mask that does not even list
/// the REGISTER_GLOBAL_EXPEDITED command that just "succeeded". A filter faking REGISTER
/// and QUERY (ERRNO 0) and refusing GET_REGISTRATIONS gets plain releases with no
/// registration. (Requiring QUERY to list REGISTER_GLOBAL_EXPEDITED would catch it.)
#[test]
fn a_faked_query_defeats_the_registration_check() {
    const MODE: &str = "RV_RENEWAL_FAKED_QUERY";
    if std::env::var_os(MODE).is_some() {
        println!("faked-query-checked");
        assert!(
            !shared_runtime::test_hooks::releases_plain(),
            "released plainly with a faked registration"
        );
        return;
    }
    let _f = common::forking();
    let code = common::in_child(|| {
        use common::seccomp::{f, install, JEQ_K, LD_W_ABS, RET_K};
        install(vec![
            f(LD_W_ABS, 0, 0, 0),
            f(JEQ_K, 0, 6, libc::SYS_membarrier as u32),
            f(LD_W_ABS, 0, 0, 16),
            f(JEQ_K, 3, 0, 1 << 2), // REGISTER_GLOBAL_EXPEDITED: fake success
            f(JEQ_K, 2, 0, 0),      // QUERY: fake "0"
            f(JEQ_K, 0, 2, 1 << 9), // GET_REGISTRATIONS: EINVAL (as before 6.3)
            f(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EINVAL as u32),
            f(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO),
            f(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ]);
        common::seccomp::run_self(
            "a_faked_query_defeats_the_registration_check",
            MODE,
            "faked-query-checked",
        )
    })
    .unwrap();
    assert_eq!(
        code, 0,
        "1: plain releases under a faked registration; 2: no check ran"
    );
}
