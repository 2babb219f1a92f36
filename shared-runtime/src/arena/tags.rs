//! The owner tag of a used block: who frees it, and a check value that proves an offset is
//! the start of a block.

use crate::arena::heap::{tag_code, Heap, CACHED_CODE, HDR, USED};
use crate::{Error, Result};

impl Heap<'_> {
    /// The check value stored beside the owner in a used block's header: it depends on
    /// the arena and the block's offset, so an offset that is not the start of a block
    /// (a stale or forged handle) is recognised instead of being freed as one.
    fn canary(&self, b: u64) -> u64 {
        // SAFETY: the header is at offset 0 of the mapping; `id` is written once, when the
        // arena is created, before anyone else can see it.
        let id = unsafe { (*self.base().cast::<crate::arena::ArenaHeader>()).id() };
        (id ^ b).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
    }

    /// Word 1 of a used block: its owner and canary.
    pub(crate) fn tag(&self, b: u64, owner: u32) -> u64 {
        u64::from(owner) | self.canary(b) << 32
    }

    /// The owner recorded in the used block `b`, if its canary is right.
    pub(crate) fn owner_of(&self, b: u64) -> Result<u32> {
        let word = self.word(b + 8);
        if word >> 32 != self.canary(b) {
            return Err(Error::Corrupted(format!(
                "no object starts at offset {}",
                b + HDR
            )));
        }
        Ok(word as u32)
    }

    /// The used block whose payload is at `payload`, validated.
    pub(crate) fn used_block(&self, payload: u64) -> Result<u64> {
        if payload < HDR {
            return Err(Error::Corrupted(format!(
                "no object starts at offset {payload}"
            )));
        }
        let b = self.block(payload - HDR)?;
        self.size_of(b)?;
        let w = self.word(b);
        if w & USED == 0 {
            return Err(Error::Corrupted(format!(
                "no object at offset {payload}: it is free"
            )));
        }
        if tag_code(w) == CACHED_CODE {
            return Err(Error::Corrupted(format!(
                "no object at offset {payload}: it was freed (its owner keeps the block \
                 for reuse)"
            )));
        }
        self.owner_of(b)?;
        Ok(b)
    }

    /// How many payload bytes the used block at `payload` holds.
    pub(crate) fn payload_capacity(&self, payload: u64) -> Result<u64> {
        let b = self.used_block(payload)?;
        Ok(self.size_of(b)? - HDR)
    }

    /// Changes the owner recorded in the block at `payload` from `from` to `to`.
    pub(crate) fn set_owner(&self, payload: u64, from: u32, to: u32) -> Result<()> {
        let b = self.used_block(payload)?;
        let recorded = self.owner_of(b)?;
        if recorded != from {
            return Err(Error::Corrupted(if from == 0 {
                format!("the object at offset {payload} is owned by process {recorded}")
            } else {
                format!("the object at offset {payload} is not owned by process {from}")
            }));
        }
        self.set_word(b + 8, self.tag(b, to));
        Ok(())
    }
}
