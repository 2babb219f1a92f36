//! Reading `/proc` without allocating (so a `pthread_atfork` child handler may): task
//! `stat` files, and this process's time-namespace offset.
//!
//! Wraps `open(2)`/`read(2)` of `/proc/<id>/stat`, `/proc/thread-self/stat` and
//! `/proc/self/timens_offsets`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
/// `BOOTTIME_OFFSET` before it has been read.
const UNREAD: u64 = u64::MAX;
/// This process's boottime offset in clock ticks (two's complement), per process.
static BOOTTIME_OFFSET: AtomicU64 = AtomicU64::new(UNREAD);

/// Forgets the cached offset: a forked child of a process that called
/// `unshare(CLONE_NEWTIME)` is in another time namespace.
pub(crate) fn forget_time_namespace() {
    BOOTTIME_OFFSET.store(UNREAD, Relaxed);
}

/// How far this process's time namespace shifts boot-relative times, in clock ticks
/// (`/proc/<id>/stat` shows start times shifted by the *reader's* offset). 0 when the
/// kernel has no time namespaces; `None` when the file cannot be read now.
fn boottime_offset() -> Option<u64> {
    let cached = BOOTTIME_OFFSET.load(Relaxed);
    if cached != UNREAD {
        return Some(cached);
    }
    let mut buf = [0u8; 256];
    let offset = match read_small(c"/proc/self/timens_offsets", &mut buf) {
        Ok(len) => parse_boottime(&buf[..len])?,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => 0,
        Err(_) => return None,
    };
    BOOTTIME_OFFSET.store(offset, Relaxed);
    Some(offset)
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

/// `/proc/<id>/stat`.
pub(crate) fn stat_path(id: i32) -> CString {
    CString::new(format!("/proc/{id}/stat")).expect("no NUL in a formatted number")
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
