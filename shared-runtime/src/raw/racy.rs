//! Copies to and from memory that other processes may be writing at the same time.
//!
//! A plain `memcpy` racing with another writer is a data race, which is undefined behaviour
//! in Rust. These copies use relaxed atomic loads and stores instead (word-sized where
//! aligned, byte-sized at the edges): a concurrent writer can make the result *torn* (a mix
//! of old and new bytes), exactly ctypes' "potentially non-atomic" access, but never
//! undefined. Single values use the `atomic-memcpy` crate; these are the bulk versions for
//! runtime lengths, which that crate does not offer.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

const WORD: usize = 8;

/// Copies `len` bytes from shared `src` into private `dst`.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and they must not
/// overlap. Other processes or threads may write `src` concurrently only with atomic
/// operations (or from another process).
pub(crate) unsafe fn load(src: *const u8, dst: *mut u8, len: usize) {
    let head = src.align_offset(WORD).min(len);
    let words = (len - head) / WORD;
    // SAFETY: in all three loops, every offset stays below `len`, so each access is inside the
    // ranges the caller vouched for; shared bytes are read only through atomics (an
    // `AtomicU8`/`AtomicU64` has the size and, for the aligned words, alignment of what it
    // reads), and `dst` is private so plain writes are fine.
    unsafe {
        for i in 0..head {
            *dst.add(i) = (*src.add(i).cast::<AtomicU8>()).load(Relaxed);
        }
        for w in 0..words {
            let at = head + w * WORD;
            let v = (*src.add(at).cast::<AtomicU64>()).load(Relaxed);
            dst.add(at).cast::<u64>().write_unaligned(v);
        }
        for i in head + words * WORD..len {
            *dst.add(i) = (*src.add(i).cast::<AtomicU8>()).load(Relaxed);
        }
    }
}

/// Copies `len` bytes from private `src` into shared `dst`.
///
/// # Safety
/// `src` must be valid for reads of `len` initialised bytes and `dst` valid for writes of
/// `len` bytes; they must not overlap. Others may access `dst` concurrently only with atomic
/// operations (or from another process).
pub(crate) unsafe fn store(src: *const u8, dst: *mut u8, len: usize) {
    let head = dst.align_offset(WORD).min(len);
    let words = (len - head) / WORD;
    // SAFETY: as in `load`, with the roles of the two sides swapped.
    unsafe {
        for i in 0..head {
            (*dst.add(i).cast::<AtomicU8>()).store(*src.add(i), Relaxed);
        }
        for w in 0..words {
            let at = head + w * WORD;
            let v = src.add(at).cast::<u64>().read_unaligned();
            (*dst.add(at).cast::<AtomicU64>()).store(v, Relaxed);
        }
        for i in head + words * WORD..len {
            (*dst.add(i).cast::<AtomicU8>()).store(*src.add(i), Relaxed);
        }
    }
}
