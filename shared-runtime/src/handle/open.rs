//! Making handles from raw objects, and opening them.

use std::mem::{align_of, size_of};
use std::sync::Arc;

use crate::arena::opened::{self, Role};
use crate::arena::registry::type_label;
use crate::arena::{Allocation, Arena, ObjectKind};
use crate::handle::resolve::resolve;
use crate::handle::Handle;
use crate::raw::{RawArray, RawValue};
use crate::{Error, Result, SharedType};

/// A lending handle for the object at `offset`: a value, or an array of `len` elements.
fn lend<T: SharedType>(arena: &Arena, offset: u64, len: Option<usize>) -> Handle {
    Handle {
        arena: arena.id(),
        offset,
        len: len.map_or(1, |n| n as u64),
        fingerprint: T::LAYOUT.fingerprint(),
        kind: if len.is_some() {
            ObjectKind::RawArray
        } else {
            ObjectKind::RawValue
        },
        lock: 0,
        owned: false,
    }
}

/// Checks the arena and kind of `h`.
pub(crate) fn check_kind(arena: &Arena, h: &Handle, kind: ObjectKind) -> Result<()> {
    if h.arena != arena.id() {
        return Err(Error::InvalidHandle {
            text: h.to_string(),
            reason: "it belongs to another arena",
        });
    }
    if h.kind != kind {
        return Err(Error::KindMismatch {
            name: format!("handle {h}"),
            stored: h.kind.to_string(),
            requested: kind.to_string(),
        });
    }
    Ok(())
}

/// Checks the layout fingerprint of `h` against `T`'s.
pub(crate) fn check_layout<T: SharedType>(h: &Handle) -> Result<()> {
    if h.fingerprint != T::LAYOUT.fingerprint() {
        return Err(Error::LayoutMismatch {
            name: format!("handle {h}"),
            stored: format!("a type with layout fingerprint {:#018x}", h.fingerprint),
            requested: format!(
                "{} (layout fingerprint {:#018x})",
                type_label(&T::LAYOUT),
                T::LAYOUT.fingerprint()
            ),
        });
    }
    Ok(())
}

/// Checks that `h` can be opened in `arena` as `len` elements of `T`, and gives this
/// process's one handle of it (see `handle::resolve` for the rules).
fn open<T: SharedType>(arena: &Arena, h: &Handle, array: bool) -> Result<Arc<Allocation>> {
    let bad = |reason| Error::InvalidHandle {
        text: h.to_string(),
        reason,
    };
    let kind = if array {
        ObjectKind::RawArray
    } else {
        ObjectKind::RawValue
    };
    check_kind(arena, h, kind)?;
    check_layout::<T>(h)?;
    let bytes = usize::try_from(h.len)
        .ok()
        .and_then(|n| n.checked_mul(size_of::<T>()))
        .ok_or(bad("its length overflows"))?;
    if h.owned {
        return Allocation::adopt(arena, h.offset, bytes, align_of::<T>());
    }
    if h.offset % align_of::<T>() as u64 != 0 {
        return Err(bad("its offset is misaligned"));
    }
    let t = arena.with_heap(|heap| resolve(heap, arena, h, bytes as u64))?;
    let data = Arc::new(if t.record != 0 {
        Allocation::named(arena.clone(), t.block, t.record)
    } else {
        Allocation::borrowed(arena.clone(), t.block)
    });
    // A raw object is inserted with no lock: only another role is refused.
    opened::insert(arena, t.block, t.stamp, 0, Role::of(kind), data)?.or_refuse(
        h,
        kind,
        "this process has the object open with another lock",
    )
}

impl<T: SharedType> RawValue<T> {
    /// A handle naming this value; this process keeps ownership. Opening it elsewhere gives
    /// a view that never frees the value: keep this one alive meanwhile.
    ///
    /// ```
    /// let v = shared_runtime::RawValue::new(1u8)?;
    /// assert!(!v.handle().owned);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        lend::<T>(self.arena(), self.offset(), None)
    }

    /// Gives up ownership and returns a handle that carries it: whoever opens the handle
    /// (in any process mapping the arena) becomes the owner and frees the value.
    ///
    /// # Errors
    /// As [`into_offset`](Self::into_offset).
    ///
    /// ```
    /// use shared_runtime::RawValue;
    /// let v = RawValue::new(2.5f64)?;
    /// let arena = v.arena().clone();
    /// let h = v.into_handle()?;
    /// let mine = RawValue::<f64>::open_handle(&arena, &h)?;
    /// assert_eq!(mine.get(), 2.5);
    /// assert!(RawValue::<f64>::open_handle(&arena, &h).is_err(), "taken over once only");
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn into_handle(self) -> Result<Handle> {
        let lent = self.handle();
        self.into_offset()?;
        Ok(Handle {
            owned: true,
            ..lent
        })
    }

    /// Opens a value handle in `arena`, checking the arena, the layout fingerprint and the
    /// block it names (for a named object, against its directory entry, with an open
    /// record). An owned handle transfers ownership to this process. A process that
    /// already has a handle of the value (opened, or inherited through fork) gets that one.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`] for a handle of another arena, of an array, naming a block
    /// too small, a lock, a removed named object, or a value this process owns (clone the
    /// handle it has); [`Error::LayoutMismatch`] if `T` is not the type it was made for.
    ///
    /// ```
    /// let v = shared_runtime::RawValue::new(1u32)?;
    /// let err = shared_runtime::RawValue::<f32>::open_handle(v.arena(), &v.handle());
    /// assert!(matches!(err, Err(shared_runtime::Error::LayoutMismatch { .. })));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<RawValue<T>> {
        if handle.len != 1 {
            return Err(Error::InvalidHandle {
                text: handle.to_string(),
                reason: "a value handle has length 1",
            });
        }
        Ok(RawValue::from_arc(open::<T>(arena, handle, false)?))
    }
}

impl<T: SharedType> RawArray<T> {
    /// A handle naming this array; this process keeps ownership.
    ///
    /// ```
    /// let a = shared_runtime::RawArray::<u8>::zeroed(3)?;
    /// assert_eq!(a.handle().len, 3);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        lend::<T>(self.arena(), self.offset(), Some(self.len()))
    }

    /// Gives up ownership and returns a handle that carries it.
    ///
    /// # Errors
    /// As [`into_offset`](Self::into_offset).
    ///
    /// ```
    /// use shared_runtime::RawArray;
    /// let a = RawArray::from_slice(&[1i16, 2])?;
    /// let arena = a.arena().clone();
    /// let h = a.into_handle()?;
    /// assert_eq!(RawArray::<i16>::open_handle(&arena, &h)?.to_vec(), [1, 2]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn into_handle(self) -> Result<Handle> {
        let lent = self.handle();
        self.into_offset()?;
        Ok(Handle {
            owned: true,
            ..lent
        })
    }

    /// Opens an array handle in `arena`; see [`RawValue::open_handle`].
    ///
    /// # Errors
    /// As [`RawValue::open_handle`].
    ///
    /// ```
    /// use shared_runtime::{Arena, Process, RawArray};
    /// let arena = Arena::with_capacity(1 << 16)?;
    /// let a = RawArray::from_slice_in(&arena, &[5u64])?;
    /// // This process owns `a`: it clones the handle it has instead.
    /// assert!(RawArray::<u64>::open_handle(&arena, &a.handle()).is_err());
    /// let (h, arena2) = (a.handle(), arena.clone());
    /// let seen = Process::start(move || {
    ///     RawArray::<u64>::open_handle(&arena2, &h).unwrap().get(0).unwrap()
    /// })?.join()?;
    /// assert_eq!(seen, 5);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<RawArray<T>> {
        let alloc = open::<T>(arena, handle, true)?;
        Ok(RawArray::from_arc(alloc, handle.len as usize))
    }
}
