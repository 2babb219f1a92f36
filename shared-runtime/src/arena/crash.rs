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

/// Reads word `word` (8 bytes) of the payload of the used block at `payload`, as another
/// process reading the segment could: for tests that capture what an object wrote into its
/// shared words. The block and the word's place in it are checked.
///
/// # Errors
/// [`Error::Corrupted`](crate::Error::Corrupted) if no used block starts at `payload`, or
/// the word lies beyond it.
///
/// ```
/// use shared_runtime::{test_hooks::peek_for_tests, RawArray};
/// let a = RawArray::<u64>::from_slice(&[4, 9])?;
/// assert_eq!(peek_for_tests(a.arena(), a.handle().offset, 1)?, 9);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[cfg(feature = "test-hooks")]
pub fn peek_for_tests(arena: &crate::Arena, payload: u64, word: usize) -> crate::Result<u64> {
    let at = word_of(arena, payload, word)?;
    // SAFETY: `at` is inside a used block's payload (checked under the arena lock), which
    // stays mapped while `arena` lives, and 8-aligned (payloads are 16-aligned); it is read
    // atomically, as every process's shared words may be.
    Ok(unsafe { &*arena.base().add(at as usize).cast::<AtomicU64>() }.load(Relaxed))
}

/// Runs the end of a release's failed wake-up (`CountedLock::end_failed_wake`: clear the
/// wake-up in flight, wake one if anyone is counted) on the lock cell at `payload`, as the
/// release that set the bit would: for tests that reproduce an interleaving of that
/// release with others step by step.
///
/// # Errors
/// [`Error::Corrupted`](crate::Error::Corrupted) if no used block of a lock cell's size
/// starts at `payload`.
#[cfg(feature = "test-hooks")]
pub fn end_failed_wake_for_tests(arena: &crate::Arena, payload: u64) -> crate::Result<()> {
    let at = word_of(arena, payload, 2)?;
    // SAFETY: words 0 and 2 of the block are inside its used payload (word 2 checked under
    // the arena lock), mapped while `arena` lives and 8-aligned; a lock cell's lock word is
    // word 0 and its sleeper count the low half of word 2, both only ever accessed
    // atomically, by every process.
    let (word, sleepers) = unsafe {
        let base = arena.base();
        (
            &*base.add(payload as usize).cast::<AtomicU64>(),
            &*base.add(at as usize).cast::<std::sync::atomic::AtomicU32>(),
        )
    };
    crate::sys::counted_lock::CountedLock::new(word, sleepers).end_failed_wake();
    Ok(())
}

/// The offset of word `word` of the used block at `payload`, checked under the arena lock.
#[cfg(feature = "test-hooks")]
fn word_of(arena: &crate::Arena, payload: u64, word: usize) -> crate::Result<u64> {
    arena.with_heap(|h| {
        let cap = h.payload_capacity(payload)?;
        let end = (word as u64 + 1).checked_mul(8).filter(|&e| e <= cap);
        end.map(|_| payload + 8 * word as u64).ok_or_else(|| {
            crate::Error::Corrupted(format!("word {word} lies beyond the block at {payload}"))
        })
    })
}

/// Overwrites word `word` (8 bytes) of the payload of the used block at `payload`, as a
/// hostile process writing the segment could: for tests of how objects take garbage in
/// their shared words. The block and the word's place in it are checked.
///
/// # Errors
/// [`Error::Corrupted`](crate::Error::Corrupted) if no used block starts at `payload`, or
/// the word lies beyond it.
///
/// # Safety
/// No reference this process holds (a guard's `&`/`&mut`) may cover the word: it changes
/// behind it. Other processes only ever see shared memory change, as with any writer.
///
/// ```
/// use shared_runtime::{test_hooks::poke_for_tests, RawArray};
/// let a = RawArray::<u64>::zeroed(2)?;
/// # let h = a.handle();
/// // SAFETY: no reference to the array's words is held.
/// unsafe { poke_for_tests(a.arena(), h.offset, 1, 9)? };
/// assert_eq!(a.get(1), Some(9));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[cfg(feature = "test-hooks")]
pub unsafe fn poke_for_tests(
    arena: &crate::Arena,
    payload: u64,
    word: usize,
    value: u64,
) -> crate::Result<()> {
    let at = word_of(arena, payload, word)?;
    // SAFETY: `at` is inside a used block's payload (checked under the arena lock), which
    // stays mapped while `arena` lives, and 8-aligned (payloads are 16-aligned); shared
    // words are written atomically; no reference of this process covers it (the caller's
    // contract).
    unsafe { &*arena.base().add(at as usize).cast::<AtomicU64>() }.store(value, Relaxed);
    Ok(())
}

/// Overwrites the 8-byte word at offset `at` of a slab of small objects (its header, owner
/// words or slots), as a hostile process writing the segment could: for tests of how the
/// arena takes garbage in a slab. `at` must be 8-aligned and inside a slab's payload.
///
/// # Errors
/// [`Error::Corrupted`](crate::Error::Corrupted) if `at` lies in no slab.
///
/// # Safety
/// As [`poke_for_tests`]: no reference this process holds may cover the word.
///
/// ```
/// use shared_runtime::{test_hooks::poke_slab_for_tests, Arena, RawValue};
/// let arena = Arena::with_capacity(1 << 20)?;
/// shared_runtime::test_hooks::set_slabs_for_tests(true);
/// let v = RawValue::new_in(&arena, 5i32)?;
/// let slab = v.handle().offset & !4095;
/// // SAFETY: no reference to the slab's header is held.
/// unsafe { poke_slab_for_tests(&arena, slab + 8, 12345)? };
/// assert!(arena.check().is_err());
/// # std::mem::forget(v);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[cfg(feature = "test-hooks")]
pub unsafe fn poke_slab_for_tests(arena: &crate::Arena, at: u64, value: u64) -> crate::Result<()> {
    arena.with_heap(|h| {
        if at % 8 != 0 || h.slab_around(at).is_none() {
            return Err(crate::Error::Corrupted(format!(
                "offset {at} lies in no slab"
            )));
        }
        // SAFETY: `at` is an 8-aligned word of a slab payload (checked under the arena
        // lock), inside the mapping that `arena` keeps alive; written atomically; no
        // reference of this process covers it (the caller's contract).
        unsafe { &*arena.base().add(at as usize).cast::<AtomicU64>() }.store(value, Relaxed);
        Ok(())
    })
}

/// Whether small objects are made in slabs by default: yes (docs/design.md, "Slabs of
/// small objects"). Tests turn them off or on with `set_slabs_for_tests`.
pub(crate) const SLABS_BY_DEFAULT: bool = true;

/// Whether slabs are on, as `set_slabs_for_tests` last set it.
#[cfg(feature = "test-hooks")]
static SLABS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(SLABS_BY_DEFAULT);

/// Turns slabs of small objects (`slab.rs`) on or off for the whole process. Objects
/// already made stay where they are and are freed as they were made.
///
/// ```
/// use shared_runtime::{test_hooks::set_slabs_for_tests, Arena, RawValue};
/// let arena = Arena::with_capacity(1 << 20)?;
/// set_slabs_for_tests(true);
/// let v = RawValue::new_in(&arena, 1u8)?;
/// assert_eq!(arena.stats()?.slabs, 1);
/// set_slabs_for_tests(false);
/// # drop(v);
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[cfg(feature = "test-hooks")]
pub fn set_slabs_for_tests(on: bool) {
    SLABS.store(on, Relaxed);
}

/// Whether small objects go to slabs.
#[cfg(feature = "test-hooks")]
#[inline]
pub(crate) fn slabs_on() -> bool {
    SLABS.load(Relaxed)
}

/// Whether small objects go to slabs.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn slabs_on() -> bool {
    SLABS_BY_DEFAULT
}
