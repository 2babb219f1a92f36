//! The kill storm, shared by `tests/kill_storm.rs` (at a size `cargo test` can afford, and
//! at full size behind `#[ignore]`) and `examples/kill_storm.rs` (full size, with figures).
//!
//! Four forked workers loop over locked updates and allocations while the parent `SIGKILL`s
//! a random one every 20–150 ms and starts a new one in its slot:
//!
//! - **three ledgers**, each a `total` and a per-slot `count` with an undo journal: a
//!   `Value<Counters, Lock>` in the global arena, an `Array<u64, Lock>` in a named arena
//!   (its journal a named object beside it, guarded by the array's lock), and a
//!   `Value<Counters, RLock>` whose lock is taken one to three times (by `acquire`, by
//!   `try_lock_for` retried, or by `try_lock` retried) before the value is
//!   (re-entrantly) acquired; now and then a worker takes all three, nested;
//! - **allocations and frees** of `RawValue`s, `RawArray`s of random sizes and `Value`s
//!   (one block: lock cell, then value) in the global arena and in the named arena, kept for a
//!   while, checked, freed; the parent reclaims the dead's blocks and checks both arenas
//!   every few kills.
//!
//! ## Exact counts across kills
//! A commit by the worker in slot `w` writes, in this order, each one aligned word (so a
//! kill lands between two stores, never inside one): the journal (old `total`, old
//! `count[w]`, old acknowledgement count), then `open = w + 1`, then `count[w] + 1`, then
//! `total + 1`, then the acknowledgement `acks[book][w] + 1` (in a separate `RawArray`: the
//! commit point), then `open = 0`. Whoever acquires a lock inside a `PoisonError` repairs
//! an open transaction: rolled forward if its acknowledgement was written, rolled back
//! otherwise. Every commit first asserts that no transaction is open (a dead holder the
//! lock failed to report) and that `count[w]` equals the acknowledgements; at the end
//! `total` must equal the sum of the acknowledgements, which a lost update, a torn
//! critical section or a wrong repair would all break.
//!
//! ## What the dead held
//! Each worker publishes how many blocks it holds in each arena, raising the figure
//! *before* allocating and lowering it *after* freeing, so the published figure is never
//! below the truth and at most one above it (every object is one block: a `Value` made
//! with its own lock holds it in its block). The parent adds up the figures of the workers
//! it killed; everything reclaimed must lie within `[sum - kills, sum]`, and after the final `reclaim_dead()` each arena must hold
//! exactly the parent's own objects.
//!
//! ## Waits
//! Each worker times every acquisition and publishes its longest wait; it also publishes
//! when it started waiting, so that the parent, which samples that between kills and just
//! before each kill, also sees a wait that never ended (a hang the storm would otherwise
//! hide by killing the waiter).

use std::fmt;
use std::sync::atomic::{compiler_fence, AtomicU32, Ordering::SeqCst};
use std::sync::{LockResult, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shared_runtime::{
    Arena, Array, Error, Lock, LockGuard, Process, RLock, RawArray, RawValue, Scope, ScopedProcess,
    SharedLock, SharedStruct, SyncGuard, Value,
};

/// Workers running at once.
pub const SLOTS: usize = 4;
/// The bound on any acquisition's wait (the requirement).
pub const MAX_WAIT: Duration = Duration::from_secs(1);
/// How long the parent waits for a child to end before calling it hung.
const PATIENCE: Duration = Duration::from_secs(60);
/// The environment variable that replays a run's random choices.
pub const SEED_ENV: &str = "KILL_STORM_SEED";
/// The named object holding the array ledger's journal, in the named arena.
const JOURNAL: &str = "slots-journal";

/// The undo journal of a ledger's transaction in flight.
#[derive(SharedStruct, Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Journal {
    /// 0 if no transaction is open, else 1 + the slot whose transaction is open.
    pub open: u64,
    /// `total` before the transaction.
    pub old_total: u64,
    /// The slot's `count` before the transaction.
    pub old_count: u64,
    /// The slot's acknowledgement count before the transaction.
    pub old_ack: u64,
}

/// A ledger kept in one shared struct.
#[derive(SharedStruct, Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Counters {
    /// Commits by all slots.
    pub total: u64,
    /// Commits per slot.
    pub count: [u64; SLOTS],
    /// The transaction in flight.
    pub journal: Journal,
}

/// The three ledgers.
const BOOKS: usize = 3;
const LEDGER: usize = 0;
const SLOTS_BOOK: usize = 1;
const TALLY: usize = 2;
const BOOK_NAMES: [&str; BOOKS] = [
    "ledger (Value<_, Lock>, global arena)",
    "slots (Array<u64, Lock>, named arena)",
    "tally (Value<_, RLock> re-entered, global arena)",
];
/// In the slots array: `count[w]` at `w`, `total` after them.
const SLOTS_TOTAL: usize = SLOTS;

/// The arenas objects are allocated in.
const GLOBAL: usize = 0;
const NAMED: usize = 1;
const ARENA_NAMES: [&str; 2] = ["global", "named"];

/// Per-slot figures, written only by the slot's current worker (and reset by the parent
/// between two workers); all in nanoseconds or counts.
const LONGEST_WAIT: usize = 0;
const WAITING_SINCE: usize = 1;
const ACQUIRES: usize = 2;
const POISONED: usize = 3;
const ROLLED_BACK: usize = 4;
const ROLLED_FORWARD: usize = 5;
const ALLOCS: usize = 6;
const FREES: usize = 7;
const LONGEST_ALLOC: usize = 8;
/// Blocks held, per arena (`HELD + GLOBAL`, `HELD + NAMED`).
const HELD: usize = 9;
const NSTATS: usize = 11;

/// Objects a worker keeps per arena at most.
const MAX_KEPT: usize = 12;

/// A run's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Stop after this many kills.
    pub kills: u64,
    /// Seeds every random choice (gaps, victims, operations, sizes).
    pub seed: u64,
    /// The gap between two kills, in milliseconds, drawn from this range.
    pub gap_ms: (u64, u64),
    /// Reclaim the dead's blocks and check both arenas after this many kills.
    pub reclaim_every: u64,
}

impl Config {
    /// `kills` kills 20–150 ms apart, seeded from [`SEED_ENV`] if set, else from the
    /// clock and the process id.
    ///
    /// # Panics
    /// If [`SEED_ENV`] is set but is not a number.
    pub fn new(kills: u64) -> Config {
        let seed = match std::env::var(SEED_ENV) {
            Ok(s) => s
                .parse()
                .unwrap_or_else(|_| panic!("{SEED_ENV}={s:?} is not a number")),
            Err(_) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
            }
        };
        Config {
            kills,
            seed,
            gap_ms: (20, 150),
            reclaim_every: 10,
        }
    }
}

/// A small xorshift64* generator: no dependency, and replayable from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        // splitmix64 spreads nearby seeds apart; xorshift needs a non-zero state.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// What a run did and found; every requirement has been asserted when it is returned.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The seed: [`SEED_ENV`] replays the run's random choices (not its timing).
    pub seed: u64,
    /// Workers killed by `SIGKILL`.
    pub kills: u64,
    /// Workers started (the first four and every restart).
    pub started: u64,
    /// Acknowledged commits per ledger (each equal to its `total`).
    pub commits: [u64; BOOKS],
    /// Lock acquisitions the workers made (a killed worker's last one may be missing).
    pub acquires: u64,
    /// Acquisitions that came inside a `PoisonError`.
    pub poisoned: u64,
    /// Open transactions rolled back by a worker.
    pub rolled_back: u64,
    /// Open transactions rolled forward by a worker (acknowledged before the kill).
    pub rolled_forward: u64,
    /// Open transactions the parent repaired after the storm.
    pub repaired_after: u64,
    /// The longest acquisition, ended or (seen by the parent) still waiting.
    pub longest_wait: Duration,
    /// The longest allocation or free (the arena's own lock included).
    pub longest_alloc: Duration,
    /// Allocations the workers made.
    pub allocs: u64,
    /// Frees the workers made.
    pub frees: u64,
    /// Blocks reclaimed from the dead during the storm, per arena.
    pub reclaimed_during: [u64; 2],
    /// Blocks reclaimed after the storm, per arena.
    pub reclaimed_after: [u64; 2],
    /// The sum of the killed workers' published holdings, per arena.
    pub held_by_dead: [u64; 2],
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kill storm, seed {} ({SEED_ENV} replays its random choices)",
            self.seed
        )?;
        writeln!(
            f,
            "  kills            {} ({} workers started)",
            self.kills, self.started
        )?;
        for (name, n) in BOOK_NAMES.iter().zip(self.commits) {
            writeln!(f, "  commits          {n:>8}  {name}")?;
        }
        writeln!(
            f,
            "  acquisitions     {} ({} poisoned)",
            self.acquires, self.poisoned
        )?;
        writeln!(
            f,
            "  repairs          {} rolled back, {} rolled forward, {} after the storm",
            self.rolled_back, self.rolled_forward, self.repaired_after
        )?;
        writeln!(f, "  longest wait     {:?}", self.longest_wait)?;
        writeln!(f, "  longest alloc    {:?}", self.longest_alloc)?;
        writeln!(
            f,
            "  objects          {} allocations, {} frees",
            self.allocs, self.frees
        )?;
        for a in [GLOBAL, NAMED] {
            writeln!(
                f,
                "  reclaimed        {} + {} blocks from the {} arena (the dead published {})",
                self.reclaimed_during[a],
                self.reclaimed_after[a],
                ARENA_NAMES[a],
                self.held_by_dead[a]
            )?;
        }
        write!(f, "  elapsed          {:.1?}", self.elapsed)
    }
}

/// Runs the storm described in the module doc and checks every requirement, panicking
/// with the seed and the broken requirement if one fails.
///
/// # Panics
/// If a requirement fails, a worker fails or hangs, or the system refuses a fork or
/// memory.
pub fn run(cfg: &Config) -> Report {
    println!(
        "kill storm: {} kills, seed {} ({SEED_ENV}={} replays its random choices)",
        cfg.kills, cfg.seed, cfg.seed
    );
    let started = Instant::now();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "kill-storm-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, SeqCst)
    );
    let _unlink = Unlink(name.clone());
    let global = Arena::global();
    let global_before = global.stats().unwrap().live_allocations;
    let mut report = {
        let named = Arena::create_segment(&name, 256 << 20).unwrap();
        let shared = Shared::new(cfg.seed, name.clone(), &named);
        storm(cfg, &shared, [global, &named])
    };
    // Everything the parent allocated is freed again, and the named arena's name is gone.
    let global_after = global.stats().unwrap().live_allocations;
    assert_eq!(
        global_after, global_before,
        "seed {}: the parent's own objects were not all freed",
        cfg.seed
    );
    assert!(
        matches!(Arena::open_segment(&name), Err(Error::NotFound { .. })),
        "seed {}: the named arena {name} outlived its last handle",
        cfg.seed
    );
    report.elapsed = started.elapsed();
    report
}

/// Removes the named arena's segment even if the run panics (the arena removes it when its
/// last handle goes, but a panic while workers hold it open must not leave it behind).
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Arena::remove_segment(&self.0);
    }
}

/// Everything the parent makes before the first fork; the workers inherit it.
struct Shared {
    seed: u64,
    /// Workers publish times as nanoseconds since this instant (the monotonic clock is the
    /// same in every process).
    epoch: Instant,
    /// The named arena's name: every worker opens it anew.
    name: String,
    ledger: Value<Counters, Lock>,
    slots: Array<u64, Lock>,
    /// The parent's view of the slots ledger's journal (workers open it by name).
    journal: RawValue<Journal>,
    tally: Value<Counters, RLock>,
    /// Acknowledged commits: `acks[book * SLOTS + slot]`, written by the slot's worker with
    /// the book's lock held.
    acks: RawArray<u64>,
    /// `stats[slot * NSTATS + figure]`.
    stats: RawArray<u64>,
    /// Set to 1 when the workers are to finish.
    stop: RawValue<u8>,
}

impl Shared {
    fn new(seed: u64, name: String, named: &Arena) -> Shared {
        Shared {
            seed,
            epoch: Instant::now(),
            name,
            ledger: Value::with_lock(Counters::default(), Lock::new().unwrap()).unwrap(),
            slots: Array::zeroed_with_lock_in(named, SLOTS + 1, Lock::new_in(named).unwrap())
                .unwrap(),
            journal: named
                .create::<RawValue<Journal>>(JOURNAL, Journal::default())
                .unwrap(),
            tally: Value::new(Counters::default()).unwrap(),
            acks: RawArray::zeroed(BOOKS * SLOTS).unwrap(),
            stats: RawArray::zeroed(SLOTS * NSTATS).unwrap(),
            stop: RawValue::new(0).unwrap(),
        }
    }

    fn stat(&self, slot: usize, figure: usize) -> u64 {
        self.stats.get(slot * NSTATS + figure).unwrap()
    }

    fn set_stat(&self, slot: usize, figure: usize, value: u64) {
        self.stats.set(slot * NSTATS + figure, value);
    }

    fn sum_stat(&self, figure: usize) -> u64 {
        (0..SLOTS).map(|s| self.stat(s, figure)).sum()
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Clears the poison of book `which`'s lock, once the book is repaired (poison is
    /// sticky: until then every acquisition reports it).
    fn clear_poison(&self, which: usize) {
        match which {
            LEDGER => self.ledger.clear_poison(),
            SLOTS_BOOK => self.slots.clear_poison(),
            _ => self.tally.clear_poison(),
        }
    }
}

/// One word of a ledger.
#[derive(Debug, Clone, Copy)]
enum Word {
    Total,
    Count(usize),
    Open,
    OldTotal,
    OldCount,
    OldAck,
}

/// A ledger with its lock held: one-word reads and writes.
trait Book {
    fn read(&mut self, word: Word) -> u64;
    /// One aligned store.
    fn store(&mut self, word: Word, value: u64);
    /// One aligned store, made before anything written after it: a kill lands between two
    /// writes, never reorders them.
    fn write(&mut self, word: Word, value: u64) {
        self.store(word, value);
        compiler_fence(SeqCst);
    }
}

impl Book for SyncGuard<'_, Counters> {
    fn read(&mut self, word: Word) -> u64 {
        let c = SyncGuard::place(self);
        match word {
            Word::Total => c.total(),
            Word::Count(w) => c.count_place().at(w).get(),
            Word::Open => c.journal_place().open(),
            Word::OldTotal => c.journal_place().old_total(),
            Word::OldCount => c.journal_place().old_count(),
            Word::OldAck => c.journal_place().old_ack(),
        }
    }

    fn store(&mut self, word: Word, value: u64) {
        let c = SyncGuard::place(self);
        match word {
            Word::Total => c.set_total(value),
            Word::Count(w) => c.count_place().at(w).set(value),
            Word::Open => c.journal_place().set_open(value),
            Word::OldTotal => c.journal_place().set_old_total(value),
            Word::OldCount => c.journal_place().set_old_count(value),
            Word::OldAck => c.journal_place().set_old_ack(value),
        }
    }
}

/// The slots ledger: counters in the locked array, the journal in a raw named object that
/// the same lock guards.
struct SlotsBook<'a> {
    guard: SyncGuard<'a, [u64]>,
    journal: &'a RawValue<Journal>,
}

impl Book for SlotsBook<'_> {
    fn read(&mut self, word: Word) -> u64 {
        let j = self.journal;
        match word {
            Word::Total => SyncGuard::at(&mut self.guard, SLOTS_TOTAL).get(),
            Word::Count(w) => SyncGuard::at(&mut self.guard, w).get(),
            Word::Open => j.open(),
            Word::OldTotal => j.old_total(),
            Word::OldCount => j.old_count(),
            Word::OldAck => j.old_ack(),
        }
    }

    fn store(&mut self, word: Word, value: u64) {
        let j = self.journal;
        match word {
            Word::Total => SyncGuard::at(&mut self.guard, SLOTS_TOTAL).set(value),
            Word::Count(w) => SyncGuard::at(&mut self.guard, w).set(value),
            Word::Open => j.set_open(value),
            Word::OldTotal => j.set_old_total(value),
            Word::OldCount => j.set_old_count(value),
            Word::OldAck => j.set_old_ack(value),
        }
    }
}

/// What repairing a ledger found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    Nothing,
    RolledBack,
    RolledForward,
}

/// Repairs `book` (whose lock came inside a `PoisonError`): an open transaction is rolled
/// forward if it was acknowledged, back if not. Idempotent, so a kill in the middle of a
/// repair leaves it for the next holder to redo.
fn repair(book: &mut impl Book, acks: &RawArray<u64>, which: usize) -> Repair {
    let open = book.read(Word::Open);
    if open == 0 {
        return Repair::Nothing;
    }
    let slot = (open - 1) as usize;
    assert!(
        slot < SLOTS,
        "{}: journal names slot {slot}",
        BOOK_NAMES[which]
    );
    let ack = acks.get(which * SLOTS + slot).unwrap();
    let (old_total, old_count, old_ack) = (
        book.read(Word::OldTotal),
        book.read(Word::OldCount),
        book.read(Word::OldAck),
    );
    let done = if ack == old_ack + 1 {
        book.write(Word::Count(slot), old_count + 1);
        book.write(Word::Total, old_total + 1);
        Repair::RolledForward
    } else {
        assert_eq!(
            ack, old_ack,
            "{}: slot {slot}'s acknowledgements moved by more than the open transaction",
            BOOK_NAMES[which]
        );
        book.write(Word::Count(slot), old_count);
        book.write(Word::Total, old_total);
        Repair::RolledBack
    };
    book.write(Word::Open, 0);
    done
}

/// Commits one update of `slot` to `book` (lock held, repaired if it came poisoned). If
/// `pause` names one of its five steps, the worker yields the processor after that step,
/// lock held and transaction open, which makes a kill there likelier.
fn commit(book: &mut impl Book, acks: &RawArray<u64>, which: usize, slot: usize, pause: u64) {
    let name = BOOK_NAMES[which];
    let open = book.read(Word::Open);
    assert_eq!(
        open, 0,
        "{name}: a transaction was left open, yet the lock came without a PoisonError"
    );
    let k = which * SLOTS + slot;
    let (total, count, ack) = (
        book.read(Word::Total),
        book.read(Word::Count(slot)),
        acks.get(k).unwrap(),
    );
    assert_eq!(
        count, ack,
        "{name}: slot {slot} has {count} commits on the books but {ack} acknowledged"
    );
    let step = |n: u64| {
        if n == pause {
            std::thread::yield_now();
        }
    };
    book.write(Word::OldTotal, total);
    book.write(Word::OldCount, count);
    book.write(Word::OldAck, ack);
    step(0);
    book.write(Word::Open, slot as u64 + 1);
    step(1);
    book.write(Word::Count(slot), count + 1);
    step(2);
    book.write(Word::Total, total + 1);
    step(3);
    acks.set(k, ack + 1); // the commit point
    compiler_fence(SeqCst);
    step(4);
    book.write(Word::Open, 0);
}

/// An object a worker keeps, with what it must still hold.
enum Obj {
    Word(RawValue<u64>, u64),
    Bytes(RawArray<u8>, u8),
    Locked(Value<u64>, u64),
}

impl Obj {
    /// Arena blocks an object of `kind` (0: `Word`, 1: `Bytes`, 2: `Locked`) takes: one
    /// each (a `Value` made with its own lock holds it in its block).
    fn blocks_of(_kind: u64) -> u64 {
        1
    }

    fn blocks(&self) -> u64 {
        Obj::blocks_of(match self {
            Obj::Word(..) => 0,
            Obj::Bytes(..) => 1,
            Obj::Locked(..) => 2,
        })
    }
}

/// The state of one worker process.
struct Worker<'s> {
    s: &'s Shared,
    slot: usize,
    rng: Rng,
    /// The global arena and this worker's own handle to the named one.
    arenas: [Arena; 2],
    /// The slots ledger's journal, opened by name through `arenas[NAMED]`.
    journal: RawValue<Journal>,
    kept: [Vec<Obj>; 2],
}

/// A worker's life: until the parent kills it or sets `stop`.
fn work(s: &Shared, slot: usize, seed: u64) {
    let named = Arena::open_segment(&s.name).expect("open the named arena");
    let journal = named
        .open::<RawValue<Journal>>(JOURNAL)
        .expect("open the journal");
    let mut w = Worker {
        s,
        slot,
        rng: Rng::new(seed),
        arenas: [Arena::global().clone(), named],
        journal,
        kept: [Vec::new(), Vec::new()],
    };
    while s.stop.get() == 0 {
        match w.rng.below(16) {
            0..=2 => w.ledger_op(),
            3..=5 => w.slots_op(),
            6..=8 => w.tally_op(),
            9 => w.nested_op(),
            _ => w.alloc_op(),
        }
    }
    for a in [GLOBAL, NAMED] {
        while !w.kept[a].is_empty() {
            w.free(a, 0);
        }
    }
}

impl Worker<'_> {
    fn bump(&self, figure: usize) {
        self.s
            .set_stat(self.slot, figure, self.s.stat(self.slot, figure) + 1);
    }

    fn raise_max(&self, figure: usize, value: u64) {
        if value > self.s.stat(self.slot, figure) {
            self.s.set_stat(self.slot, figure, value);
        }
    }

    /// Acquires through `acquire`, timing the wait and publishing it; returns the guard and
    /// whether it came inside a `PoisonError`.
    fn timed<G>(&self, acquire: impl FnOnce() -> LockResult<G>) -> (G, bool) {
        self.s
            .set_stat(self.slot, WAITING_SINCE, self.s.now_ns().max(1));
        let t = Instant::now();
        let got = acquire();
        let waited = t.elapsed();
        self.s.set_stat(self.slot, WAITING_SINCE, 0);
        self.bump(ACQUIRES);
        self.raise_max(LONGEST_WAIT, waited.as_nanos() as u64);
        match got {
            Ok(g) => (g, false),
            Err(poisoned) => {
                self.bump(POISONED);
                (poisoned.into_inner(), true)
            }
        }
    }

    /// Where the next commit pauses: after one of its five steps one time in four.
    fn pause(&mut self) -> u64 {
        self.rng.below(20)
    }

    /// Repairs `book` if its lock came poisoned, then commits to it, pausing at `pause`.
    fn transact(&self, book: &mut impl Book, which: usize, poisoned: bool, pause: u64) {
        if poisoned {
            match repair(book, &self.s.acks, which) {
                Repair::Nothing => {}
                Repair::RolledBack => self.bump(ROLLED_BACK),
                Repair::RolledForward => self.bump(ROLLED_FORWARD),
            }
            // Repaired (a kill before this line leaves the poison for the next holder,
            // whose repair then finds nothing to do).
            self.s.clear_poison(which);
        }
        commit(book, &self.s.acks, which, self.slot, pause);
    }

    fn ledger_op(&mut self) {
        let (s, pause) = (self.s, self.pause());
        let (mut g, poisoned) = self.timed(|| s.ledger.lock());
        self.transact(&mut g, LEDGER, poisoned, pause);
    }

    fn slots_op(&mut self) {
        let (s, pause) = (self.s, self.pause());
        let (guard, poisoned) = self.timed(|| s.slots.lock());
        let mut book = SlotsBook {
            guard,
            journal: &self.journal,
        };
        self.transact(&mut book, SLOTS_BOOK, poisoned, pause);
    }

    /// The tally's `RLock`, taken one to three times (each by blocking, by timed attempts
    /// or by non-blocking ones), then the value's own acquisition on top (re-entrant): a
    /// kill leaves the lock several levels deep.
    fn tally_op(&mut self) {
        let (s, pause) = (self.s, self.pause());
        let depth = self.rng.between(1, 3);
        let mut poisoned = false;
        let mut levels = Vec::new();
        for _ in 0..depth {
            let (how, timeout) = (self.rng.below(3), self.rng.between(1, 20));
            let (g, p) =
                self.timed(|| acquire_by(s.tally.getlock(), how, Duration::from_millis(timeout)));
            poisoned |= p;
            levels.push(g);
        }
        let (mut g, p) = self.timed(|| s.tally.lock());
        self.transact(&mut g, TALLY, poisoned | p, pause);
        drop((g, levels));
    }

    /// All three ledgers, nested (always in the same order): a kill leaves up to three
    /// locks to their next holders.
    fn nested_op(&mut self) {
        let (s, pauses) = (self.s, [self.pause(), self.pause(), self.pause()]);
        let (mut ledger, p) = self.timed(|| s.ledger.lock());
        self.transact(&mut ledger, LEDGER, p, pauses[0]);
        let (guard, p) = self.timed(|| s.slots.lock());
        let mut slots = SlotsBook {
            guard,
            journal: &self.journal,
        };
        self.transact(&mut slots, SLOTS_BOOK, p, pauses[1]);
        let (outer, p1) = self.timed(|| s.tally.getlock().lock());
        let (mut tally, p2) = self.timed(|| s.tally.lock());
        self.transact(&mut tally, TALLY, p1 | p2, pauses[2]);
        drop((tally, outer, slots, ledger));
    }

    /// Allocates or frees an object in a random arena, checking a kept one.
    fn alloc_op(&mut self) {
        let a = self.rng.below(2) as usize;
        let n = self.kept[a].len();
        if n > 0 {
            let i = self.rng.below(n as u64) as usize;
            self.verify(a, i);
        }
        if n >= MAX_KEPT || (n > 0 && self.rng.below(3) == 0) {
            let i = self.rng.below(n as u64) as usize;
            self.free(a, i);
        } else {
            self.alloc(a);
        }
    }

    fn alloc(&mut self, a: usize) {
        let kind = self.rng.below(3);
        let tag = self.rng.next_u64();
        let len = if self.rng.below(16) == 0 {
            self.rng.between(4097, 65536)
        } else {
            self.rng.between(1, 4096)
        } as usize;
        // The published figure goes up first: it is never below the truth.
        let held = HELD + a;
        let blocks = Obj::blocks_of(kind);
        self.s
            .set_stat(self.slot, held, self.s.stat(self.slot, held) + blocks);
        let arena = &self.arenas[a];
        let t = Instant::now();
        let obj = match kind {
            0 => Obj::Word(RawValue::new_in(arena, tag).unwrap(), tag),
            1 => Obj::Bytes(RawArray::zeroed_in(arena, len).unwrap(), tag as u8),
            _ => Obj::Locked(Value::new_in(arena, tag).unwrap(), tag),
        };
        self.raise_max(LONGEST_ALLOC, t.elapsed().as_nanos() as u64);
        self.bump(ALLOCS);
        if let Obj::Bytes(bytes, fill) = &obj {
            assert!(
                bytes.to_vec().iter().all(|&b| b == 0),
                "a new {len}-byte array in the {} arena is not zeroed",
                ARENA_NAMES[a]
            );
            bytes.write(0, &vec![*fill; len]);
        }
        self.kept[a].push(obj);
    }

    /// Frees kept object `i` of arena `a`, after checking it.
    fn free(&mut self, a: usize, i: usize) {
        self.verify(a, i);
        let obj = self.kept[a].swap_remove(i);
        let blocks = obj.blocks();
        let t = Instant::now();
        drop(obj);
        self.raise_max(LONGEST_ALLOC, t.elapsed().as_nanos() as u64);
        self.bump(FREES);
        // The published figure goes down last: it is never below the truth.
        let held = HELD + a;
        self.s
            .set_stat(self.slot, held, self.s.stat(self.slot, held) - blocks);
    }

    /// Checks that kept object `i` of arena `a` still holds what was written (a block
    /// reclaimed or handed out twice would not).
    fn verify(&self, a: usize, i: usize) {
        let where_ = ARENA_NAMES[a];
        match &self.kept[a][i] {
            Obj::Word(v, tag) => assert_eq!(v.get(), *tag, "a RawValue in the {where_} arena"),
            Obj::Bytes(bytes, fill) => assert!(
                bytes.to_vec().iter().all(|b| b == fill),
                "a {}-byte RawArray in the {where_} arena was overwritten",
                bytes.len()
            ),
            Obj::Locked(v, tag) => {
                let (g, poisoned) = self.timed(|| v.lock());
                assert!(!poisoned, "a private Value's lock in the {where_} arena");
                assert_eq!(*g, *tag, "a Value in the {where_} arena");
            }
        }
    }
}

/// Acquires `lock` in one of three ways: `lock()` (`how` 0), `try_lock_for(timeout)`
/// retried until it succeeds (1), or `try_lock()` retried (2), so that waiters of every
/// kind meet at the same lock, timing out as others release it or die.
fn acquire_by(lock: &RLock, how: u64, timeout: Duration) -> LockResult<LockGuard<'_>> {
    loop {
        let got = match how {
            0 => return lock.lock(),
            1 => lock.try_lock_for(timeout),
            _ => lock.try_lock(),
        };
        match got {
            Ok(g) => return Ok(g),
            Err(TryLockError::Poisoned(p)) => return Err(p),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
}

/// The workers, one per slot; killed and reaped if the run panics.
struct Crew<'sc, 's> {
    scope: &'sc Scope<'sc, 's>,
    s: &'s Shared,
    procs: Vec<Option<ScopedProcess<'sc>>>,
    rng: Rng,
    started: u64,
}

impl<'sc> Crew<'sc, '_> {
    fn start(&mut self, slot: usize) {
        let s = self.s;
        // Each worker's seed follows from the run's, so a run replays its choices.
        let seed = self.rng.next_u64();
        let p = self.scope.start(move || work(s, slot, seed)).unwrap();
        self.procs[slot] = Some(p);
        self.started += 1;
    }

    fn take(&mut self, slot: usize) -> ScopedProcess<'sc> {
        self.procs[slot].take().expect("a worker in every slot")
    }

    /// Panics if a worker ended without being killed (a failed assertion in it, say).
    fn check_alive(&mut self) {
        for (slot, p) in self.procs.iter_mut().enumerate() {
            let p = p.as_mut().expect("a worker in every slot");
            match p.join_timeout(Duration::ZERO) {
                Err(Error::Timeout(_)) => {}
                other => panic!(
                    "seed {}: worker {slot} (pid {}) ended on its own: {other:?}",
                    self.s.seed,
                    p.pid()
                ),
            }
        }
    }
}

impl Drop for Crew<'_, '_> {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().flatten() {
            let _ = p.kill();
            let _ = p.join_timeout(PATIENCE);
        }
    }
}

/// The storm itself, then every check; `arenas` are the global and the named arena.
fn storm(cfg: &Config, s: &Shared, arenas: [&Arena; 2]) -> Report {
    // Every worker is joined before the scope returns, even if the storm panics.
    Process::scope(|scope| {
        let seed = cfg.seed;
        let mut report = Report {
            seed,
            ..Report::default()
        };
        // The parent's own objects: after the storm, the arenas must hold exactly these.
        let baseline = arenas.map(|a| a.stats().unwrap().live_allocations);
        let mut longest_pending = 0u64;
        let mut crew = Crew {
            scope,
            s,
            procs: (0..SLOTS).map(|_| None).collect(),
            rng: Rng::new(seed),
            started: 0,
        };
        for slot in 0..SLOTS {
            crew.start(slot);
        }
        let mut rng = Rng::new(seed ^ 0x6b69_6c6c);
        // A wait in progress for longer than the bound is a failure even if its worker is
        // killed before the wait ends.
        let mut sample = |slot: usize| {
            let since = s.stat(slot, WAITING_SINCE);
            if since != 0 {
                longest_pending = longest_pending.max(s.now_ns().saturating_sub(since));
            }
        };
        while report.kills < cfg.kills {
            std::thread::sleep(Duration::from_millis(
                rng.between(cfg.gap_ms.0, cfg.gap_ms.1),
            ));
            crew.check_alive();
            (0..SLOTS).for_each(&mut sample);
            let slot = rng.below(SLOTS as u64) as usize;
            let mut victim = crew.take(slot);
            sample(slot);
            victim.kill().unwrap();
            match victim.join_timeout(PATIENCE) {
                Err(e) if e.to_string().contains("SIGKILL") => {}
                other => panic!(
                    "seed {seed}: worker {slot} (pid {}) was to die of SIGKILL: {other:?}",
                    victim.pid()
                ),
            }
            report.kills += 1;
            // What it held stays allocated until reclaimed; the next worker starts afresh.
            for a in [GLOBAL, NAMED] {
                report.held_by_dead[a] += s.stat(slot, HELD + a);
                s.set_stat(slot, HELD + a, 0);
            }
            s.set_stat(slot, WAITING_SINCE, 0);
            crew.start(slot);
            // Not after the last kill: the final reclaim must have the last kills' blocks to find.
            if report.kills % cfg.reclaim_every == 0 && report.kills < cfg.kills {
                for a in [GLOBAL, NAMED] {
                    report.reclaimed_during[a] += arenas[a].reclaim_dead().unwrap().objects;
                    if let Err(e) = arenas[a].check() {
                        panic!(
                            "seed {seed}: the {} arena after {} kills: {e}",
                            ARENA_NAMES[a], report.kills
                        );
                    }
                }
            }
        }
        // The survivors finish their work, free what they hold and exit.
        s.stop.set(1);
        for slot in 0..SLOTS {
            let mut p = crew.take(slot);
            if let Err(e) = p.join_timeout(PATIENCE) {
                let _ = p.kill();
                panic!(
                    "seed {seed}: worker {slot} (pid {}) did not finish: {e}",
                    p.pid()
                );
            }
            for a in [GLOBAL, NAMED] {
                assert_eq!(
                    s.stat(slot, HELD + a),
                    0,
                    "seed {seed}: worker {slot} ended holding blocks of the {} arena",
                    ARENA_NAMES[a]
                );
            }
        }
        report.started = crew.started;
        drop(crew);

        check_books(s, &mut report);
        check_waits(s, &mut report, longest_pending);
        check_arenas(cfg, arenas, baseline, &mut report);
        report.acquires = s.sum_stat(ACQUIRES);
        report.poisoned = s.sum_stat(POISONED);
        report.rolled_back = s.sum_stat(ROLLED_BACK);
        report.rolled_forward = s.sum_stat(ROLLED_FORWARD);
        report.allocs = s.sum_stat(ALLOCS);
        report.frees = s.sum_stat(FREES);
        report
    })
}

/// Every ledger, repaired if a kill left it open, equals the sum of its acknowledged
/// commits, and every slot committed to every ledger.
fn check_books(s: &Shared, report: &mut Report) {
    let seed = s.seed;
    let books = [
        {
            let poisoned = probe(s.ledger.getlock(), s, LEDGER);
            let (mut g, p) = split(s.ledger.lock());
            settle(&mut g, s, LEDGER, poisoned | p, report)
        },
        {
            let poisoned = probe(s.slots.getlock(), s, SLOTS_BOOK);
            let (guard, p) = split(s.slots.lock());
            let mut book = SlotsBook {
                guard,
                journal: &s.journal,
            };
            settle(&mut book, s, SLOTS_BOOK, poisoned | p, report)
        },
        {
            let poisoned = probe(s.tally.getlock(), s, TALLY);
            let (mut g, p) = split(s.tally.lock());
            settle(&mut g, s, TALLY, poisoned | p, report)
        },
    ];
    for (which, (total, count)) in books.into_iter().enumerate() {
        let name = BOOK_NAMES[which];
        let acked: Vec<u64> = (0..SLOTS)
            .map(|slot| s.acks.get(which * SLOTS + slot).unwrap())
            .collect();
        assert_eq!(
            count.to_vec(),
            acked,
            "seed {seed}: {name}: per-slot counts differ from the acknowledged commits"
        );
        assert_eq!(
            total,
            acked.iter().sum::<u64>(),
            "seed {seed}: {name}: the total differs from the sum of acknowledged commits {acked:?}"
        );
        assert!(
            acked.iter().all(|&n| n > 0),
            "seed {seed}: {name}: a slot never committed: {acked:?}"
        );
        report.commits[which] = total;
    }
}

/// Takes and releases `lock` within [`PATIENCE`] (a lock that never noticed its holder
/// died would hang a plain acquisition); returns whether it came inside a `PoisonError`
/// (which, poison being sticky, the acquisition that follows repeats).
fn probe(lock: &impl SharedLock, s: &Shared, which: usize) -> bool {
    match lock.try_lock_for(PATIENCE) {
        Ok(_) => false,
        Err(TryLockError::Poisoned(_)) => true,
        Err(TryLockError::WouldBlock) => panic!(
            "seed {}: {} still locked {PATIENCE:?} after every worker ended",
            s.seed, BOOK_NAMES[which]
        ),
    }
}

/// The guard, and whether it came inside a `PoisonError`.
fn split<G>(got: LockResult<G>) -> (G, bool) {
    match got {
        Ok(g) => (g, false),
        Err(p) => (p.into_inner(), true),
    }
}

/// Repairs `book` if needed, checks that no transaction is open, and returns its total and
/// per-slot counts.
fn settle(
    book: &mut impl Book,
    s: &Shared,
    which: usize,
    poisoned: bool,
    report: &mut Report,
) -> (u64, [u64; SLOTS]) {
    if poisoned && repair(book, &s.acks, which) != Repair::Nothing {
        report.repaired_after += 1;
    }
    assert_eq!(
        book.read(Word::Open),
        0,
        "seed {}: {}: a transaction is open, yet the lock came without a PoisonError",
        s.seed,
        BOOK_NAMES[which]
    );
    let count = std::array::from_fn(|slot| book.read(Word::Count(slot)));
    (book.read(Word::Total), count)
}

/// No acquisition waited longer than [`MAX_WAIT`] (nor did an allocation).
fn check_waits(s: &Shared, report: &mut Report, longest_pending: u64) {
    let longest = (0..SLOTS)
        .map(|slot| s.stat(slot, LONGEST_WAIT))
        .max()
        .unwrap_or(0)
        .max(longest_pending);
    report.longest_wait = Duration::from_nanos(longest);
    report.longest_alloc = Duration::from_nanos(
        (0..SLOTS)
            .map(|slot| s.stat(slot, LONGEST_ALLOC))
            .max()
            .unwrap_or(0),
    );
    assert!(
        report.longest_wait < MAX_WAIT,
        "seed {}: an acquisition waited {:?} (longest still in progress when seen: {:?})",
        s.seed,
        report.longest_wait,
        Duration::from_nanos(longest_pending)
    );
    assert!(
        report.longest_alloc < MAX_WAIT,
        "seed {}: an allocation or free took {:?}",
        s.seed,
        report.longest_alloc
    );
}

/// `reclaim_dead()` frees exactly what the dead held, and both arenas pass `check()`
/// before and after.
fn check_arenas(cfg: &Config, arenas: [&Arena; 2], baseline: [u64; 2], report: &mut Report) {
    let seed = cfg.seed;
    for a in [GLOBAL, NAMED] {
        let (arena, name) = (arenas[a], ARENA_NAMES[a]);
        if let Err(e) = arena.check() {
            panic!("seed {seed}: the {name} arena after the storm: {e}");
        }
        let live = arena.stats().unwrap().live_allocations;
        let reclaimed = arena.reclaim_dead().unwrap().objects;
        report.reclaimed_after[a] = reclaimed;
        let after = arena.stats().unwrap().live_allocations;
        assert_eq!(
            (reclaimed, after),
            (live - baseline[a], baseline[a]),
            "seed {seed}: the {name} arena held {live} blocks, {} of them the parent's; \
             reclaim_dead() freed {reclaimed} and left {after} \
             (a dead worker's pid reused by a live process keeps its blocks)",
            baseline[a]
        );
        if let Err(e) = arena.check() {
            panic!("seed {seed}: the {name} arena after reclaiming: {e}");
        }
        // Each killed worker's published figure is at most one block above what it held.
        let total = report.reclaimed_during[a] + reclaimed;
        // In the named arena a worker also holds its open record of the journal (opened by
        // name), at most one each, which it does not publish. It reuses the journal handle
        // it inherited, which it never drops (a forked child does not run its parent's
        // destructors), so even a worker that ends normally leaves its record to reclaim.
        let records = if a == NAMED { report.started } else { 0 };
        let published = report.held_by_dead[a];
        assert!(
            total <= published + records && published <= total + report.kills,
            "seed {seed}: {total} blocks reclaimed from the {name} arena, but the {} killed \
             workers published {published}",
            report.kills
        );
    }
}
