//! A fault-injection hook for tests: kill the process at the n-th bookkeeping step.
//!
//! Every change to the allocator's shared state is split into steps (see `heap::step`).
//! Tests arm this counter in a forked child to make it die, by `SIGKILL`, between two
//! steps, and then check that the family recovers. Only built with the `test-hooks`
//! feature; armed or not, it costs one relaxed load per step, and nothing without it.

#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[cfg(feature = "test-hooks")]
static STEPS_LEFT: AtomicU64 = AtomicU64::new(0);

/// Arms the hook: the process kills itself at the `n`-th step from now (`0` disarms).
///
/// ```
/// shared_runtime::test_hooks::crash_after_steps(0); // disarmed: nothing happens
/// let v = shared_runtime::RawValue::new(1u8)?;
/// # drop(v);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[cfg(feature = "test-hooks")]
pub fn crash_after_steps(n: u64) {
    STEPS_LEFT.store(n, Relaxed);
}

/// Counts one step, dying if it was the armed one.
#[cfg(feature = "test-hooks")]
#[inline]
pub(crate) fn tick() {
    let left = STEPS_LEFT.load(Relaxed);
    if left != 0 {
        if left == 1 {
            crate::sys::signal::kill_self();
        }
        STEPS_LEFT.store(left - 1, Relaxed);
    }
}

/// Counts one step: nothing to count without the `test-hooks` feature.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn tick() {}
