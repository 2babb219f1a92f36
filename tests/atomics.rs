//! Atomic operations on raw shared integers: every operation on every integer type, checked
//! against std's atomics on private memory, at the edges (wrapping, extremes, failed
//! exchanges), out of range, and across forked processes with exact totals.

mod common;

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

use shared_runtime::{raw_array, Process, RawArray, RawValue};

/// A reproducible stream of operands (no external randomness: a failure replays).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 16
    }
}

macro_rules! per_type {
    ($($name:ident: $t:ty => $std:ident;)*) => {$(
        mod $name {
            use super::*;
            use std::sync::atomic::$std;

            /// Every operation, through the value, an array element and a place, gives what
            /// std's atomic gives on private memory, and touches no neighbouring element.
            #[test]
            fn every_operation_matches_std() {
                let value = RawValue::<$t>::zeroed().unwrap();
                let array = RawArray::<$t>::zeroed(3).unwrap();
                let model = $std::new(0);
                let mut rng = Lcg(0x5eed ^ std::mem::size_of::<$t>() as u64);
                for step in 0..2000 {
                    let x = rng.next() as $t;
                    let y = rng.next() as $t;
                    // Sometimes the current value, so that exchanges also succeed.
                    let current = if step % 3 == 0 { model.load(Relaxed) } else { y };
                    let op = rng.next() % 13;
                    let want = apply_std(&model, op, x, current);
                    let got_value = apply_value(&value, op, x, current);
                    let got_elem = apply_elem(&array, op, x, current);
                    assert_eq!(got_value, want, "value, op {op}, step {step}");
                    assert_eq!(got_elem, want, "element, op {op}, step {step}");
                    let now = model.load(Relaxed);
                    assert_eq!(value.get(), now, "value after op {op}, step {step}");
                    assert_eq!(array.to_vec(), [0, now, 0], "array after op {op}, step {step}");
                }
            }

            /// std's operation `op` on the model, its result as `(returned, Ok?)`.
            fn apply_std(m: &$std, op: u64, x: $t, current: $t) -> ($t, bool) {
                match op {
                    0 => (m.load(Acquire), true),
                    1 => { m.store(x, Release); (x, true) }
                    2 => (m.swap(x, AcqRel), true),
                    3 => flat(m.compare_exchange(current, x, SeqCst, Relaxed)),
                    4 => flat(weak_until_decided(|c, n| m.compare_exchange_weak(c, n, AcqRel, Acquire), || m.load(Relaxed), current, x)),
                    5 => (m.fetch_add(x, Relaxed), true),
                    6 => (m.fetch_sub(x, Relaxed), true),
                    7 => (m.fetch_and(x, Relaxed), true),
                    8 => (m.fetch_or(x, Relaxed), true),
                    9 => (m.fetch_xor(x, Relaxed), true),
                    10 => (m.fetch_max(x, Relaxed), true),
                    11 => (m.fetch_min(x, Relaxed), true),
                    _ => flat(m.fetch_update(Relaxed, Relaxed, |v| (v != current).then(|| v ^ x))),
                }
            }

            fn apply_value(v: &RawValue<$t>, op: u64, x: $t, current: $t) -> ($t, bool) {
                match op {
                    0 => (v.load(Acquire), true),
                    1 => { v.store(x, Release); (x, true) }
                    2 => (v.swap(x, AcqRel), true),
                    3 => flat(v.compare_exchange(current, x, SeqCst, Relaxed)),
                    4 => flat(weak_until_decided(|c, n| v.compare_exchange_weak(c, n, AcqRel, Acquire), || v.get(), current, x)),
                    5 => (v.fetch_add(x, Relaxed), true),
                    6 => (v.fetch_sub(x, Relaxed), true),
                    7 => (v.fetch_and(x, Relaxed), true),
                    8 => (v.fetch_or(x, Relaxed), true),
                    9 => (v.fetch_xor(x, Relaxed), true),
                    10 => (v.fetch_max(x, Relaxed), true),
                    11 => (v.fetch_min(x, Relaxed), true),
                    _ => flat(v.fetch_update(Relaxed, Relaxed, |v| (v != current).then(|| v ^ x))),
                }
            }

            /// The same on element 1 of `a`: through the array for even operations, through
            /// the element's place for odd ones.
            fn apply_elem(a: &RawArray<$t>, op: u64, x: $t, current: $t) -> ($t, bool) {
                let p = a.at(1);
                match (op, op % 2 == 0) {
                    (0, _) => (a.load(1, Acquire), true),
                    (1, _) => { p.store(x, Release); (x, true) }
                    (2, _) => (a.swap(1, x, AcqRel), true),
                    (3, _) => flat(p.compare_exchange(current, x, SeqCst, Relaxed)),
                    (4, _) => flat(weak_until_decided(|c, n| a.compare_exchange_weak(1, c, n, AcqRel, Acquire), || a.get(1).unwrap(), current, x)),
                    (5, _) => (p.fetch_add(x, Relaxed), true),
                    (6, _) => (a.fetch_sub(1, x, Relaxed), true),
                    (7, _) => (p.fetch_and(x, Relaxed), true),
                    (8, _) => (a.fetch_or(1, x, Relaxed), true),
                    (9, _) => (p.fetch_xor(x, Relaxed), true),
                    (10, _) => (a.fetch_max(1, x, Relaxed), true),
                    (11, _) => (p.fetch_min(x, Relaxed), true),
                    (_, true) => flat(a.fetch_update(1, Relaxed, Relaxed, |v| (v != current).then(|| v ^ x))),
                    (_, false) => flat(p.fetch_update(Relaxed, Relaxed, |v| (v != current).then(|| v ^ x))),
                }
            }

            /// The edges: wrapping both ways, signed extremes, failed exchanges return the
            /// value found and change nothing.
            #[test]
            fn edges() {
                let v = RawValue::new(<$t>::MAX).unwrap();
                assert_eq!(v.fetch_add(1, Relaxed), <$t>::MAX);
                assert_eq!(v.load(Relaxed), <$t>::MIN);
                assert_eq!(v.fetch_sub(1, Relaxed), <$t>::MIN);
                assert_eq!(v.load(Relaxed), <$t>::MAX);
                // fetch_max/fetch_min compare as the type does (signed for signed types).
                assert_eq!(v.fetch_max(<$t>::MIN, Relaxed), <$t>::MAX);
                assert_eq!(v.load(Relaxed), <$t>::MAX);
                assert_eq!(v.fetch_min(<$t>::MIN, Relaxed), <$t>::MAX);
                assert_eq!(v.load(Relaxed), <$t>::MIN);
                assert_eq!(v.fetch_min(<$t>::MAX, Relaxed), <$t>::MIN);
                assert_eq!(v.load(Relaxed), <$t>::MIN);
                // A failed exchange reports the current value and writes nothing.
                assert_eq!(v.compare_exchange(1, 2, SeqCst, SeqCst), Err(<$t>::MIN));
                assert_eq!(v.compare_exchange_weak(1, 2, SeqCst, SeqCst), Err(<$t>::MIN));
                assert_eq!(v.fetch_update(SeqCst, SeqCst, |_| None), Err(<$t>::MIN));
                assert_eq!(v.get(), <$t>::MIN);
                assert_eq!(v.compare_exchange(<$t>::MIN, <$t>::MAX, SeqCst, SeqCst), Ok(<$t>::MIN));
                assert_eq!(v.swap(0, SeqCst), <$t>::MAX);
                // All ones and back with the bit operations.
                assert_eq!(v.fetch_or(!0, Relaxed), 0);
                assert_eq!(v.fetch_xor(<$t>::MAX, Relaxed), !0);
                assert_eq!(v.fetch_and(0, Relaxed), !<$t>::MAX);
                assert_eq!(v.get(), 0);

                let a = RawArray::from_slice(&[<$t>::MIN, <$t>::MAX]).unwrap();
                assert_eq!(a.fetch_sub(0, 1, Relaxed), <$t>::MIN);
                assert_eq!(a.fetch_add(1, 1, Relaxed), <$t>::MAX);
                assert_eq!(a.to_vec(), [<$t>::MAX, <$t>::MIN]);
                assert_eq!(a.at(0).compare_exchange(0, 1, SeqCst, SeqCst), Err(<$t>::MAX));
                assert_eq!(a.compare_exchange(1, <$t>::MIN + 1, 0, SeqCst, SeqCst), Err(<$t>::MIN));
                assert_eq!(a.to_vec(), [<$t>::MAX, <$t>::MIN]);
            }

            /// Four forked children use every operation at once on one value and one array;
            /// the results are exact.
            #[test]
            fn across_processes() {
                const CHILDREN: usize = 4;
                const ROUNDS: usize = 25; // 100 in all: fits every type, even i8
                let _fork = common::forking();
                let counter = RawValue::<$t>::zeroed().unwrap();
                // 0 add, 1 sub, 2 or, 3 xor, 4 and, 5 max, 6 min, 7 claim, 8 swap,
                // 9 fetch_update, 10.. one slot per child for store.
                let slots = RawArray::<$t>::zeroed(10 + CHILDREN).unwrap();
                slots.store(4, !0, Relaxed);
                slots.store(6, <$t>::MAX, Relaxed);
                let results = Process::scope(|s| {
                    let children = (0..CHILDREN)
                        .map(|k| {
                            let (counter, slots) = (&counter, &slots);
                            s.start(move || {
                                let me = (k + 1) as $t;
                                for _ in 0..ROUNDS {
                                    counter.fetch_add(1, Relaxed);
                                    slots.fetch_add(0, 1, Relaxed);
                                    slots.at(1).fetch_sub(1, Relaxed);
                                    slots.fetch_update(9, Relaxed, Relaxed, |v| Some(v.wrapping_add(1))).unwrap();
                                }
                                slots.fetch_or(2, 1 << k, Relaxed);
                                slots.at(3).fetch_xor(1 << k, Relaxed);
                                slots.fetch_and(4, !(1 << k), Relaxed);
                                slots.fetch_max(5, me, Relaxed);
                                slots.at(6).fetch_min(me, Relaxed);
                                let won = slots.compare_exchange(7, 0, me, AcqRel, Acquire).is_ok();
                                let previous = slots.swap(8, me, AcqRel);
                                slots.store(10 + k, me, Release);
                                [won as $t, previous]
                            })
                        })
                        .collect::<shared_runtime::Result<Vec<_>>>()?;
                    children.into_iter().map(common::finish).collect::<shared_runtime::Result<Vec<_>>>()
                })
                .unwrap();

                let total = (CHILDREN * ROUNDS) as $t;
                assert_eq!(counter.load(Acquire), total);
                assert_eq!(slots.load(0, Acquire), total);
                assert_eq!(slots.load(1, Acquire), (0 as $t).wrapping_sub(total));
                assert_eq!(slots.load(9, Acquire), total);
                assert_eq!(slots.load(2, Acquire), 0b1111);
                assert_eq!(slots.load(3, Acquire), 0b1111);
                assert_eq!(slots.load(4, Acquire), !0b1111);
                assert_eq!(slots.load(5, Acquire), CHILDREN as $t);
                assert_eq!(slots.load(6, Acquire), 1);
                // Exactly one child claimed slot 7, and it holds that child's number.
                let winners: Vec<usize> = (0..CHILDREN).filter(|&k| results[k][0] == 1).collect();
                assert_eq!(winners.len(), 1, "claims: {results:?}");
                assert_eq!(slots.load(7, Acquire), (winners[0] + 1) as $t);
                // The swaps form one chain: the values given back, plus the one left, are
                // the initial 0 and each child's number, each exactly once.
                let mut chain: Vec<$t> = results.iter().map(|r| r[1]).collect();
                chain.push(slots.load(8, Acquire));
                chain.sort();
                assert_eq!(chain, (0..=CHILDREN).map(|n| n as $t).collect::<Vec<_>>());
                for k in 0..CHILDREN {
                    assert_eq!(slots.load(10 + k, Acquire), (k + 1) as $t);
                }
            }
        }
    )*};
}

/// A compare-exchange result as `(value, succeeded)`.
fn flat<T>(r: Result<T, T>) -> (T, bool) {
    match r {
        Ok(v) => (v, true),
        Err(v) => (v, false),
    }
}

/// Retries a weak exchange while it fails spuriously (the value read still equals
/// `current`), so that its outcome is as deterministic as the strong one's.
fn weak_until_decided<T: PartialEq + Copy>(
    mut cas: impl FnMut(T, T) -> Result<T, T>,
    mut read: impl FnMut() -> T,
    current: T,
    new: T,
) -> Result<T, T> {
    loop {
        match cas(current, new) {
            Err(v) if v == current && read() == current => continue,
            other => return other,
        }
    }
}

per_type! {
    i8_: i8 => AtomicI8;
    u8_: u8 => AtomicU8;
    i16_: i16 => AtomicI16;
    u16_: u16 => AtomicU16;
    i32_: i32 => AtomicI32;
    u32_: u32 => AtomicU32;
    i64_: i64 => AtomicI64;
    u64_: u64 => AtomicU64;
    isize_: isize => AtomicIsize;
    usize_: usize => AtomicUsize;
}

/// Typecode arrays and the C long types have the operations too.
#[test]
fn typecodes_and_c_long() {
    let a = raw_array!('l', [1, 2]).unwrap();
    assert_eq!(a.fetch_add(1, 40, Relaxed), 2);
    assert_eq!(a.to_vec(), [1, 42]);
    let b = raw_array!('B', 2).unwrap();
    b.fetch_or(0, 0x81, Relaxed);
    assert_eq!(b.to_vec(), [0x81, 0]);
    let c = RawValue::new(std::ffi::c_ulong::MAX).unwrap();
    assert_eq!(c.fetch_add(1, Relaxed), std::ffi::c_ulong::MAX);
    assert_eq!(c.get(), 0);
}

/// An integer field of a shared struct is a counter of its own: its neighbours are untouched.
#[test]
fn struct_field_counter() {
    use shared_runtime::SharedStruct;

    #[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Stats {
        before: u8,
        hits: u32,
        total: i64,
        after: u16,
    }

    let _fork = common::forking();
    let s = RawValue::new(Stats {
        before: 7,
        hits: 0,
        total: -1,
        after: 9,
    })
    .unwrap();
    let mut children = Vec::new();
    for _ in 0..3 {
        let s = s.clone();
        children.push(
            Process::start(move || {
                for _ in 0..1000 {
                    s.hits_place().fetch_add(1, Relaxed);
                    s.total_place().fetch_sub(2, Relaxed);
                }
            })
            .unwrap(),
        );
    }
    for c in children {
        common::finish(c).unwrap();
    }
    assert_eq!(
        s.get(),
        Stats {
            before: 7,
            hits: 3000,
            total: -6001,
            after: 9
        }
    );
}

/// Many increments from several children on one value and on every element of an array:
/// the totals are exact (a `set(get() + 1)` loop would lose some).
#[test]
fn counters_across_processes_are_exact() {
    const CHILDREN: u64 = 6;
    const ROUNDS: u64 = 20_000;
    let _fork = common::forking();
    let hits = RawValue::<u64>::zeroed().unwrap();
    let per_slot = RawArray::<u64>::zeroed(5).unwrap();
    let mut children = Vec::new();
    for _ in 0..CHILDREN {
        let (hits, per_slot) = (hits.clone(), per_slot.clone());
        children.push(
            Process::start(move || {
                for r in 0..ROUNDS {
                    hits.fetch_add(1, Relaxed);
                    let i = (r % 5) as usize;
                    per_slot.fetch_add(i, i as u64 + 1, Relaxed);
                }
            })
            .unwrap(),
        );
    }
    for c in children {
        common::finish(c).unwrap();
    }
    assert_eq!(hits.load(SeqCst), CHILDREN * ROUNDS);
    let each = CHILDREN * ROUNDS / 5;
    assert_eq!(
        per_slot.to_vec(),
        (1..=5).map(|k| k * each).collect::<Vec<_>>()
    );
}

#[test]
#[should_panic(expected = "index out of bounds: the len is 3 but the index is 3")]
fn out_of_range_fetch_add_panics() {
    RawArray::<u32>::zeroed(3).unwrap().fetch_add(3, 1, Relaxed);
}

#[test]
#[should_panic(expected = "index out of bounds: the len is 0 but the index is 0")]
fn out_of_range_compare_exchange_panics() {
    let _ = RawArray::<i8>::zeroed(0)
        .unwrap()
        .compare_exchange(0, 0, 1, SeqCst, SeqCst);
}

#[test]
#[should_panic(expected = "index out of bounds: the len is 2 but the index is 9")]
fn out_of_range_load_panics() {
    RawArray::<usize>::zeroed(2).unwrap().load(9, Relaxed);
}

#[test]
#[should_panic(expected = "there is no such thing as an acquire store")]
fn std_ordering_rules_apply() {
    RawValue::<u8>::zeroed().unwrap().store(1, Acquire);
}
