//! The hasher of the map of opened objects' hash maps (`table.rs`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// The table's hasher: its keys are two words (arena id, block offset), so a seeded
/// multiply-fold instead of std's SipHash. Seeded once per table from std's random keys,
/// so a process that chooses block offsets (another user of the arena) cannot choose
/// colliding keys for it either; a collision only ever costs time.
///
/// Blocks in one 512-byte window of an arena hash to one random place, and bits 5 to 8 of
/// the offset pick the bucket next to it ([`WINDOW`]): blocks recorded one after another
/// land in neighbouring buckets. At most 64 keys (8-byte aligned blocks) share a window,
/// 4 a hash, so no choice of offsets gives more equal hashes than that. (The leaves'
/// keys are made to look like blocks one after another: see `table::leaf_key`.)
#[derive(Clone, Copy)]
pub(super) struct KeyHash(u64);

impl KeyHash {
    pub(super) fn new() -> Self {
        KeyHash(RandomState::new().hash_one(0x5eed_u64) | 1)
    }
}

impl BuildHasher for KeyHash {
    type Hasher = WordHasher;

    #[inline]
    fn build_hasher(&self) -> WordHasher {
        WordHasher {
            mix: self.0,
            last: None,
        }
    }
}

/// Multiplies `a` by `b` as 128-bit numbers and folds the halves together: every bit of
/// the result depends on every bit of both.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// The state of one [`KeyHash`] hashing: the words before the last folded in, and the last
/// (a key's block offset), whose low bits place it within its window.
pub(super) struct WordHasher {
    mix: u64,
    last: Option<u64>,
}

/// An odd constant with well-spread bits (the fractional part of the golden ratio).
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// The bits of a block offset that place it within its window (see [`KeyHash`]): bits 5 to
/// 8, so a 512-byte window spans 16 buckets, one group of the map's control bytes.
const WINDOW: (u32, u64) = (5, 15);

impl Hasher for WordHasher {
    #[inline]
    fn write_u64(&mut self, word: u64) {
        if let Some(before) = self.last.replace(word) {
            self.mix = fold_mul(self.mix ^ before, SPREAD);
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        let (shift, mask) = WINDOW;
        let last = self.last.unwrap_or(0);
        let window = last >> (shift + mask.count_ones());
        let spread = fold_mul(self.mix ^ window, SPREAD ^ 0xff51_afd7_ed55_8ccd);
        let at = (last >> shift) & mask;
        // The top 7 bits are the map's tag of the key in its control bytes: varied within
        // a window too, so a lookup does not match all of its neighbours' tags.
        ((spread & !mask) ^ (at << 57)) | at
    }
}
