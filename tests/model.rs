//! A model-based test of the allocator: random operation sequences against a simple model.
//!
//! Each case is a sequence of operations (allocate `s` bytes aligned to `a`, free the k-th
//! live object, write a pattern into part of an object, read part of it back) applied both
//! to a real [`Arena`] of [`CAPACITY`] bytes and to a model: the list of live objects with
//! the bytes each must hold. After every step the two are compared: every live object holds
//! exactly the model's bytes (so no two objects overlap and nothing is lost), a fresh object
//! reads as zero, the arena's counters ([`Arena::stats`]) agree with the model, and
//! [`Arena::check`] holds.
//!
//! What the model asserts about allocation failure, and why it is honest: an allocation of
//! `s` bytes aligned to `a` needs one free stretch of at most [`worst_case`]`(s, a)` bytes
//! (the payload rounded to the 16-byte grain, the 16-byte block header, and for `a > 16`
//! room to slide the payload to an aligned address). The largest free stretch is at least
//! the never-used tail and at least the average free block; if the worst case fits in that,
//! the allocation must succeed. If not even `s` plus the header fits in the tail or in all
//! free blocks together, it must fail. In between, either outcome is allowed, but a failure
//! must be [`Error::OutOfMemory`] reporting the real tail, and must change nothing. In
//! particular, once everything is freed, half the capacity can always be allocated again.
//!
//! Small objects are slots of slabs (docs/design.md, "Slabs of small objects"): an object
//! of at most `stride - 4` bytes aligned to at most the largest power of two dividing the
//! stride (at most 16), for a stride of [`STRIDES`], takes no block of its own. Its slab (a
//! 4096-byte block, payload at a multiple of 4096) counts whole in `bytes_in_use` while it
//! holds any object, so the model counts `SLAB` bytes for every distinct slab (offset /
//! 4096) among its live slots; a slot's allocation may succeed from a slab with no room
//! left in the heap, and needs at most room for a new slab when it must succeed. The slab
//! map, a block of its own made with the first slab and freed with the last, is the only
//! spare slab space `stats` leaves.
//!
//! Proptest shrinks a failing sequence to a minimal one (default shrinking).
//! Reproduce with `cargo test --test model`.

use std::ops::Range;

use proptest::prelude::*;
use shared_runtime::arena::{ArenaStats, HeapReport, MAX_ALIGN};
use shared_runtime::{Arena, Error, RawArray, SharedStruct};

/// The arena of every case: small, so that sizes near and over the capacity are cheap, and
/// large objects (at least 256 KiB, whose pages are punched back when freed) fit a few times.
const CAPACITY: u64 = 2 << 20;
/// Bytes of block header before every payload, and the allocation grain (docs/design.md).
const HEADER: u64 = 16;
const GRAIN: u64 = 16;
/// The smallest block; a remainder smaller than this stays with the block it was cut from.
const MIN_BLOCK: u64 = 32;
/// The slot strides of slabs, and a slab's bytes (its block, header included).
const STRIDES: [u64; 7] = [8, 16, 24, 32, 40, 48, 64];
const SLAB: u64 = 4096;
/// The slab map's block while any slab lives (docs/design.md): one bit per 4096-byte page
/// of the capacity, header included. It is no object and no slab: spare slab bytes.
const SLAB_MAP: u64 = CAPACITY / SLAB / 8 + HEADER;
/// Operations per case, at most.
const MAX_OPS: usize = 64;
/// Cases per run: 5-10 s in a debug build on two shared cores.
const CASES: u32 = 256;

/// One element of an array aligned to `N`: `N` bytes, no padding.
trait Chunk: shared_runtime::SharedType {
    const N: usize;
    fn zero() -> Self;
}

macro_rules! chunks {
    ($($name:ident = $n:tt),* $(,)?) => {$(
        #[derive(SharedStruct, Clone, Copy)]
        #[repr(C, align($n))]
        struct $name {
            b: [u8; $n],
        }
        // The byte views below rely on this: the struct is exactly its bytes.
        const _: () = assert!(std::mem::size_of::<$name>() == $n);
        impl Chunk for $name {
            const N: usize = $n;
            fn zero() -> Self {
                $name { b: [0; $n] }
            }
        }
    )*};
}

chunks!(
    A1 = 1,
    A2 = 2,
    A4 = 4,
    A8 = 8,
    A16 = 16,
    A32 = 32,
    A64 = 64,
    A128 = 128,
    A256 = 256,
    A512 = 512,
    A1024 = 1024,
    A2048 = 2048,
    A4096 = 4096,
    A8192 = 8192,
);

/// The bytes of a slice of chunks.
fn as_bytes<T: Chunk>(items: &[T]) -> &[u8] {
    // SAFETY: every `Chunk` is one of the structs made by `chunks!`: `#[repr(C)]` around a
    // single `[u8; N]` field, with `size_of == N` asserted at compile time, so the slice is
    // `items.len() * N` initialised bytes with no padding; `u8` needs no alignment, and the
    // returned slice borrows `items`, so it cannot outlive them.
    unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), std::mem::size_of_val(items)) }
}

/// The bytes of a mutable slice of chunks.
fn as_bytes_mut<T: Chunk>(items: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; in addition, any byte values make a valid chunk (an array of
    // `u8`), and the returned slice borrows `items` mutably, so nothing else reaches them.
    unsafe {
        std::slice::from_raw_parts_mut(
            items.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(items),
        )
    }
}

/// A live object, whatever its element type.
trait Obj {
    fn offset(&self) -> u64;
    /// Size of one element (= the object's alignment).
    fn elem(&self) -> usize;
    fn len(&self) -> usize;
    /// The bytes of elements `r`.
    fn read(&self, r: Range<usize>) -> Vec<u8>;
    /// Writes `bytes` (whole elements) from element `start` on.
    fn write(&self, start: usize, bytes: &[u8]);
}

impl<T: Chunk> Obj for RawArray<T> {
    fn offset(&self) -> u64 {
        RawArray::offset(self)
    }
    fn elem(&self) -> usize {
        T::N
    }
    fn len(&self) -> usize {
        RawArray::len(self)
    }
    fn read(&self, r: Range<usize>) -> Vec<u8> {
        as_bytes(&RawArray::read(self, r)).to_vec()
    }
    fn write(&self, start: usize, bytes: &[u8]) {
        let mut items = vec![T::zero(); bytes.len() / T::N];
        as_bytes_mut(&mut items).copy_from_slice(bytes);
        RawArray::write(self, start, &items);
    }
}

/// Allocates `len` elements of the chunk of alignment `1 << align_log2`.
fn alloc(arena: &Arena, align_log2: u32, len: usize) -> Result<Box<dyn Obj>, Error> {
    fn make<T: Chunk>(arena: &Arena, len: usize) -> Result<Box<dyn Obj>, Error> {
        Ok(Box::new(RawArray::<T>::zeroed_in(arena, len)?))
    }
    match align_log2 {
        0 => make::<A1>(arena, len),
        1 => make::<A2>(arena, len),
        2 => make::<A4>(arena, len),
        3 => make::<A8>(arena, len),
        4 => make::<A16>(arena, len),
        5 => make::<A32>(arena, len),
        6 => make::<A64>(arena, len),
        7 => make::<A128>(arena, len),
        8 => make::<A256>(arena, len),
        9 => make::<A512>(arena, len),
        10 => make::<A1024>(arena, len),
        11 => make::<A2048>(arena, len),
        12 => make::<A4096>(arena, len),
        13 => make::<A8192>(arena, len),
        _ => unreachable!("alignments are generated up to 2^13"),
    }
}

/// Whether an object of `size` bytes aligned to `align` is a slot of a slab.
fn is_slot(size: u64, align: u64) -> bool {
    STRIDES
        .iter()
        .any(|&s| size + 4 <= s && align <= (s & s.wrapping_neg()).min(16))
}

/// The slab holding a slot at `offset` (slab payloads start at multiples of 4096 and a slot
/// lies within the slab's 4080 payload bytes).
fn slab_of(offset: u64) -> u64 {
    offset / SLAB
}

/// The most contiguous free bytes an allocation of `size` bytes aligned to `align` can need.
fn worst_case(size: u64, align: u64) -> u64 {
    let block = (size + HEADER).next_multiple_of(GRAIN).max(MIN_BLOCK);
    block + if align > GRAIN { align + MIN_BLOCK } else { 0 }
}

/// A position-dependent pattern, different for every seed: `len` bytes.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    let tile: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(131) % 251) as u8 ^ seed.rotate_left(i % 8))
        .collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(tile.len());
        out.extend_from_slice(&tile[..n]);
    }
    out
}

/// Picks one of `n` things (`n > 0`); shrinks toward the first.
#[derive(Debug, Clone, Copy)]
struct Pick(u16);

impl Pick {
    fn index(self, n: usize) -> usize {
        usize::from(self.0) % n
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Allocate about `size` bytes (rounded up to whole elements) aligned to 2^`align_log2`.
    Alloc { size: usize, align_log2: u32 },
    /// Free (drop) the k-th live object.
    Free { k: Pick },
    /// Write a pattern into elements [from, to) of the k-th live object.
    Write {
        k: Pick,
        from: Pick,
        to: Pick,
        seed: u8,
    },
    /// Read elements [from, to) of the k-th live object back.
    Read { k: Pick, from: Pick, to: Pick },
}

fn size_strategy() -> impl Strategy<Value = usize> {
    let cap = CAPACITY as usize;
    prop_oneof![
        8 => 0usize..=64,
        8 => 65usize..=4096,
        4 => 4097usize..=65_536,
        3 => (256usize << 10)..=(640 << 10),
        1 => (cap - (16 << 10))..=(cap + (4 << 10)),
        1 => (cap + 1)..=(4 * cap),
        1 => (isize::MAX as usize / 4)..=(isize::MAX as usize / 2),
    ]
}

fn align_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 0u32..=4,
        4 => 5u32..=12,
        1 => Just(13u32), // 8192: more than MAX_ALIGN
    ]
}

prop_compose! {
    fn pick()(n in any::<u16>()) -> Pick {
        Pick(n)
    }
}

prop_compose! {
    fn alloc_op()(size in size_strategy(), align_log2 in align_strategy()) -> Op {
        Op::Alloc { size, align_log2 }
    }
}

prop_compose! {
    fn write_op()(k in pick(), from in pick(), to in pick(), seed in any::<u8>()) -> Op {
        Op::Write { k, from, to, seed }
    }
}

prop_compose! {
    fn read_op()(k in pick(), from in pick(), to in pick()) -> Op {
        Op::Read { k, from, to }
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => alloc_op(),
        3 => pick().prop_map(|k| Op::Free { k }),
        2 => write_op(),
        1 => read_op(),
    ]
}

/// A live object and what the model says about it.
struct Live {
    obj: Box<dyn Obj>,
    /// The bytes it must hold.
    expect: Vec<u8>,
    /// The arena bytes its block took (the growth of `bytes_in_use` when it was made); 0
    /// for a slot.
    block: u64,
    /// Whether it is a slot of a slab.
    slot: bool,
}

/// The model, and the real arena it is compared with.
struct World {
    arena: Arena,
    live: Vec<Live>,
    /// Bytes from the heap's start to the capacity: the tail of an empty arena.
    span: u64,
    base_allocations: u64,
    allocations: u64,
    frees: u64,
    /// Fresh objects that were large (>= 256 KiB), failures seen, for the summary.
    large: u64,
    failures: u64,
}

/// Elements [from, to) of an object of `len` elements, never empty unless `len` is 0.
fn range(len: usize, from: Pick, to: Pick) -> Range<usize> {
    if len == 0 {
        return 0..0;
    }
    let start = from.index(len);
    start..start + 1 + to.index(len - start)
}

impl World {
    fn new() -> World {
        let arena = Arena::with_capacity(CAPACITY).unwrap();
        assert_eq!(arena.capacity(), CAPACITY);
        // An empty arena's tail is everything after the header: a request for the whole
        // capacity cannot fit, and the error says how much could.
        let span = match RawArray::<u8>::zeroed_in(&arena, CAPACITY as usize) {
            Err(Error::OutOfMemory {
                available,
                capacity,
                ..
            }) => {
                assert_eq!(capacity, CAPACITY);
                available
            }
            other => panic!(
                "the whole capacity cannot fit beside the header, yet: {:?}",
                other.map(|a| a.len())
            ),
        };
        assert!(
            span > CAPACITY - 64 * 1024 && span < CAPACITY,
            "the header takes {} bytes",
            CAPACITY - span
        );
        let base_allocations = arena.stats().unwrap().allocations;
        World {
            arena,
            live: Vec::new(),
            span,
            base_allocations,
            allocations: 0,
            frees: 0,
            large: 0,
            failures: 0,
        }
    }

    fn state(&self) -> (ArenaStats, HeapReport) {
        let stats = self.arena.stats().unwrap();
        let report = self
            .arena
            .check()
            .unwrap_or_else(|e| panic!("check() failed: {e}"));
        (stats, report)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Alloc { size, align_log2 } => self.alloc(*size, *align_log2)?,
            Op::Free { k } => {
                if !self.live.is_empty() {
                    let gone = self.live.swap_remove(k.index(self.live.len()));
                    // The last slot of a slab frees the slab's whole count with it.
                    let slab = slab_of(gone.obj.offset());
                    let last = gone.slot
                        && !self
                            .live
                            .iter()
                            .any(|l| l.slot && slab_of(l.obj.offset()) == slab);
                    let before = self.arena.stats().unwrap();
                    drop(gone.obj);
                    let after = self.arena.stats().unwrap();
                    prop_assert_eq!(
                        before.bytes_in_use - after.bytes_in_use,
                        gone.block + if last { SLAB } else { 0 }
                    );
                    self.frees += 1;
                }
            }
            Op::Write { k, from, to, seed } => {
                if !self.live.is_empty() {
                    let i = k.index(self.live.len());
                    let l = &mut self.live[i];
                    let (n, e) = (l.obj.len(), l.obj.elem());
                    let r = range(n, *from, *to);
                    let bytes = pattern(*seed, r.len() * e);
                    l.obj.write(r.start, &bytes);
                    l.expect[r.start * e..r.end * e].copy_from_slice(&bytes);
                }
            }
            Op::Read { k, from, to } => {
                if !self.live.is_empty() {
                    let l = &self.live[k.index(self.live.len())];
                    let (n, e) = (l.obj.len(), l.obj.elem());
                    let r = range(n, *from, *to);
                    let got = l.obj.read(r.clone());
                    prop_assert!(
                        got == l.expect[r.start * e..r.end * e],
                        "elements {:?} of the object at {} read back wrong",
                        r,
                        l.obj.offset()
                    );
                }
            }
        }
        Ok(())
    }

    fn alloc(&mut self, size: usize, align_log2: u32) -> Result<(), TestCaseError> {
        let align = 1usize << align_log2;
        let len = size.div_ceil(align);
        let bytes = (len * align) as u64;
        let (before, report) = self.state();
        let tail = self.span - before.heap_bytes;
        // The largest free block is at least the average one, and at most all of them.
        let avg_free = report
            .free_bytes
            .checked_div(report.free_blocks)
            .unwrap_or(0);
        let small = is_slot(bytes, align as u64);
        // Where no slab can be had, a small object is an ordinary block: it needs no more.
        let must_fit = align <= MAX_ALIGN && worst_case(bytes, align as u64) <= tail.max(avg_free);
        // A slot may come from a slab with room while the heap has none.
        let cannot_fit = !small && bytes.saturating_add(HEADER) > tail.max(report.free_bytes);
        match alloc(&self.arena, align_log2, len) {
            Ok(obj) => {
                let after = self.arena.stats().unwrap();
                prop_assert!(align <= MAX_ALIGN, "alignment {} was accepted", align);
                prop_assert!(
                    !cannot_fit,
                    "{} bytes were allocated with only {} in the tail and {} free",
                    bytes,
                    tail,
                    report.free_bytes
                );
                prop_assert_eq!(obj.offset() % align as u64, 0, "misaligned");
                prop_assert_eq!(obj.len(), len);
                let grew = after.bytes_in_use - before.bytes_in_use;
                // A small object is a slot (its slab already counted, or a new one counted
                // whole) unless no slab could be had: then its block is what it took.
                let slot = small && (grew == 0 || grew == SLAB);
                prop_assert!(
                    slot || !small || (grew > 0 && grew <= bytes + HEADER + MIN_BLOCK),
                    "a small object took {}",
                    grew
                );
                let block = if slot {
                    let slab = slab_of(obj.offset());
                    let holds = self
                        .live
                        .iter()
                        .any(|l| l.slot && slab_of(l.obj.offset()) == slab);
                    prop_assert_eq!(grew == 0, holds, "a slab counted whole once");
                    0
                } else {
                    grew
                };
                prop_assert!(
                    slot || (block >= bytes + HEADER && block <= bytes + HEADER + MIN_BLOCK),
                    "{} bytes took a block of {}",
                    bytes,
                    block
                );
                let fresh = obj.read(0..len);
                prop_assert!(
                    fresh == vec![0u8; bytes as usize],
                    "a fresh object of {} bytes at {} is not zero",
                    bytes,
                    obj.offset()
                );
                self.allocations += 1;
                self.large += u64::from(bytes >= 256 << 10);
                self.live.push(Live {
                    obj,
                    expect: vec![0; bytes as usize],
                    block,
                    slot,
                });
            }
            Err(err) => {
                self.failures += 1;
                prop_assert!(
                    !must_fit,
                    "{} bytes aligned to {} must fit ({} in the tail, {} free in {} blocks): {}",
                    bytes,
                    align,
                    tail,
                    report.free_bytes,
                    report.free_blocks,
                    err
                );
                if align > MAX_ALIGN {
                    let is_alignment = matches!(err, Error::Alignment { align: a, max } if a == align && max == MAX_ALIGN);
                    prop_assert!(is_alignment, "{}", err);
                } else {
                    match err {
                        Error::OutOfMemory {
                            requested,
                            available,
                            capacity,
                        } => {
                            prop_assert_eq!(capacity, CAPACITY);
                            prop_assert_eq!(available, tail, "the tail reported");
                            prop_assert!(requested >= bytes + HEADER, "requested {}", requested);
                            prop_assert!(requested > available);
                        }
                        other => prop_assert!(false, "wrong error for {} bytes: {}", bytes, other),
                    }
                }
                // A failed allocation changes nothing.
                let (after, report_after) = self.state();
                prop_assert_eq!(after, before);
                prop_assert_eq!(report_after, report);
            }
        }
        Ok(())
    }

    /// Compares the arena with the model.
    fn verify(&self) -> Result<(), TestCaseError> {
        let (stats, report) = self.state();
        let n = self.live.len() as u64;
        prop_assert_eq!(stats.capacity, CAPACITY);
        prop_assert_eq!(stats.live_allocations, n);
        prop_assert_eq!(stats.allocations - self.base_allocations, self.allocations);
        prop_assert_eq!(stats.frees, self.frees);
        let in_blocks = self.live.iter().filter(|l| !l.slot);
        let sizes: u64 = in_blocks.clone().map(|l| l.expect.len() as u64).sum();
        let n_blocks = in_blocks.count() as u64;
        let blocks: u64 = self.live.iter().map(|l| l.block).sum();
        let mut slabs: Vec<u64> = self
            .live
            .iter()
            .filter(|l| l.slot)
            .map(|l| slab_of(l.obj.offset()))
            .collect();
        slabs.sort_unstable();
        slabs.dedup();
        let slab_bytes = slabs.len() as u64 * SLAB;
        prop_assert!(stats.bytes_in_use >= sizes + n_blocks * HEADER + slab_bytes);
        prop_assert_eq!(stats.bytes_in_use, blocks + slab_bytes);
        // Stats gives empty slabs back, and the slab map with the last one: what is spare
        // is the map's block while a slab lives (its size may keep a remainder too small
        // to split), nothing otherwise.
        if slabs.is_empty() {
            prop_assert_eq!(stats.slab_spare_bytes, 0, "stats gives empty slabs back");
        } else {
            prop_assert!(
                stats.slab_spare_bytes >= SLAB_MAP && stats.slab_spare_bytes < SLAB_MAP + MIN_BLOCK,
                "spare slab bytes {} beside {} slabs: only the slab map's block",
                stats.slab_spare_bytes,
                slabs.len()
            );
        }
        prop_assert!(stats.heap_bytes >= stats.bytes_in_use);
        prop_assert!(stats.heap_bytes <= self.span);
        let start = CAPACITY - self.span;
        prop_assert!(stats.reserved_bytes >= start + stats.heap_bytes);
        prop_assert!(stats.reserved_bytes <= CAPACITY);
        prop_assert_eq!(report.used_blocks, n);
        prop_assert_eq!(report.used_bytes, stats.bytes_in_use);
        prop_assert_eq!(report.heap_bytes, stats.heap_bytes);
        prop_assert_eq!(
            report.used_bytes + report.free_bytes + report.slab_spare_bytes,
            report.heap_bytes
        );
        // No two objects overlap: their byte ranges (at least one byte each) are disjoint.
        let mut spans: Vec<(u64, u64)> = self
            .live
            .iter()
            .map(|l| {
                (
                    l.obj.offset(),
                    l.obj.offset() + (l.expect.len() as u64).max(1),
                )
            })
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            prop_assert!(
                w[0].1 <= w[1].0,
                "objects {:?} and {:?} overlap",
                w[0],
                w[1]
            );
        }
        for l in &self.live {
            prop_assert!(
                l.obj.read(0..l.obj.len()) == l.expect,
                "the object at {} ({} bytes) lost its contents",
                l.obj.offset(),
                l.expect.len()
            );
        }
        Ok(())
    }

    /// Frees everything; then half the capacity must be allocatable again.
    fn finish(mut self) -> Result<(u64, u64), TestCaseError> {
        self.frees += self.live.len() as u64;
        self.live.clear();
        self.verify()?;
        let (stats, report) = self.state();
        prop_assert_eq!((stats.bytes_in_use, stats.heap_bytes), (0, 0));
        prop_assert_eq!(report.free_blocks, 0);
        let half = (CAPACITY / 2) as usize;
        let obj = alloc(&self.arena, 12, half / MAX_ALIGN).map_err(|e| {
            TestCaseError::fail(format!("half the capacity after freeing all: {e}"))
        })?;
        prop_assert!(obj.read(0..obj.len()) == vec![0u8; half]);
        drop(obj);
        prop_assert_eq!(self.arena.stats().unwrap().heap_bytes, 0);
        Ok((self.large, self.failures))
    }
}

fn run(ops: &[Op]) -> Result<(u64, u64), TestCaseError> {
    let mut world = World::new();
    for (i, op) in ops.iter().enumerate() {
        world
            .apply(op)
            .and_then(|()| world.verify())
            .map_err(|e| TestCaseError::fail(format!("step {i} ({op:?}): {e}")))?;
    }
    world.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn allocator_matches_the_model(ops in prop::collection::vec(op_strategy(), 1..=MAX_OPS)) {
        run(&ops)?;
    }
}

/// The model's reasoning on a fixed sequence, so that a change of the generators cannot
/// quietly stop exercising it: every alignment, large blocks freed between live neighbours
/// (their pages punched) and reused, a full arena, and sizes over the capacity.
#[test]
fn a_fixed_sequence_exercises_every_path() {
    let first = Pick(0);
    let mut ops = Vec::new();
    for align_log2 in 0..=13 {
        ops.push(Op::Alloc {
            size: 100,
            align_log2,
        });
        ops.push(Op::Write {
            k: Pick(align_log2 as u16),
            from: first,
            to: Pick(u16::MAX),
            seed: align_log2 as u8,
        });
    }
    // Two large blocks between live neighbours; the first is freed (punched), then reused.
    ops.push(Op::Alloc {
        size: 300 << 10,
        align_log2: 0,
    });
    ops.push(Op::Write {
        k: Pick(13),
        from: first,
        to: Pick(u16::MAX),
        seed: 77,
    });
    ops.push(Op::Alloc {
        size: 40,
        align_log2: 3,
    });
    ops.push(Op::Alloc {
        size: 500 << 10,
        align_log2: 12,
    });
    ops.push(Op::Alloc {
        size: 40,
        align_log2: 3,
    });
    ops.push(Op::Free { k: Pick(13) });
    ops.push(Op::Alloc {
        size: 100 << 10,
        align_log2: 6,
    });
    ops.push(Op::Read {
        k: Pick(17),
        from: first,
        to: Pick(u16::MAX),
    });
    // Fill the rest with large blocks until they fail, then over-capacity requests.
    for _ in 0..6 {
        ops.push(Op::Alloc {
            size: 400 << 10,
            align_log2: 4,
        });
    }
    ops.push(Op::Alloc {
        size: CAPACITY as usize,
        align_log2: 0,
    });
    ops.push(Op::Alloc {
        size: 3 * CAPACITY as usize,
        align_log2: 12,
    });
    let (large, failures) = run(&ops).unwrap_or_else(|e| panic!("{e}"));
    assert!(large >= 4, "{large} large objects");
    // 8192-byte alignment, the two over-capacity requests, and at least one 400 KiB block.
    assert!(failures >= 4, "{failures} failures");
}

/// A small object made when the heap is nearly full (one object of 2 087 644 bytes in this
/// 2 MiB arena). Found by a random case of `allocator_matches_the_model` (its seed is in
/// `model.proptest-regressions`): the slab's allocation, out of room, swept empty slabs,
/// which gave back the slab map made for it a moment before (it marked no slab yet); the
/// slab's bit was then set in freed memory, and `check()` failed ("no object starts at
/// offset 2088960") with 4160 bytes counted in use. A slab is now allocated without that
/// sweep.
#[test]
fn a_small_object_next_to_a_nearly_full_heap_keeps_the_arena_sound() {
    let w = World::new();
    let big = alloc(&w.arena, 2, 2087644 / 4).unwrap();
    let before = w.arena.stats().unwrap().bytes_in_use;
    let small = alloc(&w.arena, 4, 2).unwrap();
    let grew = w.arena.stats().unwrap().bytes_in_use - before;
    let checked = w.arena.check();
    drop((small, big));
    assert!(
        checked.is_ok(),
        "{checked:?} (the small object took {grew} bytes)"
    );
}
