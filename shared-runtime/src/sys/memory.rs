//! Shared memory: a memfd, its `MAP_SHARED` mapping, page reservation and hole punching.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memmap2::MmapMut;
use nix::fcntl::{fallocate, FallocateFlags};
use nix::fcntl::{fcntl, FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::Mode;

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
        let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
        let fd: OwnedFd = memfd_create(name, flags).map_err(|e| Error::nix("memfd_create", e))?;
        let file = File::from(fd);
        file.set_len(len).map_err(|source| Error::Os {
            call: "ftruncate",
            source,
        })?;
        // Nobody (a spawned program that inherits the descriptor included) may change the
        // size from now on: shrinking it would make every process's accesses raise SIGBUS.
        let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW;
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals))
            .map_err(|e| Error::nix("fcntl(F_ADD_SEALS)", e))?;
        Self::map(file, len)
    }

    /// Creates the POSIX shared-memory object `/name` (which must not exist yet), readable
    /// and writable by this user only, of `len` bytes, and maps it.
    pub(crate) fn create_segment(name: &str, len: u64) -> Result<Self> {
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let fd = shm_open(
            format!("/{name}").as_str(),
            flags,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|e| Error::nix("shm_open", e))?;
        let made = Self::sized(File::from(fd), len);
        if made.is_err() {
            unlink_named(name);
        }
        made
    }

    /// Opens the existing POSIX shared-memory object `/name` and maps exactly the bytes it
    /// has now (never more: touching a page past the end of a file raises `SIGBUS`).
    pub(crate) fn open_segment(name: &str) -> Result<Self> {
        let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let fd = shm_open(format!("/{name}").as_str(), flags, Mode::empty())
            .map_err(|e| Error::nix("shm_open", e))?;
        Self::existing(File::from(fd))
    }

    /// Maps the memory file `fd` (inherited from another process) as it is now.
    pub(crate) fn open_fd(fd: OwnedFd) -> Result<Self> {
        Self::existing(File::from(fd))
    }

    fn existing(file: File) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(|source| Error::Os {
                call: "fstat",
                source,
            })?
            .len();
        Self::map(file, len)
    }

    fn sized(file: File, len: u64) -> Result<Self> {
        file.set_len(len).map_err(|source| Error::Os {
            call: "ftruncate",
            source,
        })?;
        Self::map(file, len)
    }

    fn map(file: File, len: u64) -> Result<Self> {
        let len = usize::try_from(len).map_err(|_| Error::InvalidCapacity {
            capacity: len,
            reason: "larger than the address space",
        })?;
        if len == 0 {
            return Err(Error::InvalidCapacity {
                capacity: 0,
                reason: "the memory file is empty",
            });
        }
        // SAFETY: `len` is the file's current size (we just set or read it), so every page
        // of the mapping is backed. A process that shrinks a shared file behind our back can
        // still make a later access raise SIGBUS; files we create are never shrunk by us, and
        // `docs/safety.md` states the residual risk for segments opened by name. `map_mut`
        // maps with MAP_SHARED, which is what makes writes visible across processes
        // (memmap2's anonymous maps are MAP_PRIVATE).
        let map =
            unsafe { memmap2::MmapOptions::new().len(len).map_mut(&file) }.map_err(|source| {
                Error::Os {
                    call: "mmap",
                    source,
                }
            })?;
        Ok(SharedMemory { file, map })
    }

    /// The memory file, to be inherited by a spawned program.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
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

/// Removes the name `/name` of a POSIX shared-memory object (mappings stay valid). Returns
/// whether a name was removed.
pub(crate) fn unlink_named(name: &str) -> bool {
    shm_unlink(format!("/{name}").as_str()).is_ok()
}

/// Removes the name `/name` only if it still names the memory file `mem` maps (a process
/// that removed and re-created the name meanwhile keeps its new segment). The check and the
/// removal are two steps, so a re-creation exactly between them can still be hit.
pub(crate) fn unlink_if_same(name: &str, mem: &SharedMemory) -> bool {
    use std::os::unix::fs::MetadataExt;
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let Ok(fd) = shm_open(format!("/{name}").as_str(), flags, Mode::empty()) else {
        return false;
    };
    let (Ok(named), Ok(ours)) = (File::from(fd).metadata(), mem.file.metadata()) else {
        return false;
    };
    (named.dev(), named.ino()) == (ours.dev(), ours.ino()) && unlink_named(name)
}

/// The names of the POSIX shared memory segments on this machine (the entries of
/// `/dev/shm`, where glibc's `shm_open` keeps them), without the leading slash. Names that
/// are not UTF-8 are skipped: no segment of this crate has one.
pub(crate) fn segment_names() -> Result<Vec<String>> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|source| Error::Os {
        call: "opendir /dev/shm",
        source,
    })?;
    Ok(dir
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect())
}
