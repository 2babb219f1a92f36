//! Reclaiming memory whose owning process has ended without freeing it.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use crate::arena::check::walk;
use crate::arena::heap::{tag_code, Heap, CACHED_CODE, HDR, USED};
use crate::arena::namespace::FOREIGN_OWNER;
use crate::arena::registry::REGISTRY_OWNER;
use crate::arena::{slot_owner, Arena};
use crate::sys::liveness::process_ended;
use crate::Result;

/// What [`Arena::reclaim_dead`] freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Reclaimed {
    /// Objects freed.
    pub objects: u64,
    /// Bytes freed, block headers included.
    pub bytes: u64,
}

impl Arena {
    /// Frees every object whose owning process has ended without freeing it (killed, or
    /// exited while it still held objects it had not handed on).
    ///
    /// A process counts as ended only on proof (no process of that id exists, or it is a
    /// zombie; `/proc` is not needed), so a live owner's objects are never touched; an
    /// owner whose pid was reused by a new process is taken for alive, which only leaves
    /// its objects allocated. Objects given
    /// up with `into_offset`/`into_handle` and not yet taken over, and named objects, have
    /// no owner process and are kept; directory blocks no entry refers to (left by a process
    /// killed inside `create` or `remove`) are freed unless some process has them open. Views of a reclaimed object held elsewhere must not be
    /// used afterwards (their accesses stay in bounds but meet whatever is allocated there
    /// next).
    ///
    /// # Errors
    /// [`Error::Corrupted`](crate::Error::Corrupted) if the arena is damaged.
    ///
    /// ```
    /// use shared_runtime::{Arena, Process, RawValue};
    ///
    /// let arena = Arena::with_capacity(1 << 20)?;
    /// Process::scope(|s| {
    ///     s.start(|| {
    ///         let leaked = RawValue::new_in(&arena, 7u64).unwrap();
    ///         std::mem::forget(leaked); // the child ends without freeing it
    ///     })?
    ///     .join()
    /// })?;
    /// assert_eq!(arena.stats()?.live_allocations, 1);
    /// assert_eq!(arena.reclaim_dead()?.objects, 1);
    /// assert_eq!(arena.stats()?.live_allocations, 0);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn reclaim_dead(&self) -> Result<Reclaimed> {
        if self.foreign() {
            // Owners' pids name other processes here: nothing can be proven.
            return Ok(Reclaimed::default());
        }
        self.with_heap(|h| {
            self.flush_cache(h)?;
            let mut done = owned_by_dead(h)?;
            h.sweep_slabs()?;
            // Blocks of a `create`/`remove` whose process died half-way.
            h.orphan_unreferenced()?;
            // Removed objects whose last openers were among the dead.
            let (objects, bytes) = h.sweep_orphans()?;
            done.objects += objects;
            done.bytes += bytes;
            Ok(done)
        })
    }
}

fn owned_by_dead(h: &Heap<'_>) -> Result<Reclaimed> {
    let mut verdicts: HashMap<u32, bool> = HashMap::new();
    let mut ended = |owner: u32| {
        *verdicts
            .entry(owner)
            .or_insert_with(|| i32::try_from(owner).is_ok_and(|pid| process_ended(pid, None)))
    };
    let mut dead = Vec::new();
    walk(h, |b, size, w| {
        if w & USED == 0 {
            return Ok(());
        }
        let owner = h.owner_of(b)?;
        if owner == 0 || owner == REGISTRY_OWNER || owner & FOREIGN_OWNER != 0 {
            // (`ORPHAN_OWNER` has the foreign bit: orphans are swept separately.)
            return Ok(());
        }
        if ended(owner) {
            // A block the dead process kept in its cache of freed blocks (`cache.rs`) is
            // freed too, but it held no object: its tag says so.
            dead.push((b, size, owner, tag_code(w) == CACHED_CODE));
        }
        Ok(())
    })?;
    // The slots of dead processes' caches count nothing any more.
    for slot in &h.state().cache_slots {
        let owner = slot_owner(slot.load(Relaxed));
        if owner != 0 && owner != REGISTRY_OWNER && owner & FOREIGN_OWNER == 0 && ended(owner) {
            slot.store(0, Relaxed);
        }
    }
    let mut done = Reclaimed::default();
    // Slots of small objects, in slabs, that dead processes owned (or that a reclaimer
    // that died was freeing).
    (done.objects, done.bytes) = h.reclaim_slots(h.arena.owner_tag(), &mut ended)?;
    for (b, size, owner, cached) in dead {
        h.free(b + HDR, owner)?;
        if !cached {
            done.objects += 1;
            done.bytes += size;
        }
    }
    Ok(done)
}
