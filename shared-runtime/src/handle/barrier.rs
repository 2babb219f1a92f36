//! Handles and names of `Barrier`s.

use crate::arena::{Arena, NamedObject, ObjectKind, Parts, Shape};
use crate::handle::state_block::{open_state_block, state_handle};
use crate::handle::Handle;
use crate::sync::barrier::{check_parties, stored_parties, write_parties, BARRIER_BYTES};
use crate::sync::{Barrier, Token};
use crate::{Error, Result};

/// The error for a barrier block whose party count makes no sense.
fn bad_parties(what: &str, found: u32) -> Error {
    Error::Corrupted(format!(
        "{what} holds {found} as its number of parties (a barrier has 1 to {}): not a \
         barrier's block, or overwritten",
        Barrier::MAX_PARTIES
    ))
}

impl Barrier {
    /// A handle naming this barrier, to open in another process mapping the arena; this
    /// process keeps ownership (of an unnamed barrier: keep it alive while others use it).
    ///
    /// ```
    /// let b = shared_runtime::Barrier::new(2)?;
    /// assert!(b.handle().to_string().ends_with(":Bb"));
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        state_handle(
            self.arena(),
            self.allocation().offset(),
            ObjectKind::Barrier,
        )
    }

    /// Opens a barrier handle made in another process, checking the arena, the kind, the
    /// block and the party count stored there. A named barrier opened this way stays valid
    /// after its name is removed.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] for a handle of another kind, [`Error::InvalidHandle`] for
    /// another arena, a block that is no barrier's, an owning handle, or a barrier this
    /// process owns (use the handle it has); [`Error::Corrupted`] if the block's party count
    /// is 0 or over [`MAX_PARTIES`](Self::MAX_PARTIES).
    ///
    /// ```
    /// use shared_runtime::{Arena, Barrier, Process};
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// let b = arena.create::<Barrier>("b", 2)?;
    /// let (a, h) = (arena.clone(), b.handle());
    /// let child = Process::start(move || {
    ///     Barrier::open_handle(&a, &h).unwrap().wait().unwrap();
    /// })?;
    /// b.wait()?;
    /// child.join()?;
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn open_handle(arena: &Arena, handle: &Handle) -> Result<Self> {
        let data = open_state_block(arena, handle, ObjectKind::Barrier, BARRIER_BYTES)?;
        stored_parties(&data).map_err(|p| bad_parties(&format!("handle {handle}"), p))?;
        Ok(Barrier::from_alloc(data))
    }
}

/// A named barrier's init is its number of parties.
///
/// ```
/// use shared_runtime::{Arena, Barrier, Error};
/// let arena = Arena::with_capacity(1 << 20)?;
/// let b = arena.create::<Barrier>("three", 3)?;
/// assert_eq!(arena.open::<Barrier>("three")?.parties(), b.parties());
/// assert!(matches!(arena.create::<Barrier>("none", 0), Err(Error::InvalidParties { .. })));
/// assert!(arena.open::<Barrier>("none").is_err()); // nothing was made
/// # Ok::<(), shared_runtime::Error>(())
/// ```
impl NamedObject for Barrier {
    type Init<'a> = usize;
    const KIND: ObjectKind = ObjectKind::Barrier;
    const STATE_BYTES: u64 = BARRIER_BYTES;
    fn shape(_: Option<&usize>, _: Token) -> Shape {
        Shape {
            layout: None,
            len: Some(1),
        }
    }
    fn check_init(parties: &usize, _: Token) -> Result<()> {
        check_parties(*parties).map(drop)
    }
    unsafe fn init(parties: &usize, data: *mut u8, _: Token) {
        // Checked by `check_init`; clamped all the same.
        let parties = (*parties).clamp(1, Barrier::MAX_PARTIES) as u32;
        // SAFETY: the caller passes a fresh block made for STATE_BYTES (a barrier's block).
        unsafe { write_parties(data, parties) }
    }
    fn check_parts(parts: &Parts, _: Token) -> Result<()> {
        stored_parties(&parts.data)
            .map(drop)
            .map_err(|p| bad_parties("the named barrier's block", p))
    }
    fn build(parts: Parts, _: Token) -> Self {
        Barrier::from_alloc(parts.data)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

    use crate::arena::LOCK_CELL;
    use crate::{Arena, Barrier, Error};

    /// The shared word `i` after the lock cell of `b`'s block (0: parties, 1: count).
    fn word(b: &Barrier, i: usize) -> &AtomicU32 {
        // SAFETY: a barrier's block holds its lock cell and four aligned u32 words, mapped
        // while `b` lives; they are atomics.
        unsafe { &*b.allocation().ptr().add(LOCK_CELL as usize + 4 * i).cast() }
    }

    #[test]
    fn garbage_party_counts_are_refused_on_open() {
        let arena = Arena::with_capacity(1 << 20).unwrap();
        let b = arena.create::<Barrier>("b", 2).unwrap();
        for garbage in [0, u32::MAX, Barrier::MAX_PARTIES as u32 + 1] {
            word(&b, 0).store(garbage, SeqCst);
            let by_name = Arena::open::<Barrier>(&arena, "b");
            assert!(matches!(by_name, Err(Error::Corrupted(_))), "{by_name:?}");
        }
        // The process's own handle keeps its checked copy.
        assert_eq!(b.parties(), 2);
    }

    #[test]
    fn a_garbage_count_breaks_the_barrier_with_an_error() {
        let b = Barrier::new(3).unwrap();
        word(&b, 1).store(1000, SeqCst);
        assert!(matches!(b.wait(), Err(Error::Corrupted(_))));
        assert!(b.is_broken());
        assert_eq!(b.n_waiting(), 0);
        b.reset();
        word(&b, 1).store(2, SeqCst); // as if two parties waited
        assert!(b.wait().unwrap().is_leader());
        assert!(format!("{b:?}").contains("broken: false"));
    }
}
