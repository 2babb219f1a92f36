//! Handles of `Event`s.

use std::sync::Arc;

use crate::arena::opened::{self, Role};
use crate::arena::{Allocation, Arena, NamedObject, LOCK_CELL};
use crate::handle::open::check_kind;
use crate::handle::resolve::resolve;
use crate::handle::Handle;
use crate::sync::Event;
use crate::{Error, Result};

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
        Handle {
            arena: self.arena().id(),
            offset: self.allocation().offset(),
            len: 1,
            fingerprint: 0,
            kind: <Self as NamedObject>::KIND,
            lock: 0,
            owned: false,
        }
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
        let bad = |reason| Error::InvalidHandle {
            text: handle.to_string(),
            reason,
        };
        check_kind(arena, handle, <Self as NamedObject>::KIND)?;
        if handle.owned {
            return Err(bad("an event handle never carries ownership"));
        }
        if handle.len != 1 || handle.fingerprint != 0 || handle.lock != 0 {
            return Err(bad("an event handle has length 1 and no layout or lock"));
        }
        if handle.offset % 8 != 0 {
            return Err(bad("its offset is misaligned"));
        }
        let t = arena.with_heap(|heap| resolve(heap, arena, handle, LOCK_CELL))?;
        let data = Arc::new(if t.record != 0 {
            Allocation::named(arena.clone(), t.block, t.record)
        } else {
            Allocation::borrowed(arena.clone(), t.block)
        });
        let kind = <Self as NamedObject>::KIND;
        let data = opened::insert(arena, t.block, t.stamp, 0, Role::of(kind), data)?.or_refuse(
            handle,
            kind,
            "this process has this block open as another object",
        )?;
        Ok(Event::from_alloc(data))
    }
}
