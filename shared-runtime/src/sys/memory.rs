//! Shared memory: a memfd, its `MAP_SHARED` mapping, page reservation and hole punching,
//! and the accessible prefix of the mapping (the rest is `PROT_NONE`, left out of core dumps).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Advice, MmapRaw};
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

/// Bytes at the start of every mapping that are accessible from the moment it is made: the
/// arena header and the first steps of the heap (the rest is opened by [`SharedMemory::expose`]).
pub(crate) const FIRST_EXPOSED: u64 = 1 << 20;

/// A sparse shared-memory file mapped `MAP_SHARED` once, at a fixed address.
///
/// Only a prefix of the mapping is accessible in this process: the rest is `PROT_NONE` and
/// `MADV_DONTDUMP`, so that tools which read every readable page (valgrind's leak check)
/// or every dumpable one (core dumps) do not make the kernel allocate a page for each hole
/// of a file mapped at the size of physical memory. The prefix only grows
/// ([`expose`](Self::expose)); a forked child inherits both the protections and the
/// recorded prefix.
///
/// # Safety
/// The mapping is shared with every process forked after it was created (and with any
/// process that receives the file descriptor): any of them may write any byte at any time.
/// This type therefore never hands out references into the mapping, only a base pointer;
/// callers decide how each byte may be accessed, and must [`expose`](Self::expose) a range
/// before touching it.
pub(crate) struct SharedMemory {
    file: File,
    map: MmapRaw,
    /// Pages need not be reserved before they are touched (see [`pages_are_lazy`]).
    lazy: bool,
    /// Bytes from offset 0 that are readable and writable in this process. Only grows, and
    /// only after the protection it records is in force.
    exposed: AtomicU64,
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
        // `len` is the file's current size (we just set or read it), so every page of the
        // mapping is backed. A process that shrinks a shared file behind our back can still
        // make a later access raise SIGBUS; files we create are never shrunk by us, and
        // `docs/safety.md` states the residual risk for segments opened by name. `map_raw`
        // maps with MAP_SHARED, which is what makes writes visible across processes
        // (memmap2's anonymous maps are MAP_PRIVATE), and gives out no slice of the bytes.
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|source| Error::Os {
                call: "mmap",
                source,
            })?;
        let lazy = pages_are_lazy(&file);
        let mem = SharedMemory {
            file,
            map,
            lazy,
            exposed: AtomicU64::new(len as u64),
        };
        mem.hide_tail(FIRST_EXPOSED);
        Ok(mem)
    }

    /// Makes `[from, len)` inaccessible and leaves it out of core dumps, when the mapping
    /// is new and nothing in this process can hold an address there yet. If the system
    /// refuses, the whole mapping simply stays accessible (as it was made).
    fn hide_tail(&self, from: u64) {
        let from = from.next_multiple_of(page_size() as u64);
        let len = self.len();
        if from >= len {
            return;
        }
        let (at, n) = (from as usize, (len - from) as usize);
        // SAFETY: `[at, at + n)` lies inside this mapping (`from < len`), page-aligned;
        // the mapping is brand new (called only from `map`), so no pointer into that range
        // exists anywhere in this process, and other processes have mappings of their own.
        let hidden = unsafe { libc::mprotect(self.base().add(at).cast(), n, libc::PROT_NONE) } == 0;
        if hidden {
            // Failure only means a core dump would include the range (it is unreadable).
            let _ = self.map.advise_range(Advice::DontDump, at, n);
            self.exposed.store(from, Ordering::Release);
        }
    }

    /// Makes `[0, end)` readable and writable in this process (and part of its core dumps),
    /// if it is not yet. Cheap when it already is: one atomic load.
    ///
    /// # Errors
    /// [`Error::Os`] (`mprotect`) if the system refuses (out of memory for the mapping's
    /// bookkeeping); nothing past the old prefix may then be touched.
    #[inline]
    pub(crate) fn expose(&self, end: u64) -> Result<()> {
        if end <= self.exposed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.expose_more(end)
    }

    #[cold]
    fn expose_more(&self, end: u64) -> Result<()> {
        let len = self.len();
        let end = end.next_multiple_of(page_size() as u64).min(len);
        let from = self.exposed.load(Ordering::Acquire);
        if end <= from {
            return Ok(());
        }
        let (at, n) = (from as usize, (end - from) as usize);
        // Dumpable first: the range then matches the accessible prefix in every flag but
        // its protection, so the `mprotect` below merges it into that mapping instead of
        // splitting one (a split can fail with ENOMEM once the process has
        // `vm.max_map_count` mappings). Failure only means a core dump would leave the
        // range out.
        let _ = self.map.advise_range(Advice::DoDump, at, n);
        // SAFETY: `[at, at + n)` lies inside this mapping (`from < end <= len`); `from` is
        // page-aligned (every value `exposed` holds is a page multiple or `len`, and
        // `from < len` here). Granting access takes nothing away from any thread: threads
        // racing here only grant the same access twice, and no range is ever made
        // inaccessible again once the mapping exists.
        if unsafe { libc::mprotect(self.base().add(at).cast(), n, PROT_RW) } != 0 {
            return Err(Error::Os {
                call: "mprotect",
                source: std::io::Error::last_os_error(),
            });
        }
        self.exposed.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Bytes from offset 0 that this process may touch now.
    pub(crate) fn exposed(&self) -> u64 {
        self.exposed.load(Ordering::Acquire)
    }

    /// The memory file, to be inherited by a spawned program.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The address of byte 0 of the mapping. Never changes while `self` lives.
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Makes sure that touching `[offset, offset + len)` can never raise `SIGBUS` for lack
    /// of memory: a shortage is reported here, as an error. On a file system without a
    /// size limit (see [`pages_are_lazy`]) that is already so, and the pages stay lazy:
    /// nothing is done. Elsewhere the pages are reserved (`fallocate`).
    pub(crate) fn reserve(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 || self.lazy {
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

/// `PROT_READ | PROT_WRITE`.
const PROT_RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;

/// Whether the pages of `file` may be left unreserved until first touched: the file lives
/// on a tmpfs without a size limit (`statfs` reports no block count: the kernel's internal
/// mount, which every `memfd` lives on, or a tmpfs mounted with `size=0`; one mounted
/// without `size=` is limited to half of memory) and the system does not refuse to
/// overcommit (`vm.overcommit_memory` is not 2, read when the arena is mapped: switching
/// it to 2 later is not noticed). Then a page that cannot be had on first touch is an
/// out-of-memory kill, as for any heap page, never a `SIGBUS`: `SIGBUS` comes only from a
/// full size-limited tmpfs or from strict commit accounting. Any doubt (another file
/// system, an unreadable setting) answers `false`: reserve.
fn pages_are_lazy(file: &File) -> bool {
    use nix::sys::statfs::{fstatfs, TMPFS_MAGIC};
    let Ok(fs) = fstatfs(file) else {
        return false;
    };
    let strict =
        std::fs::read_to_string("/proc/sys/vm/overcommit_memory").map_or(true, |s| s.trim() == "2");
    fs.filesystem_type() == TMPFS_MAGIC && fs.blocks() == 0 && !strict
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
