//! Handles of the kinds with a lock: `Value`, `Array`, `Lock`, `RLock`.

use std::mem::{align_of, size_of};
use std::sync::Arc;

use crate::arena::opened::{self, Role};
use crate::arena::{data_offset, Allocation, Arena, NamedObject, ObjectKind, LOCK_CELL};
use crate::handle::open::{check_kind, check_layout};
use crate::handle::resolve::resolve;
use crate::handle::Handle;
use crate::raw::{RawArray, RawValue};
use crate::sync::{GenericLock, LockCore, Reentrancy, Synchronized};
use crate::{Error, Result, SharedType};

fn bad(h: &Handle, reason: &'static str) -> Error {
    Error::InvalidHandle {
        text: h.to_string(),
        reason,
    }
}

/// A handle to the block at `block`: with an open record if it is a named object's (so
/// it outlives a `remove`), else borrowed from its owner.
fn block_handle(arena: &Arena, block: u64, record: u64) -> Arc<Allocation> {
    Arc::new(if record != 0 {
        Allocation::named(arena.clone(), block, record)
    } else {
        Allocation::borrowed(arena.clone(), block)
    })
}

/// Opens the data and lock of a `Value`/`Array` handle of `len` elements of `T`: this
/// process's one handle of the data, and the lock it is paired with (see
/// `handle::resolve` for the rules).
fn open_synced<T: SharedType>(
    arena: &Arena,
    h: &Handle,
    kind: ObjectKind,
) -> Result<(Arc<Allocation>, Arc<Allocation>)> {
    check_kind(arena, h, kind)?;
    check_layout::<T>(h)?;
    let bytes = h
        .len
        .checked_mul(size_of::<T>() as u64)
        .ok_or(bad(h, "its length overflows"))?;
    let align = align_of::<T>() as u64;
    if h.offset % align != 0 || h.lock % 8 != 0 {
        return Err(bad(h, "an offset in it is misaligned"));
    }
    let t = arena.with_heap(|heap| resolve(heap, arena, h, bytes))?;
    // One block: a named object's, or an unnamed one made with its own lock.
    let named = t.block == h.lock;
    if named && t.stamp == 0 && h.offset - h.lock != data_offset(kind, align) {
        // (An unnamed block: no open record was made that would need closing.)
        return Err(bad(
            h,
            "its data offset is not where its block keeps the data",
        ));
    }
    let whole = block_handle(arena, t.block, t.record);
    let data = if named {
        Arc::new(Allocation::part(whole, h.offset - h.lock))
    } else {
        whole
    };
    // Made before the map is asked, so that on refusal its open record is closed.
    let lock = if named {
        None
    } else {
        Some(block_handle(arena, h.lock, t.lock_record))
    };
    let data = opened::insert(arena, t.block, t.stamp, h.lock, Role::of(kind), data)?.or_refuse(
        h,
        kind,
        "this process has the object open with another lock: use the handle it has",
    )?;
    let lock = match (lock, data.parent()) {
        (None, Some(p)) if p.offset() == h.lock => p.clone(),
        (Some(lock), None) => lock,
        _ => return Err(bad(h, "its lock is not the lock of the object it names")),
    };
    Ok((data, lock))
}

fn lock_offset<K: Reentrancy>(lock: &GenericLock<K>) -> u64 {
    lock.core().allocation().offset()
}

impl<T: SharedType, K: Reentrancy> Synchronized<RawValue<T>, GenericLock<K>> {
    /// A handle naming this value and its lock; this process keeps ownership (of an
    /// unnamed value: keep it alive while others use the handle).
    ///
    /// ```
    /// use shared_runtime::{Arena, Value};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let v = arena.create::<Value<u32>>("v", 7)?;
    /// assert!(v.handle().to_string().starts_with("shr2:"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            arena: self.obj().arena().id(),
            offset: self.obj().offset(),
            len: 1,
            fingerprint: T::LAYOUT.fingerprint(),
            kind: <Self as NamedObject>::KIND,
            lock: lock_offset(self.getlock()),
            owned: false,
        }
    }

    /// Opens a `Value` handle made in another process, checking the arena, the kind (and
    /// lock kind), the layout and the blocks it names. A named value opened this way stays
    /// valid after its name is removed, as if opened by name.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] for a handle of another kind, [`Error::LayoutMismatch`] for
    /// another type, [`Error::InvalidHandle`] for another arena, a block too small, or an
    /// object this process owns (use the handle it has).
    ///
    /// ```
    /// use shared_runtime::{Arena, Error, Lock, Process, Value};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let v = arena.create::<Value<u32, Lock>>("v", 7)?;
    /// let h = v.handle();
    /// let a = arena.clone();
    /// Process::start(move || {
    ///     let w = Value::<u32, Lock>::open_handle(&a, &h).unwrap();
    ///     w.update(|n| *n += 1);
    ///     assert!(matches!(Value::<u32>::open_handle(&a, &h), Err(Error::KindMismatch { .. })));
    /// })?.join()?;
    /// assert_eq!(v.get(), 8);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<Self> {
        if handle.len != 1 {
            return Err(bad(handle, "a value handle has length 1"));
        }
        let (data, lock) = open_synced::<T>(arena, handle, <Self as NamedObject>::KIND)?;
        let lock = GenericLock::from_core(LockCore::from_alloc(lock));
        Ok(Synchronized::from_opened(RawValue::from_arc(data), lock))
    }
}

impl<T: SharedType, K: Reentrancy> Synchronized<RawArray<T>, GenericLock<K>> {
    /// A handle naming this array and its lock; see [`Value::handle`](crate::Value).
    ///
    /// ```
    /// let a = shared_runtime::Array::from_slice(&[1u8, 2])?;
    /// assert_eq!(a.handle().len, 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            arena: self.obj().arena().id(),
            offset: self.obj().offset(),
            len: self.obj().len() as u64,
            fingerprint: T::LAYOUT.fingerprint(),
            kind: <Self as NamedObject>::KIND,
            lock: lock_offset(self.getlock()),
            owned: false,
        }
    }

    /// Opens an `Array` handle; see the `Value` form of `open_handle`.
    ///
    /// # Errors
    /// As for a `Value`.
    ///
    /// ```
    /// use shared_runtime::{Arena, Array, Process, RawArray};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let xs = arena.create::<Array<u16>>("xs", &[1, 2, 3])?;
    /// let (a, h) = (arena.clone(), xs.handle());
    /// Process::start(move || {
    ///     let ys = Array::<u16>::open_handle(&a, &h).unwrap();
    ///     ys.set(0, 9);
    ///     assert!(RawArray::<u16>::open_handle(&a, &h).is_err()); // not a RawArray
    /// })?.join()?;
    /// assert_eq!(xs.to_vec(), [9, 2, 3]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<Self> {
        let len = usize::try_from(handle.len).map_err(|_| bad(handle, "its length overflows"))?;
        let (data, lock) = open_synced::<T>(arena, handle, <Self as NamedObject>::KIND)?;
        let lock = GenericLock::from_core(LockCore::from_alloc(lock));
        Ok(Synchronized::from_opened(
            RawArray::from_arc(data, len),
            lock,
        ))
    }
}

impl<K: Reentrancy> GenericLock<K> {
    /// A handle naming this lock, to open in another process mapping the arena.
    ///
    /// ```
    /// let lock = shared_runtime::Lock::new()?;
    /// assert!(lock.handle().to_string().ends_with(":lb"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            arena: self.core().arena().id(),
            offset: lock_offset(self),
            len: 1,
            fingerprint: 0,
            kind: <Self as NamedObject>::KIND,
            lock: 0,
            owned: false,
        }
    }

    /// Opens a lock handle, checking the arena, the kind (`Lock` or `RLock`) and the block.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] for a handle of another kind (an `RLock`'s opened as a
    /// `Lock`), [`Error::InvalidHandle`] for another arena or a block too small.
    ///
    /// ```
    /// use shared_runtime::{Lock, RLock, SharedLock};
    /// let lock = Lock::new()?;
    /// let same = Lock::open_handle(lock.arena(), &lock.handle())?;
    /// assert!(same.same_as(&lock));
    /// assert!(RLock::open_handle(lock.arena(), &lock.handle()).is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<Self> {
        check_kind(arena, handle, <Self as NamedObject>::KIND)?;
        if handle.offset % 8 != 0 {
            return Err(bad(handle, "an offset in it is misaligned"));
        }
        let t = arena.with_heap(|heap| resolve(heap, arena, handle, LOCK_CELL))?;
        let block = block_handle(arena, t.block, t.record);
        Ok(GenericLock::from_core(LockCore::from_alloc(block)))
    }
}
