//! Reading `/proc` without allocating (so a `pthread_atfork` child handler may): task
//! `stat` files, and this process's time-namespace offset.
//!
//! Wraps `open(2)`/`read(2)` of `/proc/<id>/stat`, `/proc/thread-self/stat` and
//! `/proc/self/timens_offsets`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// Reads a small file into `buf` with plain `open`/`read`; returns the length read.
fn read_small(path: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `path` is NUL-terminated; open returns a new descriptor or -1.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: the pointer and length describe the unfilled rest of `buf`.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[len..].as_mut_ptr().cast(),
                buf.len() - len,
            )
        };
        match n {
            0 => break,
            n if n > 0 => len += n as usize,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return Err(io::Error::last_os_error()),
        }
    }
    Ok(len)
}

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on every Linux architecture's ABI).
const USER_HZ: u64 = 100;
/// The time namespace the cached offset belongs to (inode of `/proc/self/ns/time`), 0 when
/// nothing is cached. Per process: `setns` can move a process to another time namespace.
static OFFSET_NS: AtomicU64 = AtomicU64::new(0);
/// The cached offset in clock ticks (two's complement), valid for `OFFSET_NS`.
static BOOTTIME_OFFSET: AtomicU64 = AtomicU64::new(0);
/// The initial time namespace's inode (`PROC_TIME_INIT_INO`): no offset.
const INITIAL_TIME_NS: u64 = 0xEFFF_FFFA;

/// Forgets the cached offset: a forked child of a process that called
/// `unshare(CLONE_NEWTIME)` is in another time namespace.
pub(crate) fn forget_time_namespace() {
    OFFSET_NS.store(0, Relaxed);
}

/// The inode of a `/proc/self/ns/` entry (`stat` needs no descriptor, allocates nothing).
pub(crate) fn ns_inode(path: &CStr) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated; stat writes one `struct stat` into `st`.
    if unsafe { libc::stat(path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: stat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() }.st_ino)
}

/// How far this process's time namespace shifts boot-relative times, in clock ticks
/// (`/proc/<id>/stat` shows start times shifted by the *reader's* offset). 0 when the
/// kernel has no time namespaces; `None` when it cannot be known now.
///
/// `/proc/self/timens_offsets` shows the offsets of the namespace this process's *children*
/// get: after `unshare(CLONE_NEWTIME)` that is not its own. Then only the initial namespace
/// (no offset) can be told; any other answer is `None`.
fn boottime_offset() -> Option<u64> {
    let ns = match ns_inode(c"/proc/self/ns/time") {
        Ok(ino) => ino,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && proc_self_visible() => return Some(0),
        Err(_) => return None,
    };
    if OFFSET_NS.load(Acquire) == ns {
        return Some(BOOTTIME_OFFSET.load(Relaxed));
    }
    let offset = if ns_inode(c"/proc/self/ns/time_for_children").ok() != Some(ns) {
        (ns == INITIAL_TIME_NS).then_some(0)?
    } else {
        let mut buf = [0u8; 256];
        let len = read_small(c"/proc/self/timens_offsets", &mut buf).ok()?;
        parse_boottime(&buf[..len])?
    };
    BOOTTIME_OFFSET.store(offset, Relaxed);
    OFFSET_NS.store(ns, Release);
    Some(offset)
}

/// Whether `/proc/self` exists (then a missing `ns/time` means a kernel without time
/// namespaces).
fn proc_self_visible() -> bool {
    ns_inode(c"/proc/self").is_ok()
}

/// The `boottime <secs> <nanos>` line of `timens_offsets`, in clock ticks.
fn parse_boottime(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let line = text.lines().find(|l| l.starts_with("boottime"))?;
    let mut fields = line.split_ascii_whitespace().skip(1);
    let secs: i64 = fields.next()?.parse().ok()?;
    let nanos: i64 = fields.next()?.parse().ok()?;
    let ticks = secs
        .checked_mul(USER_HZ as i64)?
        .checked_add(nanos / (1_000_000_000 / USER_HZ as i64))?;
    Some(ticks as u64)
}

/// `/proc/<id>/stat`, built on the stack: proofs of death run in forked children (a raw
/// `fork` has no atfork handlers, so another thread may have held the allocator's lock at
/// the fork), where allocating could hang forever.
pub(crate) struct StatPath {
    buf: [u8; 32],
    len: usize,
}

impl StatPath {
    /// The path as a C string.
    pub(crate) fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(&self.buf[..self.len]).expect("one NUL, at the end")
    }
}

/// `/proc/<id>/stat`, without allocating.
pub(crate) fn stat_path(id: i32) -> StatPath {
    let mut buf = [0u8; 32];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        buf[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    push(b"/proc/");
    if id < 0 {
        push(b"-");
    }
    // At most 10 digits (|i32::MIN| = 2147483648).
    let mut digits = [0u8; 10];
    let mut n = id.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push(&digits[at..]);
    push(b"/stat\0");
    StatPath { buf, len }
}

/// What a `/proc/<id>/stat` file says.
pub(crate) enum Stat {
    /// A running (or sleeping, stopped...) task that started this many ticks after boot.
    Running(u64),
    /// A zombie or dead task.
    Ended,
    /// The file could not be read (no entry, hidden, no descriptor, ...).
    Unreadable(io::Error),
    /// The file did not look like a stat file.
    Unparsable,
}

/// Reads a `stat` file with plain `open`/`read` into a stack buffer: no allocation, so it
/// may run in a `pthread_atfork` child handler.
pub(crate) fn read_stat(path: &CStr) -> Stat {
    let mut buf = [0u8; 1024];
    let len = match read_small(path, &mut buf) {
        Ok(len) => len,
        Err(e) => return Stat::Unreadable(e),
    };
    let stat = &buf[..len];
    // The command name (field 2) is in parentheses and may hold any bytes: skip past it.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return Stat::Unparsable;
    };
    let Ok(rest) = std::str::from_utf8(&stat[close + 1..]) else {
        return Stat::Unparsable;
    };
    let mut fields = rest.split_ascii_whitespace();
    match fields.next() {
        Some("Z" | "X" | "x") => return Stat::Ended,
        None => return Stat::Unparsable,
        Some(_) => {}
    }
    // Field 22 (starttime) is the 19th after the state (field 3).
    match fields.nth(18).and_then(|f| f.parse::<u64>().ok()) {
        // As this process's time namespace shows it: remove its boottime offset, so that
        // readers in different time namespaces agree.
        Some(start) => match boottime_offset() {
            Some(offset) => Stat::Running(start.wrapping_sub(offset)),
            None => Stat::Unreadable(io::ErrorKind::NotFound.into()),
        },
        None => Stat::Unparsable,
    }
}

#[cfg(test)]
mod stat_path_tests {
    use super::stat_path;

    #[test]
    fn stat_path_spells_the_id_as_format_would() {
        for id in [0, 1, 7, 10, 12345, i32::MAX, -1, i32::MIN] {
            assert_eq!(
                stat_path(id).as_cstr().to_str().unwrap(),
                format!("/proc/{id}/stat")
            );
        }
    }
}
