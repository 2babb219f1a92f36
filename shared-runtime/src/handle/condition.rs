//! Handles and names of `Condition`s.

use crate::arena::{Arena, NamedObject, ObjectKind, Parts, Shape, LOCK_CELL};
use crate::handle::state_block::{open_state_block, state_handle};
use crate::handle::Handle;
use crate::sync::{Condition, Token};
use crate::Result;

impl Condition {
    /// A handle naming this condition, to open in another process mapping the arena; this
    /// process keeps ownership (of an unnamed condition: keep it alive while others use it).
    ///
    /// ```
    /// let c = shared_runtime::Condition::new()?;
    /// assert!(c.handle().to_string().ends_with(":cb"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        state_handle(
            self.arena(),
            self.allocation().offset(),
            ObjectKind::Condition,
        )
    }

    /// Opens a condition handle made in another process, checking the arena, the kind and
    /// the block. A named condition opened this way stays valid after its name is removed.
    ///
    /// # Errors
    /// [`Error::KindMismatch`](crate::Error::KindMismatch) for a handle of another kind,
    /// [`Error::InvalidHandle`](crate::Error::InvalidHandle) for another arena, a block that
    /// is no condition's, an owning handle, or a condition this process owns (use the
    /// handle it has).
    ///
    /// ```
    /// use shared_runtime::{Arena, Condition, Process};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let c = arena.create::<Condition>("c", ())?;
    /// let (a, h) = (arena.clone(), c.handle());
    /// Process::start(move || Condition::open_handle(&a, &h).unwrap().notify_all())?.join()?;
    /// assert!(format!("{c:?}").contains("notifies: 1"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<Self> {
        let data = open_state_block(arena, handle, ObjectKind::Condition, LOCK_CELL)?;
        Ok(Condition::from_alloc(data))
    }
}

impl NamedObject for Condition {
    type Init<'a> = ();
    const KIND: ObjectKind = ObjectKind::Condition;
    fn shape(_: Option<&()>, _: Token) -> Shape {
        // No element layout: a 24-byte block, of which the condition uses the first 8.
        Shape {
            layout: None,
            len: Some(1),
        }
    }
    unsafe fn init(_: &(), _: *mut u8, _: Token) {
        // A zeroed block is a condition without notifies or waiters.
    }
    fn build(parts: Parts, _: Token) -> Self {
        Condition::from_alloc(parts.data)
    }
}
