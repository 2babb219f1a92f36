//! Named objects in an arena: `create`, `open`, `find_or_create` (Boost.Interprocess's
//! `find_or_construct` idea), with the type's layout fingerprint stored beside each.
//!
//! The directory is a singly linked list of entry blocks whose head is in the heap state;
//! every operation runs with the arena lock held, so creating and looking up are atomic
//! with respect to every other process. Objects and entries are owned by the directory
//! (owner [`REGISTRY_OWNER`] in their block headers): handles to them never free them, and
//! they cannot be adopted; [`Arena::remove`] frees them.

use std::mem::{align_of, size_of};

use crate::arena::heap::Heap;
use crate::arena::{Allocation, Arena};
use crate::raw::{RawArray, RawValue};
use crate::types::{LayoutKind, TypeLayout};
use crate::{Error, Result, SharedType};

/// The owner recorded in blocks that belong to the directory.
pub(crate) const REGISTRY_OWNER: u32 = u32::MAX;
const MAX_NAME: usize = 200;
const MAX_TYPE: usize = 48;

/// One directory entry, stored in its own block.
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    next: u64,
    object: u64,
    len: u64,
    fingerprint: u64,
    size: u64,
    align: u64,
    is_array: u32,
    name_len: u32,
    type_len: u32,
    _pad: u32,
    type_name: [u8; MAX_TYPE],
    name: [u8; MAX_NAME],
}

/// A readable label for a layout: `u8`, `[f64; 3]`, `Point`.
pub(crate) fn type_label(l: &TypeLayout) -> String {
    match l.kind {
        LayoutKind::Array { elem, len } => format!("[{}; {len}]", type_label(elem)),
        _ => l.name.to_string(),
    }
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.name[..(self.name_len as usize).min(MAX_NAME)]
    }

    fn describe(&self) -> String {
        let ty = String::from_utf8_lossy(&self.type_name[..(self.type_len as usize).min(MAX_TYPE)]);
        describe(
            &ty,
            self.is_array != 0,
            self.len,
            self.size,
            self.align,
            self.fingerprint,
        )
    }
}

fn describe(ty: &str, array: bool, len: u64, size: u64, align: u64, fp: u64) -> String {
    let what = if array {
        format!("an array of {len} {ty}")
    } else {
        ty.to_string()
    };
    format!("{what} ({size} bytes, align {align}, layout fingerprint {fp:#018x})")
}

/// What the caller wants: the shape of the object, and what to do if it (does not) exist.
struct Request<'a> {
    name: &'a str,
    layout: &'a TypeLayout,
    /// `None` for a single value; `Some(n)` for an array of `n` (`None` too when opening
    /// an array of any length).
    len: Option<u64>,
    array: bool,
    create: bool,
    open: bool,
    /// Writes the initial contents into a fresh object's memory.
    init: &'a dyn Fn(*mut u8),
}

fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME {
        "names of shared objects are at most 200 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_string(),
        reason,
    })
}

impl Heap<'_> {
    fn read_entry(&self, at: u64) -> Result<Entry> {
        if self.payload_capacity(at)? < size_of::<Entry>() as u64 {
            return Err(Error::Corrupted(format!(
                "directory entry at {at} is too small"
            )));
        }
        // SAFETY: the block at `at` is a used block of at least size_of::<Entry>() payload
        // bytes inside the mapping (checked above), 16-aligned; the lock is held so no
        // well-behaved process writes it; any bytes are a valid Entry (integers only).
        Ok(unsafe { self.base().add(at as usize).cast::<Entry>().read() })
    }

    /// Finds `name`: the entry's offset and contents, and its predecessor's offset.
    fn lookup(&self, name: &str) -> Result<Option<(u64, Entry, u64)>> {
        let st = self.state();
        let mut budget = (st.top.get() - st.start.get()) / 32 + 1;
        let (mut prev, mut at) = (0, st.registry.get());
        while at != 0 {
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| Error::Corrupted("the object directory loops".into()))?;
            let e = self.read_entry(at)?;
            if e.name() == name.as_bytes() {
                return Ok(Some((at, e, prev)));
            }
            (prev, at) = (at, e.next);
        }
        Ok(None)
    }

    fn find_or_create(&self, req: &Request<'_>) -> Result<(u64, u64, bool)> {
        let size = req.layout.size as u64;
        if let Some((_, e, _)) = self.lookup(req.name)? {
            if !req.open {
                return Err(Error::AlreadyExists {
                    what: "object",
                    name: req.name.to_string(),
                });
            }
            let want_len = req.len.unwrap_or(e.len);
            let label = type_label(req.layout);
            if e.fingerprint != req.layout.fingerprint()
                || (e.is_array != 0) != req.array
                || e.len != want_len
                || e.size != size
            {
                return Err(Error::LayoutMismatch {
                    name: format!("object {:?}", req.name),
                    stored: e.describe(),
                    requested: describe(
                        &label,
                        req.array,
                        want_len,
                        size,
                        req.layout.align as u64,
                        req.layout.fingerprint(),
                    ),
                });
            }
            let bytes = e.len.checked_mul(size).ok_or_else(|| {
                Error::Corrupted(format!("object {:?} has an impossible length", req.name))
            })?;
            if self.payload_capacity(e.object)? < bytes || e.object % req.layout.align as u64 != 0 {
                return Err(Error::Corrupted(format!(
                    "object {:?} does not fit its block",
                    req.name
                )));
            }
            return Ok((e.object, e.len, false));
        }
        if !req.create {
            return Err(Error::NotFound {
                what: "object",
                name: req.name.to_string(),
            });
        }
        let len = req.len.unwrap_or(1);
        let bytes = len.checked_mul(size).ok_or(Error::SizeOverflow {
            count: len as usize,
            elem_size: size as usize,
        })?;
        let object = self.alloc(bytes, req.layout.align as u64, REGISTRY_OWNER)?;
        (req.init)(
            // SAFETY: `object` is a payload offset just handed out, inside the mapping.
            unsafe { self.base().add(object as usize) },
        );
        let entry_at = match self.alloc(size_of::<Entry>() as u64, 16, REGISTRY_OWNER) {
            Ok(at) => at,
            Err(e) => {
                self.free(object, REGISTRY_OWNER)?;
                return Err(e);
            }
        };
        let label = type_label(req.layout);
        let mut entry = Entry {
            next: self.state().registry.get(),
            object,
            len,
            fingerprint: req.layout.fingerprint(),
            size,
            align: req.layout.align as u64,
            is_array: req.array.into(),
            name_len: req.name.len() as u32,
            type_len: label.len().min(MAX_TYPE) as u32,
            _pad: 0,
            type_name: [0; MAX_TYPE],
            name: [0; MAX_NAME],
        };
        entry.name[..req.name.len()].copy_from_slice(req.name.as_bytes());
        let n = entry.type_len as usize;
        entry.type_name[..n].copy_from_slice(&label.as_bytes()[..n]);
        // SAFETY: `entry_at` is a fresh block of at least size_of::<Entry>() bytes, 16-aligned,
        // owned by the directory and not yet reachable by anyone.
        unsafe {
            self.base()
                .add(entry_at as usize)
                .cast::<Entry>()
                .write(entry)
        };
        self.state().registry.set(entry_at);
        Ok((object, len, true))
    }

    fn remove(&self, name: &str) -> Result<bool> {
        let Some((at, e, prev)) = self.lookup(name)? else {
            return Ok(false);
        };
        if prev == 0 {
            self.state().registry.set(e.next);
        } else {
            // `next` is the first field of an entry.
            self.set_word(prev, e.next);
        }
        self.free(e.object, REGISTRY_OWNER)?;
        self.free(at, REGISTRY_OWNER)?;
        Ok(true)
    }
}

impl Arena {
    fn named(&self, req: Request<'_>) -> Result<(Allocation, u64, bool)> {
        check_name(req.name)?;
        let (object, len, created) = self.with_heap(|h| h.find_or_create(&req))?;
        Ok((Allocation::borrowed(self.clone(), object), len, created))
    }

    fn named_value<T: SharedType>(
        &self,
        name: &str,
        value: Option<T>,
        open: bool,
    ) -> Result<(RawValue<T>, bool)> {
        let init = |p: *mut u8| {
            if let Some(v) = &value {
                // SAFETY: `p` is a fresh, aligned block of size_of::<T>() bytes.
                unsafe { T::store(v, p.cast::<T>()) }
            }
        };
        let req = Request {
            name,
            layout: &T::LAYOUT,
            len: Some(1),
            array: false,
            create: value.is_some(),
            open,
            init: &init,
        };
        let (alloc, _, created) = self.named(req)?;
        Ok((RawValue::from_allocation(alloc), created))
    }

    fn named_array<T: SharedType>(
        &self,
        name: &str,
        items: Option<&[T]>,
        open: bool,
    ) -> Result<(RawArray<T>, bool)> {
        debug_assert_eq!(T::LAYOUT.align, align_of::<T>());
        let init = |p: *mut u8| {
            for (i, v) in items.unwrap_or_default().iter().enumerate() {
                // SAFETY: `p` is a fresh, aligned block of items.len() elements.
                unsafe { T::store(v, p.cast::<T>().add(i)) }
            }
        };
        let req = Request {
            name,
            layout: &T::LAYOUT,
            len: items.map(|i| i.len() as u64),
            array: true,
            create: items.is_some(),
            open,
            init: &init,
        };
        let (alloc, len, created) = self.named(req)?;
        Ok((RawArray::from_allocation(alloc, len as usize), created))
    }

    /// Creates a shared value named `name` in this arena, for any process that maps the
    /// arena to [`open`](Self::open). The arena owns it until [`remove`](Self::remove).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the name is taken; [`Error::InvalidName`] for an empty
    /// name or one over 200 bytes; [`Error::OutOfMemory`] if the arena is full.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// let hits = arena.create("hits", 0u64)?;
    /// hits.set(3);
    /// assert_eq!(arena.open::<u64>("hits")?.get(), 3);
    /// assert!(arena.create("hits", 1u64).is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn create<T: SharedType>(&self, name: &str, value: T) -> Result<RawValue<T>> {
        Ok(self.named_value(name, Some(value), false)?.0)
    }

    /// Opens the shared value named `name`, checking that it was created as a `T`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::LayoutMismatch`] naming both layouts if it was created
    /// with a different type (or as an array).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// arena.create("x", 1.5f64)?;
    /// let err = arena.open::<u64>("x").unwrap_err();
    /// assert!(err.to_string().contains("created as f64"), "{err}");
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open<T: SharedType>(&self, name: &str) -> Result<RawValue<T>> {
        Ok(self.named_value::<T>(name, None, true)?.0)
    }

    /// Opens the value named `name`, creating it with `value` if it does not exist; exactly
    /// one of several racing processes creates it. The `bool` says whether this call did.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// let (a, created) = arena.find_or_create("n", 5i32)?;
    /// let (b, again) = arena.find_or_create("n", 6i32)?;
    /// assert!(created && !again);
    /// assert_eq!((a.get(), b.get()), (5, 5));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn find_or_create<T: SharedType>(
        &self,
        name: &str,
        value: T,
    ) -> Result<(RawValue<T>, bool)> {
        self.named_value(name, Some(value), true)
    }

    /// Creates a shared array named `name` holding a copy of `items`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// arena.create_array("xs", &[1u16, 2, 3])?;
    /// assert_eq!(arena.open_array::<u16>("xs")?.to_vec(), [1, 2, 3]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn create_array<T: SharedType>(&self, name: &str, items: &[T]) -> Result<RawArray<T>> {
        Ok(self.named_array(name, Some(items), false)?.0)
    }

    /// Opens the shared array named `name` (any length), checking its element type.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// arena.create_array("xs", &[1u8])?;
    /// assert!(arena.open_array::<i8>("xs").is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_array<T: SharedType>(&self, name: &str) -> Result<RawArray<T>> {
        Ok(self.named_array::<T>(name, None, true)?.0)
    }

    /// Opens the array named `name`, creating it from `items` if it does not exist (then
    /// its length must equal `items.len()`). The `bool` says whether this call created it.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open).
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// let (a, created) = arena.find_or_create_array("v", &[0.0f32; 4])?;
    /// assert!(created);
    /// assert_eq!(a.len(), 4);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn find_or_create_array<T: SharedType>(
        &self,
        name: &str,
        items: &[T],
    ) -> Result<(RawArray<T>, bool)> {
        self.named_array(name, Some(items), true)
    }

    /// Removes the named object and frees its memory. Handles to it must not be used
    /// afterwards (their memory may be reused; reading it is sound but meaningless).
    /// Returns whether the name existed.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or [`Error::Corrupted`] if the directory is damaged.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// arena.create("gone", 1u8)?;
    /// assert!(arena.remove("gone")?);
    /// assert!(!arena.remove("gone")?);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn remove(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        self.with_heap(|h| h.remove(name))
    }

    /// The names of the arena's named objects, newest first.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the directory is damaged.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 20)?;
    /// arena.create("a", 1u8)?;
    /// arena.create("b", 2u8)?;
    /// assert_eq!(arena.names()?, ["b", "a"]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn names(&self) -> Result<Vec<String>> {
        self.with_heap(|h| {
            let mut names = Vec::new();
            let st = h.state();
            let mut budget = (st.top.get() - st.start.get()) / 32 + 1;
            let mut at = st.registry.get();
            while at != 0 {
                budget = budget
                    .checked_sub(1)
                    .ok_or_else(|| Error::Corrupted("the object directory loops".into()))?;
                let e = h.read_entry(at)?;
                names.push(String::from_utf8_lossy(e.name()).into_owned());
                at = e.next;
            }
            Ok(names)
        })
    }
}
