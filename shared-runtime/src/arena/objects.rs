//! The public face of named objects: `Arena::create`, `open`, `find_or_create` and their
//! array forms, `remove`, `names`. The directory itself is in `registry.rs`.

use std::mem::{align_of, size_of};

use crate::arena::registry::{check_name, Request};
use crate::arena::{Allocation, Arena};
use crate::raw::{RawArray, RawValue};
use crate::{Error, Result, SharedType};

/// The directory sizes objects by their layout: a layout that lied about its size or
/// alignment would make it hand out too little memory. (`SharedType` is an unsafe trait, so
/// a lie is the implementor's bug; this turns it into a compile error.)
const fn assert_truthful<T: SharedType>() {
    assert!(T::LAYOUT.size == size_of::<T>() && T::LAYOUT.align == align_of::<T>());
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
        const { assert_truthful::<T>() };
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
        const { assert_truthful::<T>() };
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
