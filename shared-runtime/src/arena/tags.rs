//! The owner tag of a used block: who frees it, and a check value that proves an offset is
//! the start of a block.

use crate::arena::heap::{tag_code, Heap, CACHED_CODE, HDR, USED};
use crate::arena::slab::{DETACHED, SLAB_CODE};
use crate::{Error, Result};

/// What an object's offset names: a used block, or a used slot of a slab (`slab.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ObjectRef {
    /// The marks of what it holds, as a block's first word has them (`LOCK_BLOCK`,
    /// `RECORD_BLOCK`, a `KIND_TAG`; a slot has its slab's).
    pub(crate) marks: u64,
    /// Its owner tag; 0 if it was given up (`into_offset`) and waits to be taken over.
    pub(crate) owner: u32,
    /// Payload bytes it holds.
    pub(crate) capacity: u64,
}

/// The check value of offset `b` in the arena whose id is `id` (see `Heap::canary`).
#[inline]
pub(crate) fn canary_for(id: u64, b: u64) -> u64 {
    (id ^ b).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}

impl Heap<'_> {
    /// The check value stored beside the owner in a used block's header: it depends on
    /// the arena and the block's offset, so an offset that is not the start of a block
    /// (a stale or forged handle) is recognised instead of being freed as one.
    pub(crate) fn canary(&self, b: u64) -> u64 {
        // SAFETY: the header is at offset 0 of the mapping; `id` is written once, when the
        // arena is created, before anyone else can see it.
        let id = unsafe { (*self.base().cast::<crate::arena::ArenaHeader>()).id() };
        canary_for(id, b)
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
        if tag_code(w) == SLAB_CODE {
            return Err(Error::Corrupted(format!(
                "no object starts at offset {payload}: it is a slab of small objects"
            )));
        }
        self.owner_of(b)?;
        Ok(b)
    }

    /// The object whose payload is at `payload`: a used slot of a slab, or a used block.
    pub(crate) fn object(&self, payload: u64) -> Result<ObjectRef> {
        if let Some(slot) = self.slot(payload)? {
            return Ok(ObjectRef {
                marks: slot.slab.marks,
                owner: if slot.owner == DETACHED {
                    0
                } else {
                    slot.owner
                },
                capacity: slot.slab.stride - 4,
            });
        }
        let b = self.used_block(payload)?;
        Ok(ObjectRef {
            marks: self.word(b),
            owner: self.owner_of(b)?,
            capacity: self.size_of(b)? - HDR,
        })
    }

    /// How many payload bytes the object at `payload` holds.
    pub(crate) fn payload_capacity(&self, payload: u64) -> Result<u64> {
        Ok(self.object(payload)?.capacity)
    }

    /// Changes the owner recorded in the object at `payload` from `from` to `to` (0: given
    /// up, waiting to be taken over).
    pub(crate) fn set_owner(&self, payload: u64, from: u32, to: u32) -> Result<()> {
        if let Some(slot) = self.slot(payload)? {
            let word = self.atomic32(slot.slab.owner_at(slot.index));
            let (f, t) = (
                if from == 0 { DETACHED } else { from },
                if to == 0 { DETACHED } else { to },
            );
            return word
                .compare_exchange(
                    f,
                    t,
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                )
                .map(drop)
                .map_err(|recorded| {
                    Error::Corrupted(if from == 0 {
                        format!("the object at offset {payload} is owned by process {recorded}")
                    } else {
                        format!("the object at offset {payload} is not owned by process {from}")
                    })
                });
        }
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
