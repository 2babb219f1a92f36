//! Handles of `Event`s.

use crate::arena::{Arena, NamedObject, LOCK_CELL};
use crate::handle::state_block::{open_state_block, state_handle};
use crate::handle::Handle;
use crate::sync::Event;
use crate::Result;

impl Event {
    /// A handle naming this event, to open in another process mapping the arena; this
    /// process keeps ownership (of an unnamed event: keep it alive while others use it).
    ///
    /// ```
    /// let e = shared_runtime::Event::new()?;
    /// assert!(e.handle().to_string().ends_with(":eb"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        state_handle(
            self.arena(),
            self.allocation().offset(),
            <Self as NamedObject>::KIND,
        )
    }

    /// Opens an event handle made in another process, checking the arena, the kind and the
    /// block. A named event opened this way stays valid after its name is removed.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] for a handle of another kind, [`Error::InvalidHandle`] for
    /// another arena, a block that is no event's, an owning handle, or an event this
    /// process owns (use the handle it has).
    ///
    /// ```
    /// use shared_runtime::{Arena, Event, Process};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let e = arena.create::<Event>("go", ())?;
    /// let (a, h) = (arena.clone(), e.handle());
    /// Process::start(move || Event::open_handle(&a, &h).unwrap().set())?.join()?;
    /// assert!(e.is_set());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<Self> {
        let kind = <Self as NamedObject>::KIND;
        let data = open_state_block(arena, handle, kind, LOCK_CELL)?;
        Ok(Event::from_alloc(data))
    }
}
