//! Named objects in an arena: `create`, `open`, `find_or_create` (Boost.Interprocess's
//! `find_or_construct` idea), with the type's layout fingerprint stored beside each.
//!
//! The directory is a singly linked list of entry blocks whose head is in the heap state;
//! every operation runs with the arena lock held, so creating and looking up are atomic
//! with respect to every other process. Objects and entries are owned by the directory
//! (owner [`REGISTRY_OWNER`] in their block headers): handles to them never free them, and
//! they cannot be adopted; [`Arena::remove`] frees them.

use std::mem::size_of;

use crate::arena::heap::Heap;
use crate::types::{LayoutKind, TypeLayout};
use crate::{Error, Result};

/// The owner recorded in blocks that belong to the directory.
pub(crate) const REGISTRY_OWNER: u32 = u32::MAX;
const MAX_NAME: usize = 200;
const MAX_TYPE: usize = 48;

/// One directory entry, stored in its own block.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) next: u64,
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
    pub(crate) fn name(&self) -> &[u8] {
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
pub(crate) struct Request<'a> {
    pub(crate) name: &'a str,
    pub(crate) layout: &'a TypeLayout,
    /// `None` for a single value; `Some(n)` for an array of `n` (`None` too when opening
    /// an array of any length).
    pub(crate) len: Option<u64>,
    pub(crate) array: bool,
    pub(crate) create: bool,
    pub(crate) open: bool,
    /// Writes the initial contents into a fresh object's memory.
    pub(crate) init: &'a dyn Fn(*mut u8),
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

    pub(crate) fn find_or_create(&self, req: &Request<'_>) -> Result<(u64, u64, bool)> {
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

    pub(crate) fn remove(&self, name: &str) -> Result<bool> {
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
