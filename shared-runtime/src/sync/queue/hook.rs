//! A fault-injection hook for the crate's own tests: run a function at a point inside a
//! push or a pop, while the queue's lock is held (a test's function pauses there, so that
//! the test can `SIGKILL` the process at exactly that point). Only built with the
//! `test-hooks` feature; armed or not, it costs one relaxed load per push or pop, and
//! nothing without it.

/// Where in a push or pop the hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStep {
    /// Inside the copy of an item into its slot: half of the slot's bytes are already
    /// overwritten (a torn item), `tail` not yet advanced.
    PushCopying,
    /// Inside the copy of an item out of its slot: read, `head` not yet advanced.
    PopCopying,
}

#[cfg(feature = "test-hooks")]
mod armed {
    use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

    use super::QueueStep;

    /// The hook, as a `fn(QueueStep)` cast to a pointer; null when disarmed.
    static HOOK: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

    /// Arms the hook in this process (`None` disarms): `hook` runs at every
    /// [`QueueStep`] of every queue, on the thread pushing or popping, with the queue's
    /// lock held.
    ///
    /// ```
    /// use shared_runtime::test_hooks::{set_queue_hook, QueueStep};
    /// set_queue_hook(None); // disarmed: nothing happens
    /// let q = shared_runtime::Queue::<u8>::new(1)?;
    /// q.push(1)?;
    /// assert_eq!(q.pop()?, Some(1));
    /// # let _ = QueueStep::PushCopying;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn set_queue_hook(hook: Option<fn(QueueStep)>) {
        let p = hook.map_or(std::ptr::null_mut(), |f| f as *mut ());
        HOOK.store(p, Relaxed);
    }

    fn armed() -> Option<fn(QueueStep)> {
        let p = HOOK.load(Relaxed);
        // SAFETY: the only non-null values ever stored are `fn(QueueStep)` pointers cast
        // to `*mut ()` (above), which have the same size, and cast back to that type.
        (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut (), fn(QueueStep)>(p) })
    }

    pub(crate) fn at(step: QueueStep) {
        if let Some(f) = armed() {
            f(step);
        }
    }

    /// With the hook armed: overwrites the first half of the `len` bytes at `slot` (one
    /// free slot, the lock held) with `0xA5`, so that a push paused at
    /// [`QueueStep::PushCopying`] leaves a torn item behind.
    ///
    /// # Safety
    /// `slot` is valid for `len` bytes of writes, and no popper reads them meanwhile.
    pub(crate) unsafe fn tear(slot: *mut u8, len: usize) {
        if armed().is_none() {
            return;
        }
        for i in 0..len / 2 {
            // SAFETY: `slot` is valid for `len` bytes (the caller's contract), in the
            // mapping; written with atomic byte stores, as any shared byte may be.
            let byte = unsafe { &*slot.add(i).cast::<std::sync::atomic::AtomicU8>() };
            byte.store(0xA5, Relaxed);
        }
    }
}

#[cfg(feature = "test-hooks")]
pub use armed::set_queue_hook;
#[cfg(feature = "test-hooks")]
pub(crate) use armed::{at, tear};

/// Runs the hook: nothing to run without the `test-hooks` feature.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn at(_: QueueStep) {}

/// Tears the slot for the hook: nothing without the `test-hooks` feature.
///
/// # Safety
/// As the hooked version's: `slot` is valid for `len` bytes of writes.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) unsafe fn tear(_slot: *mut u8, _len: usize) {}
