//! One block of an arena, freed on drop by the process that owns it.

use crate::arena::Arena;
use crate::sys::process::current_pid;
use crate::Result;

/// An owned block of an arena: the arena handle keeps the mapping alive, the offset names
/// the payload. Only the owning process frees it; a forked child's copy of its parent's
/// `Allocation` frees nothing when dropped.
pub(crate) struct Allocation {
    arena: Arena,
    offset: u64,
    owner: i32,
}

impl Allocation {
    pub(crate) fn new(arena: Arena, offset: u64, owner: i32) -> Self {
        Allocation {
            arena,
            offset,
            owner,
        }
    }

    /// A handle to a block this process does not own (a named object, or one opened from
    /// a handle): it never frees it.
    pub(crate) fn borrowed(arena: Arena, offset: u64) -> Self {
        Allocation {
            arena,
            offset,
            owner: 0,
        }
    }

    /// Address of the payload in this process.
    pub(crate) fn ptr(&self) -> *mut u8 {
        // SAFETY: the offset was handed out by the allocator of this arena, so it lies inside
        // the mapping, which `self.arena` keeps alive.
        unsafe { self.arena.base().add(self.offset as usize) }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the calling process owns the block (so this is its only handle here).
    pub(crate) fn owned_here(&self) -> bool {
        self.owner == current_pid()
    }

    pub(crate) fn arena(&self) -> &Arena {
        &self.arena
    }

    /// Gives up ownership without freeing: the block stays allocated, marked as waiting for
    /// another process (or this one) to [`adopt`](Self::adopt) it.
    pub(crate) fn detach(self) -> Result<u64> {
        let me = current_pid() as u32;
        let offset = self.offset;
        self.arena.with_heap(|h| h.set_owner(offset, me, 0))?;
        std::mem::forget(self);
        Ok(offset)
    }

    /// Takes ownership of a detached block whose payload is at `offset` and holds at least
    /// `size` bytes aligned to `align`.
    pub(crate) fn adopt(arena: &Arena, offset: u64, size: usize, align: usize) -> Result<Self> {
        let me = current_pid();
        let capacity = arena.with_heap(|h| {
            let cap = h.payload_capacity(offset)?;
            if cap < size as u64 || offset % align as u64 != 0 {
                return Err(crate::Error::Corrupted(format!(
                    "the block at offset {offset} holds {cap} bytes, cannot hold {size} bytes \
                     aligned to {align}"
                )));
            }
            h.set_owner(offset, 0, me as u32)
        });
        capacity.map(|_| Allocation::new(arena.clone(), offset, me))
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if current_pid() == self.owner {
            // A failure here means the arena's bookkeeping was damaged by someone else; there
            // is nobody to report it to from a destructor, and leaking the block is the safe
            // outcome. `Arena::check` reports such damage.
            let _ = self
                .arena
                .with_heap(|h| h.free(self.offset, self.owner as u32));
        }
    }
}
