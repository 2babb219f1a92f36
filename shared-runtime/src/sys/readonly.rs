//! Read-only mappings of named segments, for inspection: `O_RDONLY`, `PROT_READ`.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use nix::fcntl::OFlag;
use nix::sys::mman::shm_open;
use nix::sys::stat::Mode;

use crate::{Error, Result};

/// A POSIX shared-memory segment mapped read-only. This process cannot write a byte of it
/// (the mapping is `PROT_READ` over a descriptor opened `O_RDONLY`); other processes may
/// write any byte at any time, so every word is read with an atomic load.
pub(crate) struct ReadOnlySegment {
    _file: File,
    map: memmap2::Mmap,
}

fn invalid(name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidSegment {
        name: name.to_string(),
        reason: reason.into(),
    }
}

impl ReadOnlySegment {
    /// Opens `/name` read-only and maps the bytes it has now. `O_NONBLOCK` keeps a FIFO
    /// planted in `/dev/shm` from blocking the open; anything but a regular, non-empty
    /// file is refused before mapping.
    pub(crate) fn open(name: &str) -> Result<Self> {
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = shm_open(format!("/{name}").as_str(), flags, Mode::empty()).map_err(|e| {
            if e == nix::errno::Errno::ENOENT {
                Error::NotFound {
                    what: "segment",
                    name: name.to_string(),
                }
            } else {
                Error::nix("shm_open", e)
            }
        })?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|source| Error::Os {
            call: "fstat",
            source,
        })?;
        if !meta.file_type().is_file() {
            return Err(invalid(name, "it is not a regular file"));
        }
        let len = usize::try_from(meta.len())
            .map_err(|_| invalid(name, "larger than the address space"))?;
        if len == 0 {
            return Err(invalid(name, "the segment is empty"));
        }
        // SAFETY: `len` is the file's current size, so every page of the mapping is backed
        // now. A process that shrinks the file later can make a read raise SIGBUS: the
        // residual risk of any segment opened by name (docs/safety.md). The mapping is
        // read-only and never handed out as a reference (see `load`).
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file) }.map_err(|source| {
            Error::Os {
                call: "mmap",
                source,
            }
        })?;
        Ok(ReadOnlySegment { _file: file, map })
    }

    /// The address of byte 0 (page-aligned).
    pub(crate) fn base(&self) -> *const u8 {
        self.map.as_ptr()
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The 8-byte word at `off`, read atomically; `None` if `off` is not an aligned
    /// offset of a whole word inside the mapping.
    pub(crate) fn load(&self, off: u64) -> Option<u64> {
        if off % 8 != 0 || off.checked_add(8)? > self.len() {
            return None;
        }
        // SAFETY: the word is inside the mapping (checked) and 8-aligned (the mapping is
        // page-aligned and `off` a multiple of 8); an atomic load of a native word is
        // allowed on read-only memory and races with nothing.
        Some(unsafe { (*self.base().add(off as usize).cast::<AtomicU64>()).load(Relaxed) })
    }
}
