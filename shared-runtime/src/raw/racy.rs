//! Copies to and from memory that other processes may be writing at the same time.
//!
//! A plain `memcpy` racing with another writer is a data race, which is undefined behaviour
//! in Rust. These copies use relaxed atomic loads and stores instead (word-sized where
//! aligned, byte-sized at the edges): a concurrent writer can make the result *torn* (a mix
//! of old and new bytes), exactly ctypes' "potentially non-atomic" access, but never
//! undefined. Single values use the `atomic-memcpy` crate; these are the bulk versions for
//! runtime lengths, which that crate does not offer.
//!
//! On x86-64, copies of [`ASM_MIN`] bytes or more use one `rep movsb` in inline assembly
//! (see docs/safety.md): the compiler cannot see into an asm block, so it behaves as an
//! opaque routine; what it does — byte-granular loads and stores, each of which the
//! hardware performs coherently — is exactly what a loop of relaxed atomic byte copies may
//! do, so the copy is as sound as that loop, and runs at `memcpy` speed (the word loop
//! reaches about 60 % of it).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

const WORD: usize = 8;
/// From this many bytes on, x86-64 copies with `rep movsb` (its start-up cost is amortised).
#[cfg(target_arch = "x86_64")]
pub(crate) const ASM_MIN: usize = 512;

/// One `rep movsb`: copies `len` bytes from `src` to `dst`.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, not overlapping.
#[cfg(target_arch = "x86_64")]
unsafe fn rep_movsb(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller vouches for both ranges; `rep movsb` reads exactly [src, src+len)
    // and writes exactly [dst, dst+len) (the direction flag is clear, as the ABI requires
    // at every call boundary); it touches no stack and no flags the compiler relies on.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Copies `len` bytes from shared `src` into private `dst`.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and they must not
/// overlap. Other processes or threads may write `src` concurrently only with atomic
/// operations (or from another process).
pub(crate) unsafe fn load(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len >= ASM_MIN {
        // SAFETY: the caller's contract is rep_movsb's; see the module docs for why an asm
        // copy racing with other writers is sound.
        return unsafe { rep_movsb(src, dst, len) };
    }
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
    #[cfg(target_arch = "x86_64")]
    if len >= ASM_MIN {
        // SAFETY: as in `load`.
        return unsafe { rep_movsb(src, dst, len) };
    }
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
