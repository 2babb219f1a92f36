//! The only place in the crate that calls the operating system.
//!
//! One module per OS area, as in `nix`: [`memory`] (memfd, mappings, page reservation, the accessible
//! part of a mapping),
//! [`process`] (fork, wait, signals, the cached process id and fork generation),
//! [`pidfd`] (process file descriptors: `pidfd_open`, `pidfd_send_signal`,
//! `waitid(P_PIDFD)`, `poll`), [`liveness`] (thread identities and proof that a thread or
//! process has ended), [`procfs`] (allocation-free reads of `/proc`), [`fd`] (descriptor
//! flags), [`random`] (`getrandom`), [`readonly`] (read-only mappings for inspection), [`signal`] (killing oneself), [`futex`] (the robust lock word every lock of the crate, the
//! allocator's included, is built on), [`counted_lock`] (the objects' locks: the word plus a
//! sleeper count, released with a plain store), [`membarrier`] (the barrier that makes that
//! store safe) and [`futex_word`] (waiting for a word to change: `Event`, `Semaphore`). Everything here is Linux/glibc first; another Unix
//! needs only these files replaced.

pub(crate) mod counted_lock;
pub(crate) mod fd;
pub(crate) mod futex;
pub(crate) mod futex_word;
pub(crate) mod liveness;
pub(crate) mod membarrier;
pub(crate) mod memory;
pub(crate) mod pidfd;
pub(crate) mod process;
pub(crate) mod procfs;
pub(crate) mod random;
pub(crate) mod readonly;
#[cfg(feature = "test-hooks")]
pub(crate) mod signal;
