//! Which identities and owner tags a process writes into an arena, given its pid namespace.
//!
//! Thread and process ids mean something only in one pid namespace. Every arena records its
//! creator's (`header::ArenaHeader::creator_pidns`). A process that can tell that it lives
//! in *another* pid namespace (a child forked after `unshare(CLONE_NEWPID)`, say, which keeps
//! the anonymous arena) is *foreign* to the arena: the lock words it writes carry
//! `FOREIGN`, which no process can prove dead, and it proves nobody dead itself (its ids
//! name other threads); its blocks carry [`FOREIGN_OWNER`], which `reclaim_dead` never
//! frees, and it reclaims nothing. So processes of two namespaces exclude each other as
//! any holders do, and a dead holder across the boundary is waited on, never guessed. A
//! process that cannot read its pid namespace (neither from `/proc` nor through a pidfd)
//! counts as foreign too: "cannot tell" never passes for "same namespace". Whether it is
//! foreign may change while that failure is momentary (no free descriptor) for what is
//! decided afresh each time (`Arena::foreign`: recording a semaphore unit, proving
//! someone dead), never for what must stay fixed (`Arena::mark`, `Arena::owner_tag`),
//! which pin the first answer for the process's life.

use crate::arena::Arena;
use crate::sys::liveness::{
    cached_identity, in_other_pid_namespace, in_other_pid_namespace_for_life,
    in_other_pid_namespace_renewed, pid_namespace, thread_identity, FOREIGN, TID_MASK,
};
use crate::sys::process::current_pid;
use crate::Result;

/// Marks an owner tag written by a foreign process (bit 30: above every pid).
pub(crate) const FOREIGN_OWNER: u32 = 1 << 30;

impl Arena {
    /// Whether the calling process may be in another pid namespace than the arena's
    /// creator (it is, or it cannot tell now).
    #[inline]
    pub(crate) fn foreign(&self) -> bool {
        in_other_pid_namespace(self.creator_pidns())
    }

    /// The calling thread's identity as written into this arena's lock words.
    ///
    /// # Errors
    /// As [`thread_identity`].
    #[inline]
    pub(crate) fn lock_identity(&self) -> Result<u64> {
        Ok(self.mark(thread_identity()?))
    }

    /// The calling thread's identity as written into this arena's lock words, if it has
    /// been established.
    #[inline]
    pub(crate) fn cached_lock_identity(&self) -> Option<u64> {
        cached_identity().map(|id| self.mark(id))
    }

    /// A foreign identity keeps the thread id but trades the start-time stamp (which
    /// nobody checks: no one proves a foreign holder dead) for a mix of it with this
    /// process's pid namespace, so that threads of two foreign namespaces with the same id
    /// and start tick (both namespaces' first process, say) never share an identity.
    #[inline]
    pub(crate) fn mark(&self, id: u64) -> u64 {
        if !in_other_pid_namespace_for_life(self.creator_pidns()) {
            return id;
        }
        foreign_identity(id)
    }

    /// The owner tag of the calling process's blocks in this arena.
    #[inline]
    pub(crate) fn owner_tag(&self) -> u32 {
        let pid = current_pid() as u32;
        if in_other_pid_namespace_for_life(self.creator_pidns()) {
            pid | FOREIGN_OWNER
        } else {
            pid
        }
    }
}

/// `Arena::mark` for a caller that has just called `renew_if_forked`, given the arena's
/// `creator_pidns` (the lock hot path keeps a copy of it).
#[inline]
pub(crate) fn mark_renewed(id: u64, creator_pidns: u64) -> u64 {
    if in_other_pid_namespace_renewed(creator_pidns) {
        foreign_identity(id)
    } else {
        id
    }
}

/// See `Arena::mark`.
#[cold]
fn foreign_identity(id: u64) -> u64 {
    let ns = pid_namespace().unwrap_or(0);
    let mixed = ((id >> 32) ^ ns).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (id & TID_MASK) | FOREIGN | mixed.max(1) << 32
}
