//! One handle per object per process: a process-local map from (arena id, block offset)
//! to the handle this process has of the object whose data is in that block — every named
//! object it opened, every object it opened by handle, and every `Value`/`Array` it made —
//! so that opening it again gives clones of one handle (one borrow mark, see
//! `Allocation::borrow_mark`), never two independent ones whose guards could alias.
//!
//! Each slot also records what the block is open as (its [`Role`]): a block this process
//! has open as one kind is never handed out as another (a forged handle of another kind
//! naming it is refused), so safe code can never reach one object's words as another
//! kind's (a `Condition`'s notify writing a `Value`'s data under a live guard's `&mut`).
//!
//! A block may hold its data at more than one offset (a `Value`/`Array` made with its own
//! lock keeps it after the lock cell, at the offset its element alignment gives, and an
//! unnamed block records none of that), so a handle found for a block is this object's
//! only if its data starts where the caller's does: the handle in a slot knows its data
//! offset (`Allocation::offset`), and [`insert`], [`find`] and [`adopt`] compare it. One
//! that differs is another object's (an earlier one in a reused block, inherited from the
//! parent process or a view still kept here) or the caller's handle is forged: a live one
//! is refused, never wrapped with the caller's length and type (which would reach past the
//! block, or give a misaligned `&mut [T]`).
//!
//! Each slot also holds the object's *stamp* (a named object's directory stamp, unique per
//! created object; 0 for an unnamed one) and the offset of the lock paired with the data
//! (0 if none yet). A slot whose stamp is not the directory's is an earlier object's at the
//! same offset (a forked child inherits its parent's slots, including ones the parent has
//! since let go): it never matches, and is replaced.
//!
//! A `Value`/`Array` made with its own lock is recorded in the map when it is made
//! ([`record_owned`]), as every other handle is: a live handle of its block here (a view of
//! an object that had the block before, kept here or inherited from the parent process)
//! refuses it ([`Error::AlreadyOpen`]), and its maker sets the block aside ([`set_aside`]);
//! if that handle was inherited from an ancestor ([`record`]: never dropped here), it takes
//! another block (`sync::own_lock`).
//!
//! How the slots are kept is `table.rs`: a slot of that common kind (data, no stamp, its
//! lock at the block's start or none, recorded here) is one word in a leaf found by the
//! block's offset, every other slot a full one in a hash map.
//!
//! The map is guarded by a spin lock. A fork handler (`sys::process`) takes it before every
//! `fork()` made through libc and releases it on both sides, so a child never inherits it
//! held. A child made by a raw `fork`/`clone` system call (no handlers run) while another
//! thread held it cannot trust the map: every use then fails with an error rather than
//! waiting forever or starting from an empty map (which would hand out second handles).

mod key_hash;
mod table;

use std::ptr::null_mut;
use std::sync::atomic::{
    AtomicBool, AtomicPtr,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Arc;

use crate::arena::{Allocation, Arena, ObjectKind};
use crate::sys::process::process_key;
use crate::{Error, Result};
use table::{Slot, Table};

/// What a block is open as in this process. The data kinds (`RawValue`, `RawArray`,
/// `Value`, `Array`) share one role: a raw view and a locked wrapper of the same data
/// share one handle, whose borrow mark stops raw access behind a guard.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Role(ObjectKind);

impl Role {
    /// The role of an object of `kind`.
    pub(crate) fn of(kind: ObjectKind) -> Role {
        Role(match kind {
            ObjectKind::RawArray | ObjectKind::Value(_) | ObjectKind::Array(_) => {
                ObjectKind::RawValue
            }
            k => k,
        })
    }

    fn describe(self) -> String {
        match self.0 {
            ObjectKind::RawValue => "data (a RawValue, RawArray, Value or Array)".into(),
            k => k.to_string(),
        }
    }
}

/// This process's fork generation, as a slot records it (`table::Slot::by`).
#[inline]
fn generation() -> u32 {
    (process_key() >> 32) as u32
}

/// This process's handles of opened objects, and the fresh blocks it has set aside.
struct Opened {
    slots: Table,
    /// Fresh blocks refused because this process has a live handle of them (see
    /// [`set_aside`]), each with its key: held (owned here, allocated) so that they are not
    /// handed to this process again while that handle lives.
    aside: Vec<((u64, u64), Arc<Allocation>)>,
}

static HELD: AtomicBool = AtomicBool::new(false);
/// Set in a child made without libc's `fork` while the map was held.
static BROKEN: AtomicBool = AtomicBool::new(false);
static MAP: AtomicPtr<Opened> = AtomicPtr::new(null_mut());

/// Whether [`before_fork`] took the map's lock (for [`after_fork`]).
static TAKEN_FOR_FORK: AtomicBool = AtomicBool::new(false);

/// Takes the map's spin lock: `false` (not taken) if the map turns out broken meanwhile (a
/// lock held at a raw fork is never released in the child).
fn take() -> bool {
    while HELD
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        if BROKEN.load(Acquire) {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// `pthread_atfork` prepare handler: the forking thread takes the map's lock, so no other
/// thread is in the middle of an update when the child's copy is made.
pub(crate) fn before_fork() {
    if take() {
        TAKEN_FOR_FORK.store(true, Relaxed);
    }
}

/// `pthread_atfork` parent and child handler: releases what `before_fork` took.
pub(crate) fn after_fork() {
    if TAKEN_FOR_FORK.swap(false, Relaxed) {
        HELD.store(false, Release);
    }
}

/// The error of every use of a map that cannot be trusted.
fn broken() -> Error {
    Error::Corrupted(
        "this process was forked without libc's fork while another thread was updating its \
         table of open objects: it cannot open shared objects by name or handle"
            .into(),
    )
}

/// Called in a child made without libc's `fork` (no handler ran): a map held at the fork
/// may be half-updated.
pub(crate) fn after_raw_fork() {
    if HELD.load(Acquire) {
        BROKEN.store(true, Release);
    }
}

struct Held;

impl Drop for Held {
    fn drop(&mut self) {
        HELD.store(false, Release);
    }
}

/// Runs `f` on the map. `f` must not drop an `Arc<Allocation>` (its drop uses the map).
fn with_map<R>(f: impl FnOnce(&mut Table) -> R) -> Result<R> {
    with_opened(|o| f(&mut o.slots))
}

/// Runs `f` on the map and the blocks set aside. `f` must not drop an `Arc<Allocation>`
/// (its drop uses the map).
///
/// Every use of the map comes through here, so this is where a child made by a raw fork
/// learns that it is one (and whether the map was held at the fork), before it trusts
/// `BROKEN` or waits for the lock: a lock held by a thread that does not exist in the
/// child would otherwise be waited for forever.
fn with_opened<R>(f: impl FnOnce(&mut Opened) -> R) -> Result<R> {
    crate::sys::process::renew_if_forked();
    if BROKEN.load(Acquire) || !take() {
        return Err(broken());
    }
    let _held = Held;
    let mut map = MAP.load(Relaxed);
    if map.is_null() {
        map = Box::into_raw(Box::new(Opened {
            slots: Table::new(),
            aside: Vec::new(),
        }));
        MAP.store(map, Relaxed);
    }
    // SAFETY: `map` came from `Box::into_raw` and is never freed; the spin lock, held by
    // this thread, makes this the only reference to it.
    let opened = unsafe { &mut *map };
    opened.slots.renew();
    Ok(f(opened))
}

/// This process's handle of the object of stamp `stamp` whose block is at `block` and
/// whose data is at `data_at` (an offset in the arena), and the lock offset paired with
/// it, if it has one.
///
/// A handle of another role, or whose data starts elsewhere, is not returned (then
/// [`insert`] refuses the block).
pub(crate) fn find(
    arena: &Arena,
    block: u64,
    stamp: u64,
    data_at: u64,
    role: Role,
) -> Result<Option<(Arc<Allocation>, u64)>> {
    let found = with_map(|m| {
        let slot = m.get(arena.id(), block)?;
        if slot.stamp != stamp || slot.role != role {
            return None;
        }
        Some((slot.data().upgrade()?, slot.lock))
    })?;
    // Dropped (if not this object's) with the map's lock released.
    Ok(found.filter(|(data, _)| data.offset() == data_at))
}

/// What [`insert`] found.
pub(crate) enum Inserted {
    /// `data` was recorded (or was there already).
    Ok(Arc<Allocation>),
    /// This process has another handle of the object, paired with another lock.
    OtherLock,
    /// This process has the block open as another kind of object (described).
    OtherRole(String),
    /// This process has a handle of the block whose data starts elsewhere: another
    /// object's (one that had the block before), or the caller's handle is not the
    /// object's.
    OtherData,
}

impl Inserted {
    /// The handle, or the error for opening the block from `handle` as `kind`
    /// (`other_lock`: the reason when it is paired with another lock).
    pub(crate) fn or_refuse(
        self,
        handle: &crate::handle::Handle,
        kind: ObjectKind,
        other_lock: &'static str,
    ) -> Result<Arc<Allocation>> {
        match self {
            Inserted::Ok(data) => Ok(data),
            Inserted::OtherLock => Err(Error::InvalidHandle {
                text: handle.to_string(),
                reason: other_lock,
            }),
            Inserted::OtherRole(have) => Err(Error::KindMismatch {
                name: format!("handle {handle}"),
                stored: format!("a block this process has open as {have}"),
                requested: kind.to_string(),
            }),
            Inserted::OtherData => Err(Error::InvalidHandle {
                text: handle.to_string(),
                reason: OTHER_DATA,
            }),
        }
    }
}

/// Why a handle is refused whose block this process has open with its data elsewhere.
pub(crate) const OTHER_DATA: &str = "this process has a handle of its block whose data \
     starts at another offset: another object's (one that had the block before, kept here \
     or inherited from the parent process; drop it first), or the handle is not the \
     object's";

/// Records `data` (paired with the lock at `lock`, 0 for none) as this process's handle,
/// in role `role`, of the object of stamp `stamp` whose block is at `block`, unless it has
/// one already: then that one is returned, if its role is `role`, its data starts where
/// `data`'s does (`Allocation::offset`) and its lock is `lock` (or either has none).
pub(crate) fn insert(
    arena: &Arena,
    block: u64,
    stamp: u64,
    lock: u64,
    role: Role,
    data: Arc<Allocation>,
) -> Result<Inserted> {
    let first = with_map(|m| {
        let id = arena.id();
        let live = m
            .get(id, block)
            .filter(|s| s.stamp == stamp)
            .and_then(|s| Some((s.data().upgrade()?, s.lock, s.role)));
        match live {
            // Checked first: whatever the locks, a block is one kind of object here.
            Some((first, _, have)) if have != role => {
                Err((first, Inserted::OtherRole(have.describe())))
            }
            // Another data offset: not this object (see the module notes). Checked before
            // the lock, which a handle of another object in the block may share.
            Some((first, _, _)) if first.offset() != data.offset() => {
                Err((first, Inserted::OtherData))
            }
            Some((first, have, _)) if have != 0 && lock != 0 && have != lock => {
                Err((first, Inserted::OtherLock))
            }
            Some((first, have, _)) => {
                if have == 0 && lock != 0 {
                    m.set_lock(id, block, lock);
                }
                Ok(Some(first))
            }
            None => {
                data.set_mapped(block);
                let data = Arc::downgrade(&data);
                m.put(id, block, Slot::new(role, stamp, lock, data));
                Ok(None)
            }
        }
    })?;
    // Arcs are dropped (closing an open record) only here, with the map's lock released.
    Ok(match first {
        Ok(Some(first)) => Inserted::Ok(first),
        Ok(None) => Inserted::Ok(data),
        Err((_, refused)) => refused,
    })
}

/// Records `data`, a handle this process owns of an unnamed `Value`/`Array`'s data (a new
/// one, or a raw object it just wrapped: the data role), paired with the lock at `lock`.
///
/// A live slot of the block holding another handle is never replaced: that handle (a view
/// opened by handle or by name, or one inherited from the parent process, of an object
/// that had this block before) could reach the data behind a guard of this one. Then
/// [`Error::AlreadyOpen`]. A slot of `data` itself (recorded when it was adopted) takes the
/// lock. A dead slot is an ended object's and is replaced.
pub(crate) fn record_owned(
    arena: &Arena,
    block: u64,
    lock: u64,
    data: &Arc<Allocation>,
) -> Result<()> {
    record(arena, block, lock, data).map_err(|(e, _)| e)
}

/// As [`record_owned`]; a refusal also says whether the live handle that refused it is
/// one this process inherited from an ancestor (its slot recorded before the fork: a copy
/// this process never drops, so the block is refused here for good) rather than one it
/// recorded itself (and may drop).
pub(crate) fn record(
    arena: &Arena,
    block: u64,
    lock: u64,
    data: &Arc<Allocation>,
) -> std::result::Result<(), (Error, bool)> {
    let role = Role::of(ObjectKind::RawValue);
    let other = with_map(|m| {
        let id = arena.id();
        let seen = m.get(id, block).map(|s| {
            let mine = std::ptr::eq(s.data().as_ptr(), Arc::as_ptr(data));
            let live = s.data().strong_count() > 0;
            (mine, live, (s.role, s.stamp, s.inherited()))
        });
        match seen {
            Some((true, _, _)) => {
                m.set_lock(id, block, lock);
                None
            }
            Some((false, true, other)) => Some(other),
            _ => {
                data.set_mapped(block);
                let data = Arc::downgrade(data);
                // Dropping the old slot drops a `Weak`, never an `Allocation`.
                m.put(id, block, Slot::new(role, 0, lock, data));
                None
            }
        }
    });
    match other {
        Ok(Some((have, stamp, inherited))) => Err((already_open(block, have, stamp), inherited)),
        Ok(None) => Ok(()),
        // A broken map cannot say whether this process already has a handle of the block
        // (an inherited copy, which would reach the new object's data behind its guards):
        // the object is refused, as every open is.
        Err(e) => Err((e, false)),
    }
}

/// Keeps `block`, the whole block of a `Value`/`Array` just made with its own lock and
/// refused by [`record_owned`] ([`Error::AlreadyOpen`]: this process has a live handle of
/// the block, another object's that had it before), out of this process's use while that
/// handle lives: held here, allocated and owned by this process, so that its allocator
/// does not hand it out here again (in a forked child, whose copies of its parent's
/// handles are never dropped, it would be refused at every use). It is given back, as any
/// dropped block is (to this process's cache, or the arena), when that handle's slot is
/// forgotten ([`forget`]); the blocks set aside earlier whose handle is gone are given
/// back now. `block` must have no other handle (its data's was
/// dropped), so that it is never dropped here with the map's lock held.
pub(crate) fn set_aside(arena: &Arena, block: Arc<Allocation>) {
    let key = (arena.id(), block.offset());
    let released = with_opened(|o| {
        let slots = &mut o.slots;
        let mut live = |&(id, at): &(u64, u64)| {
            slots
                .get(id, at)
                .is_some_and(|s| s.data().strong_count() > 0)
        };
        let (kept, released): (Vec<_>, Vec<_>) = std::mem::take(&mut o.aside)
            .into_iter()
            .partition(|(k, _)| live(k));
        o.aside = kept;
        o.aside.push((key, block));
        released
    });
    // Dropped with the map's lock released (a broken map drops `block` here).
    drop(released);
}

/// This process's one handle of the block at `block`, which it has just taken ownership
/// of (`Allocation::adopt`): the handle it has of it as data already (a view opened by
/// handle, or inherited from its parent), else `fresh`, recorded. A live handle of the
/// block as anything else (another kind, a named object) is refused.
pub(crate) fn adopt(arena: &Arena, block: u64, fresh: Arc<Allocation>) -> Result<Arc<Allocation>> {
    let role = Role::of(ObjectKind::RawValue);
    let found = with_map(|m| {
        let id = arena.id();
        if let Some(s) = m.get(id, block) {
            if let Some(live) = s.data().upgrade() {
                // Handed out of the closure either way: an `Arc` is dropped only with the
                // map's lock released. A handle whose data is not at the block's start (a
                // part of an earlier `Value`'s block, inherited or kept here) is another
                // object's: made the owner, it would reach past the raw data and free an
                // offset that starts no block.
                return if s.role == role && s.stamp == 0 && live.offset() == block {
                    Ok(live)
                } else {
                    Err((live, s.role, s.stamp))
                };
            }
        }
        fresh.set_mapped(block);
        m.put(id, block, Slot::new(role, 0, 0, Arc::downgrade(&fresh)));
        Ok(fresh.clone())
    })?;
    match found {
        Ok(data) => Ok(data),
        Err((live, have, stamp)) => {
            drop(live);
            Err(already_open(block, have, stamp))
        }
    }
}

fn already_open(block: u64, have: Role, stamp: u64) -> Error {
    Error::AlreadyOpen {
        offset: block,
        open_as: if stamp != 0 {
            format!("a named {}", have.describe())
        } else {
            have.describe()
        },
    }
}

/// Forgets the slot of the block at `block`, if its handle is gone, and gives back the
/// blocks set aside for it ([`set_aside`]).
pub(crate) fn forget(arena: &Arena, block: u64) {
    let key = (arena.id(), block);
    let released = with_opened(|o| {
        let dead = o
            .slots
            .get(key.0, block)
            .is_some_and(|s| s.data().strong_count() == 0);
        if !dead {
            return Vec::new();
        }
        // Drops a `Weak`, never an `Allocation`.
        o.slots.remove(key.0, block);
        if o.aside.is_empty() {
            return Vec::new();
        }
        take_aside(o, |k| *k == key)
    });
    // Dropped with the map's lock released.
    drop(released);
}

/// Whether this process has a live handle of the block at `block` that it inherited from
/// an ancestor (a copy of an object its parent had at the fork, never dropped here): a
/// block it has just been given for new data must then be set aside ([`set_aside`]), not
/// used, or that copy would reach the new object's data (`Arena::alloc`). Never true in a
/// process that was not forked from one using this crate (it inherited nothing), which
/// does not look.
///
/// # Errors
/// [`Error::Corrupted`] if the map cannot be trusted (see [`with_opened`]): it cannot say,
/// so the block is not used.
#[inline]
pub(crate) fn inherited_live(arena: &Arena, block: u64) -> Result<bool> {
    if generation() == 0 {
        return Ok(false);
    }
    inherited_live_here(arena, block)
}

/// [`inherited_live`] in a forked child: asks the map.
#[cold]
#[inline(never)]
fn inherited_live_here(arena: &Arena, block: u64) -> Result<bool> {
    with_map(|m| {
        m.get(arena.id(), block)
            .is_some_and(|s| s.inherited() && s.data().strong_count() > 0)
    })
}

/// Takes the blocks set aside whose key `done` accepts out of the list.
fn take_aside(
    o: &mut Opened,
    done: impl Fn(&(u64, u64)) -> bool,
) -> Vec<((u64, u64), Arc<Allocation>)> {
    let (released, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut o.aside)
        .into_iter()
        .partition(|(k, _)| done(k));
    o.aside = kept;
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block open here as one role is refused as another, in both orders, and given
    /// again (the same handle) to its own role.
    #[test]
    fn a_block_is_open_as_one_role_only() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let roles = [
            (
                ObjectKind::Value(crate::arena::LockKind::Lock),
                ObjectKind::Condition,
            ),
            (ObjectKind::Event, ObjectKind::RawArray),
            (ObjectKind::Semaphore, ObjectKind::BoundedSemaphore),
            (ObjectKind::Queue, ObjectKind::Barrier),
        ];
        for (first, second) in roles.into_iter().flat_map(|(a, b)| [(a, b), (b, a)]) {
            let data = arena.alloc(64, 8).unwrap();
            let block = data.offset();
            let (r1, r2) = (Role::of(first), Role::of(second));
            let got = insert(&arena, block, 0, 0, r1, data.clone()).unwrap();
            assert!(matches!(got, Inserted::Ok(ref d) if Arc::ptr_eq(d, &data)));
            let again = Arc::new(Allocation::borrowed(arena.clone(), block));
            match insert(&arena, block, 0, 0, r2, again).unwrap() {
                Inserted::OtherRole(have) => assert_eq!(have, r1.describe()),
                _ => panic!("{second} got the block open here as {first}"),
            }
            let again = Arc::new(Allocation::borrowed(arena.clone(), block));
            let got = insert(&arena, block, 0, 0, r1, again).unwrap();
            assert!(matches!(got, Inserted::Ok(ref d) if Arc::ptr_eq(d, &data)));
            assert!(find(&arena, block, 0, block, r2).unwrap().is_none());
            assert!(find(&arena, block, 0, block, r1).unwrap().is_some());
        }
        // The data kinds share one role: a raw view and a wrapper share the handle.
        assert_eq!(
            Role::of(ObjectKind::RawValue),
            Role::of(ObjectKind::Array(crate::arena::LockKind::RLock))
        );
    }

    /// A block set aside is held while the handle of its block in the map lives, and given
    /// back at the next refusal once that handle is gone.
    #[test]
    fn a_block_set_aside_is_held_while_the_handle_that_refused_it_lives() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let role = Role::of(ObjectKind::RawValue);
        let block = arena.alloc(64, 8).unwrap();
        let at = block.offset();
        // A view of the block in the map: what refuses a fresh object there.
        let view = Arc::new(Allocation::borrowed(arena.clone(), at));
        let got = insert(&arena, at, 0, 0, role, view.clone()).unwrap();
        assert!(matches!(got, Inserted::Ok(ref d) if Arc::ptr_eq(d, &view)));
        drop(got);
        let kept = Arc::downgrade(&block);
        set_aside(&arena, block);
        set_aside(&arena, arena.alloc(64, 8).unwrap());
        assert!(kept.upgrade().is_some(), "given back while the view lives");
        drop(view);
        set_aside(&arena, arena.alloc(64, 8).unwrap());
        assert!(kept.upgrade().is_none(), "kept after the view was dropped");
    }

    /// A handle of a block whose data starts at another offset is not given out for it: not
    /// by `insert` (refused while it lives), not by `find`; and it is given again to a
    /// handle of the same data.
    #[test]
    fn a_block_is_open_with_one_data_offset_only() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let block = arena.alloc(128, 64).unwrap();
        let at = block.offset();
        let role = Role::of(ObjectKind::Array(crate::arena::LockKind::RLock));
        let part = |off| Arc::new(Allocation::part(block.clone(), off));
        let data = part(64);
        let got = insert(&arena, at, 0, at, role, data.clone()).unwrap();
        assert!(matches!(got, Inserted::Ok(ref d) if Arc::ptr_eq(d, &data)));
        for other in [part(24), Arc::new(Allocation::borrowed(arena.clone(), at))] {
            let got = insert(&arena, at, 0, at, role, other).unwrap();
            assert!(
                matches!(got, Inserted::OtherData),
                "another data offset given out"
            );
        }
        assert!(find(&arena, at, 0, at + 24, role).unwrap().is_none());
        let (found, _) = find(&arena, at, 0, at + 64, role).unwrap().unwrap();
        assert!(Arc::ptr_eq(&found, &data));
        let got = insert(&arena, at, 0, at, role, part(64)).unwrap();
        assert!(matches!(got, Inserted::Ok(ref d) if Arc::ptr_eq(d, &data)));
    }

    /// Making a million `Value`s fills the map (in leaves, no full slots), and dropping
    /// them gives its memory back: a few leaves and little room are left (other tests of
    /// this process may hold a few handles meanwhile).
    #[test]
    fn a_million_values_made_and_dropped_leave_the_map_small() {
        let footprint = || with_opened(|o| o.slots.footprint()).unwrap();
        let arena = Arena::with_capacity(1 << 30).unwrap();
        let values: Vec<crate::Value<i32>> = (0..1_000_000)
            .map(|i| crate::Value::new_in(&arena, i).unwrap())
            .collect();
        let (leaves, _, _) = footprint();
        assert!(leaves >= 10_000, "{leaves} leaves for a million values");
        drop(values);
        let (leaves, full, room) = footprint();
        assert!(
            leaves < 200 && full < 200,
            "{leaves} leaves, {full} full slots"
        );
        assert!(room < 4096, "room for {room} keys left");
    }
}
