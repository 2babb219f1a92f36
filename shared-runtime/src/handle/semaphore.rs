//! Handles of `Semaphore`s and `BoundedSemaphore`s.

use crate::arena::{Arena, NamedObject};
use crate::handle::state_block::{open_state_block, state_handle};
use crate::handle::Handle;
use crate::sync::{Boundedness, GenericSemaphore, SEMAPHORE_BYTES};
use crate::{Error, Result};

impl<B: Boundedness> GenericSemaphore<B> {
    /// A handle naming this semaphore, to open in another process mapping the arena; this
    /// process keeps ownership (of an unnamed semaphore: keep it alive while others use
    /// it).
    ///
    /// ```
    /// let s = shared_runtime::Semaphore::new(1)?;
    /// assert!(s.handle().to_string().ends_with(":sb"));
    /// let b = shared_runtime::BoundedSemaphore::new(1)?;
    /// assert!(b.handle().to_string().ends_with(":Sb"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        state_handle(
            self.arena(),
            self.allocation().offset(),
            <Self as NamedObject>::KIND,
        )
    }

    /// Opens a semaphore handle made in another process, checking the arena, the kind
    /// (a `Semaphore` handle does not open as a `BoundedSemaphore`, nor the reverse) and
    /// the block. A named semaphore opened this way stays valid after its name is removed.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] for a handle of another kind, [`Error::InvalidHandle`] for
    /// another arena, a block that is not a semaphore of this flavour's (whatever the
    /// handle's letter says: the block is tagged at creation), an owning handle, or a
    /// semaphore this process owns (use the handle it has).
    ///
    /// ```
    /// use shared_runtime::{Arena, Process, Semaphore};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let s = arena.create::<Semaphore>("s", 0)?;
    /// let (a, h) = (arena.clone(), s.handle());
    /// Process::start(move || Semaphore::open_handle(&a, &h).unwrap().release().unwrap())?
    ///     .join()?;
    /// assert_eq!(s.value(), 1);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<Self> {
        let bad = |reason| Error::InvalidHandle {
            text: handle.to_string(),
            reason,
        };
        let kind = <Self as NamedObject>::KIND;
        let data = open_state_block(arena, handle, kind, SEMAPHORE_BYTES)?;
        let sem = Self::from_alloc(data);
        // The handle's letter is only text: the block's own kind word decides (a
        // BoundedSemaphore never opens as a Semaphore, which would release past its bound).
        if !sem.tagged_as_mine() {
            return Err(bad(if B::BOUNDED {
                "its block is not a BoundedSemaphore's"
            } else {
                "its block is not a Semaphore's"
            }));
        }
        Ok(sem)
    }
}
