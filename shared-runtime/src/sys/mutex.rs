//! Robust, process-shared pthread mutexes living in shared memory (the arena's own lock).
//!
//! glibc keeps, per thread, a list of the robust mutexes the thread holds and registers it
//! with the kernel (`set_robust_list(2)`); when a thread dies, even by `SIGKILL`, the kernel
//! marks each such mutex `FUTEX_OWNER_DIED` and wakes a waiter, whose lock call then returns
//! `EOWNERDEAD`. So a crashed holder of the allocator is noticed at once. (User-visible
//! locks use the lighter `sys::futex` lock instead; see `docs/design.md`.)

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use crate::{Error, Result};

/// How a lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous holder released it.
    Clean,
    /// The previous holder died holding it; the lock has been made consistent again.
    OwnerDied,
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
    pub(crate) unsafe fn init(this: *mut RobustMutex) -> Result<()> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: attr is a local we initialise with pthread_mutexattr_init before any other
        // use, and destroy before returning; `this` is valid per the caller's contract.
        unsafe {
            check(
                "pthread_mutexattr_init",
                libc::pthread_mutexattr_init(attr.as_mut_ptr()),
            )?;
            let a = attr.as_mut_ptr();
            let rc = (|| {
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

    /// Blocks until the mutex is held by the calling thread.
    pub(crate) fn lock(&self) -> Result<Acquired> {
        // SAFETY: the mutex was initialised by `init` and lives in mapped memory.
        match unsafe { libc::pthread_mutex_lock(self.raw()) } {
            0 => Ok(Acquired::Clean),
            libc::EOWNERDEAD => {
                // SAFETY: EOWNERDEAD means we now hold the mutex; marking it consistent is
                // what pthread_mutex_consistent(3) requires before it can be unlocked
                // normally (otherwise it becomes permanently unusable).
                let rc = unsafe { libc::pthread_mutex_consistent(self.raw()) };
                if rc != 0 {
                    // SAFETY: we hold the mutex (EOWNERDEAD); give it back before failing.
                    unsafe { libc::pthread_mutex_unlock(self.raw()) };
                    return check("pthread_mutex_consistent", rc).map(|()| Acquired::Clean);
                }
                Ok(Acquired::OwnerDied)
            }
            rc => check("pthread_mutex_lock", rc).map(|()| Acquired::Clean),
        }
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
