//! The public face of named objects: `Arena::create`, `open`, `find_or_create` for every
//! kind, `remove`, `names`. The directory itself is in `registry.rs`.

use std::sync::Arc;

use crate::arena::kind::{NamedObject, Parts};
use crate::arena::registry::{check_name, Request};
use crate::arena::{opened, Allocation, Arena};
use crate::sync::Token;
use crate::Result;

impl Arena {
    fn named<O: NamedObject>(
        &self,
        name: &str,
        init: Option<&O::Init<'_>>,
        open: bool,
    ) -> Result<(O, bool)> {
        check_name(name)?;
        if let Some(init) = init {
            O::check_init(init, Token)?;
        }
        let shape = O::shape(init, Token);
        let write = |data: *mut u8| {
            if let Some(init) = init {
                // SAFETY: `data` is the data of a fresh block made for `shape(Some(init))`.
                unsafe { O::init(init, data, Token) }
            }
        };
        let req = Request {
            name,
            kind: O::KIND,
            layout: shape.layout,
            len: shape.len,
            state_bytes: O::STATE_BYTES,
            create: init.is_some(),
            open,
            opener: self.owner_tag(),
            init: &write,
        };
        let found = self.with_heap(|h| h.find_or_create(&req))?;
        // This process's handle of the object, if it has one already: only of this very
        // object (same stamp), never of an earlier one at the same offset.
        let data = match opened::find(self, found.object, found.stamp, opened::Role::of(O::KIND))? {
            Some((data, _)) => {
                // Kept if the handle came from the parent process (so this one's use is
                // counted too), else closed again.
                if !data.adopt_record(found.record) {
                    let (record, object, me) = (found.record, found.object, self.owner_tag());
                    self.with_heap(|h| h.close_record(record, object, me))?;
                }
                data
            }
            None => {
                let block = Arc::new(Allocation::named(self.clone(), found.object, found.record));
                let lock = if O::KIND.lock().is_some() {
                    found.object
                } else {
                    0
                };
                let data = match found.data_at {
                    0 => block,
                    at => Arc::new(Allocation::part(block, at)),
                };
                let role = opened::Role::of(O::KIND);
                match opened::insert(self, found.object, found.stamp, lock, role, data)? {
                    opened::Inserted::Ok(data) => data,
                    opened::Inserted::OtherLock => {
                        return Err(crate::Error::Corrupted(format!(
                            "this process pairs the object {name:?} with another lock"
                        )))
                    }
                    opened::Inserted::OtherRole(have) => {
                        return Err(crate::Error::Corrupted(format!(
                            "this process has the block of {name:?} open as {have}"
                        )))
                    }
                }
            }
        };
        let parts = Parts {
            data,
            len: found.len as usize,
        };
        O::check_parts(&parts, Token)?;
        Ok((O::build(parts, Token), found.created))
    }

    /// Creates a shared object named `name` in this arena, of any [`NamedObject`] kind, for
    /// any process that maps the arena to [`open`](Self::open).
    ///
    /// `init` is the value for a [`RawValue`](crate::RawValue) or
    /// [`Value`](crate::Value), a slice for a [`RawArray`](crate::RawArray) or
    /// [`Array`](crate::Array), `()` for a [`Lock`](crate::Lock) or
    /// [`RLock`](crate::RLock). A `Value`'s or `Array`'s lock is stored with it, so every
    /// process that opens the name contends on the same lock.
    ///
    /// The object lives until its name is [`remove`](Self::remove)d *and* no process has
    /// it open any more (see [`reclaim_dead`](Self::reclaim_dead) for openers that died).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if the name is taken;
    /// [`Error::InvalidName`](crate::Error::InvalidName) for an empty name or one over 200
    /// bytes; [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the arena is full.
    ///
    /// ```
    /// use shared_runtime::{Arena, Value};
    ///
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let hits = arena.create::<Value<u64>>("hits", 0)?;
    /// hits.update(|n| *n += 3);
    /// let again: Value<u64> = arena.open("hits")?;
    /// assert_eq!(again.get(), 3);
    /// assert!(again.getlock().same_as(hits.getlock())); // one lock
    /// assert!(arena.create::<Value<u64>>("hits", 1).is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn create<O: NamedObject>(&self, name: &str, init: O::Init<'_>) -> Result<O> {
        Ok(self.named::<O>(name, Some(&init), false)?.0)
    }

    /// Opens the shared object named `name`, checking that it was created as an `O`: the
    /// same kind (a `Lock` is not a `Value`; a `Value<_, Lock>` is not a
    /// `Value<_, RLock>`), the same element layout, and for arrays any length.
    ///
    /// Opening one object several times in a process gives clones of one handle.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::KindMismatch`](crate::Error::KindMismatch) or
    /// [`Error::LayoutMismatch`](crate::Error::LayoutMismatch), naming both sides.
    ///
    /// ```
    /// use shared_runtime::{Arena, Error, Lock, RawValue, Value};
    ///
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// arena.create::<RawValue<f64>>("x", 1.5)?;
    /// let err = arena.open::<RawValue<u64>>("x").unwrap_err();
    /// assert!(err.to_string().contains("RawValue<f64>"), "{err}");
    /// arena.create::<Lock>("big-lock", ())?;
    /// let err = arena.open::<Value<u64>>("big-lock").unwrap_err();
    /// assert!(matches!(err, Error::KindMismatch { .. }), "{err}");
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open<O: NamedObject>(&self, name: &str) -> Result<O> {
        Ok(self.named::<O>(name, None, true)?.0)
    }

    /// Opens the object named `name`, creating it from `init` if it does not exist;
    /// exactly one of several racing processes creates it. The `bool` says whether this
    /// call did. (An existing array may have any length.)
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open).
    ///
    /// ```
    /// use shared_runtime::{Arena, Lock, RawValue};
    ///
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let (a, created) = arena.find_or_create::<RawValue<i32>>("n", 5)?;
    /// let (b, again) = arena.find_or_create::<RawValue<i32>>("n", 6)?;
    /// assert!(created && !again);
    /// assert_eq!((a.get(), b.get()), (5, 5));
    /// let (lock, _) = arena.find_or_create::<Lock>("big-lock", ())?;
    /// # drop(lock);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn find_or_create<O: NamedObject>(
        &self,
        name: &str,
        init: O::Init<'_>,
    ) -> Result<(O, bool)> {
        self.named::<O>(name, Some(&init), true)
    }

    /// Removes the name `name`. The object stays usable by every process that has it
    /// open; its memory is freed when the last of them closes it (drops its handles), or
    /// is found dead by [`reclaim_dead`](Self::reclaim_dead) — never earlier. Returns
    /// whether the name existed.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), or
    /// [`Error::Corrupted`](crate::Error::Corrupted) if the directory is damaged.
    ///
    /// ```
    /// use shared_runtime::{Arena, RawValue};
    ///
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let v = arena.create::<RawValue<u8>>("gone", 1)?;
    /// assert!(arena.remove("gone")?);
    /// assert!(!arena.remove("gone")?);
    /// v.set(2); // still this process's to use
    /// assert_eq!(v.get(), 2);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn remove(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        self.with_heap(|h| h.remove(name))
    }

    /// The names of the arena's named objects, newest first.
    ///
    /// # Errors
    /// [`Error::Corrupted`](crate::Error::Corrupted) if the directory is damaged.
    ///
    /// ```
    /// use shared_runtime::{Arena, RawValue};
    ///
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// arena.create::<RawValue<u8>>("a", 1)?;
    /// arena.create::<RawValue<u8>>("b", 2)?;
    /// assert_eq!(arena.names()?, ["b", "a"]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn names(&self) -> Result<Vec<String>> {
        self.with_heap(|h| {
            Ok(h.entries()?
                .iter()
                .map(|(_, e)| String::from_utf8_lossy(e.name()).into_owned())
                .collect())
        })
    }
}
