//! File descriptors: whether a number is open, and keeping one open across `exec`.

use std::os::fd::RawFd;

/// Whether `fd` is an open descriptor of this process.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; on a number that is not open it
    // fails with EBADF and touches nothing.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Clears `FD_CLOEXEC` on `fd`, so that it stays open across `exec`.
///
/// Async-signal-safe (only `fcntl`), so it may run in a forked child before `exec`
/// (`CommandExt::pre_exec`).
pub(crate) fn keep_across_exec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: F_GETFD and F_SETFD read and write the flags of the descriptor only; on a
    // number that is not open they fail with EBADF, reported below.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) >= 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
