//! Raw shared objects: no lock, racy-but-sound access.

mod array;
pub(crate) mod atomic;
mod chars;
mod copy;
pub(crate) mod racy;
mod value;

pub use array::RawArray;
pub(crate) use array::{byte_len, resolve};
pub use atomic::AtomicInteger;
pub use copy::{copy, copy_in, copy_slice, copy_slice_in};
pub use value::RawValue;

use std::sync::Arc;

use crate::arena::Allocation;

/// The allocation of a handle that is being handed over, if no other clone shares it.
pub(crate) fn unshare(alloc: Arc<Allocation>) -> crate::Result<Allocation> {
    Arc::try_unwrap(alloc).map_err(|shared| crate::Error::StillCloned {
        offset: shared.offset(),
        clones: Arc::strong_count(&shared) - 1,
    })
}
