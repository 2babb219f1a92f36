//! Named arenas (POSIX shared memory) and arenas inherited by spawned programs.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::arena::{checked_capacity, header, Arena};
use crate::sys::memory::{segment_names, unlink_if_same, unlink_named, SharedMemory};
use crate::{Error, Result};

/// The environment variable through which [`Arena::share_with`] tells a spawned program
/// where its arena is.
pub const ARENA_ENV: &str = "SHARED_RUNTIME_ARENA";

/// Longest segment name accepted (`NAME_MAX` minus the leading slash).
const MAX_NAME: usize = 254;

pub(crate) fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME {
        "it is longer than 254 bytes"
    } else if name.contains('/') {
        "it contains '/' (give the name without any slash; \"/\" is added for shm_open)"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else if name == "." || name == ".." {
        "it is a directory name"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_string(),
        reason,
    })
}

impl Arena {
    /// Creates a named arena: a POSIX shared-memory segment `/name` (mode `0600`) that
    /// processes which did not fork from this one — including Python's
    /// `multiprocessing.shared_memory.SharedMemory(name)` — can open.
    ///
    /// The name is removed when this process drops its last handle to the arena (also
    /// while a panic unwinds); processes that have it open keep their mapping. If this
    /// process is killed, the name stays behind: [`Arena::remove_segment`] removes it.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty name or one with `/` or NUL,
    /// [`Error::AlreadyExists`] if the name is taken, [`Error::InvalidCapacity`] or
    /// [`Error::Os`] otherwise.
    ///
    /// ```
    /// use shared_runtime::Arena;
    /// let name = format!("doc-create-{}", std::process::id());
    /// let a = Arena::create_segment(&name, 1 << 20)?;
    /// let b = Arena::open_segment(&name)?;
    /// assert_eq!(b.capacity(), a.capacity());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "create_named")]
    pub fn create_segment(name: &str, capacity: u64) -> Result<Arena> {
        check_name(name)?;
        let capacity = checked_capacity(capacity)?;
        let mem = SharedMemory::create_segment(name, capacity).map_err(|e| match e {
            Error::Os { ref source, .. } if source.raw_os_error() == Some(libc::EEXIST) => {
                Error::AlreadyExists {
                    what: "segment",
                    name: name.to_string(),
                }
            }
            e => e,
        })?;
        let made = Arena::initialise(mem, Some(name.to_string()));
        if made.is_err() {
            unlink_named(name);
        }
        made
    }

    /// Opens a named arena created by [`create_segment`](Self::create_segment), in this or any
    /// other process.
    ///
    /// The segment is validated before anything in it is trusted: its size, magic number,
    /// format version, recorded capacity and allocator bounds. Only the bytes the segment
    /// has are mapped.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such segment, [`Error::InvalidSegment`] if it is
    /// not an arena (another program's segment, a truncated or damaged one),
    /// [`Error::InvalidName`] for a malformed name.
    ///
    /// ```
    /// let err = shared_runtime::Arena::open_segment("no-such-arena-here").unwrap_err();
    /// assert!(matches!(err, shared_runtime::Error::NotFound { .. }));
    /// ```
    #[doc(alias = "open_named")]
    pub fn open_segment(name: &str) -> Result<Arena> {
        check_name(name)?;
        let mem = SharedMemory::open_segment(name).map_err(|e| match e {
            Error::Os { ref source, .. } if source.raw_os_error() == Some(libc::ENOENT) => {
                Error::NotFound {
                    what: "segment",
                    name: name.to_string(),
                }
            }
            Error::InvalidCapacity { .. } => Error::InvalidSegment {
                name: name.to_string(),
                reason: "the segment is empty".into(),
            },
            e => e,
        })?;
        header::validate(&mem, name)?;
        Ok(Arena::wrap(mem, Some(name.to_string()), 0))
    }

    /// Removes the name of a segment (for instance one left behind by a creator that was
    /// killed). Processes that have it open keep using it. Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a malformed name.
    ///
    /// ```
    /// assert!(!shared_runtime::Arena::remove_segment("never-created-arena")?);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "remove_named")]
    pub fn remove_segment(name: &str) -> Result<bool> {
        check_name(name)?;
        Ok(unlink_named(name))
    }

    /// Removes the names of arenas whose creator is gone (killed before it could remove
    /// them): every segment in `/dev/shm` that this user can open, that is a valid arena,
    /// and whose creating process (pid and start time) no longer runs. Returns the names
    /// removed. Other programs' segments are never touched.
    ///
    /// # Errors
    /// [`Error::Os`] if `/dev/shm` cannot be listed.
    ///
    /// ```
    /// let removed = shared_runtime::Arena::remove_stale_segments()?;
    /// # let _ = removed;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[doc(alias = "remove_stale")]
    pub fn remove_stale_segments() -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for name in segment_names()? {
            let Ok(arena) = Arena::open_segment(&name) else {
                continue;
            };
            if arena.header().creator_is_gone() && unlink_if_same(&name, &arena.inner.mem) {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// The arena's segment name, if it is a named arena.
    ///
    /// ```
    /// assert_eq!(shared_runtime::Arena::with_capacity(1 << 16)?.name(), None);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// A random number identifying this arena (the same in every process that maps it);
    /// handles carry it so that they are only opened in the arena they came from.
    ///
    /// ```
    /// let a = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// assert_eq!(a.id(), a.clone().id());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.header().id()
    }

    /// Arranges for the program `command` will start to inherit this arena: the arena's
    /// memory file stays open across `exec` (in the child only) and the environment
    /// variable [`ARENA_ENV`] says which descriptor (or, for a named arena, which name) it
    /// is. The program calls [`Arena::from_env`] to map it.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for platforms that need a setup call.
    ///
    /// ```
    /// let arena = shared_runtime::Arena::with_capacity(1 << 16)?;
    /// let mut cmd = std::process::Command::new("true");
    /// arena.share_with(&mut cmd)?;
    /// assert!(cmd.status().unwrap().success());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn share_with(&self, command: &mut Command) -> Result<()> {
        if let Some(name) = &self.inner.name {
            command.env(ARENA_ENV, format!("name:{name}"));
            return Ok(());
        }
        let fd = self.inner.mem.fd().as_raw_fd();
        command.env(ARENA_ENV, format!("fd:{fd}"));
        // SAFETY: the closure runs in the forked child before exec and only calls fcntl
        // (`keep_across_exec`), which is async-signal-safe, on a descriptor that is open in
        // the child (it is inherited from the parent, where `self` keeps it open).
        unsafe {
            command.pre_exec(move || crate::sys::fd::keep_across_exec(fd));
        }
        Ok(())
    }

    /// In a program started with a command prepared by [`share_with`](Self::share_with):
    /// maps the arena it was given. `Ok(None)` if [`ARENA_ENV`] is not set.
    ///
    /// # Errors
    /// [`Error::InvalidSegment`] if the variable or the memory it names is not an arena.
    ///
    /// ```
    /// // Not started through share_with: nothing to map.
    /// std::env::remove_var(shared_runtime::arena::ARENA_ENV);
    /// assert!(shared_runtime::Arena::from_env()?.is_none());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn from_env() -> Result<Option<Arena>> {
        let Ok(value) = std::env::var(ARENA_ENV) else {
            return Ok(None);
        };
        let bad = |reason: &str| Error::InvalidSegment {
            name: value.clone(),
            reason: format!("{ARENA_ENV}: {reason}"),
        };
        if let Some(name) = value.strip_prefix("name:") {
            return Arena::open_segment(name).map(Some);
        }
        let fd: i32 = value
            .strip_prefix("fd:")
            .and_then(|n| n.parse().ok())
            .filter(|&fd| fd >= 0)
            .ok_or_else(|| bad("expected fd:<number> or name:<segment>"))?;
        if !crate::sys::fd::is_open(fd) {
            return Err(bad("that descriptor is not open in this process"));
        }
        // SAFETY: the descriptor is open (checked above) and was passed to this program for
        // the arena alone (share_with's contract), so this process may own it; it is closed
        // when the arena goes.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let mem = SharedMemory::open_fd(owned)?;
        header::validate(&mem, &value)?;
        Ok(Some(Arena::wrap(mem, None, 0)))
    }
}
