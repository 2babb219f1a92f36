//! Waiting on a 32-bit word in shared memory until it changes, and waking its waiters: the
//! futex calls of the synchronization objects that are not locks ([`Event`](crate::Event),
//! [`Condition`](crate::Condition), [`Semaphore`](crate::Semaphore), [`Barrier`](crate::Barrier)).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// The longest single sleep asked of the kernel (a `timespec` cannot hold every `Duration`;
/// callers loop until their own deadline anyway).
const MAX_NAP: Duration = Duration::from_secs(1 << 30);

/// How a [`wait_while_equal`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nap {
    /// The timeout passed with nobody waking the sleeper.
    TimedOut,
    /// Anything else: woken, the word differed (`EAGAIN`), a signal (`EINTR`).
    Ended,
}

/// Sleeps while `word` holds `expected`, at most `timeout` (`None`: until woken). Returns on
/// a wake-up, a timeout, a signal (`EINTR`) or at once if the word differs (`EAGAIN`): the
/// caller tells them apart by re-reading the word and its clock, or by the [`Nap`] (only
/// [`Nap::TimedOut`] says that no wake-up was addressed to this sleeper).
pub(crate) fn wait_while_equal(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Nap {
    let ts = timeout.map(|t| {
        let t = t.min(MAX_NAP);
        libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        }
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the aligned 32-bit word at the address (an `AtomicU32`, alive
    // for the call) and sleeps only while it equals `expected`; the timespec is a valid
    // relative timeout or null (no timeout). Not FUTEX_PRIVATE: the waker may be another
    // process. Every outcome is handled by the caller re-reading the word.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
        )
    };
    if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
        Nap::TimedOut
    } else {
        Nap::Ended
    }
}

/// Wakes one thread, in any process, sleeping in [`wait_while_equal`] on `word`.
pub(crate) fn wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only wakes threads waiting on this address; it reads nothing.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// Wakes every thread, in any process, sleeping in [`wait_while_equal`] on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only wakes threads waiting on this address; it reads nothing.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            libc::c_int::MAX,
        );
    }
}
