//! Names and handles of `Queue`s.

use std::sync::Arc;

use crate::arena::opened::{self, Role};
use crate::arena::{Allocation, Arena, NamedObject, ObjectKind, Parts, Shape};
use crate::handle::open::{check_kind, check_layout};
use crate::handle::resolve::resolve;
use crate::handle::Handle;
use crate::sync::queue::{block_bytes, init_header, slots_at};
use crate::sync::{Queue, Token};
use crate::{Error, Result, SharedType};

/// The whole block of a queue whose handle this process has: a named queue's handle is
/// the part of its block where the slots start (as the directory opens every object
/// with data after a header), an unnamed one's the block itself.
fn block_of(data: Arc<Allocation>) -> Arc<Allocation> {
    match data.parent() {
        Some(block) => Arc::clone(block),
        None => data,
    }
}

impl<T: SharedType> NamedObject for Queue<T> {
    /// The capacity.
    type Init<'a> = usize;
    const KIND: ObjectKind = ObjectKind::Queue;
    fn shape(init: Option<&usize>, _: Token) -> Shape {
        // The element layout with `len` = capacity: the directory sizes the block as the
        // header (`QUEUE_HEADER`, see `data_offset`) plus that many slots.
        Shape {
            layout: Some(&T::LAYOUT),
            len: init.map(|&n| n as u64),
        }
    }
    fn check_init(capacity: &usize, _: Token) -> Result<()> {
        if *capacity == 0 {
            return Err(Error::InvalidQueueCapacity {
                capacity: 0,
                reason: "a queue holds at least one item",
            });
        }
        Ok(())
    }
    unsafe fn init(capacity: &usize, data: *mut u8, _: Token) {
        // SAFETY: `data` is where the slots start in a fresh, zeroed block made for this
        // shape (the caller's contract): `slots_at::<T>()` (the directory's `data_at`, at
        // least QUEUE_HEADER) bytes after the block's 8-aligned start, which nobody else
        // can see yet.
        unsafe { init_header(data.sub(slots_at::<T>() as usize), *capacity as u64) }
    }
    fn build(parts: Parts, _: Token) -> Self {
        let block = parts
            .data
            .parent()
            .expect("a named queue's slots are part of its block")
            .clone();
        // SAFETY: the directory checked that the block holds `slots_at::<T>()` bytes (its
        // `data_at`) plus `len` slots of `T`, aligned to `align_of::<T>().max(8)`.
        unsafe { Queue::from_block(block, parts.len as u64) }
    }
}

impl<T: SharedType> Queue<T> {
    /// A handle naming this queue (its capacity and element layout included), to open in
    /// another process mapping the arena; this process keeps ownership (of an unnamed
    /// queue: keep it alive while others use it).
    ///
    /// ```
    /// let q = shared_runtime::Queue::<u32>::new(5)?;
    /// assert_eq!(q.handle().len, 5);
    /// assert!(q.handle().to_string().ends_with(":qb"), "{}", q.handle());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            arena: self.arena().id(),
            offset: self.block().offset(),
            len: self.capacity() as u64,
            fingerprint: T::LAYOUT.fingerprint(),
            kind: <Self as NamedObject>::KIND,
            lock: 0,
            owned: false,
        }
    }

    /// Opens a queue handle made in another process, checking the arena, the kind, the
    /// element layout and the block (its size against the capacity). A named queue opened
    /// this way stays valid after its name is removed.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] for a handle of another kind, [`Error::LayoutMismatch`] for
    /// another element type, [`Error::InvalidHandle`] for another arena, a block too small
    /// for the capacity, a capacity other than the one the queue's header records, an
    /// owning handle, or a queue this process owns (use the handle it
    /// has).
    ///
    /// ```
    /// use shared_runtime::{Arena, Process, Queue};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let q = arena.create::<Queue<u64>>("jobs", 4)?;
    /// let (a, h) = (arena.clone(), q.handle());
    /// Process::start(move || Queue::<u64>::open_handle(&a, &h).unwrap().push(7).unwrap())?
    ///     .join()?;
    /// assert_eq!(q.pop()?, Some(7));
    /// assert!(Queue::<u32>::open_handle(&arena, &q.handle()).is_err()); // not u32s
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<Self> {
        let bad = |reason| Error::InvalidHandle {
            text: handle.to_string(),
            reason,
        };
        check_kind(arena, handle, <Self as NamedObject>::KIND)?;
        check_layout::<T>(handle)?;
        if handle.owned {
            return Err(bad("a queue handle never carries ownership"));
        }
        if handle.lock != 0 {
            return Err(bad("a queue handle names no separate lock"));
        }
        if handle.len == 0 {
            return Err(bad("a queue's capacity is at least 1"));
        }
        let align = (std::mem::align_of::<T>() as u64).max(8);
        if handle.offset % align != 0 {
            return Err(bad("its offset is misaligned"));
        }
        let bytes = block_bytes::<T>(handle.len).ok_or(bad("its capacity overflows"))?;
        usize::try_from(bytes).map_err(|_| bad("its capacity overflows"))?;
        let t = arena.with_heap(|heap| resolve(heap, arena, handle, bytes))?;
        let data = Arc::new(if t.record != 0 {
            let block = Arc::new(Allocation::named(arena.clone(), t.block, t.record));
            Allocation::part(block, slots_at::<T>())
        } else {
            Allocation::borrowed(arena.clone(), t.block)
        });
        let kind = <Self as NamedObject>::KIND;
        let data = opened::insert(arena, t.block, t.stamp, 0, Role::of(kind), data)?.or_refuse(
            handle,
            kind,
            "this process has this block open as another object",
        )?;
        // SAFETY: `resolve` checked that the block holds `bytes` =
        // `block_bytes::<T>(len)` bytes; its offset is aligned (checked above) and block
        // payloads are 8-aligned in the mapping.
        let queue = unsafe { Queue::from_block(block_of(data), handle.len) };
        // A handle of a smaller capacity fits in the block too: only the header can tell
        // (a queue opened so would refuse every push and pop, yet could close it).
        if queue.stored_capacity() != handle.len {
            return Err(bad(
                "its capacity is not the one the queue's header records (a forged or \
                 damaged handle, or a header another process overwrote)",
            ));
        }
        Ok(queue)
    }
}
