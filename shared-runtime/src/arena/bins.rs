//! The free lists: one doubly linked list of free blocks per size class, found through a
//! bitmap. Links are offsets stored in the free blocks themselves (see `heap.rs`).

use crate::arena::heap::{step, Heap, BINS, GRAIN, MIN_BLOCK, NBINS};
use crate::{Error, Result};

/// Exact-size bins for 32, 48, ..., 1024 bytes; larger blocks are binned by power of two.
const SMALL_BINS: usize = 63;
const SMALL_MAX: u64 = 1024;

/// The bin that holds free blocks of `size` bytes.
pub(crate) fn bin_index(size: u64) -> usize {
    if size <= SMALL_MAX {
        (size / GRAIN) as usize - 2
    } else {
        SMALL_BINS + (63 - size.leading_zeros() as usize) - 10
    }
}

impl Heap<'_> {
    pub(crate) fn insert(&self, b: u64, size: u64) -> Result<()> {
        let st = self.state();
        let i = bin_index(size);
        let head = st.bins[i].get();
        if head != 0 {
            self.block(head)?;
        }
        self.set_word(b + 8, head);
        self.set_word(b + 16, 0);
        if head != 0 {
            self.set_word(head + 16, b);
        }
        step();
        st.bins[i].set(b);
        st.bitmap[i / 64].set(st.bitmap[i / 64].get() | 1 << (i % 64));
        Ok(())
    }

    pub(crate) fn unlink(&self, b: u64) -> Result<()> {
        let size = self.size_of(b)?;
        let (next, prev) = (self.word(b + 8), self.word(b + 16));
        let st = self.state();
        let i = bin_index(size);
        if prev != 0 {
            self.set_word(self.block(prev)? + 8, next);
        } else if st.bins[i].get() == b {
            st.bins[i].set(next);
            if next == 0 {
                st.bitmap[i / 64].set(st.bitmap[i / 64].get() & !(1 << (i % 64)));
            }
        } else {
            return Err(Error::Corrupted(format!(
                "free block {b} missing from its bin {i}"
            )));
        }
        step();
        if next != 0 {
            self.set_word(self.block(next)? + 16, prev);
        }
        self.set_word(b + 8, 0);
        self.set_word(b + 16, 0);
        Ok(())
    }

    /// The first non-empty bin at or after `from`.
    fn next_bin(&self, from: usize) -> Option<usize> {
        let st = self.state();
        let mut i = from;
        while i < NBINS {
            let word = st.bitmap[i / 64].get() >> (i % 64);
            if word != 0 {
                // A bit past the reachable bins is damage: those bins are never listed.
                return Some(i + word.trailing_zeros() as usize).filter(|&i| i < BINS);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    /// Takes a free block of at least `need` bytes out of the bins.
    pub(crate) fn take_free(&self, need: u64) -> Result<Option<u64>> {
        let first = bin_index(need);
        let mut i = first;
        // A damaged list could loop: no list can be longer than the heap has blocks.
        let st = self.state();
        let mut budget = (st.top.get() - st.start.get()) / MIN_BLOCK + 1;
        while let Some(bin) = self.next_bin(i) {
            let mut b = self.state().bins[bin].get();
            while b != 0 {
                budget = budget
                    .checked_sub(1)
                    .ok_or_else(|| Error::Corrupted(format!("free list {bin} loops")))?;
                let b_checked = self.block(b)?;
                if self.size_of(b_checked)? >= need {
                    self.unlink(b_checked)?;
                    return Ok(Some(b_checked));
                }
                if bin != first || bin < SMALL_BINS {
                    break; // every block of a later (or exact) bin is large enough
                }
                b = self.word(b_checked + 8);
            }
            i = bin + 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_size_falls_in_the_last_reachable_bin() {
        assert_eq!(bin_index(u64::MAX) + 1, BINS);
        assert_eq!(bin_index(MIN_BLOCK), 0);
    }
}
