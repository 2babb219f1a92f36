//! The table behind the map of opened objects: where a slot is kept, not what it means.
//!
//! Almost every slot is the one a `Value`/`Array` made here records of its own block: the
//! data role, no stamp, its lock at the block's start (or none yet), recorded by this
//! process. Such a slot is one word, the handle's `Weak` pointer with tag bits, kept in a
//! *leaf*: the words of one [`SPAN`]-byte stretch of an arena, one per 8-byte offset, found
//! by the stretch's start in a small hash map ([`Table::leaves`]) with the last leaf used
//! remembered. A process making objects one after another fills the words of a leaf in
//! order: no rehash, no random cache line per object, and a leaf is freed when its last
//! slot is, so the table shrinks back as handles are dropped.
//!
//! Every other slot (another role, a named object's stamp, a lock elsewhere, a block
//! offset that is not a multiple of 8) is a [`Slot`] in a hash map keyed by (arena id,
//! block offset) ([`Table::full`]), its leaf word [`FULL`] if its stretch has a leaf (a full
//! slot makes none: a leaf made later marks the full slots of its stretch).
//!
//! Which slots were recorded by an ancestor (inherited through fork): a full slot says so
//! itself ([`Slot::by`]); a leaf remembers the fork generation of the process that last
//! changed it, so every word of a leaf last changed before a fork is inherited, and before
//! it is changed in a later generation its words are marked so ([`INHERITED`]), once.

use std::collections::hash_map::HashMap;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Weak;

use super::key_hash::KeyHash;
use super::{generation, Role};
use crate::arena::{Allocation, ObjectKind};

/// What the table holds of one block, in full.
pub(super) struct Slot {
    pub(super) role: Role,
    /// The fork generation (`process_key`'s high half) of the process that recorded the
    /// slot: lower than this process's in a slot inherited from an ancestor.
    pub(super) by: u32,
    pub(super) stamp: u64,
    pub(super) lock: u64,
    pub(super) data: Weak<Allocation>,
}

impl Slot {
    /// A slot to be recorded by this process now ([`Table::put`] sets [`by`](Self::by)).
    pub(super) fn new(role: Role, stamp: u64, lock: u64, data: Weak<Allocation>) -> Self {
        Slot {
            role,
            by: 0,
            stamp,
            lock,
            data,
        }
    }
}

/// How many bytes of an arena one leaf covers: a word per 8-byte offset, so a leaf is
/// 264 bytes, what one plain slot costs at most (alone in its stretch).
const SPAN: u64 = 1 << 8;
const WORDS: usize = (SPAN / 8) as usize;

/// Tag bits of a leaf word (a `Weak<Allocation>`'s pointer is 8-aligned, see below): the
/// lock paired with the data is at the block's start (else none yet).
const LOCK_AT_BLOCK: usize = 1;
/// A leaf word that is not a pointer: the block's slot is in [`Table::full`].
const FULL: usize = 2;
/// The slot was recorded by an ancestor of this process.
const INHERITED: usize = 4;
const TAGS: usize = 7;

// The tag bits are free in the pointer `Weak::into_raw` gives (the `Allocation`'s address).
const _: () = assert!(align_of::<Allocation>() > TAGS);

/// The words of one stretch of an arena.
struct Leaf {
    /// The fork generation of the process that last changed a word here: every word is
    /// inherited if it is lower than this process's.
    gen: u32,
    /// How many words are not 0 (the leaf is freed at 0).
    used: u32,
    words: [usize; WORDS],
}

/// The role of every slot kept in a leaf word.
const DATA: Role = Role(ObjectKind::RawValue);

/// A slot as seen in the table, valid while the table is not changed.
pub(super) struct Seen<'a> {
    pub(super) role: Role,
    pub(super) stamp: u64,
    pub(super) lock: u64,
    by: u32,
    /// This process's generation.
    now: u32,
    data: SeenData<'a>,
}

enum SeenData<'a> {
    /// A leaf word's `Weak`, not owned here (the word keeps it).
    Word(ManuallyDrop<Weak<Allocation>>, PhantomData<&'a Table>),
    Full(&'a Weak<Allocation>),
}

impl Seen<'_> {
    /// The handle the slot keeps.
    pub(super) fn data(&self) -> &Weak<Allocation> {
        match &self.data {
            SeenData::Word(w, _) => w,
            SeenData::Full(w) => w,
        }
    }

    /// Whether an ancestor of this process recorded the slot.
    pub(super) fn inherited(&self) -> bool {
        self.by < self.now
    }
}

/// The `Weak` whose pointer (with tags) is the leaf word `word`, not taken out of it.
fn borrow_word<'a>(word: usize) -> SeenData<'a> {
    let ptr = (word & !TAGS) as *const Allocation;
    // SAFETY: a leaf word that is neither 0 nor FULL is the pointer of a `Weak` given to
    // `Weak::into_raw` (in `Table::put`), plus tag bits, which are cleared above; the word
    // keeps that weak reference until it is taken back by `take_word`. Wrapped in
    // `ManuallyDrop` this copy never gives it up, and `Seen`'s lifetime ends before the
    // table (and so the word) can change.
    SeenData::Word(
        ManuallyDrop::new(unsafe { Weak::from_raw(ptr) }),
        PhantomData,
    )
}

/// Gives back the weak reference the leaf word `word` keeps.
fn take_word(word: usize) {
    if word != 0 && word != FULL {
        // SAFETY: as in `borrow_word`; the caller has just cleared the word, so the weak
        // reference it kept is taken back once, here.
        drop(unsafe { Weak::<Allocation>::from_raw((word & !TAGS) as *const Allocation) });
    }
}

/// The slots of this process's opened objects (see the module notes).
pub(super) struct Table {
    /// The leaves, by [`leaf_key`] of the stretch they cover; each one came from
    /// `Box::leak` and is freed when emptied (see [`kept`](Self::kept)).
    leaves: HashMap<(u64, u64), NonNull<Leaf>, KeyHash>,
    /// The leaf used last, if it still exists.
    last: Option<((u64, u64), NonNull<Leaf>)>,
    /// The slots not kept in a leaf word.
    full: HashMap<(u64, u64), Slot, KeyHash>,
    /// The leaf emptied last, kept (while no other one is emptied) so that a process
    /// making and dropping one object at a time does not allocate a leaf per object.
    kept: Option<(u64, u64)>,
    /// This process's fork generation, as of [`renew`](Self::renew).
    now: u32,
}

impl Table {
    pub(super) fn new() -> Self {
        let hash = KeyHash::new();
        Table {
            leaves: HashMap::with_hasher(hash),
            last: None,
            full: HashMap::with_hasher(hash),
            kept: None,
            now: generation(),
        }
    }

    /// Notes this process's fork generation: called whenever the table is taken, after
    /// the process's fork-dependent caches are renewed (no fork happens while it is held).
    #[inline]
    pub(super) fn renew(&mut self) {
        self.now = generation();
    }

    /// The leaf that holds `block`'s word, if any (`block` is a multiple of 8).
    #[inline]
    fn leaf(&mut self, arena: u64, block: u64) -> Option<NonNull<Leaf>> {
        let key = leaf_key(arena, block);
        match self.last {
            Some((k, leaf)) if k == key => Some(leaf),
            _ => {
                let leaf = *self.leaves.get(&key)?;
                self.last = Some((key, leaf));
                Some(leaf)
            }
        }
    }

    /// The leaf that holds `block`'s word (made if there is none and `make`), its words
    /// marked inherited if it was last changed by an ancestor: ready to be changed.
    fn leaf_to_change(&mut self, arena: u64, block: u64, make: bool) -> Option<&mut Leaf> {
        let gen = self.now;
        let mut leaf = match self.leaf(arena, block) {
            Some(leaf) => leaf,
            None if make => self.new_leaf(arena, block, gen),
            None => return None,
        };
        // SAFETY: every leaf pointer came from `Box::leak` and stays valid until it is
        // removed from `leaves` (and from `last`) and freed, which needs `&mut self`, as
        // this borrow does; `&mut self` makes it the only reference to the leaf.
        let leaf = unsafe { leaf.as_mut() };
        if leaf.gen != gen {
            for word in leaf.words.iter_mut() {
                if *word != 0 && *word != FULL {
                    *word |= INHERITED;
                }
            }
            leaf.gen = gen;
        }
        Some(leaf)
    }

    /// A new leaf for `block`'s stretch, whose words say which of its blocks have full
    /// slots (made without a leaf: a full slot makes none, so that a process with many
    /// named objects or handles far apart does not keep a leaf for each).
    fn new_leaf(&mut self, arena: u64, block: u64, gen: u32) -> NonNull<Leaf> {
        let base = block & !(SPAN - 1);
        let mut leaf = Box::new(Leaf {
            gen,
            used: 0,
            words: [0; WORDS],
        });
        let mut mark = |at: u64| {
            leaf.words[index(at)] = FULL;
            leaf.used += 1;
        };
        // Whichever is fewer lookups: the full slots, or the stretch's blocks.
        if self.full.len() <= WORDS {
            let mine = |&&(a, at): &&(u64, u64)| a == arena && at & !(SPAN - 1) == base;
            self.full
                .keys()
                .filter(mine)
                .filter(|(_, at)| at % 8 == 0)
                .for_each(|&(_, at)| mark(at));
        } else {
            (base..base + SPAN)
                .step_by(8)
                .filter(|&at| self.full.contains_key(&(arena, at)))
                .for_each(&mut mark);
        }
        let leaf = NonNull::from(Box::leak(leaf));
        let key = leaf_key(arena, base);
        self.leaves.insert(key, leaf);
        self.last = Some((key, leaf));
        leaf
    }

    /// The slot of the block at `block` of the arena `arena`.
    #[inline]
    pub(super) fn get(&mut self, arena: u64, block: u64) -> Option<Seen<'_>> {
        if block % 8 == 0 {
            match self.leaf(arena, block) {
                Some(leaf) => {
                    // SAFETY: as in `leaf_to_change`; only read here.
                    let leaf = unsafe { leaf.as_ref() };
                    let word = leaf.words[index(block)];
                    if word == 0 {
                        return None;
                    }
                    if word != FULL {
                        return Some(Seen {
                            role: DATA,
                            stamp: 0,
                            lock: if word & LOCK_AT_BLOCK != 0 { block } else { 0 },
                            by: if word & INHERITED != 0 { 0 } else { leaf.gen },
                            now: self.now,
                            data: borrow_word(word),
                        });
                    }
                }
                // A full slot may be kept without a leaf.
                None if self.full.is_empty() => return None,
                None => {}
            }
        }
        let s = self.full.get(&(arena, block))?;
        Some(Seen {
            role: s.role,
            stamp: s.stamp,
            lock: s.lock,
            by: s.by,
            now: self.now,
            data: SeenData::Full(&s.data),
        })
    }

    /// Records `slot` as the block's, recorded by this process now, replacing the slot it
    /// had, if any.
    pub(super) fn put(&mut self, arena: u64, block: u64, mut slot: Slot) {
        slot.by = self.now;
        if block % 8 != 0 {
            self.full.insert((arena, block), slot);
            return;
        }
        let word_of = |s: &Slot| {
            let plain = s.role == DATA && s.stamp == 0;
            match s.lock {
                0 if plain => Some(0),
                l if plain && l == block => Some(LOCK_AT_BLOCK),
                _ => None,
            }
        };
        let (word, full) = match word_of(&slot) {
            Some(tag) => (Weak::into_raw(slot.data) as usize | tag, None),
            None => (FULL, Some(slot)),
        };
        debug_assert!(word == FULL || word & TAGS == word & LOCK_AT_BLOCK);
        // A full slot is kept without a leaf if its stretch has none.
        if let Some(leaf) = self.leaf_to_change(arena, block, full.is_none()) {
            let old = std::mem::replace(&mut leaf.words[index(block)], word);
            if old == 0 {
                leaf.used += 1;
            }
            take_word(old);
            if full.is_none() && old == FULL {
                self.full.remove(&(arena, block));
            }
        }
        if let Some(slot) = full {
            self.full.insert((arena, block), slot);
        }
    }

    /// Pairs the block's slot (which it has) with the lock at `lock`.
    pub(super) fn set_lock(&mut self, arena: u64, block: u64, lock: u64) {
        if block % 8 == 0 {
            let leaf = self.leaf_to_change(arena, block, false);
            let at = leaf.map(|l| &mut l.words[index(block)]);
            let word = at.as_deref().copied().unwrap_or(0);
            if let (Some(at), true) = (at, word != 0 && word != FULL) {
                if lock == 0 || lock == block {
                    let tag = if lock == 0 { 0 } else { LOCK_AT_BLOCK };
                    *at = (word & !LOCK_AT_BLOCK) | tag;
                    return;
                }
                // A lock elsewhere: the slot moves to the full map, the weak reference
                // with it (taken out of the word, which now says where it went).
                *at = FULL;
                // SAFETY: as in `take_word`: the word was cleared just above, so its weak
                // reference is moved into the slot once.
                let data = unsafe { Weak::from_raw((word & !TAGS) as *const Allocation) };
                let by = if word & INHERITED != 0 { 0 } else { self.now };
                let slot = Slot {
                    role: DATA,
                    by,
                    stamp: 0,
                    lock,
                    data,
                };
                self.full.insert((arena, block), slot);
                return;
            }
        }
        if let Some(s) = self.full.get_mut(&(arena, block)) {
            s.lock = lock;
        }
    }

    /// Forgets the block's slot, if it has one.
    pub(super) fn remove(&mut self, arena: u64, block: u64) {
        if block % 8 == 0 {
            if let Some(mut leaf) = self.leaf(arena, block) {
                // SAFETY: as in `leaf_to_change` (a word cleared needs no generation mark).
                let l = unsafe { leaf.as_mut() };
                let word = std::mem::take(&mut l.words[index(block)]);
                if word != 0 {
                    l.used -= 1;
                    if l.used == 0 {
                        self.emptied(leaf_key(arena, block));
                    }
                }
                take_word(word);
                if word != FULL {
                    return;
                }
            }
        }
        self.full.remove(&(arena, block));
        shrink(&mut self.full);
    }

    /// Keeps the leaf of key `key`, just emptied, and frees the one kept before, if it is
    /// still empty.
    fn emptied(&mut self, key: (u64, u64)) {
        let Some(before) = self.kept.replace(key).filter(|&k| k != key) else {
            return;
        };
        let Some(&leaf) = self.leaves.get(&before) else {
            return;
        };
        // SAFETY: as in `leaf_to_change`; only read here.
        if unsafe { leaf.as_ref() }.used != 0 {
            return;
        }
        if self.last.is_some_and(|(k, _)| k == before) {
            self.last = None;
        }
        self.leaves.remove(&before);
        // SAFETY: the leaf came from `Box::leak` and was just removed from `leaves` and
        // `last`, the only places that held it (`kept` holds its key, replaced above):
        // freed once, here. Empty: it keeps no weak reference.
        drop(unsafe { Box::from_raw(leaf.as_ptr()) });
        shrink(&mut self.leaves);
    }
}

/// The key of the leaf of `block`'s stretch in [`Table::leaves`]: the arena, and the
/// stretch's start divided by 8 (as if it were the offset of a block), so that the hasher
/// puts 16 stretches one after another in neighbouring buckets (see [`KeyHash`]), as it
/// does blocks: a process going through its blocks in order finds their leaves in order.
#[inline]
fn leaf_key(arena: u64, block: u64) -> (u64, u64) {
    (arena, (block & !(SPAN - 1)) / 8)
}

/// The index of `block`'s word in its leaf.
#[inline]
fn index(block: u64) -> usize {
    ((block & (SPAN - 1)) / 8) as usize
}

/// Gives back most of a map's memory once it holds under a quarter of what it has room
/// for: a process that dropped most of its handles keeps a table of its size.
fn shrink<V>(map: &mut HashMap<(u64, u64), V, KeyHash>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        self.last = None;
        for (_, leaf) in self.leaves.drain() {
            // SAFETY: as in `emptied`: each leaf is freed once, here, its words' weak
            // references given back first.
            let leaf = unsafe { Box::from_raw(leaf.as_ptr()) };
            leaf.words.iter().for_each(|&w| take_word(w));
        }
    }
}

#[cfg(test)]
impl Table {
    /// How many leaves and full slots the table has, and room for how many keys its two
    /// maps have.
    pub(super) fn footprint(&self) -> (usize, usize, usize) {
        let room = self.leaves.capacity() + self.full.capacity();
        (self.leaves.len(), self.full.len(), room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::Arena;
    use std::hash::BuildHasher;
    use std::sync::Arc;

    /// A full slot is four words; a leaf is a word per 8 bytes of the stretch it covers.
    #[test]
    fn slots_stay_small() {
        assert!(size_of::<Slot>() <= 32, "{}", size_of::<Slot>());
        assert_eq!(size_of::<Leaf>(), 8 + SPAN as usize);
    }

    /// A plain slot is a leaf word, any other one a full slot; a lock elsewhere moves a
    /// word to the full map; the table is empty again when its slots are removed.
    #[test]
    fn slots_move_between_words_and_the_full_map() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let id = arena.id();
        let a = arena.alloc(64, 8).unwrap();
        let b = arena.alloc(64, 8).unwrap();
        let (at, bt) = (a.offset(), b.offset());
        let mut t = Table::new();
        t.put(id, at, Slot::new(DATA, 0, at, Arc::downgrade(&a)));
        assert_eq!((t.footprint().0, t.footprint().1), (1, 0), "not a word");
        let s = t.get(id, at).unwrap();
        assert_eq!(
            (s.role, s.stamp, s.lock, s.inherited()),
            (DATA, 0, at, false)
        );
        assert!(Arc::ptr_eq(&s.data().upgrade().unwrap(), &a));
        assert_eq!(Arc::weak_count(&a), 1);
        t.set_lock(id, at, 0);
        assert_eq!(t.get(id, at).unwrap().lock, 0);
        t.set_lock(id, at, bt);
        assert_eq!((t.footprint().1, t.get(id, at).unwrap().lock), (1, bt));
        assert_eq!(
            Arc::weak_count(&a),
            1,
            "the weak reference moved, not copied"
        );
        // Another role, and a stamp: full slots, replacing the word or the full slot.
        let event = Role::of(ObjectKind::Event);
        t.put(id, bt, Slot::new(event, 0, 0, Arc::downgrade(&b)));
        t.put(id, at, Slot::new(DATA, 7, 0, Arc::downgrade(&a)));
        assert_eq!(t.footprint().1, 2);
        assert_eq!(t.get(id, bt).unwrap().role, event);
        assert_eq!(t.get(id, at).unwrap().stamp, 7);
        assert_eq!(Arc::weak_count(&a), 1);
        // Back to a word, then gone.
        t.put(id, at, Slot::new(DATA, 0, 0, Arc::downgrade(&a)));
        assert_eq!(t.footprint().1, 1);
        assert!(t.get(id, at + 8).is_none() && t.get(id + 1, at).is_none());
        t.remove(id, at);
        t.remove(id, bt);
        assert!(t.get(id, at).is_none() && t.get(id, bt).is_none());
        assert_eq!((Arc::weak_count(&a), Arc::weak_count(&b)), (0, 0));
        // The emptied leaf is kept until another one is emptied.
        assert_eq!((t.footprint().0, t.footprint().1), (1, 0), "not emptied");
        t.put(id + 1, at, Slot::new(DATA, 0, 0, Arc::downgrade(&a)));
        assert_eq!(t.footprint().0, 2);
        t.remove(id + 1, at);
        assert_eq!((t.footprint().0, t.footprint().1), (1, 0), "not freed");
        assert!(t.get(id, at).is_none() && t.get(id + 1, at).is_none());
    }

    /// The words of a leaf last changed in another generation are marked inherited
    /// before it is changed, and stay so when their slot moves to the full map; a word
    /// recorded now is not.
    #[test]
    fn a_leaf_changed_before_a_fork_is_inherited() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let id = arena.id();
        let a = arena.alloc(64, 8).unwrap();
        let b = arena.alloc(64, 8).unwrap();
        // Keys of one leaf (the table never looks at the blocks).
        let (at, bt) = (16 * SPAN, 16 * SPAN + 64);
        let mut t = Table::new();
        t.put(id, at, Slot::new(DATA, 0, at, Arc::downgrade(&a)));
        // As a forked process sees a leaf its ancestor changed last.
        let gen = generation();
        let other = gen ^ 1;
        let leaf = t.leaf(id, at).unwrap();
        // SAFETY: the leaf lives as long as `t`, unchanged until `t` is used again.
        unsafe { (*leaf.as_ptr()).gen = other };
        let by = |t: &mut Table, at| t.get(id, at).unwrap().by;
        assert_eq!(by(&mut t, at), other);
        t.put(id, bt, Slot::new(DATA, 0, 0, Arc::downgrade(&b)));
        assert_eq!((by(&mut t, at), by(&mut t, bt)), (0, gen));
        let leaf = t.leaf(id, at).unwrap();
        // SAFETY: as above.
        let words = unsafe { (*leaf.as_ptr()).words };
        assert_ne!(words[index(at)] & INHERITED, 0, "the earlier word unmarked");
        assert_eq!(words[index(bt)] & INHERITED, 0, "the new word marked");
        t.set_lock(id, at, bt);
        assert_eq!((by(&mut t, at), t.get(id, at).unwrap().lock), (0, bt));
    }

    /// A full slot makes no leaf; a leaf made later for a plain slot of its stretch says
    /// where its full slots are (found by a walk of the full slots when they are fewer than
    /// its words, else by a lookup per word).
    #[test]
    fn full_slots_make_no_leaf_and_are_found_when_one_is_made() {
        let arena = Arena::with_capacity(1 << 16).unwrap();
        let id = arena.id();
        let a = arena.alloc(64, 8).unwrap();
        let event = Role::of(ObjectKind::Event);
        for others in [0, 2 * WORDS as u64] {
            let mut t = Table::new();
            for o in 0..others {
                t.put(id + 1 + o, 0, Slot::new(event, 0, 0, Arc::downgrade(&a)));
            }
            let base = 8 * SPAN;
            t.put(id, base + 16, Slot::new(event, 0, 0, Arc::downgrade(&a)));
            t.put(
                id,
                base + SPAN - 8,
                Slot::new(DATA, 3, 0, Arc::downgrade(&a)),
            );
            t.put(id, base + SPAN, Slot::new(event, 0, 0, Arc::downgrade(&a)));
            assert_eq!(t.footprint().0, 0, "a leaf for full slots");
            t.put(id, base, Slot::new(DATA, 0, 0, Arc::downgrade(&a)));
            assert_eq!(t.footprint().0, 1);
            assert_eq!(t.get(id, base + 16).unwrap().role, event);
            assert_eq!(t.get(id, base + SPAN - 8).unwrap().stamp, 3);
            assert_eq!(t.get(id, base + SPAN).unwrap().role, event);
            assert!(t.get(id, base + 8).is_none());
            t.remove(id, base);
            assert_eq!(t.footprint().0, 1, "a leaf with full slots emptied");
            t.remove(id, base + 16);
            t.remove(id, base + SPAN - 8);
            assert!(t.get(id, base + 16).is_none() && t.get(id, base + SPAN - 8).is_none());
            t.remove(id, base + SPAN);
            assert_eq!(t.footprint().1 as u64, others);
        }
    }

    /// Blocks of one window hash to neighbouring buckets with distinct tags; the same block
    /// of another arena, or of another window, hashes elsewhere.
    #[test]
    fn blocks_of_one_window_are_neighbours() {
        let h = KeyHash::new();
        let hash = |id: u64, block: u64| h.hash_one((id, block));
        let base = 7 << 9;
        let first = hash(1, base);
        for i in 0..16u64 {
            let x = hash(1, base + 32 * i);
            assert_eq!(x & !15 & ((1 << 57) - 1), first & !15 & ((1 << 57) - 1));
            assert_eq!(x & 15, i, "not the i-th bucket of the window");
            assert_eq!(x >> 57, (first >> 57) ^ i, "the tags are not distinct");
        }
        assert_ne!(hash(2, base) & !15, first & !15, "another arena's block");
        assert_ne!(
            hash(1, base + 512) & !15,
            first & !15,
            "another window's block"
        );
        // So are the leaves of 16 stretches one after another.
        let stretch = 64 * SPAN;
        let first = h.hash_one(leaf_key(1, stretch));
        for i in 0..16u64 {
            let x = h.hash_one(leaf_key(1, stretch + i * SPAN + 8));
            assert_eq!(x & !15 & ((1 << 57) - 1), first & !15 & ((1 << 57) - 1));
            assert_eq!(x & 15, i, "not the i-th bucket of the window");
        }
    }
}
