//! The guides: the project's `docs/*.md`, one module each, so that they are part of this
//! documentation (and their Rust examples run as doctests).
//!
//! | guide | what it covers |
//! | --- | --- |
//! | [`porting`] | Python's `multiprocessing.sharedctypes` names, one by one, and their Rust ones |
//! | [`derive`](mod@derive) | `#[derive(SharedStruct)]`: the rules it checks, field accessors, hygiene |
//! | [`interop`] | sharing beyond fork: named arenas, handles, spawned programs, Python |
//! | [`safety`] | why memory other processes write is sound to use from safe code |
//! | [`reliability`] | what the fault tests do, and what they found |
//! | [`design`] | how the pieces work and the invariants they keep |
//! | [`benchmarks`] | the current figures and the commands that reproduce them |

#[doc = include_str!("../docs/porting.md")]
pub mod porting {}

#[doc = include_str!("../docs/derive.md")]
pub mod derive {}

#[doc = include_str!("../docs/interop.md")]
pub mod interop {}

#[doc = include_str!("../docs/safety.md")]
pub mod safety {}

#[doc = include_str!("../docs/reliability.md")]
pub mod reliability {}

#[doc = include_str!("../docs/design.md")]
pub mod design {}

#[doc = include_str!("../docs/benchmarks.md")]
pub mod benchmarks {}
