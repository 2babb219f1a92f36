//! Entropy from the kernel.

/// Fills `buf` from `getrandom(2)`; `false` if the kernel gave fewer bytes (no entropy
/// source, or an old kernel), in which case the caller picks a fallback.
pub(crate) fn fill(buf: &mut [u8]) -> bool {
    // SAFETY: getrandom writes at most `buf.len()` bytes to `buf`, which we borrow
    // mutably for the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    usize::try_from(n) == Ok(buf.len())
}
