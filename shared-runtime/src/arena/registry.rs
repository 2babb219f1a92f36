//! The object directory: names, kinds and layouts of named objects (see `docs/design.md`).
//!
//! The directory is a singly linked list of entry blocks whose head is in the heap state;
//! every operation runs with the arena lock held, so creating, looking up and removing are
//! atomic with respect to every other process. Entries and the objects they name are owned
//! by the directory (owner [`REGISTRY_OWNER`] in their block headers). Removing a name
//! frees its entry and turns its object into an orphan ([`ORPHAN_OWNER`]), freed as soon as
//! no open record (`records.rs`) refers to it.

use std::mem::size_of;

use crate::arena::heap::Heap;
use crate::arena::kind::{data_offset, ObjectKind};
use crate::types::{LayoutKind, TypeLayout};
use crate::{Error, Result};

/// The owner recorded in blocks that belong to the directory.
pub(crate) const REGISTRY_OWNER: u32 = u32::MAX;
/// The owner recorded in the block of a removed object that some process still has open.
/// (Bit 30 is set, so `reclaim_dead` never takes it for a process.)
pub(crate) const ORPHAN_OWNER: u32 = u32::MAX - 1;
const MAX_NAME: usize = 200;
const MAX_TYPE: usize = 48;

/// One directory entry, stored in its own block. Every field is checked before use.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) next: u64,
    /// Payload offset of the object's block.
    pub(crate) object: u64,
    pub(crate) len: u64,
    pub(crate) fingerprint: u64,
    /// Size of one element (of the lock cell, for a lock).
    pub(crate) size: u64,
    pub(crate) align: u64,
    /// Where the data starts in the block (after the lock cell, for `Value`/`Array`).
    pub(crate) data_at: u64,
    /// `ObjectKind::code`.
    pub(crate) kind: u32,
    name_len: u32,
    type_len: u32,
    _pad: u32,
    type_name: [u8; MAX_TYPE],
    name: [u8; MAX_NAME],
    /// Unique per created object (the heap's allocation count when its block was made):
    /// a process's handle of an earlier object at the same offset never matches it.
    pub(crate) stamp: u64,
}

/// A readable label for a layout: `u8`, `[f64; 3]`, `Point`.
pub(crate) fn type_label(l: &TypeLayout) -> String {
    match l.kind {
        LayoutKind::Array { elem, len } => format!("[{}; {len}]", type_label(elem)),
        _ => l.name.to_string(),
    }
}

/// `Value<u64, RLock>`, `RawArray<u8>`, `Lock`.
pub(crate) fn kind_label(kind: ObjectKind, ty: &str) -> String {
    kind.to_string().replace('_', ty)
}

impl Entry {
    pub(crate) fn name(&self) -> &[u8] {
        &self.name[..(self.name_len as usize).min(MAX_NAME)]
    }

    pub(crate) fn type_name(&self) -> String {
        String::from_utf8_lossy(&self.type_name[..(self.type_len as usize).min(MAX_TYPE)])
            .into_owned()
    }

    pub(crate) fn kind(&self) -> Option<ObjectKind> {
        ObjectKind::from_code(self.kind)
    }

    fn kind_text(&self) -> String {
        match self.kind() {
            Some(k) => kind_label(k, &self.type_name()),
            None => format!("object of unknown kind {}", self.kind),
        }
    }

    fn describe(&self) -> String {
        let array = self.kind().is_some_and(ObjectKind::is_array);
        describe(
            &self.kind_text(),
            array,
            self.len,
            self.size,
            self.align,
            self.fingerprint,
        )
    }
}

fn describe(what: &str, array: bool, len: u64, size: u64, align: u64, fp: u64) -> String {
    let len = if array {
        format!(" of length {len}")
    } else {
        String::new()
    };
    format!("{what}{len} ({size} bytes, align {align}, layout fingerprint {fp:#018x})")
}

/// What the caller wants: the kind and shape of the object, what to do if it (does not)
/// exist, and who opens it.
pub(crate) struct Request<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: ObjectKind,
    /// The element layout; `None` for a lock.
    pub(crate) layout: Option<&'a TypeLayout>,
    /// `Some(n)` elements; `None` when opening an array of any length.
    pub(crate) len: Option<u64>,
    /// Bytes of an object without an element layout (`NamedObject::STATE_BYTES`).
    pub(crate) state_bytes: u64,
    pub(crate) create: bool,
    pub(crate) open: bool,
    /// The opening process's owner tag, recorded in its open record.
    pub(crate) opener: u32,
    /// Writes the initial contents at the start of a fresh object's data.
    pub(crate) init: &'a dyn Fn(*mut u8),
}

impl Request<'_> {
    fn fingerprint(&self) -> u64 {
        self.layout.map_or(0, TypeLayout::fingerprint)
    }
    fn size(&self) -> u64 {
        self.layout.map_or(self.state_bytes, |l| l.size as u64)
    }
    fn align(&self) -> u64 {
        self.layout.map_or(8, |l| l.align as u64)
    }
    fn label(&self) -> String {
        self.layout.map_or_else(String::new, type_label)
    }
}

/// A named object found or made, with this process's open record of it.
pub(crate) struct Found {
    pub(crate) object: u64,
    pub(crate) data_at: u64,
    pub(crate) len: u64,
    pub(crate) created: bool,
    pub(crate) record: u64,
    /// The entry's stamp (see [`Entry::stamp`]).
    pub(crate) stamp: u64,
}

pub(crate) fn check_name(name: &str) -> Result<()> {
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
    pub(crate) fn read_entry(&self, at: u64) -> Result<Entry> {
        let b = self.used_block(at)?;
        if self.owner_of(b)? != REGISTRY_OWNER {
            return Err(Error::Corrupted(format!(
                "block at {at} is not a directory entry"
            )));
        }
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

    /// Calls `f` with every entry, newest first, and its offset, until `f` returns `true`.
    /// Each entry is a distinct used block, so a chain longer than the heap's count of used
    /// blocks loops; a loop is also caught early (Brent's method), in a few steps more than
    /// its length, without keeping what was read.
    pub(crate) fn each_entry(&self, mut f: impl FnMut(u64, &Entry) -> Result<bool>) -> Result<()> {
        let st = self.state();
        let mut budget = st
            .used_blocks
            .get()
            .min((st.top.get() - st.start.get()) / 32)
            + 1;
        let looped = || Error::Corrupted("the object directory loops".into());
        let (mut saved, mut power, mut steps) = (0u64, 1u64, 0u64);
        let mut at = st.registry.get();
        while at != 0 {
            budget = budget.checked_sub(1).ok_or_else(looped)?;
            if at == saved {
                return Err(looped());
            }
            steps += 1;
            if steps == power {
                (saved, power, steps) = (at, power * 2, 0);
            }
            let e = self.read_entry(at)?;
            if f(at, &e)? {
                return Ok(());
            }
            at = e.next;
        }
        Ok(())
    }

    /// Every entry, newest first, with its offset.
    pub(crate) fn entries(&self) -> Result<Vec<(u64, Entry)>> {
        let mut all = Vec::new();
        self.each_entry(|at, e| {
            all.push((at, *e));
            Ok(false)
        })?;
        Ok(all)
    }

    /// Finds `name`: the entry's offset and contents, and its predecessor's offset.
    fn lookup(&self, name: &str) -> Result<Option<(u64, Entry, u64)>> {
        let (mut prev, mut found) = (0, None);
        self.each_entry(|at, e| {
            if e.name() == name.as_bytes() {
                found = Some((at, *e, prev));
                return Ok(true);
            }
            prev = at;
            Ok(false)
        })?;
        Ok(found)
    }

    /// The entry naming the object whose block is at `object`, if there is one.
    pub(crate) fn entry_of(&self, object: u64) -> Result<Option<Entry>> {
        let mut found = None;
        self.each_entry(|_, e| {
            if e.object == object {
                found = Some(*e);
            }
            Ok(found.is_some())
        })?;
        Ok(found)
    }

    /// Checks a found entry against the request and that its object fits its block.
    fn check_entry(&self, e: &Entry, req: &Request<'_>) -> Result<u64> {
        let want_len = req.len.unwrap_or(e.len);
        let requested = |what: &str| {
            describe(
                what,
                req.kind.is_array(),
                want_len,
                req.size(),
                req.align(),
                req.fingerprint(),
            )
        };
        if e.kind != req.kind.code() {
            return Err(Error::KindMismatch {
                name: format!("object {:?}", req.name),
                stored: e.describe(),
                requested: requested(&kind_label(req.kind, &req.label())),
            });
        }
        if e.fingerprint != req.fingerprint() || e.len != want_len || e.size != req.size() {
            return Err(Error::LayoutMismatch {
                name: format!("object {:?}", req.name),
                stored: e.describe(),
                requested: requested(&kind_label(req.kind, &req.label())),
            });
        }
        let corrupt = || Error::Corrupted(format!("object {:?} does not fit its block", req.name));
        let data_at = data_offset(req.kind, req.align());
        let bytes = e
            .len
            .checked_mul(e.size)
            .and_then(|b| b.checked_add(data_at))
            .ok_or_else(corrupt)?;
        let b = self.used_block(e.object)?;
        if e.data_at != data_at
            || self.owner_of(b)? != REGISTRY_OWNER
            || self.payload_capacity(e.object)? < bytes
            || e.object % req.align().max(8) != 0
        {
            return Err(corrupt());
        }
        Ok(data_at)
    }

    /// Finds or creates the named object, and makes an open record of it for the opener.
    pub(crate) fn find_or_create(&self, req: &Request<'_>) -> Result<Found> {
        if let Some((_, e, _)) = self.lookup(req.name)? {
            if !req.open {
                return Err(Error::AlreadyExists {
                    what: "object",
                    name: req.name.to_string(),
                });
            }
            let data_at = self.check_entry(&e, req)?;
            let record = self.open_record(e.object, req.opener)?;
            return Ok(Found {
                object: e.object,
                data_at,
                len: e.len,
                created: false,
                record,
                stamp: e.stamp,
            });
        }
        if !req.create {
            return Err(Error::NotFound {
                what: "object",
                name: req.name.to_string(),
            });
        }
        let (size, align) = (req.size(), req.align());
        let len = req.len.unwrap_or(1);
        let data_at = data_offset(req.kind, align);
        let bytes = len
            .checked_mul(size)
            .and_then(|b| b.checked_add(data_at))
            .ok_or(Error::SizeOverflow {
                count: len as usize,
                elem_size: size as usize,
            })?;
        let object = self.alloc(bytes.max(1), align.max(8), REGISTRY_OWNER)?;
        // Unique: the count only grows, under the arena lock.
        let stamp = self.state().allocations.get();
        (req.init)(
            // SAFETY: `object` is a payload offset just handed out, inside the mapping, of
            // at least `bytes` bytes, so its data starts `data_at` bytes in.
            unsafe { self.base().add((object + data_at) as usize) },
        );
        let made = self.alloc(size_of::<Entry>() as u64, 16, REGISTRY_OWNER);
        let entry_at = match made {
            Ok(at) => at,
            Err(e) => {
                self.free(object, REGISTRY_OWNER)?;
                return Err(e);
            }
        };
        let label = req.label();
        let mut entry = Entry {
            next: self.state().registry.get(),
            object,
            len,
            fingerprint: req.fingerprint(),
            size,
            align,
            data_at,
            kind: req.kind.code(),
            name_len: req.name.len() as u32,
            type_len: label.len().min(MAX_TYPE) as u32,
            _pad: 0,
            type_name: [0; MAX_TYPE],
            name: [0; MAX_NAME],
            stamp,
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
        // Made after the entry is published: if this fails, the object stays, named.
        let record = self.open_record(object, req.opener)?;
        Ok(Found {
            object,
            data_at,
            len,
            created: true,
            record,
            stamp,
        })
    }

    /// Unlinks `name`; its object is freed now if no process has it open, else when the
    /// last one closes it.
    pub(crate) fn remove(&self, name: &str) -> Result<bool> {
        let Some((at, e, prev)) = self.lookup(name)? else {
            return Ok(false);
        };
        let b = self.used_block(e.object)?;
        if self.owner_of(b)? != REGISTRY_OWNER {
            return Err(Error::Corrupted(format!(
                "the object named {name:?} is not the directory's"
            )));
        }
        if prev == 0 {
            self.state().registry.set(e.next);
        } else {
            // `next` is the first field of an entry.
            self.set_word(prev, e.next);
        }
        self.free(at, REGISTRY_OWNER)?;
        self.set_owner(e.object, REGISTRY_OWNER, ORPHAN_OWNER)?;
        self.free_if_unopened(e.object)?;
        Ok(true)
    }

    /// Turns every directory-owned block that no entry refers to into an orphan (freed by
    /// `sweep_orphans` unless some process has it open): what a process killed inside
    /// `create` (after allocating, before publishing) or `remove` (after unlinking, before
    /// orphaning) left. Creating and removing run whole under the arena lock, held here, so
    /// no live process is between those steps. Nothing is touched if the directory cannot
    /// be read whole.
    pub(crate) fn orphan_unreferenced(&self) -> Result<()> {
        let mut named = std::collections::HashSet::new();
        if self
            .each_entry(|at, e| {
                named.insert(at);
                named.insert(e.object);
                Ok(false)
            })
            .is_err()
        {
            return Ok(());
        }
        let mut lost = Vec::new();
        crate::arena::check::walk(self, |b, _, w| {
            let at = b + crate::arena::heap::HDR;
            if w & crate::arena::heap::USED != 0
                && self.owner_of(b)? == REGISTRY_OWNER
                && !named.contains(&at)
            {
                lost.push(at);
            }
            Ok(())
        })?;
        for at in lost {
            self.set_owner(at, REGISTRY_OWNER, ORPHAN_OWNER)?;
        }
        Ok(())
    }
}
