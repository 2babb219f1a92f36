//! Robust, process-shared pthread mutexes living in shared memory.
//!
//! glibc keeps, per thread, a list of the robust mutexes the thread holds and registers it
//! with the kernel (`set_robust_list(2)`); when a thread dies, even by `SIGKILL`, the kernel
//! marks each such mutex `FUTEX_OWNER_DIED` and wakes a waiter, whose lock call then returns
//! `EOWNERDEAD`. That is what makes a crashed holder recoverable rather than a deadlock.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::time::Duration;

use crate::{Error, Result};

extern "C" {
    // glibc >= 2.30; not (yet) in the libc crate. Same contract as pthread_mutex_timedlock
    // but against the clock given, so a wall-clock jump cannot stretch or cut a timeout.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// How a lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous holder released it.
    Clean,
    /// The previous holder died holding it; the mutex has been made consistent again.
    OwnerDied,
}

/// The pthread mutex types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MutexKind {
    /// No owner checks: the arena's internal lock, only ever taken in balanced pairs.
    Normal,
    /// Re-locking by the owner fails with `EDEADLK` instead of hanging.
    ErrorCheck,
    /// The owner may re-lock; it must unlock as many times.
    Recursive,
}

/// A `pthread_mutex_t` initialised `PTHREAD_PROCESS_SHARED` + `PTHREAD_MUTEX_ROBUST`.
///
/// Only ever reached through a pointer into shared memory; every access goes through the
/// pthread functions, which synchronise with other threads and processes themselves.
#[repr(C)]
pub(crate) struct RobustMutex {
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: a process-shared pthread mutex is designed to be used from any thread of any
// process; all access goes through pthread calls that are themselves synchronised.
unsafe impl Sync for RobustMutex {}
// SAFETY: as above; the mutex holds no thread-local state.
unsafe impl Send for RobustMutex {}

fn check(call: &'static str, rc: libc::c_int) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::Os {
            call,
            source: std::io::Error::from_raw_os_error(rc),
        })
    }
}

impl RobustMutex {
    /// Initialises a mutex in place.
    ///
    /// # Safety
    /// `this` must be valid for writes of `size_of::<RobustMutex>()` bytes, aligned, and
    /// not in use as a mutex by any thread or process.
    pub(crate) unsafe fn init(this: *mut RobustMutex, kind: MutexKind) -> Result<()> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: attr is a local we initialise with pthread_mutexattr_init before any other
        // use, and destroy before returning; `this` is valid per the caller's contract.
        unsafe {
            check(
                "pthread_mutexattr_init",
                libc::pthread_mutexattr_init(attr.as_mut_ptr()),
            )?;
            let a = attr.as_mut_ptr();
            let kind = match kind {
                MutexKind::Normal => libc::PTHREAD_MUTEX_NORMAL,
                MutexKind::ErrorCheck => libc::PTHREAD_MUTEX_ERRORCHECK,
                MutexKind::Recursive => libc::PTHREAD_MUTEX_RECURSIVE,
            };
            let rc = (|| {
                check(
                    "pthread_mutexattr_settype",
                    libc::pthread_mutexattr_settype(a, kind),
                )?;
                check(
                    "pthread_mutexattr_setpshared",
                    libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED),
                )?;
                check(
                    "pthread_mutexattr_setrobust",
                    libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST),
                )?;
                check(
                    "pthread_mutex_init",
                    libc::pthread_mutex_init((*this).inner.get(), a),
                )
            })();
            libc::pthread_mutexattr_destroy(a);
            rc
        }
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.inner.get()
    }

    /// Turns a lock call's return code into how the lock was obtained.
    fn obtained(&self, call: &'static str, rc: libc::c_int) -> Result<Option<Acquired>> {
        match rc {
            0 => Ok(Some(Acquired::Clean)),
            libc::EOWNERDEAD => {
                // SAFETY: EOWNERDEAD means we now hold the mutex; marking it consistent is
                // what pthread_mutex_consistent(3) requires before it can be unlocked
                // normally (otherwise it becomes permanently unusable).
                let rc = unsafe { libc::pthread_mutex_consistent(self.raw()) };
                if rc != 0 {
                    // SAFETY: we hold the mutex (EOWNERDEAD); give it back before failing.
                    unsafe { libc::pthread_mutex_unlock(self.raw()) };
                    return check("pthread_mutex_consistent", rc).map(|()| None);
                }
                Ok(Some(Acquired::OwnerDied))
            }
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            rc => check(call, rc).map(|()| None),
        }
    }

    /// Blocks until the mutex is held by the calling thread.
    pub(crate) fn lock(&self) -> Result<Acquired> {
        loop {
            // SAFETY: the mutex was initialised by `init` and lives in mapped memory.
            let rc = unsafe { libc::pthread_mutex_lock(self.raw()) };
            if let Some(how) = self.obtained("pthread_mutex_lock", rc)? {
                return Ok(how);
            }
        }
    }

    /// Takes the mutex if it is free right now.
    pub(crate) fn try_lock(&self) -> Result<Option<Acquired>> {
        // SAFETY: the mutex was initialised by `init` and lives in mapped memory.
        let rc = unsafe { libc::pthread_mutex_trylock(self.raw()) };
        self.obtained("pthread_mutex_trylock", rc)
    }

    /// Waits at most `timeout` (measured on the monotonic clock) for the mutex.
    pub(crate) fn lock_timeout(&self, timeout: Duration) -> Result<Option<Acquired>> {
        let mut now = MaybeUninit::<libc::timespec>::uninit();
        // SAFETY: clock_gettime writes a timespec to the valid pointer we pass.
        let now = unsafe {
            check_errno(libc::clock_gettime(libc::CLOCK_MONOTONIC, now.as_mut_ptr()))?;
            now.assume_init()
        };
        let nanos = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
        let secs = (now.tv_sec as u64)
            .saturating_add(timeout.as_secs())
            .saturating_add(nanos / 1_000_000_000)
            .min(i64::MAX as u64);
        let deadline = libc::timespec {
            tv_sec: secs as i64,
            tv_nsec: (nanos % 1_000_000_000) as i64,
        };
        // SAFETY: the mutex was initialised by `init`; `deadline` is a valid timespec.
        let rc = unsafe { pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &deadline) };
        self.obtained("pthread_mutex_clocklock", rc)
    }

    /// Releases the mutex.
    ///
    /// # Safety
    /// The calling thread must hold the mutex.
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller holds the mutex, so unlocking it is permitted.
        let rc = unsafe { libc::pthread_mutex_unlock(self.raw()) };
        debug_assert_eq!(rc, 0, "pthread_mutex_unlock failed");
    }
}

fn check_errno(rc: libc::c_int) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::last_os("clock_gettime"))
    }
}
