//! Opening the handle of a synchronization object whose state is one block without an
//! element layout ([`Event`](crate::Event), [`Condition`](crate::Condition),
//! [`Semaphore`](crate::Semaphore), [`BoundedSemaphore`](crate::BoundedSemaphore),
//! [`Barrier`](crate::Barrier)).

use std::sync::Arc;

use crate::arena::opened::{self, Role};
use crate::arena::{Allocation, Arena, ObjectKind};
use crate::handle::open::check_kind;
use crate::handle::resolve::resolve;
use crate::handle::Handle;
use crate::{Error, Result};

/// The handle of the state block at `offset`, of `kind`.
pub(crate) fn state_handle(arena: &Arena, offset: u64, kind: ObjectKind) -> Handle {
    Handle {
        arena: arena.id(),
        offset,
        len: 1,
        fingerprint: 0,
        kind,
        lock: 0,
        owned: false,
    }
}

/// Checks `handle` (arena, kind, shape, the block of at least `bytes` bytes, the directory
/// entry of a named one) and maps the block, recording it as opened by this process.
pub(crate) fn open_state_block(
    arena: &Arena,
    handle: &Handle,
    kind: ObjectKind,
    bytes: u64,
) -> Result<Arc<Allocation>> {
    let bad = |reason| Error::InvalidHandle {
        text: handle.to_string(),
        reason,
    };
    check_kind(arena, handle, kind)?;
    if handle.owned {
        return Err(bad(
            "a synchronization object's handle never carries ownership",
        ));
    }
    if handle.len != 1 || handle.fingerprint != 0 || handle.lock != 0 {
        return Err(bad(
            "a synchronization object's handle has length 1 and no layout or lock",
        ));
    }
    if handle.offset % 8 != 0 {
        return Err(bad("its offset is misaligned"));
    }
    let t = arena.with_heap(|heap| resolve(heap, arena, handle, bytes))?;
    let data = Arc::new(if t.record != 0 {
        Allocation::named(arena.clone(), t.block, t.record)
    } else {
        Allocation::borrowed(arena.clone(), t.block)
    });
    opened::insert(arena, t.block, t.stamp, 0, Role::of(kind), data)?.or_refuse(
        handle,
        kind,
        "this process has this block open as another object",
    )
}
