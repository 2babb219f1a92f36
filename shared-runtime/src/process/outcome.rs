//! The block a child reports through: its closure's return value, or its panic message.
//!
//! The parent allocates the block from the global arena before the fork; the child writes
//! it (the value, or the message) and then marks it, with a release store, as holding one
//! or the other; the parent reads it after the child has ended, and frees it. Every access
//! is atomic, so a block written by anyone else at the same time (a grandchild that
//! inherited it) can give a wrong answer but never undefined behaviour.

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;

use crate::arena::{Allocation, Arena};
use crate::{Result, SharedType};

/// Nothing reported yet (the child has not finished its closure).
const NOTHING: u32 = 0;
/// The closure returned; the value is in the block.
const RETURNED: u32 = 1;
/// The closure panicked; the message is in the block.
const PANICKED: u32 = 2;

/// Bytes of a panic message kept; a longer one is cut at a character boundary.
pub(crate) const MESSAGE_CAPACITY: usize = 1016;
/// Byte offset of the state word, of the message length and of the message.
const STATE: usize = 0;
const LENGTH: usize = 4;
const MESSAGE: usize = 8;
/// Where the value starts, before rounding up to its alignment.
const HEADER: usize = MESSAGE + MESSAGE_CAPACITY;

/// What a finished child reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// Nothing: the child ended without finishing its closure (killed, or it exited).
    Nothing,
    /// Its closure returned (the value is in the block).
    Returned,
    /// Its closure panicked with this message.
    Panicked(String),
}

/// An untyped report block (what a scope keeps while the child may still write it).
#[derive(Clone)]
pub(crate) struct Block {
    alloc: Arc<Allocation>,
    /// Its size in bytes, and the alignment it was allocated with.
    size: usize,
    align: usize,
}

impl Block {
    fn byte(&self, offset: usize) -> &AtomicU8 {
        debug_assert!(offset < HEADER);
        // SAFETY: the block holds at least HEADER bytes (see `Outcome::new`) and lives as
        // long as `self`; AtomicU8 has alignment 1 and no invalid bit patterns, and every
        // process accesses these bytes only atomically.
        unsafe { &*self.alloc.ptr().add(offset).cast::<AtomicU8>() }
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 4 <= HEADER && offset % 4 == 0);
        // SAFETY: as in `byte`; the block is aligned to at least 4 bytes (`Outcome::new` asks
        // for it) and `offset` is a multiple of 4, so the AtomicU32 is aligned.
        unsafe { &*self.alloc.ptr().add(offset).cast::<AtomicU32>() }
    }

    /// In the child: records the panic message, cut to [`MESSAGE_CAPACITY`] bytes at a
    /// character boundary.
    pub(crate) fn put_panic(&self, message: &str) {
        let mut end = message.len().min(MESSAGE_CAPACITY);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        for (i, b) in message.as_bytes()[..end].iter().enumerate() {
            self.byte(MESSAGE + i).store(*b, Ordering::Relaxed);
        }
        self.word(LENGTH).store(end as u32, Ordering::Relaxed);
        self.word(STATE).store(PANICKED, Ordering::Release);
    }

    /// In the parent, once the child has ended: what it reported.
    pub(crate) fn report(&self) -> Report {
        match self.word(STATE).load(Ordering::Acquire) {
            RETURNED => Report::Returned,
            PANICKED => {
                let len =
                    (self.word(LENGTH).load(Ordering::Relaxed) as usize).min(MESSAGE_CAPACITY);
                let bytes: Vec<u8> = (0..len)
                    .map(|i| self.byte(MESSAGE + i).load(Ordering::Relaxed))
                    .collect();
                Report::Panicked(String::from_utf8_lossy(&bytes).into_owned())
            }
            _ => Report::Nothing,
        }
    }
}

/// A report block for a closure returning `T`.
pub(crate) struct Outcome<T> {
    block: Block,
    _value: PhantomData<T>,
}

impl<T> Outcome<T> {
    /// The untyped block, for whoever must keep it alive while the child runs.
    pub(crate) fn block(&self) -> &Block {
        &self.block
    }
}

impl<T: SharedType> Outcome<T> {
    /// Where the value lives in the block.
    const VALUE: usize = HEADER.next_multiple_of(align_of::<T>());

    /// A fresh block, nothing reported, in the global arena.
    ///
    /// # Errors
    /// As [`Arena::alloc`]: out of memory, or `T` aligned beyond the arena's maximum.
    pub(crate) fn new() -> Result<Self> {
        let size = Self::VALUE + size_of::<T>();
        let align = align_of::<T>().max(align_of::<AtomicU32>());
        let alloc = Arena::try_global()?.alloc(size, align)?;
        let block = Block { alloc, size, align };
        // Fresh arena memory is zero already; say so explicitly all the same.
        block.word(STATE).store(NOTHING, Ordering::Relaxed);
        Ok(Outcome {
            block,
            _value: PhantomData,
        })
    }

    /// Where a `T` lives in `block`.
    ///
    /// # Panics
    /// If `block` is not an `Outcome<T>`'s: too small or not aligned for a `T` there.
    fn value_ptr(block: &Block) -> *mut T {
        assert!(
            Self::VALUE + size_of::<T>() <= block.size && align_of::<T>() <= block.align,
            "a report block read as the wrong type"
        );
        // SAFETY: the block holds `block.size` bytes, at least `VALUE + size_of::<T>()` (just
        // checked), and is aligned to `block.align >= align_of::<T>()`; `VALUE` is a
        // multiple of `align_of::<T>()`, so the pointer is in bounds and aligned for a `T`.
        unsafe { block.alloc.ptr().add(Self::VALUE).cast::<T>() }
    }

    /// In the child: records the closure's return value.
    pub(crate) fn put_value(&self, value: T) {
        // SAFETY: `value_ptr` is valid and aligned for a `T` (see there); others touch the
        // block only atomically, and `store` writes with relaxed atomics.
        unsafe { T::store(&value, Self::value_ptr(&self.block)) }
        self.block.word(STATE).store(RETURNED, Ordering::Release);
    }

    /// In the parent, after [`Block::report`] said [`Report::Returned`]: the value.
    pub(crate) fn value(&self) -> T {
        Self::value_in(&self.block)
    }

    /// As [`value`](Self::value), from `block`, the block of an `Outcome<T>` (a scope keeps
    /// its children's blocks untyped).
    ///
    /// # Panics
    /// If `block` has no room for a `T` (it is not an `Outcome<T>`'s).
    pub(crate) fn value_in(block: &Block) -> T {
        // SAFETY: `value_ptr` is valid and aligned for a `T` (checked there);
        // the copy is a relaxed atomic one, race-free whoever else writes; any bytes form a
        // valid `T` (`SharedType` promises every bit pattern is one).
        unsafe {
            atomic_memcpy::atomic_load(Self::value_ptr(block), Ordering::Relaxed).assume_init()
        }
    }
}
