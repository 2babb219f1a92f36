//! Who holds a semaphore's recorded units: the owner word of a holder entry, the calling
//! process's own, and proof that an owner has ended.
//!
//! A holder entry is one `u64`, so that an owner and its count change together in one
//! compare-and-swap (a reclaimer can never take units that a live process has just added
//! to a reused entry):
//!
//! | bits    | what                                                                  |
//! |---------|-----------------------------------------------------------------------|
//! | 0..14   | units held (1..=16383; an entry at 0 units is empty, the word 0)      |
//! | 14..36  | the holder's process id (Linux pids are below 2^22)                   |
//! | 36..64  | the low 28 bits of its start time in clock ticks after boot (at least |
//! |         | 1), or 0 when `/proc` could not tell ("unstamped")                     |
//!
//! The start time tells a process from a later one that reused its pid: a holder is dead
//! when no process of its pid exists, or the one that does started at another time (28
//! bits of ticks wrap after 31 days at 100 ticks a second: a pid reused exactly a multiple
//! of that later is taken for the holder, which only keeps its units held). An unstamped
//! holder whose pid was reused is taken for alive, likewise.

use crate::arena::Arena;
use crate::sys::liveness::{own_pid_and_start, process_ended_unless};

/// Bits of an entry holding its unit count.
pub(super) const UNIT_BITS: u32 = 14;
/// The most units one entry holds.
pub(super) const UNIT_MAX: u64 = (1 << UNIT_BITS) - 1;
/// Bits of an owner holding the process id.
const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;
/// Bits of an owner holding the start-time stamp.
const STAMP_BITS: u32 = 64 - UNIT_BITS - PID_BITS;

/// The owner part of an entry (0 for an empty one).
pub(super) fn owner_of(entry: u64) -> u64 {
    entry >> UNIT_BITS
}

/// The unit count of an entry.
pub(super) fn units_of(entry: u64) -> u64 {
    entry & UNIT_MAX
}

/// An entry of `owner` holding `units` (at most [`UNIT_MAX`]).
pub(super) fn entry(owner: u64, units: u64) -> u64 {
    owner << UNIT_BITS | units
}

fn stamp_of(start: u64) -> u64 {
    (start & ((1 << STAMP_BITS) - 1)).max(1)
}

/// The owner word of the calling process in `arena`, `None` if its units cannot be
/// recorded there: a process that may live in another pid namespace than the arena's
/// creator (it does, or it cannot tell now: nobody could prove it dead, nor read its pid),
/// a child sharing its parent's memory (`vfork`: it cannot name itself), or a pid too large
/// for the entry. Without a start time (`/proc` hidden, no free descriptor) the owner is
/// unstamped.
pub(super) fn my_owner(arena: &Arena) -> Option<u64> {
    if arena.foreign() {
        return None;
    }
    let (pid, start) = own_pid_and_start()?;
    let pid = u64::try_from(pid)
        .ok()
        .filter(|&p| p != 0 && p <= PID_MASK)?;
    Some(match start {
        Some(start) => pid | stamp_of(start) << PID_BITS,
        None => pid,
    })
}

/// Whether the holder `owner` has provably ended ("cannot tell" is alive). An owner no
/// process can have (pid 0) is garbage, and holds nothing.
pub(super) fn owner_ended(owner: u64) -> bool {
    let pid = (owner & PID_MASK) as i32;
    let stamp = owner >> PID_BITS;
    pid == 0 || process_ended_unless(pid, |start| stamp != 0 && stamp_of(start) != stamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::current_pid;

    #[test]
    fn this_process_is_alive_and_its_pid_with_another_start_is_not_it() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let me = my_owner(&arena).expect("this process can be recorded");
        assert_eq!(me & PID_MASK, current_pid() as u64);
        assert_eq!(my_owner(&arena), Some(me), "the cached owner differs");
        assert!(!owner_ended(me));
        let stamp = me >> PID_BITS;
        if stamp != 0 {
            // Our pid, but another start time: a process that reused it is not the holder.
            let other = (me & PID_MASK) | (stamp % ((1 << STAMP_BITS) - 1) + 1) << PID_BITS;
            assert_ne!(other, me);
            assert!(owner_ended(other));
        }
        // Garbage: no process has pid 0.
        assert!(owner_ended(0));
        // The entry packs owner and count without overlap.
        let e = entry(me, UNIT_MAX);
        assert_eq!((owner_of(e), units_of(e)), (me, UNIT_MAX));
    }
}
