//! Shared memory: a memfd, its `MAP_SHARED` mapping, page reservation and hole punching.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use memmap2::MmapMut;
use nix::fcntl::{fallocate, FallocateFlags};
use nix::sys::memfd::{memfd_create, MFdFlags};

use crate::{Error, Result};

/// The size of a memory page.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Linux.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Bytes of physical memory, the default capacity of the global arena.
pub(crate) fn physical_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    if pages > 0 {
        pages as u64 * page_size() as u64
    } else {
        1 << 30
    }
}

/// A sparse shared-memory file mapped `MAP_SHARED` once, at a fixed address.
///
/// # Safety
/// The mapping is shared with every process forked after it was created (and with any
/// process that receives the file descriptor): any of them may write any byte at any time.
/// This type therefore never hands out references into the mapping, only a base pointer;
/// callers decide how each byte may be accessed.
pub(crate) struct SharedMemory {
    file: File,
    map: MmapMut,
}

impl SharedMemory {
    /// Creates an anonymous memfd of `len` bytes (sparse: no page is allocated yet) and
    /// maps all of it shared.
    pub(crate) fn create_anonymous(name: &str, len: u64) -> Result<Self> {
        let fd: OwnedFd =
            memfd_create(name, MFdFlags::MFD_CLOEXEC).map_err(|e| Error::nix("memfd_create", e))?;
        let file = File::from(fd);
        file.set_len(len).map_err(|source| Error::Os {
            call: "ftruncate",
            source,
        })?;
        let len = usize::try_from(len).map_err(|_| Error::InvalidCapacity {
            capacity: len,
            reason: "larger than the address space",
        })?;
        // SAFETY: the file is a memfd we just created and sized to `len`; nobody can
        // truncate it behind our back (it has no name, and we never shrink it), so every
        // byte of the mapping stays backed. `map_mut` maps with MAP_SHARED, which is what
        // makes writes visible across fork (memmap2's anonymous maps are MAP_PRIVATE).
        let map =
            unsafe { memmap2::MmapOptions::new().len(len).map_mut(&file) }.map_err(|source| {
                Error::Os {
                    call: "mmap",
                    source,
                }
            })?;
        Ok(SharedMemory { file, map })
    }

    /// The address of byte 0 of the mapping. Never changes while `self` lives.
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_ptr() as *mut u8
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Reserves pages for `[offset, offset + len)` so that touching them can never raise
    /// `SIGBUS` for lack of memory: a shortage is reported here, as an error.
    pub(crate) fn reserve(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        fallocate(
            self.file.as_fd(),
            FallocateFlags::empty(),
            offset as i64,
            len as i64,
        )
        .map_err(|e| Error::NoSystemMemory {
            bytes: len,
            source: std::io::Error::from(e),
        })
    }

    /// Returns the pages of `[offset, offset + len)` to the OS; they read as zero afterwards.
    /// Both ends must be page-aligned. Failure is harmless (the pages stay allocated and
    /// are zeroed by the caller instead), so it is reported as `false`.
    pub(crate) fn punch_hole(&self, offset: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        fallocate(self.file.as_fd(), mode, offset as i64, len as i64).is_ok()
    }
}
