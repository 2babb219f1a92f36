//! One input of the `segment` fuzz target, decoded and run: a damaged arena segment and a
//! script of operations on it.
//!
//! Shared, as one copy, by the fuzz target (`fuzz/fuzz_targets/segment.rs`, which includes
//! this file by path) and by its stable replay (`tests/fuzz_corpus.rs`). The format is
//! documented in `fuzz/README.md`:
//!
//! ```text
//! input := class:u8  prefix_len:u16le  prefix[prefix_len]  op*
//! op    := code:u8  operands (fixed per code; missing bytes read as 0)
//! ```
//!
//! Every iteration creates the POSIX shared-memory file `/dev/shm/<name>` afresh with
//! [`SIZES`]`[class % 8]` zero bytes, writes `prefix` at offset 0, then runs the ops in
//! order. [`op::POKE`] and [`op::POKE_WORD`] write into the file: before the first
//! [`op::OPEN`] they complete the image (the seeds put a realistic arena there that way),
//! after it they play another process scribbling over a segment this one has open. Every
//! library call must return `Ok` or `Err`: a panic, a crash, a hang or an object handed
//! out beyond the mapping is a finding.
#![allow(dead_code)] // the fuzz target does not use the seed builders

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shared_runtime::arena::ObjectKind;
use shared_runtime::handle::Handle;
use shared_runtime::{Arena, Error, RawArray, RawValue, SharedStruct, SharedType};

/// Segment lengths, chosen by the first input byte: realistic arenas are 1 MiB (class 0);
/// the others are other valid sizes, a length that is not a page multiple, one too small
/// for a header, and an empty file.
pub const SIZES: [u64; 8] = [
    1 << 20,
    64 << 10,
    256 << 10,
    2 << 20,
    (1 << 20) + 40,
    4096,
    1000,
    0,
];

/// How long an allocator call waits for a lock word naming a live thread (garbage the
/// fuzzer wrote there): long enough to take the waiting path, short enough to fuzz.
pub const PATIENCE: Duration = Duration::from_millis(1);

/// Most arenas, and most objects of each kind, an input holds at once.
const MAX_ARENAS: usize = 3;
const MAX_OBJECTS: usize = 64;
/// Reads of an object's contents stop after this many elements.
const READ_LIMIT: usize = 4096;
/// Operations run per input, at most.
const MAX_OPS: usize = 512;

/// Operation codes (the code byte is taken modulo [`op::COUNT`]). Operands are listed as
/// `name:type`; `a` selects an open arena, `j` an object of the kind the op uses, `name` a
/// name (see [`name`]).
pub mod op {
    /// `a:u8` — `id()`, `name()`, `capacity()`, `Debug` (code 0, which runs of zero
    /// bytes decode to, is a cheap one).
    pub const INFO: u8 = 0;
    /// `a:u8` — drops that arena handle (objects keep their own).
    pub const CLOSE: u8 = 1;
    /// `a:u8` — `check()`, and if it passes, `stats()` must agree with it.
    pub const CHECK: u8 = 2;
    /// `a:u8` — `stats()`.
    pub const STATS: u8 = 3;
    /// `a:u8` — `names()`.
    pub const NAMES: u8 = 4;
    /// `a:u8` — `reclaim_dead()`.
    pub const RECLAIM: u8 = 5;
    /// `sel:u8` — `Arena::open_segment` of the segment; keeps up to three arenas (then
    /// replaces arena `sel`).
    pub const OPEN: u8 = 6;
    /// `a:u8 n:u16` — `RawArray::<u8>::zeroed_in(n)`.
    pub const ALLOC: u8 = 7;
    /// `a:u8 n:u32` — `RawArray::<u8>::zeroed_in(n % 4 MiB)`.
    pub const ALLOC_BIG: u8 = 8;
    /// `a:u8 kind:u8 n:u8` — an over-aligned array: `n % 4` cache lines (align 64) or, if
    /// `kind` is odd, `n % 2` pages (align 4096).
    pub const ALLOC_ALIGNED: u8 = 9;
    /// `j:u8` — drops (frees) an owned byte array.
    pub const FREE: u8 = 10;
    /// `j:u8` — drops an over-aligned array.
    pub const FREE_ALIGNED: u8 = 11;
    /// `j:u8` — `into_offset()` of an owned byte array; the offset is kept.
    pub const INTO_OFFSET: u8 = 12;
    /// `a:u8 k:u8 len:u16` — `RawArray::<u8>::from_offset_in` of a kept offset.
    pub const FROM_OFFSET: u8 = 13;
    /// `a:u8 off:u32 len:u16` — `RawArray::<u8>::from_offset_in` of any offset.
    pub const FROM_RAW_OFFSET: u8 = 14;
    /// `j:u8 a:u8` — a byte array's handle: text round trip, then `open_handle` in `a`.
    pub const HANDLE: u8 = 15;
    /// `j:u8` — `into_handle()` of an owned byte array; the handle is kept.
    pub const INTO_HANDLE: u8 = 16;
    /// `a:u8 k:u8` — `open_handle` of a kept handle (taking ownership if it carries it).
    pub const OPEN_HANDLE: u8 = 17;
    /// `a:u8 off:u32 len:u16 flags:u8` — `open_handle` of a handle made up in `a`:
    /// flags bit 0 array, 1 owned, 2 wrong fingerprint, 3 wrong arena id, 4 opened as the
    /// other kind (value or array).
    pub const FORGE_HANDLE: u8 = 18;
    /// `a:u8 n:u8 text[n]` — parses the text as a `Handle` and opens it.
    pub const HANDLE_TEXT: u8 = 19;
    /// `a:u8 name v:u8` — `create::<u64>`.
    pub const CREATE: u8 = 20;
    /// `a:u8 name` — `open::<u64>`.
    pub const OPEN_VALUE: u8 = 21;
    /// `a:u8 name v:u8` — `find_or_create::<u64>`.
    pub const FIND_OR_CREATE: u8 = 22;
    /// `a:u8 name n:u8` — `create_array::<u32>` of `0..n`.
    pub const CREATE_ARRAY: u8 = 23;
    /// `a:u8 name` — `open_array::<u32>`.
    pub const OPEN_ARRAY: u8 = 24;
    /// `a:u8 name n:u8` — `find_or_create_array::<u32>` of `0..n`.
    pub const FIND_OR_CREATE_ARRAY: u8 = 25;
    /// `a:u8 name t:u8` — opens the name as another type: `f64`, `[u8]` or `[Line]`.
    pub const OPEN_OTHER: u8 = 26;
    /// `a:u8 name` — `remove`.
    pub const REMOVE: u8 = 27;
    /// `off:u32 n:u8 bytes[n]` — writes bytes into the segment at `off % len`.
    pub const POKE: u8 = 28;
    /// `w:u16 value:u64` — writes one word at `8 * w` (the header and first blocks).
    pub const POKE_WORD: u8 = 29;
    /// `j:u8` — reads objects of every kind and writes their first and last elements back.
    pub const TOUCH: u8 = 30;
    /// Drops every object (owned ones are freed).
    pub const DROP_ALL: u8 = 31;
    /// `j:u8 who:u8` — rewrites the owner of byte array `j`'s block, keeping its check
    /// value: nobody, init, a dead pid, the directory, or this process (`who % 5`).
    pub const POKE_OWNER: u8 = 32;
    /// Writes this thread's own identity into the allocator's lock word, as a process that
    /// read it from `/proc` could.
    pub const POKE_LOCK_SELF: u8 = 33;
    /// `j:u8` — `into_offset()` of a view this process does not own (refused).
    pub const INTO_OFFSET_VIEW: u8 = 34;
    /// Number of codes.
    pub const COUNT: u8 = 35;
}

/// Names of named objects. A selector byte below `0xf0` picks one of these; any other is
/// followed by `n:u8` and `n` bytes of name (lossy UTF-8: empty or too long names too).
pub const NAME_TABLE: [&str; 16] = [
    "a", "b", "hits", "config", "o0", "o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "o9", "xs",
    "v",
];

/// A cache line: over-aligned objects take the allocator's alignment path.
#[derive(SharedStruct, Clone, Copy)]
#[repr(C, align(64))]
pub struct Line {
    /// The words.
    pub w: [u64; 8],
}

/// A page, at the arena's largest alignment.
#[derive(SharedStruct, Clone, Copy)]
#[repr(C, align(4096))]
pub struct Page {
    /// The words.
    pub w: [u64; 512],
}

/// What one input did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Operations decoded and run.
    pub ops: u64,
    /// Library calls that returned `Ok`.
    pub ok: u64,
    /// Library calls that returned `Err`.
    pub err: u64,
    /// Of those, `Error::AllocatorBusy` (a lock word naming a live thread).
    pub busy: u64,
    /// `Arena::open_segment` calls that succeeded.
    pub opened: u64,
    /// `Arena::open_segment` calls that were refused.
    pub refused: u64,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, o: Outcome) {
        self.ops += o.ops;
        self.ok += o.ok;
        self.err += o.err;
        self.busy += o.busy;
        self.opened += o.opened;
        self.refused += o.refused;
    }
}

/// The shared-memory name the inputs of this process are written to: unique per process
/// (`shr-fuzz-<pid>-<n>`). The file exists only while an input runs; it is removed at the
/// end of each run, on unwinding, and by [`Segment::new`] of a later process if a crash
/// left it behind.
pub struct Segment {
    name: String,
}

const PREFIX: &str = "shr-fuzz-";

impl Segment {
    /// A new segment name for this process; removes those left by dead processes.
    pub fn new() -> Segment {
        static N: AtomicU32 = AtomicU32::new(0);
        remove_stale_segments();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Segment { name }
    }

    /// The segment's name, for `Arena::open_segment`.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self) -> PathBuf {
        shm_path(&self.name)
    }

    /// Removes the file, if it exists (from a panic hook too).
    pub fn unlink(&self) {
        let _ = std::fs::remove_file(self.path());
    }

    /// Runs one input. Panics on a finding.
    pub fn run(&self, data: &[u8]) -> Outcome {
        Arena::set_allocator_patience(PATIENCE);
        struct Unlink<'a>(&'a Segment);
        impl Drop for Unlink<'_> {
            fn drop(&mut self) {
                self.0.unlink();
            }
        }
        let _unlink = Unlink(self);
        let mut input = Input { data, at: 0 };
        let len = SIZES[usize::from(input.u8() % 8)];
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.path())
            .expect("create the segment file");
        file.set_len(len).expect("size the segment file");
        let prefix_len = usize::from(input.u16());
        let prefix = input.bytes(prefix_len);
        let n = prefix.len().min(len as usize);
        file.write_all_at(&prefix[..n], 0).expect("write the image");
        let mut state = State {
            seg: self,
            file,
            len,
            out: Outcome::default(),
            verified: false,
            arenas: Vec::new(),
            bytes: Vec::new(),
            aligned: Vec::new(),
            pages: Vec::new(),
            values: Vec::new(),
            words: Vec::new(),
            views: Vec::new(),
            offsets: Vec::new(),
            handles: Vec::new(),
        };
        while !input.done() && (state.out.ops as usize) < MAX_OPS {
            state.out.ops += 1;
            state.step(&mut input);
        }
        // Objects first (owned ones free themselves), then the arenas.
        let out = state.out;
        drop(state);
        out
    }
}

impl Default for Segment {
    fn default() -> Self {
        Segment::new()
    }
}

fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/{name}"))
}

/// Removes `shr-fuzz-<pid>-*` files of processes that no longer exist.
fn remove_stale_segments() {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The input, read front to back; past its end every read is zero.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.at.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.at = end;
        &self.data[start..end]
    }

    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    fn uint<const N: usize>(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let b = self.bytes(N);
        buf[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(buf)
    }

    fn u16(&mut self) -> u16 {
        self.uint::<2>() as u16
    }

    fn u32(&mut self) -> u32 {
        self.uint::<4>() as u32
    }

    fn u64(&mut self) -> u64 {
        self.uint::<8>()
    }
}

/// Decodes a name selector (see [`NAME_TABLE`]).
fn name(input: &mut Input<'_>) -> String {
    let sel = input.u8();
    if sel < 0xf0 {
        return NAME_TABLE[usize::from(sel) % NAME_TABLE.len()].to_string();
    }
    let n = usize::from(input.u8());
    String::from_utf8_lossy(input.bytes(n)).into_owned()
}

struct State<'s> {
    seg: &'s Segment,
    file: std::fs::File,
    len: u64,
    out: Outcome,
    /// `check()` passed and nobody has written into the segment since: the heap is valid,
    /// and the crate's own operations must keep it so.
    verified: bool,
    arenas: Vec<Arena>,
    /// Byte arrays this process owns.
    bytes: Vec<RawArray<u8>>,
    aligned: Vec<RawArray<Line>>,
    pages: Vec<RawArray<Page>>,
    /// Named values, and named arrays: views the arena owns.
    values: Vec<RawValue<u64>>,
    words: Vec<RawArray<u32>>,
    /// Byte arrays opened from handles or offsets (owned or borrowed).
    views: Vec<RawArray<u8>>,
    offsets: Vec<(u64, usize)>,
    handles: Vec<Handle>,
}

/// Where objects may start: past the arena header and the first block header.
fn first_payload() -> u64 {
    shared_runtime::test_hooks::layout_for_tests().2 + 16
}

/// The object of `len` elements of `T` at `offset` lies inside its arena's mapping, past
/// the header, and is aligned: anything else would let safe code read or write outside
/// the mapping or misaligned.
fn assert_in_bounds<T>(arena: &Arena, offset: u64, len: usize, what: &str) {
    let bytes = (len as u64).checked_mul(std::mem::size_of::<T>() as u64);
    let end = bytes.and_then(|b| offset.checked_add(b));
    assert!(
        offset >= first_payload()
            && end.is_some_and(|e| e <= arena.capacity())
            && offset % std::mem::align_of::<T>() as u64 == 0,
        "{what}: object at offset {offset} of {len} x {} bytes (align {}) does not fit an \
         arena of {} bytes",
        std::mem::size_of::<T>(),
        std::mem::align_of::<T>(),
        arena.capacity()
    );
}

fn pick<T>(v: &[T], sel: u8) -> Option<usize> {
    (!v.is_empty()).then(|| usize::from(sel) % v.len())
}

fn push<T>(v: &mut Vec<T>, x: T) {
    if v.len() >= MAX_OBJECTS {
        v.swap_remove(0);
    }
    v.push(x);
}

impl State<'_> {
    /// Counts a result; formats errors (their `Display` must not panic either).
    fn note<T>(&mut self, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(x) => {
                self.out.ok += 1;
                Some(x)
            }
            Err(e) => {
                self.out.err += 1;
                if matches!(e, Error::AllocatorBusy { .. }) {
                    self.out.busy += 1;
                }
                std::hint::black_box(e.to_string());
                None
            }
        }
    }

    fn arena(&self, sel: u8) -> Option<Arena> {
        pick(&self.arenas, sel).map(|i| self.arenas[i].clone())
    }

    fn keep_bytes(&mut self, a: RawArray<u8>, owned: bool, what: &str) {
        assert_in_bounds::<u8>(a.arena(), a.offset(), a.len(), what);
        touch_array(&a);
        if owned {
            push(&mut self.bytes, a);
        } else {
            push(&mut self.views, a);
        }
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let code = input.u8() % op::COUNT;
        let verified = self.verified;
        self.apply(code, input);
        // From a heap that `check()` found valid, with no foreign writes since, the crate's
        // operations (successful or not) leave a valid heap.
        if verified && self.verified && code != op::CHECK {
            if let Some(a) = self.arenas.first() {
                if let Err(e) = a.check() {
                    panic!("op {code} broke a verified heap: {e}");
                }
            }
        }
    }

    /// The allocator on a verified heap may run out of memory, never find it corrupted.
    fn note_alloc<T>(&mut self, r: Result<T, Error>, what: &str) -> Option<T> {
        if self.verified {
            if let Err(e @ Error::Corrupted(_)) = &r {
                panic!("{what} on a verified heap: {e}");
            }
        }
        self.note(r)
    }

    fn apply(&mut self, code: u8, input: &mut Input<'_>) {
        match code {
            op::OPEN => {
                let sel = input.u8();
                match Arena::open_segment(self.seg.name()) {
                    Ok(a) => {
                        self.out.opened += 1;
                        self.out.ok += 1;
                        if self.arenas.len() < MAX_ARENAS {
                            self.arenas.push(a);
                        } else {
                            let i = usize::from(sel) % MAX_ARENAS;
                            self.arenas[i] = a;
                        }
                    }
                    Err(e) => {
                        self.out.refused += 1;
                        self.note::<()>(Err(e));
                    }
                }
            }
            op::CLOSE => {
                if let Some(i) = pick(&self.arenas, input.u8()) {
                    self.arenas.remove(i);
                }
            }
            op::CHECK => {
                if let Some(a) = self.arena(input.u8()) {
                    self.verified = false;
                    if let Some(report) = self.note(a.check()) {
                        // Nothing ran in between: the counters `check` verified are the
                        // ones `stats` reads. (How they split between objects and cached
                        // blocks may differ: `check` reads the blocks' tags, `stats` the
                        // table of caches, which pokes may have damaged.)
                        if let Some(stats) = self.note(a.stats()) {
                            assert_eq!(
                                report.used_blocks + report.cached_blocks,
                                stats.live_allocations + stats.cached_blocks
                            );
                            assert_eq!(
                                report.used_bytes + report.cached_bytes,
                                stats.bytes_in_use + stats.cached_bytes
                            );
                            assert_eq!(report.heap_bytes, stats.heap_bytes);
                            // `check` reads only the first 4 KiB of the unused tail, and
                            // the allocator takes the never-reserved rest to be zero: the
                            // heap counts as verified if everything past its end is.
                            let top = first_payload() - 16 + stats.heap_bytes;
                            self.verified = self.zero_between(top, self.len);
                        }
                    }
                }
            }
            op::STATS => {
                if let Some(a) = self.arena(input.u8()) {
                    if let Some(s) = self.note(a.stats()) {
                        assert!(s.capacity == a.capacity() && s.reserved_bytes <= s.capacity);
                    }
                }
            }
            op::NAMES => {
                if let Some(a) = self.arena(input.u8()) {
                    self.note(a.names());
                }
            }
            op::RECLAIM => {
                if let Some(a) = self.arena(input.u8()) {
                    self.note(a.reclaim_dead());
                }
            }
            op::INFO => {
                if let Some(a) = self.arena(input.u8()) {
                    std::hint::black_box((a.id(), a.name(), a.capacity(), format!("{a:?}")));
                }
            }
            op::ALLOC | op::ALLOC_BIG => {
                let sel = input.u8();
                let n = if code == op::ALLOC {
                    usize::from(input.u16())
                } else {
                    input.u32() as usize % (4 << 20)
                };
                if let Some(a) = self.arena(sel) {
                    let made = RawArray::<u8>::zeroed_in(&a, n);
                    if let Some(x) = self.note_alloc(made, "zeroed_in") {
                        assert_eq!(x.len(), n);
                        self.keep_bytes(x, true, "zeroed_in");
                    }
                }
            }
            op::ALLOC_ALIGNED => {
                let (sel, kind, n) = (input.u8(), input.u8(), input.u8());
                if let Some(a) = self.arena(sel) {
                    if kind % 2 == 0 {
                        let n = usize::from(n % 4);
                        let made = RawArray::<Line>::zeroed_in(&a, n);
                        if let Some(x) = self.note_alloc(made, "zeroed_in::<Line>") {
                            assert_in_bounds::<Line>(&a, x.offset(), n, "zeroed_in::<Line>");
                            touch_array(&x);
                            push(&mut self.aligned, x);
                        }
                    } else {
                        let n = usize::from(n % 2);
                        let made = RawArray::<Page>::zeroed_in(&a, n);
                        if let Some(x) = self.note_alloc(made, "zeroed_in::<Page>") {
                            assert_in_bounds::<Page>(&a, x.offset(), n, "zeroed_in::<Page>");
                            touch_array(&x);
                            push(&mut self.pages, x);
                        }
                    }
                }
            }
            op::FREE => {
                if let Some(j) = pick(&self.bytes, input.u8()) {
                    drop(self.bytes.swap_remove(j));
                }
            }
            op::FREE_ALIGNED => {
                let sel = input.u8();
                if sel % 2 == 0 {
                    if let Some(j) = pick(&self.aligned, sel / 2) {
                        drop(self.aligned.swap_remove(j));
                    }
                } else if let Some(j) = pick(&self.pages, sel / 2) {
                    drop(self.pages.swap_remove(j));
                }
            }
            op::INTO_OFFSET => {
                if let Some(j) = pick(&self.bytes, input.u8()) {
                    let x = self.bytes.swap_remove(j);
                    let len = x.len();
                    if let Some(off) = self.note(x.into_offset()) {
                        push(&mut self.offsets, (off, len));
                    }
                }
            }
            op::FROM_OFFSET | op::FROM_RAW_OFFSET => {
                let sel = input.u8();
                let (off, len) = if code == op::FROM_OFFSET {
                    let k = input.u8();
                    let len = usize::from(input.u16());
                    match pick(&self.offsets, k) {
                        Some(k) => (self.offsets[k].0, self.offsets[k].1.min(len)),
                        None => (u64::from(k) * 16, len),
                    }
                } else {
                    (u64::from(input.u32()), usize::from(input.u16()))
                };
                if let Some(a) = self.arena(sel) {
                    if let Some(x) = self.note(RawArray::<u8>::from_offset_in(&a, off, len)) {
                        assert_eq!((x.offset(), x.len()), (off, len));
                        self.keep_bytes(x, true, "from_offset_in");
                    }
                }
            }
            op::HANDLE => {
                let (j, sel) = (input.u8(), input.u8());
                if let (Some(j), Some(a)) = (pick(&self.bytes, j), self.arena(sel)) {
                    let h = self.bytes[j].handle();
                    let text = h.to_string();
                    assert_eq!(text.parse::<Handle>().ok(), Some(h), "{text}");
                    if let Some(x) = self.note(RawArray::<u8>::open_handle(&a, &h)) {
                        self.keep_bytes(x, false, "open_handle");
                    }
                }
            }
            op::INTO_HANDLE => {
                if let Some(j) = pick(&self.bytes, input.u8()) {
                    let x = self.bytes.swap_remove(j);
                    if let Some(h) = self.note(x.into_handle()) {
                        assert!(h.owned && h.kind.is_array());
                        push(&mut self.handles, h);
                    }
                }
            }
            op::OPEN_HANDLE => {
                let (sel, k) = (input.u8(), input.u8());
                if let (Some(a), Some(k)) = (self.arena(sel), pick(&self.handles, k)) {
                    let h = self.handles[k];
                    self.open_handle(&a, &h, h.kind.is_array());
                }
            }
            op::FORGE_HANDLE => {
                let sel = input.u8();
                let (off, len, flags) = (input.u32(), input.u16(), input.u8());
                if let Some(a) = self.arena(sel) {
                    let array = flags & 1 != 0;
                    let right = if array {
                        <u8 as SharedType>::LAYOUT.fingerprint()
                    } else {
                        <u64 as SharedType>::LAYOUT.fingerprint()
                    };
                    let h = Handle {
                        arena: if flags & 8 != 0 { !a.id() } else { a.id() },
                        offset: u64::from(off),
                        len: if array { u64::from(len) } else { 1 },
                        fingerprint: if flags & 4 != 0 { !right } else { right },
                        kind: if array {
                            ObjectKind::RawArray
                        } else {
                            ObjectKind::RawValue
                        },
                        lock: 0,
                        owned: flags & 2 != 0,
                    };
                    self.open_handle(&a, &h, array != (flags & 16 != 0));
                }
            }
            op::HANDLE_TEXT => {
                let sel = input.u8();
                let n = usize::from(input.u8());
                let text = String::from_utf8_lossy(input.bytes(n)).into_owned();
                if let Some(h) = self.note(text.parse::<Handle>()) {
                    // The canonical spelling parses back to the same handle.
                    assert_eq!(h.to_string().parse::<Handle>().ok(), Some(h), "{text}");
                    if let Some(a) = self.arena(sel) {
                        self.open_handle(&a, &h, h.kind.is_array());
                    }
                }
            }
            op::CREATE | op::FIND_OR_CREATE => {
                let sel = input.u8();
                let (name, v) = (name(input), u64::from(input.u8()));
                if let Some(a) = self.arena(sel) {
                    let made = if code == op::CREATE {
                        self.note(a.create::<RawValue<u64>>(&name, v))
                    } else {
                        self.note(a.find_or_create::<RawValue<u64>>(&name, v))
                            .map(|(x, _)| x)
                    };
                    if let Some(x) = made {
                        self.keep_value(x, "create");
                    }
                }
            }
            op::OPEN_VALUE => {
                let sel = input.u8();
                let name = name(input);
                if let Some(a) = self.arena(sel) {
                    if let Some(x) = self.note(a.open::<RawValue<u64>>(&name)) {
                        self.keep_value(x, "open");
                    }
                }
            }
            op::CREATE_ARRAY | op::FIND_OR_CREATE_ARRAY => {
                let sel = input.u8();
                let (name, n) = (name(input), input.u8());
                let items: Vec<u32> = (0..u32::from(n)).collect();
                if let Some(a) = self.arena(sel) {
                    let made = if code == op::CREATE_ARRAY {
                        self.note(a.create::<RawArray<u32>>(&name, &items))
                    } else {
                        self.note(a.find_or_create::<RawArray<u32>>(&name, &items))
                            .map(|(x, _)| x)
                    };
                    if let Some(x) = made {
                        self.keep_words(x, "create_array");
                    }
                }
            }
            op::OPEN_ARRAY => {
                let sel = input.u8();
                let name = name(input);
                if let Some(a) = self.arena(sel) {
                    if let Some(x) = self.note(a.open::<RawArray<u32>>(&name)) {
                        self.keep_words(x, "open_array");
                    }
                }
            }
            op::OPEN_OTHER => {
                let sel = input.u8();
                let (name, t) = (name(input), input.u8());
                if let Some(a) = self.arena(sel) {
                    match t % 3 {
                        0 => {
                            if let Some(x) = self.note(a.open::<RawValue<f64>>(&name)) {
                                assert_in_bounds::<f64>(&a, x.offset(), 1, "open::<f64>");
                                x.set(x.get());
                            }
                        }
                        1 => {
                            if let Some(x) = self.note(a.open::<RawArray<u8>>(&name)) {
                                self.keep_bytes(x, false, "open_array::<u8>");
                            }
                        }
                        _ => {
                            if let Some(x) = self.note(a.open::<RawArray<Line>>(&name)) {
                                let what = "open_array::<Line>";
                                assert_in_bounds::<Line>(&a, x.offset(), x.len(), what);
                                touch_array(&x);
                            }
                        }
                    }
                }
            }
            op::REMOVE => {
                let sel = input.u8();
                let name = name(input);
                if let Some(a) = self.arena(sel) {
                    self.note(a.remove(&name));
                }
            }
            op::POKE => {
                let off = u64::from(input.u32());
                let n = usize::from(input.u8());
                let bytes = input.bytes(n);
                self.poke(off, bytes);
            }
            op::POKE_WORD => {
                let w = u64::from(input.u16());
                let value = input.u64();
                self.poke(w * 8, &value.to_le_bytes());
            }
            op::TOUCH => {
                let j = input.u8();
                if let Some(i) = pick(&self.bytes, j) {
                    touch_array(&self.bytes[i]);
                }
                if let Some(i) = pick(&self.views, j) {
                    touch_array(&self.views[i]);
                }
                if let Some(i) = pick(&self.words, j) {
                    touch_array(&self.words[i]);
                }
                if let Some(i) = pick(&self.values, j) {
                    let v = &self.values[i];
                    v.set(v.get());
                }
            }
            op::POKE_OWNER => {
                let (j, who) = (input.u8(), input.u8());
                if let Some(j) = pick(&self.bytes, j) {
                    let owner =
                        [0, 1, DEAD_PID, u32::MAX, std::process::id()][usize::from(who % 5)];
                    // Word 1 of the block header: the owner, then the check value.
                    let at = self.bytes[j].offset() - 8;
                    self.poke(at, &owner.to_le_bytes());
                }
            }
            op::POKE_LOCK_SELF => {
                if let Some(me) = thread_identity() {
                    let at = shared_runtime::test_hooks::layout_for_tests().0 as u64;
                    self.poke(at, &me.to_le_bytes());
                }
            }
            op::INTO_OFFSET_VIEW => {
                if let Some(j) = pick(&self.views, input.u8()) {
                    let x = self.views.swap_remove(j);
                    if let Some(off) = self.note(x.into_offset()) {
                        push(&mut self.offsets, (off, 0));
                    }
                }
            }
            op::DROP_ALL => {
                self.views.clear();
                self.values.clear();
                self.words.clear();
                self.bytes.clear();
                self.aligned.clear();
                self.pages.clear();
            }
            _ => unreachable!("op codes are taken modulo op::COUNT"),
        }
    }

    fn keep_value(&mut self, x: RawValue<u64>, what: &str) {
        assert_in_bounds::<u64>(x.arena(), x.offset(), 1, what);
        x.set(x.get());
        push(&mut self.values, x);
    }

    fn keep_words(&mut self, x: RawArray<u32>, what: &str) {
        assert_in_bounds::<u32>(x.arena(), x.offset(), x.len(), what);
        touch_array(&x);
        push(&mut self.words, x);
    }

    fn open_handle(&mut self, a: &Arena, h: &Handle, as_array: bool) {
        if as_array {
            if let Some(x) = self.note(RawArray::<u8>::open_handle(a, h)) {
                assert_eq!(x.len() as u64, h.len);
                self.keep_bytes(x, h.owned, "open_handle");
            }
        } else if let Some(x) = self.note(RawValue::<u64>::open_handle(a, h)) {
            self.keep_value(x, "open_handle::<u64>");
        }
    }

    /// Whether the segment's bytes `[from, to)` are all zero.
    fn zero_between(&self, from: u64, to: u64) -> bool {
        let mut buf = vec![0u8; to.saturating_sub(from).min(self.len) as usize];
        self.file.read_exact_at(&mut buf, from).is_ok() && buf.iter().all(|&b| b == 0)
    }

    /// Writes into the segment as another process would, never past its end (growing the
    /// file is harmless, shrinking it under a mapping is the documented `SIGBUS` risk).
    fn poke(&mut self, off: u64, bytes: &[u8]) {
        self.verified = false;
        if self.len == 0 {
            return;
        }
        let off = off % self.len;
        let n = bytes.len().min((self.len - off) as usize);
        self.file
            .write_all_at(&bytes[..n], off)
            .expect("write the segment");
    }
}

/// A process id that is never alive (above Linux's `PID_MAX_LIMIT`).
pub const DEAD_PID: u32 = 0x7fff_fff0;

/// This thread's identity as the crate's locks record it: the thread id, and the low 32
/// bits of the thread's start time (never 0) above it; both from `/proc/thread-self/stat`.
fn thread_identity() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let tid: u64 = stat.split(' ').next()?.parse().ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, start
    // time field 22.
    let rest = &stat[stat.rfind(')')? + 2..];
    let start: u64 = rest.split(' ').nth(19)?.parse().ok()?;
    Some((tid & 0x7fff_ffff) | u64::from((start as u32).max(1)) << 32)
}

/// Reads (a bounded part of) an array and writes its first and last elements back.
fn touch_array<T: SharedType>(x: &RawArray<T>) {
    std::hint::black_box(x.read(..x.len().min(READ_LIMIT)));
    if let Some(v) = x.get(0) {
        x.set(0, v);
    }
    if let Some(last) = x.len().checked_sub(1) {
        if let Some(v) = x.get(last) {
            x.set(last, v);
        }
    }
}

/// Runs `data` and turns a panic into an `Err` carrying its message (for the replay, which
/// reports every failing file rather than stopping at the first).
pub fn run_caught(seg: &Segment, data: &[u8]) -> Result<Outcome, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| seg.run(data))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Builds inputs: the seed writer's side of the format.
pub struct Builder {
    bytes: Vec<u8>,
}

impl Builder {
    /// An input whose segment has length class `class` and whose first bytes are `prefix`.
    pub fn new(class: u8, prefix: &[u8]) -> Builder {
        let n = u16::try_from(prefix.len()).expect("a prefix of at most 64 KiB");
        let mut bytes = vec![class];
        bytes.extend_from_slice(&n.to_le_bytes());
        bytes.extend_from_slice(prefix);
        Builder { bytes }
    }

    /// An input for a segment image: the image's first `dense` bytes (the header and
    /// allocator state) are the prefix, and the non-zero runs after them become pokes.
    pub fn image(class: u8, image: &[u8], dense: usize) -> Builder {
        let dense = dense.min(image.len());
        let mut b = Builder::new(class, &image[..dense]);
        let mut at = dense;
        while at < image.len() {
            if image[at] == 0 {
                at += 1;
                continue;
            }
            // A run ends after 16 zero bytes in a row (or 255 bytes).
            let mut end = at;
            let mut zeros = 0;
            while end < image.len() && end - at < 255 && zeros < 16 {
                zeros = if image[end] == 0 { zeros + 1 } else { 0 };
                end += 1;
            }
            let end = end - zeros;
            b = b.op(op::POKE).u32(at as u32).u8((end - at) as u8);
            b.bytes.extend_from_slice(&image[at..end]);
            at = end;
        }
        b
    }

    /// Appends an operation code.
    pub fn op(mut self, code: u8) -> Builder {
        self.bytes.push(code);
        self
    }

    /// Appends a byte operand.
    pub fn u8(mut self, v: u8) -> Builder {
        self.bytes.push(v);
        self
    }

    /// Appends a 16-bit operand.
    pub fn u16(mut self, v: u16) -> Builder {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a 32-bit operand.
    pub fn u32(mut self, v: u32) -> Builder {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a 64-bit operand.
    pub fn u64(mut self, v: u64) -> Builder {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends raw bytes (a custom name, handle text or poke data).
    pub fn raw(mut self, v: &[u8]) -> Builder {
        self.bytes.extend_from_slice(v);
        self
    }

    /// The input.
    pub fn build(self) -> Vec<u8> {
        self.bytes
    }
}
