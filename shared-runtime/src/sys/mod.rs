//! The only place in the crate that calls the operating system.
//!
//! One module per OS area, as in `nix`: [`memory`] (memfd, mappings, page reservation),
//! [`process`] (fork, wait, signals, the cached process id), [`pidfd`] (process file
//! descriptors: `pidfd_open`, `pidfd_send_signal`, `waitid(P_PIDFD)`, `poll`) and [`mutex`]
//! (robust, process-shared pthread mutexes). Everything here is Linux/glibc first; another Unix
//! needs only these files replaced.

pub(crate) mod futex;
pub(crate) mod memory;
pub(crate) mod mutex;
pub(crate) mod pidfd;
pub(crate) mod process;
