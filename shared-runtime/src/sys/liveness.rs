//! Who holds a lock or owns memory, and proof that such a thread or process has ended.
//!
//! Wraps `gettid(2)`, `kill(2)` with signal 0, `pidfd_open(2)` + `poll(2)`, `statfs(2)`,
//! `readlink(2)` and `stat(2)` on `/proc`, and reads `/proc/<id>/stat`.
//!
//! # Identities
//! A thread's *identity* is its thread id in the low 30 bits (bit 30 marks a *foreign*
//! identity, bit 31 is the lock word's waiters bit) and a stamp in the high 32:
//! the low 32 bits of the thread's start time (clock ticks after boot), so that a thread id
//! reused after its thread ended is not mistaken for it. It is computed once per thread and
//! never changes for the thread's life (a forked child's only thread gets a new one). When
//! `/proc` is not a proc file system at all, the stamp is 0 ("unstamped") for every thread
//! of the process, for good; when `/proc` is there but the start time cannot be read (no
//! free descriptor, say), no identity is stored and [`thread_identity`] is an `Error`, so a
//! thread never holds a lock under two different identities.
//!
//! # Proof of death
//! "Cannot tell" always means alive: taking a lock from a live holder breaks mutual
//! exclusion, while waiting on a dead one only costs time. A thread or process has ended
//! only if one of these says so:
//! 1. `kill(id, 0)` fails with `ESRCH`: no thread of that id exists in this pid namespace.
//!    This needs no `/proc` and no descriptor.
//! 2. `/proc/<id>/stat`, read from a proc file system of this process's own pid namespace,
//!    shows a zombie, or a start time other than the stamp (the id was reused).
//! 3. A pidfd of the id polls readable: the process (or thread) has exited and is a zombie.
//!
//! All of this assumes the holder and the checker share one pid namespace: a thread id
//! means nothing in another. Processes of another pid namespace than an arena's creator
//! write foreign identities, which nothing here proves dead (see `arena::namespace`).

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::sys::pidfd::PidFd;
use crate::sys::process::current_pid;
use crate::sys::procfs::{ns_inode, read_stat, stat_path, Stat};
use crate::{Error, Result};

/// The bits of an identity that hold the thread id (bit 31 is the lock word's waiters bit).
pub(crate) const TID_MASK: u64 = 0x3fff_ffff;
/// Set in identities written by a process of another pid namespace than the arena's
/// creator (see `arena::namespace`): nobody can prove such a holder dead.
pub(crate) const FOREIGN: u64 = 1 << 30;

thread_local! {
    /// This thread's identity, 0 until established.
    static IDENTITY: Cell<u64> = const { Cell::new(0) };
    /// This thread's id, 0 until first asked for.
    static TID: Cell<i32> = const { Cell::new(0) };
    /// A copy of [`PID_NAMESPACE`] once that is a namespace (0 until then, or for good when
    /// it is "cannot tell"), for the lock hot path ([`in_other_pid_namespace_renewed`]): a
    /// thread-local is read straight from the thread pointer, a static of this crate
    /// through the global offset table.
    static OWN_PID_NAMESPACE: Cell<u64> = const { Cell::new(0) };
}

/// Forgets what this module caches about the process (whether `/proc` is its own, its pid
/// namespace, its start time): called in a forked child, before the child's renewal is
/// published (`sys::process`), so that no thread of the child copies a value of its
/// parent's once it sees the renewal. Allocates nothing, makes no system call.
pub(crate) fn forget_process_caches() {
    PROC_IS_OURS.store(UNKNOWN, Relaxed);
    PID_NAMESPACE.store(UNKNOWN_NS, Relaxed);
    OWN_START.store(UNKNOWN_START, Relaxed);
    crate::sys::procfs::forget_time_namespace();
}

/// Establishes the calling thread's identity in a forked child (its caches were emptied by
/// [`forget_thread_caches`]), at once when it can be, so that a child that runs out of
/// descriptors later still has one. Allocates nothing and makes only async-signal-safe
/// calls, as a `pthread_atfork` child handler must.
pub(crate) fn establish_identity_after_fork() {
    let _ = establish_identity();
}

/// Empties the calling thread's cached identity, id and pid-namespace copy: they were
/// filled in another process (this thread's memory is a copy of a thread of an ancestor).
pub(crate) fn forget_thread_caches() {
    let _ = IDENTITY.try_with(|t| t.set(0));
    let _ = TID.try_with(|t| t.set(0));
    let _ = OWN_PID_NAMESPACE.try_with(|t| t.set(0));
}

/// The calling thread's id (`gettid`), cached per thread and refreshed after fork.
#[inline]
pub(crate) fn current_tid() -> i32 {
    crate::sys::process::renew_if_forked();
    let cached = TID.with(Cell::get);
    if cached != 0 {
        return cached;
    }
    let pid = current_pid(); // registers the fork handler that keeps the cache right
    let tid = nix::unistd::gettid().as_raw();
    if !vforked(pid) {
        TID.with(|t| t.set(tid));
    }
    tid
}

/// The calling thread's identity as cached, 0 if not established, without the fork check:
/// for a caller that has just called `renew_if_forked` (the lock hot path, which checks
/// once per operation rather than once per cache it reads).
#[inline]
pub(crate) fn cached_identity_renewed() -> u64 {
    IDENTITY.with(Cell::get)
}

/// The calling thread's identity, if it has been established.
#[inline]
pub(crate) fn cached_identity() -> Option<u64> {
    crate::sys::process::renew_if_forked();
    let id = IDENTITY.with(Cell::get);
    (id != 0).then_some(id)
}

/// The calling thread's identity (see the module doc), established on first use.
///
/// # Errors
/// [`Error::ThreadIdentity`] if `/proc` is mounted but this thread's start time cannot be
/// read (typically: no free file descriptor). Nothing is cached then; a later call tries
/// again.
#[inline]
pub(crate) fn thread_identity() -> Result<u64> {
    match cached_identity() {
        Some(id) => Ok(id),
        None => establish_identity(),
    }
}

#[cold]
fn establish_identity() -> Result<u64> {
    let tid = current_tid();
    let stamp = match read_stat(c"/proc/thread-self/stat") {
        Stat::Running(start) => stamp_of(start),
        _ if !proc_mounted() => 0,
        Stat::Unreadable(source) => return Err(Error::ThreadIdentity { source }),
        // Our own stat file unreadable as one: say so without allocating (see
        // `establish_identity_after_fork`).
        Stat::Ended | Stat::Unparsable => {
            return Err(Error::ThreadIdentity {
                source: io::ErrorKind::InvalidData.into(),
            })
        }
    };
    let id = (tid as u64 & TID_MASK) | u64::from(stamp) << 32;
    if !vforked(current_pid()) {
        IDENTITY.with(|t| t.set(id));
    }
    Ok(id)
}

/// Whether the caller runs in a child that shares this process's memory (`vfork`,
/// `clone(CLONE_VM)`): its thread-local caches are the parent thread's, and nothing it
/// learns about itself may be cached there.
fn vforked(cached_pid: i32) -> bool {
    nix::unistd::getpid().as_raw() != cached_pid
}

/// The stamp of a start time: never 0, which means "unstamped".
fn stamp_of(start: u64) -> u32 {
    (start as u32).max(1)
}

/// Whether the thread with this identity has provably ended (see the module doc). `false`
/// whenever that cannot be proven.
pub(crate) fn thread_ended(identity: u64) -> bool {
    let stamp = (identity >> 32) as u32;
    match checkable_tid(identity) {
        Checkable::Foreign => false,
        Checkable::Impossible => true,
        Checkable::Tid(tid) => ended(tid, Task::Thread, |start| {
            stamp != 0 && stamp_of(start) != stamp
        }),
    }
}

/// The cheap part of [`thread_ended`]: whether no thread of this identity's id exists at all
/// (one `kill(tid, 0)`, no `/proc`, no descriptor). A `false` proves nothing.
pub(crate) fn thread_vanished(identity: u64) -> bool {
    match checkable_tid(identity) {
        Checkable::Foreign => false,
        Checkable::Impossible => true,
        Checkable::Tid(tid) => matches!(signal_probe(tid), Probe::Absent),
    }
}

/// What the thread id of an identity allows a proof to say.
enum Checkable {
    /// A foreign identity: its id names another thread here, so nothing can be proven.
    Foreign,
    /// No thread ever had this id: the word was written by something other than a holder
    /// (a damaged segment), and nobody holds the lock.
    Impossible,
    /// A thread id to check.
    Tid(i32),
}

fn checkable_tid(identity: u64) -> Checkable {
    let tid = (identity & TID_MASK) as i32;
    if identity & FOREIGN != 0 {
        Checkable::Foreign
    } else if tid == 0 || tid > PID_MAX_LIMIT {
        Checkable::Impossible
    } else {
        Checkable::Tid(tid)
    }
}

/// The largest thread id Linux can hand out on 64-bit systems (`PID_MAX_LIMIT`, 4 Mi).
const PID_MAX_LIMIT: i32 = 4 * 1024 * 1024;

/// Whether process `pid` has provably ended; `start`, when known, is the start time it
/// had, so a reused pid counts as ended.
pub(crate) fn process_ended(pid: i32, start: Option<u64>) -> bool {
    pid > 0 && ended(pid, Task::Process, |now| start.is_some_and(|s| s != now))
}

/// Whether process `pid` has provably ended, where `reused(start)` says whether a running
/// process that started at `start` (clock ticks after boot) is another one that reused the
/// pid (a semaphore's holder records keep a truncated start time).
pub(crate) fn process_ended_unless(pid: i32, reused: impl Fn(u64) -> bool) -> bool {
    pid > 0 && ended(pid, Task::Process, reused)
}

/// What an id stands for in a proof.
#[derive(PartialEq)]
enum Task {
    /// One thread: a zombie entry means that thread has ended.
    Thread,
    /// A whole process: its main thread may be a zombie while other threads still run,
    /// so only a pidfd (readable once every thread has exited) proves the end.
    Process,
}

/// The shared proof: `reused(start)` says whether a running task that started at `start`
/// is someone else.
fn ended(id: i32, task: Task, reused: impl Fn(u64) -> bool) -> bool {
    match signal_probe(id) {
        Probe::Absent => return true,
        Probe::Unknown => return false,
        Probe::Present => {}
    }
    if proc_is_ours() {
        match read_stat(stat_path(id).as_cstr()) {
            Stat::Ended if task == Task::Thread => return true,
            Stat::Running(start) => return reused(start),
            Stat::Ended => {}
            // Hidden (hidepid), out of descriptors, or gone a moment ago: ask the pidfd.
            Stat::Unreadable(_) | Stat::Unparsable => {}
        }
    }
    pidfd_shows_exit(id)
}

/// Whether the thread with identity `holder`, which has ended, was a thread of process
/// `pid` that provably still runs (so "a thread ended", not "the process died"): `pid` is
/// this process, or `/proc` shows `pid` running, started no later than that thread (a
/// process that reused the pid started after the thread ended). `false` whenever that
/// cannot be shown (no `/proc` of ours, an unstamped or foreign identity, a zombie, the
/// process's main thread as the holder).
pub(crate) fn thread_of_live_process(holder: u64, pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    if pid == current_pid() {
        return true;
    }
    let stamp = (holder >> 32) as u32;
    let tid = (holder & TID_MASK) as i32;
    if holder & FOREIGN != 0 || stamp == 0 || tid == pid || !proc_is_ours() {
        return false;
    }
    // Start times in ticks after boot; the stamp keeps their low 32 bits, which wrap only
    // after more than a year of uptime at 100 ticks a second.
    matches!(read_stat(stat_path(pid).as_cstr()), Stat::Running(start) if stamp_of(start) <= stamp)
}

/// `OWN_START` before it has been read.
const UNKNOWN_START: u64 = u64::MAX;
/// This process's start time (clock ticks after boot) once read; per process, renewed
/// after fork. One word, so a thread never pairs it with another process's key.
static OWN_START: AtomicU64 = AtomicU64::new(UNKNOWN_START);

/// The calling process's own pid and, if `/proc` can tell now, its start time; `None` for
/// a child sharing this process's memory (`vfork`, `clone(CLONE_VM)`): its cached pid is
/// its parent's, so it cannot name itself. The start time is cached once read (a failure,
/// such as no free descriptor, is asked again next time).
pub(crate) fn own_pid_and_start() -> Option<(i32, Option<u64>)> {
    let pid = current_pid(); // renews the caches of a forked child first
    if vforked(pid) {
        return None;
    }
    let cached = OWN_START.load(Relaxed);
    if cached != UNKNOWN_START {
        return Some((pid, Some(cached)));
    }
    let start = process_start_time(pid);
    if let Some(start) = start {
        OWN_START.store(start, Relaxed);
    }
    Some((pid, start))
}

/// The start time of process `pid` in clock ticks after boot, if `/proc` can tell.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    if !proc_is_ours() {
        return None;
    }
    match read_stat(stat_path(pid).as_cstr()) {
        Stat::Running(start) => Some(start),
        _ => None,
    }
}

/// `PID_NAMESPACE` before it has been read, and after a failure that may pass (inode
/// numbers are never all ones).
const UNKNOWN_NS: u64 = u64::MAX;
/// This process's pid namespace once known for good: its inode, or 0 when it can never be
/// read (no `/proc` and a kernel without `PIDFD_GET_PID_NAMESPACE`), or when a momentary
/// failure was pinned by [`in_other_pid_namespace_for_life`]. Per process, renewed after
/// fork (a child of a process that called `unshare(CLONE_NEWPID)` is in another one).
static PID_NAMESPACE: AtomicU64 = AtomicU64::new(UNKNOWN_NS);

/// The identity of this process's pid namespace (the inode of `/proc/self/ns/pid`), if it
/// can be read now. `None` is "cannot tell": this process may live in any namespace.
#[inline]
pub(crate) fn pid_namespace() -> Option<u64> {
    crate::sys::process::renew_if_forked();
    match known(PID_NAMESPACE.load(Relaxed)) {
        Some(ns) => ns,
        None => read_pid_namespace().ok().flatten(),
    }
}

fn known(cached: u64) -> Option<Option<u64>> {
    match cached {
        UNKNOWN_NS => None,
        0 => Some(None),
        ns => Some(Some(ns)),
    }
}

/// Whether this process may be in another pid namespace than `ns` (0: the arena's creator
/// could not tell its own, so nobody can be told apart from it): true unless this process
/// can read its namespace and it is `ns`. "Cannot tell" counts as another namespace, where
/// ids name other processes, so that nothing is proven dead and nothing recorded on a
/// guess. A momentary failure (no free descriptor) is asked again next time.
#[inline]
pub(crate) fn in_other_pid_namespace(ns: u64) -> bool {
    ns != 0 && pid_namespace() != Some(ns)
}

/// [`in_other_pid_namespace`] for what must not change for the rest of the process's life
/// (the identities it writes into lock words, the owner tags of its blocks): a momentary
/// failure to read the namespace is pinned as "cannot tell", so a thread never holds a
/// lock under an identity that a later answer would change.
#[inline]
pub(crate) fn in_other_pid_namespace_for_life(ns: u64) -> bool {
    crate::sys::process::renew_if_forked();
    in_other_pid_namespace_renewed(ns)
}

/// [`in_other_pid_namespace_for_life`] for a caller that has just called
/// `renew_if_forked`.
#[inline]
pub(crate) fn in_other_pid_namespace_renewed(ns: u64) -> bool {
    // The thread's copy is 0 or this process's namespace: equal to `ns`, the answer is
    // "the same" either way (an arena whose creator could not tell, 0, tells nobody apart).
    if ns == OWN_PID_NAMESPACE.with(Cell::get) {
        return false;
    }
    in_other_pid_namespace_uncopied(ns)
}

/// [`in_other_pid_namespace_renewed`] when the thread's copy of the namespace does not
/// settle it; makes the copy once the namespace is known.
#[cold]
fn in_other_pid_namespace_uncopied(ns: u64) -> bool {
    if ns == 0 {
        return false;
    }
    let mine = match known(PID_NAMESPACE.load(Relaxed)) {
        Some(mine) => mine,
        None => pin_pid_namespace(),
    };
    // Copied from the static, which a `vfork` child (sharing this thread's memory, and
    // perhaps in another namespace) never sets, and a forked child resets along with the
    // copy of its one thread.
    if let Some(Some(cached)) = known(PID_NAMESPACE.load(Relaxed)) {
        OWN_PID_NAMESPACE.with(|c| c.set(cached));
    }
    mine != Some(ns)
}

#[cold]
fn pin_pid_namespace() -> Option<u64> {
    match read_pid_namespace() {
        Ok(ns) => ns,
        Err(_) => {
            // A `vfork` child shares our memory: it pins nothing of ours.
            if !vforked(current_pid()) {
                PID_NAMESPACE.store(0, Relaxed);
            }
            None
        }
    }
}

/// The pid namespace an arena's creator records: its inode, 0 if it can never be read.
///
/// # Errors
/// The errno of a failure that may pass (no free descriptor, no memory): recording 0 then
/// would let a later process of another namespace pass for one of the creator's.
pub(crate) fn creator_pid_namespace() -> std::result::Result<u64, nix::errno::Errno> {
    crate::sys::process::renew_if_forked();
    match known(PID_NAMESPACE.load(Relaxed)) {
        Some(ns) => Ok(ns.unwrap_or(0)),
        None => read_pid_namespace().map(|ns| ns.unwrap_or(0)),
    }
}

/// Reads this process's pid namespace: `Ok(Some(inode))`, or `Ok(None)` when it can never
/// be read (both kept), or `Err` after a failure that may pass (kept by nobody but
/// [`pin_pid_namespace`]).
#[cold]
fn read_pid_namespace() -> std::result::Result<Option<u64>, nix::errno::Errno> {
    use nix::errno::Errno;
    // `/proc/self` resolves through any proc file system that shows this process, even one
    // of an ancestor pid namespace, and `ns/pid` is then still this process's own. `stat`
    // needs no descriptor. Without `/proc`, a pidfd of ourselves can tell (Linux 6.11),
    // given two free descriptors.
    let passing = |e: Errno| {
        matches!(
            e,
            Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM | Errno::EAGAIN | Errno::EINTR
        )
    };
    let proc =
        ns_inode(c"/proc/self/ns/pid").map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)));
    let read = proc.or_else(|first| {
        PidFd::open(current_pid())
            .and_then(|fd| fd.pid_namespace())
            .map_err(|second| if passing(first) { first } else { second })
    });
    let ns = match read {
        Ok(ns) => Some(ns),
        Err(e) if passing(e) => return Err(e),
        // No `/proc` and no namespace through a pidfd: that does not change.
        Err(_) => None,
    };
    // A `vfork` child shares our memory: nothing it learns about itself is kept.
    if !vforked(current_pid()) {
        PID_NAMESPACE.store(ns.unwrap_or(0), Relaxed);
    }
    Ok(ns)
}

enum Probe {
    Absent,
    Present,
    Unknown,
}

fn signal_probe(id: i32) -> Probe {
    use nix::errno::Errno;
    // Signal 0 checks existence only. Linux resolves any thread id here, not only process
    // ids (kill(2) looks the id up as a task and signals its thread group).
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(id), None) {
        Ok(()) | Err(Errno::EPERM) => Probe::Present,
        Err(Errno::ESRCH) => Probe::Absent,
        Err(_) => Probe::Unknown,
    }
}

/// Whether a pidfd of `id` says it has exited (a zombie, or reaped meanwhile).
fn pidfd_shows_exit(id: i32) -> bool {
    match PidFd::open_task(id) {
        Ok(fd) => fd.has_exited(),
        // No such task at all, which is proof; anything else (EMFILE, ENOSYS) is not.
        Err(e) => e == nix::errno::Errno::ESRCH,
    }
}

/// `PROC_IS_OURS` values besides 0/1.
const UNKNOWN: u64 = 2;
/// Whether `/proc` is a proc file system of this process's pid namespace; per process.
static PROC_IS_OURS: AtomicU64 = AtomicU64::new(UNKNOWN);

/// Whether `/proc` is a proc file system at all.
fn proc_mounted() -> bool {
    // `statfs` needs no descriptor, so this answers even when none is free.
    nix::sys::statfs::statfs("/proc")
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
}

/// Whether `/proc` is a proc file system that shows this process's own pid namespace, so
/// that `/proc/<id>` names the same thread as id `<id>` does in `kill`. A proc file system
/// of another namespace (or none) is never read for proofs.
fn proc_is_ours() -> bool {
    crate::sys::process::renew_if_forked();
    match PROC_IS_OURS.load(Relaxed) {
        0 => return false,
        1 => return true,
        _ => {}
    }
    let ours = proc_mounted()
        && nix::fcntl::readlink("/proc/self")
            .ok()
            .and_then(|target| target.to_str()?.parse::<i32>().ok())
            == Some(current_pid());
    // Only a definite answer is kept: `readlink` needs no descriptor, so a failure is the
    // mount itself, which a process does not change under its own feet.
    PROC_IS_OURS.store(u64::from(ours), Relaxed);
    ours
}
