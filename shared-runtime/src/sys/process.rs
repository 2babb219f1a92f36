//! Processes: the cached process id and fork generation, fork, wait and signals.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::{Error, Result};

/// This process's id, cached; 0 until first asked for.
static PID: AtomicI32 = AtomicI32::new(0);
static ATFORK: Once = Once::new();

/// Registers the fork handler and maps the wipe-on-fork page when the program (or this
/// library) is loaded, before `main` and before any thread exists: done later, under a
/// `Once`, a fork while another thread was in the middle of it would leave the child
/// waiting forever on that `Once`. (`current_pid` still does it if this did not run.)
#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = {
    extern "C" fn at_load() {
        register_fork_handling();
    }
    at_load
};

fn register_fork_handling() {
    ATFORK.call_once(|| {
        map_wipe_page();
        // SAFETY: registering handlers is always allowed. The child handler does only
        // async-signal-safe work, which is what pthread_atfork(3) requires of one; the
        // prepare handler runs before the fork, in the forking thread, like any code.
        let rc = unsafe {
            libc::pthread_atfork(
                Some(prepare_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            )
        };
        assert_eq!(rc, 0, "pthread_atfork failed");
        PID.store(nix::unistd::getpid().as_raw(), Ordering::Relaxed);
    });
}

/// How many forks separate this process from the first one that used this crate: a
/// forked child is one more than its parent was at the fork (see [`process_key`]).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// A page the kernel zeroes in every child, however the child was made (`MADV_WIPEONFORK`):
/// its first word has [`RENEWED`] in a process whose caches are its own, and is 0 in a child
/// that has not renewed them yet. Null where the kernel refuses the advice (then only
/// children made by libc's `fork`, which runs the `pthread_atfork` handler, renew their
/// caches).
static WIPED_IN_CHILDREN: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
/// In the wipe page's word: this process's caches are its own.
const RENEWED: u64 = 1;
/// In the wipe page's word: this process (its address space) is registered for global
/// membarriers, so its lock releases may be plain stores (`sys::counted_lock`). Kept in the
/// wipe page, which the kernel clears in every child however made, so that a child sets it
/// only once it has registered itself (`sys::membarrier`); an `exec` starts afresh.
/// Without the wipe page the bit is never set, and every release is the fenced one.
const REGISTERED: u64 = 2;
/// In the wipe page's word, above [`RENEWED`] and [`REGISTERED`]: this process's fork
/// [`GENERATION`], so that the word's value names this very process among all that share
/// its memory by fork (a child's is always larger than its parent's was at the fork, or 0
/// until the child renews): what lets a lock guard check with one load that it is dropped
/// in the process that took it (see [`release_key`]).
const GENERATION_SHIFT: u32 = 2;

/// Sets up [`WIPED_IN_CHILDREN`]; called once, before any fork this crate can see.
fn map_wipe_page() {
    let len = crate::sys::memory::page_size();
    // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return;
    }
    // SAFETY: `page` is the mapping just made, `len` bytes long.
    if unsafe { libc::madvise(page, len, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: as above; nothing else refers to it.
        unsafe { libc::munmap(page, len) };
        return;
    }
    let word = page.cast::<AtomicU64>();
    // SAFETY: the page is mapped, writable, page-aligned and never unmapped; an AtomicU64
    // may live in it.
    unsafe {
        (*word).store(
            RENEWED | stamp(GENERATION.load(Ordering::Relaxed)) | registered(),
            Ordering::Relaxed,
        )
    };
    WIPED_IN_CHILDREN.store(word, Ordering::Release);
}

/// A fork generation, placed above the flags of the wipe page's word (the top bits of a
/// generation past 2^61 are dropped: no process family forks that often).
fn stamp(generation: u64) -> u64 {
    (generation << GENERATION_SHIFT) & !NOT_A_KEY
}

/// A bit no value of the wipe page's word has (see [`stamp`]): a release key with it set
/// never passes [`plain_release`], so a guard may use it for a flag of its own that sends
/// its release down the path that checks everything.
pub(crate) const NOT_A_KEY: u64 = 1 << 63;

/// Registers this process for global membarriers: [`REGISTERED`] if the kernel accepted.
fn registered() -> u64 {
    if crate::sys::membarrier::register_global() {
        REGISTERED
    } else {
        0
    }
}

thread_local! {
    /// [`WIPED_IN_CHILDREN`], copied into each thread that asks: one load from the thread
    /// pointer rather than two through the global offset table, on the lock hot path (whose
    /// compare-and-swap waits for the chain of loads before it).
    static WIPE_WORD: Cell<*const AtomicU64> = const { Cell::new(std::ptr::null()) };
}

/// The wipe page's word, null if there is none.
#[inline(always)]
fn wipe_word() -> *const AtomicU64 {
    let word = WIPE_WORD.with(Cell::get);
    if word.is_null() {
        return wipe_word_first();
    }
    word
}

#[cold]
#[inline(never)]
fn wipe_word_first() -> *const AtomicU64 {
    let word = WIPED_IN_CHILDREN.load(Ordering::Acquire);
    WIPE_WORD.with(|w| w.set(word));
    word
}

/// The wipe page's word while one thread of a child made without libc's `fork` renews the
/// child's caches (see [`renew_raw_child`]): a value no renewed word has (only the bit
/// [`stamp`] never sets), never a release key.
const RENEWING: u64 = NOT_A_KEY;
/// The bits of the wipe page's word that hold the fork generation (see [`stamp`]).
const GENERATION_BITS: u64 = !(RENEWED | REGISTERED | NOT_A_KEY);

thread_local! {
    /// The generation bits of the wipe page's word when this thread's own caches (its pid
    /// copy here, its identity, id and pid-namespace copy in `sys::liveness`) were last
    /// known to be this process's: 0 in a new thread (whose caches are empty) and in the
    /// first process. A child renews its caches on the one thread that notices the fork
    /// first; its other thread with inherited caches (the copy of the thread that forked,
    /// when a thread it started after a raw fork used the crate first) finds the word's
    /// generation changed and empties its own.
    static CACHES_OF: Cell<u64> = const { Cell::new(0) };
}

/// Renews what the wipe page's word `state` (just loaded) says is stale: every cache of a
/// child that has not renewed yet (`state` 0), or this thread's own caches if they were
/// filled under another generation. Whether the process renewed just now.
#[inline(always)]
fn renew_for(state: u64) -> bool {
    if state == 0 || state == RENEWING {
        renew_raw_child();
        return true;
    }
    if state & GENERATION_BITS != CACHES_OF.with(Cell::get) {
        renew_thread_caches(state & GENERATION_BITS);
    }
    false
}

/// Empties the calling thread's own caches, filled under an earlier generation (see
/// [`CACHES_OF`]), and notes that they are now of `generation` (the word's bits).
#[cold]
#[inline(never)]
fn renew_thread_caches(generation: u64) {
    forget_this_threads_caches();
    let _ = CACHES_OF.try_with(|c| c.set(generation));
}

/// Empties the calling thread's caches: its pid copy here, its identity, id and
/// pid-namespace copy in `sys::liveness`.
fn forget_this_threads_caches() {
    let _ = PID_HERE.try_with(|p| p.set(0));
    crate::sys::liveness::forget_thread_caches();
}

/// [`renew_if_forked`], then whether this process may release a lock with a plain store
/// (it is registered for global membarriers: see `sys::counted_lock`). One check of the
/// wipe page for both. A child that had to renew its caches just now answers `false` this
/// once (it registered meanwhile: the next release may be plain).
#[inline(always)]
pub(crate) fn renew_if_forked_plain_release() -> bool {
    let word = wipe_word();
    if word.is_null() {
        return false;
    }
    // SAFETY: a non-null pointer is the wipe page, mapped for the life of the process (and
    // inherited, mapped, by every child, at the same address).
    let state = unsafe { (*word).load(Ordering::Acquire) };
    !renew_for(state) && state & REGISTERED != 0
}

/// [`renew_if_forked`], then the *release key* of a lock taken now: the wipe page's word if
/// this process may release with a plain store (it is registered for global membarriers:
/// see `sys::counted_lock`), 0 if it may not (or has no wipe page, or is a child that had
/// to renew its caches just now). One check of the wipe page for all of it.
///
/// A guard keeps the key, and [`plain_release`] with it answers, with one load, both
/// whether the guard is being dropped in the process that took the lock (not in a forked
/// child it was copied into: the child's word is 0 until it renews, then holds its own,
/// larger generation) and whether the release may be plain.
#[inline(always)]
pub(crate) fn release_key() -> u64 {
    let word = wipe_word();
    if word.is_null() {
        return 0;
    }
    // SAFETY: as in `renew_if_forked_plain_release`.
    let state = unsafe { (*word).load(Ordering::Acquire) };
    if renew_for(state) {
        0
    } else {
        state
    }
}

/// Whether a lock taken with the release key `key` (from [`release_key`], by the calling
/// thread) may be released here with a plain store: the calling process is the one that
/// took it (the wipe page's word is unchanged since: not a forked child the guard was
/// copied into, and no renewal since) and it is registered for global membarriers. Any
/// other answer sends the release down the path that checks everything afresh.
#[inline(always)]
pub(crate) fn plain_release(key: u64) -> bool {
    if key & REGISTERED == 0 {
        return false;
    }
    // A key with `REGISTERED` was read through this thread's copy of the page's address
    // (the guard is not `Send`: this is that thread, or a forked copy of it, whose memory
    // is a copy of the thread's), and a copy once set is never cleared: not null.
    let word = WIPE_WORD.with(Cell::get);
    debug_assert!(!word.is_null());
    // SAFETY: as in `renew_if_forked_plain_release`: the page's address, mapped for the
    // life of the process and of every child (at the same address), not null (above).
    unsafe { (*word).load(Ordering::Relaxed) == key }
}

/// Whether this process's next release is a plain store (a test hook: see
/// [`renew_if_forked_plain_release`]).
#[cfg(feature = "test-hooks")]
pub fn releases_plain() -> bool {
    renew_if_forked_plain_release()
}

/// Makes every later release of this process the fenced one, as in a process that could
/// not register for membarriers (a test hook).
#[cfg(feature = "test-hooks")]
pub fn force_fenced_release() {
    let word = WIPED_IN_CHILDREN.load(Ordering::Acquire);
    if !word.is_null() {
        // SAFETY: as in `renew_if_forked_plain_release`.
        unsafe { (*word).fetch_and(!REGISTERED, Ordering::Relaxed) };
    }
}

/// Takes the locks of process-local tables that a child must not inherit held (the map of
/// opened objects, `arena::opened`): the child's only thread could never release them.
extern "C" fn prepare_fork() {
    // A child made by a raw fork that forks now learns first whether its map of opened
    // objects can be trusted (the prepare handler runs in ordinary context): a map held at
    // the raw fork is never released, and taking it would wait forever.
    renew_if_forked();
    crate::arena::opened::before_fork();
}

extern "C" fn after_fork_in_parent() {
    crate::arena::opened::after_fork();
}

extern "C" fn after_fork_in_child() {
    refresh_pid_in_child();
    // One atomic store: async-signal-safe.
    crate::arena::opened::after_fork();
}

extern "C" fn refresh_pid_in_child() {
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    // Everything a thread of the child may copy once it sees the renewal is made the
    // child's own first: the pid and the process-wide caches, then this thread's caches.
    // (What is done here asks for no cached value, so it does not start the renewal again.)
    renew_caches_in_place();
    let _ = CACHES_OF.try_with(|c| c.set(stamp(generation)));
    let word = WIPED_IN_CHILDREN.load(Ordering::Acquire);
    if !word.is_null() {
        // Published with release: a thread that reads the word (acquire) sees the above.
        // SAFETY: as in `renew_if_forked_plain_release`.
        unsafe { (*word).store(RENEWED | stamp(generation), Ordering::Release) };
    }
    // The child's only thread is a new thread with the forking thread's memory.
    crate::sys::liveness::establish_identity_after_fork();
    // The child is a new address space: it registers for membarriers itself (its releases
    // are the fenced ones until this is done). Two system calls: async-signal-safe.
    if !word.is_null() {
        let registered = registered();
        // SAFETY: as in `renew_if_forked_plain_release`.
        unsafe { (*word).fetch_or(registered, Ordering::Release) };
    }
}

/// Renews the process-local caches in a child that was made without libc's `fork` (a raw
/// `fork`/`clone` system call runs no `pthread_atfork` handler). Cheap when there is
/// nothing to do: two loads.
#[inline]
pub(crate) fn renew_if_forked() {
    let word = wipe_word();
    if !word.is_null() {
        // SAFETY: as in `renew_if_forked_plain_release`.
        renew_for(unsafe { (*word).load(Ordering::Acquire) });
    }
}

#[cold]
#[inline(never)]
fn renew_raw_child() {
    let word = WIPED_IN_CHILDREN.load(Ordering::Acquire);
    if word.is_null() {
        return;
    }
    // SAFETY: as in `renew_if_forked_plain_release`.
    let word = unsafe { &*word };
    // One thread of the child renews; any other that notices the fork meanwhile waits for
    // it (a few system calls by a live thread of this very process), so the generation is
    // counted once.
    let me = nix::unistd::gettid().as_raw();
    if word
        .compare_exchange(0, RENEWING, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        RENEWER.store(me, Ordering::Release);
        renew_claimed();
        return;
    }
    let start = Instant::now();
    let mut state = word.load(Ordering::Acquire);
    while state == RENEWING {
        let renewer = RENEWER.load(Ordering::Acquire);
        if renewer == me {
            // A signal handler of the renewing thread itself: waiting would never end. It
            // must not go on with the caches the renewal has not emptied yet (its parent's
            // pid and its parent thread's identity: it would re-enter a lock the parent
            // holds), so it makes them the child's itself (the renewal, once resumed, does
            // the same again) and leaves the rest (the word) to the renewal.
            renew_caches_in_place();
            return;
        }
        if renewer_gone(renewer, start.elapsed())
            && RENEWER
                .compare_exchange(renewer, me, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // The renewing thread ended mid-renewal: this thread renews instead (one of the
            // waiters, the one that named itself). Were it alive after all, both renewing
            // is safe: each counts a generation, both larger than the parent's. Not if the
            // renewal was published meanwhile: a thread may hold the map of opened objects
            // by now, which a second renewal would take for held at the fork.
            if word.load(Ordering::Acquire) == RENEWING {
                renew_claimed();
                return;
            }
        }
        std::thread::yield_now();
        state = word.load(Ordering::Acquire);
    }
    // Renewed by another thread: this thread's own caches are still its parent thread's.
    if state & GENERATION_BITS != CACHES_OF.with(Cell::get) {
        renew_thread_caches(state & GENERATION_BITS);
    }
}

/// The renewal, by the thread that claimed it.
fn renew_claimed() {
    // No prepare handler ran: tables held by another thread at the fork are suspect, which
    // must be known before any thread of the child may use them.
    crate::arena::opened::after_raw_fork();
    refresh_pid_in_child();
    // Nobody renews now: a child forked later inherits no thread id of this process here.
    RENEWER.store(0, Ordering::Release);
}

/// Makes the caches the child's that [`refresh_pid_in_child`] must make so before it
/// publishes the renewal: the pid, the process-wide caches, the calling thread's caches.
/// Also run by a signal handler of the renewing thread, which cannot wait for the renewal.
/// Every step is idempotent.
fn renew_caches_in_place() {
    PID.store(nix::unistd::getpid().as_raw(), Ordering::Relaxed);
    crate::sys::liveness::forget_process_caches();
    forget_this_threads_caches();
}

/// The thread id of the thread renewing this child's caches (see [`renew_raw_child`]); a
/// stale value (another process's, inherited) is never this process's thread.
static RENEWER: AtomicI32 = AtomicI32::new(0);

/// How long a thread waits for another to renew before it asks whether that thread still
/// exists.
const RENEWAL_PATIENCE: Duration = Duration::from_millis(100);
/// How long a thread waits for a renewal by another thread at most.
const RENEWAL_STALL: Duration = Duration::from_secs(2);

/// Whether this thread, having `waited` that long, should renew in place of the thread
/// `renewer` that claimed this child's renewal: once that thread is proven gone, or after
/// [`RENEWAL_STALL`] whatever it is (a renewal takes a few system calls: one that has not
/// ended by then is stopped, or ended unseen, e.g. a thread group's first thread, which
/// lingers as a zombie until the whole group ends). Two renewals are safe (see
/// [`renew_raw_child`]); waiting forever is not.
fn renewer_gone(renewer: i32, waited: Duration) -> bool {
    waited >= RENEWAL_PATIENCE
        && (waited > RENEWAL_STALL || (renewer != 0 && !thread_exists(renewer)))
}

/// Whether the thread `tid` of this process exists ("cannot tell" is yes).
fn thread_exists(tid: i32) -> bool {
    if tid <= 0 {
        return false;
    }
    // SAFETY: signal 0 to a thread of this process: nothing is delivered, only whether it
    // exists is checked.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A key for "this very process": its id and its fork generation. A process that reuses
/// the id of an ended ancestor and inherited the ancestor's objects through fork has a
/// larger generation, so it is never taken for the ancestor (which is what lets an object
/// be freed only by the process that owns it). Not meaningful across `exec`, which keeps
/// no object of this crate.
#[inline]
pub(crate) fn process_key() -> u64 {
    let pid = current_pid(); // renews the caches of a child made without libc's fork
    u64::from(pid as u32) | GENERATION.load(Ordering::Relaxed) << 32
}

/// The calling process's id without a system call on the hot path.
///
/// glibc's `getpid` is a real system call; ownership checks run on every drop, so the id
/// is cached and refreshed in the child by a `pthread_atfork` handler (which runs for
/// every `fork()` made through libc, ours or the user's; children made otherwise are caught
/// by the wipe-on-fork page).
#[inline]
pub(crate) fn current_pid() -> i32 {
    renew_if_forked();
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    register_fork_handling();
    PID.load(Ordering::Relaxed)
}

thread_local! {
    /// [`PID`], copied into each thread that asks (0 until then, and again in a forked
    /// child's one thread until it asks): the lock hot path reads it from the thread
    /// pointer rather than through the global offset table.
    static PID_HERE: Cell<i32> = const { Cell::new(0) };
}

/// [`current_pid`] for a caller that has just called [`renew_if_forked`].
#[inline]
pub(crate) fn current_pid_renewed() -> i32 {
    match PID_HERE.with(Cell::get) {
        0 => first_pid(),
        pid => pid,
    }
}

#[cold]
fn first_pid() -> i32 {
    let pid = current_pid();
    // A copy of what the static holds (so a `vfork` child, which shares this thread's
    // memory, copies nothing the static would not tell the parent anyway).
    PID_HERE.with(|p| p.set(pid));
    pid
}

/// Which side of a fork the caller is on.
pub(crate) enum Forked {
    Parent(i32),
    Child,
}

/// Forks the calling process.
///
/// # Safety
/// In a multi-threaded program the child may only run code that does not need locks held
/// by other threads of the parent (see `fork(2)`); the caller must keep the child's work to
/// that and end it with [`exit_now`].
pub(crate) unsafe fn fork_process() -> Result<Forked> {
    current_pid(); // make sure the atfork handler is registered before the first fork
                   // SAFETY: the caller upholds fork's contract (see this function's Safety section).
    match unsafe { fork() }.map_err(|e| Error::nix("fork", e))? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        ForkResult::Child => Ok(Forked::Child),
    }
}

/// Registers `f` to run when the process calls `exit` (or returns from `main`); forked
/// children inherit it. A failure to register (the table is full) is ignored: `f` is then
/// a courtesy that does not happen.
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function with the C ABI, valid for the life of the program.
    let _ = unsafe { libc::atexit(f) };
}

/// Ends the calling process at once with `code`, without running `atexit` handlers or
/// flushing stdio buffers inherited from the parent (which would print them twice).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Writes `msg` to standard error with one `write(2)`, taking no lock (safe in a forked
/// child of a multi-threaded parent, where std's stderr lock may be held forever).
pub(crate) fn write_stderr(msg: &[u8]) {
    // SAFETY: the pointer and length describe `msg`, which is alive for the call.
    let _ = unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

fn decode(status: WaitStatus) -> Option<Exit> {
    match status {
        WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
        _ => None,
    }
}

/// Waits for child `pid` to end; `None` waits forever. `Ok(None)` means the time ran out.
pub(crate) fn wait_child(pid: i32, timeout: Option<Duration>) -> Result<Option<Exit>> {
    let pid = Pid::from_raw(pid);
    let Some(timeout) = timeout else {
        loop {
            match waitpid(pid, None) {
                Ok(status) => {
                    if let Some(exit) = decode(status) {
                        return Ok(Some(exit));
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::nix("waitpid", e)),
            }
        }
    };
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(50);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => {
                if let Some(exit) = decode(status) {
                    return Ok(Some(exit));
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::nix("waitpid", e)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

/// Sends `SIGKILL` to `pid`. A process that is already gone is not an error.
pub(crate) fn kill_process(pid: i32) -> Result<()> {
    match kill(Pid::from_raw(pid), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::nix("kill", e)),
    }
}

/// The conventional name of signal `sig`, e.g. `SIGKILL`.
pub(crate) fn signal_name(sig: i32) -> &'static str {
    Signal::try_from(sig)
        .map(Signal::as_str)
        .unwrap_or("unknown signal")
}

/// Makes the calling process a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`): a
/// descendant orphaned by the death of its parent is given to this process, not to `init`,
/// so that [`reap_all_children`] waits for it too. `false` if the kernel refused (before
/// Linux 3.4); the orphans then go elsewhere and are not waited for.
pub(crate) fn become_subreaper() -> bool {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) == 0 }
}

/// Waits for every child of the calling process to end, and reaps it: `waitpid(-1, __WALL)`
/// (children of every kind) until there is none left (`ECHILD`), retried on `EINTR`. Children that run forever keep it
/// waiting forever. Any other error (none is documented for this call) ends the wait.
pub(crate) fn reap_all_children() {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a writable int that outlives the call.
        let rc = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if rc == -1 && nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return;
        }
    }
}
