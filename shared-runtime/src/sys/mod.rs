//! The only place in the crate that calls the operating system.
//!
//! One module per OS area, as in `nix`: [`memory`] (memfd, mappings, page reservation),
//! [`process`] (fork, wait, signals, the cached process id) and [`mutex`] (robust,
//! process-shared pthread mutexes). Everything here is Linux/glibc first; another Unix
//! needs only these files replaced.

pub(crate) mod futex;
pub(crate) mod memory;
pub(crate) mod mutex;
pub(crate) mod process;
