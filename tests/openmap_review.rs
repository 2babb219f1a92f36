//! Reproducers kept from the attacking review of the table of opened objects
//! (`arena/opened.rs`, `arena/opened/table.rs`, `opened::inherited_live` in
//! `Arena::alloc`).
//!
//! A child made by a raw `fork` system call while another thread held the map's lock cannot
//! trust its map. `Value::new_in` there used to succeed (the map's error was taken for "no
//! handle here"), so once the parent freed a `Value` whose copy the child still had, the
//! child's new `Value` could be given that block: two live handles of one block, and the
//! copy's raw write went behind the new `Value`'s guard. It is now refused with the map's
//! error, as every open is.
//!
//! The two ignored tests are the review's reproducers of the gaps that remain (docs/design.md,
//! "Known gaps for stale copies in forked children"): run them with `--ignored`; they fail.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use shared_runtime::{Arena, Process, RawArray, RawValue, Synchronized, Value};

/// Outcomes a child reports.
const SAFE: u64 = 0;
const ALIASED: u64 = 1;
const TIMEOUT: u64 = 2;
const ERROR: u64 = 3;

fn describe(code: u64) -> &'static str {
    match code {
        SAFE => "refused or never handed out (safe)",
        ALIASED => {
            "a write through the inherited copy changed data under the new object's live guard"
        }
        TIMEOUT => "child timed out waiting for the parent",
        _ => "unexpected error in the child",
    }
}

static RAW: Mutex<Option<RawValue<[u64; 32]>>> = Mutex::new(None);

/// A parent's `RawValue` (never recorded in the map: only wrapped data is) inherited by a
/// forked child. The parent frees it; the child's `RawValue::new_in` is given the same block:
/// `inherited_live` finds no slot and says "no", and the child wraps the fresh block in a
/// lock. The inherited copy (another `Allocation`, another borrow mark) then writes under the
/// guard's `&mut [u64; 32]`.
#[test]
#[ignore = "known gap (docs/design.md, stale copies in forked children): fails"]
fn inherited_unrecorded_raw_value_is_not_seen_by_inherited_live() {
    let _serial = common::forking();
    let a = Arena::with_capacity(1 << 22).unwrap();
    // 256 bytes: a heap block (not a per-process cache class, not a slab slot).
    let r = RawValue::new_in(&a, [1u64; 32]).unwrap();
    let at = r.offset();
    *RAW.lock().unwrap() = Some(r);
    let freed = RawValue::new_in(&a, 0u8).unwrap();
    let out = Process::scope(|s| {
        let child = s.start(|| -> u64 {
            if !common::wait_until(|| freed.get() == 1) {
                return TIMEOUT;
            }
            let mut held = Vec::new();
            let mine = loop {
                match RawValue::new_in(&a, [0u64; 32]) {
                    Ok(x) if x.offset() == at => break x,
                    Ok(x) => held.push(x),
                    Err(_) => return SAFE,
                }
                if held.len() > 64 {
                    return SAFE; // set aside: never handed out here
                }
            };
            let Ok(v) = Synchronized::new(mine) else {
                return SAFE; // refused when wrapped
            };
            let g = v.lock().unwrap();
            let stash = RAW.lock().unwrap();
            let old = stash.as_ref().unwrap();
            if catch_unwind(AssertUnwindSafe(|| old.set([5u64; 32]))).is_err() {
                return SAFE; // one handle: its borrow mark refused the raw write
            }
            if std::hint::black_box(&*g)[0] == 5 {
                ALIASED
            } else {
                ERROR
            }
        })?;
        drop(RAW.lock().unwrap().take());
        freed.set(1);
        common::finish(child)
    })
    .unwrap();
    assert_eq!(out, SAFE, "{}", describe(out));
}

static VAL: Mutex<Option<Value<[u64; 32]>>> = Mutex::new(None);

/// A parent's `Value` (recorded in the map, a leaf word) inherited by a forked child. The
/// parent frees it, and the free block coalesces with the free block just before it. The
/// child's `RawArray::zeroed_in` is given a block that starts before the old one and covers
/// it: `inherited_live` asks only for a slot keyed by the fresh block's start, finds none,
/// and says "no". The inherited `Value`'s raw handle then writes under the guard of the
/// child's wrapped array.
#[test]
#[ignore = "known gap (docs/design.md, stale copies in forked children): fails"]
fn inherited_live_misses_a_copy_inside_a_larger_fresh_block() {
    let _serial = common::forking();
    let a = Arena::with_capacity(1 << 22).unwrap();
    let before = Value::new_in(&a, [0u64; 32]).unwrap();
    let v = Value::new_in(&a, [1u64; 32]).unwrap();
    let after = Value::new_in(&a, [2u64; 32]).unwrap(); // keeps `v` off the tail
    let (b0, vb, vd) = (before.handle().lock, v.handle().lock, v.getobj().offset());
    assert!(
        b0 < vb && vb - b0 < 1024,
        "blocks not neighbours: {b0} {vb}"
    );
    drop(before); // free before the fork: the child's copy has no slot for it
    *VAL.lock().unwrap() = Some(v);
    let freed = RawValue::new_in(&a, 0u8).unwrap();
    let out = Process::scope(|s| {
        let child = s.start(|| -> u64 {
            if !common::wait_until(|| freed.get() == 1) {
                return TIMEOUT;
            }
            // Largest first: a block cut from the coalesced free run at its start.
            let mut held = Vec::new();
            let mut found = None;
            'sizes: for len in (40..=80usize).rev() {
                match RawArray::<u64>::zeroed_in(&a, len) {
                    Ok(x) => {
                        let (o, end) = (x.offset(), x.offset() + 8 * len as u64);
                        if o < vb && vd + 256 <= end {
                            found = Some(x);
                            break 'sizes;
                        }
                        held.push(x);
                    }
                    Err(_) => return ERROR,
                }
            }
            let Some(mine) = found else { return SAFE };
            let Ok(w) = Synchronized::new(mine) else {
                return SAFE;
            };
            let idx = ((vd - w.getobj().offset()) / 8) as usize;
            let g = w.lock().unwrap();
            let stash = VAL.lock().unwrap();
            let old = stash.as_ref().unwrap();
            if catch_unwind(AssertUnwindSafe(|| old.getobj().set([5u64; 32]))).is_err() {
                return SAFE;
            }
            if std::hint::black_box(&*g)[idx] == 5 {
                ALIASED
            } else {
                ERROR
            }
        })?;
        drop(VAL.lock().unwrap().take());
        freed.set(1);
        common::finish(child)
    })
    .unwrap();
    drop(after);
    assert_eq!(out, SAFE, "{}", describe(out));
}

static BROKEN_VAL: Mutex<Option<Value<[u64; 32]>>> = Mutex::new(None);

/// A child made by a raw `fork` system call while another thread held the map's lock
/// ("cannot trust the map": every open must be refused with an error). `Value::new_in` is
/// not refused there: `opened::record` maps the broken map's error to `Ok(())` and
/// `inherited_live` to "no". So once the parent frees a `Value` whose copy the child still
/// has, the child's new `Value` is given its block: two live handles of one block, and the
/// copy's raw write goes behind the new `Value`'s guard.
#[test]
fn a_raw_fork_child_with_a_broken_map_makes_a_second_handle() {
    let _serial = common::forking();
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::Arc;
    let a = Arena::with_capacity(1 << 24).unwrap();
    let busy_arena = Arena::with_capacity(1 << 22).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                drop(Value::new_in(&busy_arena, 0u64).unwrap());
            }
        })
    };
    let mut codes = Vec::new();
    let mut verdict = None;
    for _ in 0..2000 {
        let v = Value::new_in(&a, [1u64; 32]).unwrap();
        let vb = v.handle().lock;
        *BROKEN_VAL.lock().unwrap() = Some(v);
        let freed = RawValue::new_in(&a, 0u8).unwrap();
        let probe = RawValue::new_in(&a, 0u8).unwrap();
        // SAFETY: a raw fork; the child only uses this crate, a static std mutex that no
        // thread holds, and ends with `_exit`.
        let pid = unsafe { libc::syscall(libc::SYS_fork) } as libc::pid_t;
        if pid == 0 {
            let code: i32 = (|| {
                // Is the map broken here? (An open through it fails with an error.)
                let name = format!("rvprobe-{}", std::process::id());
                match a.create::<RawValue<u8>>(&name, 0) {
                    Ok(_) => return 10, // not broken: try again
                    Err(shared_runtime::Error::Corrupted(_)) => {}
                    Err(_) => return 20,
                }
                if !common::wait_until(|| freed.get() == 1) {
                    return 21;
                }
                let mut held = Vec::new();
                let mine = loop {
                    match Value::new_in(&a, [0u64; 32]) {
                        Ok(x) if x.handle().lock == vb => break x,
                        Ok(x) => held.push(x),
                        // Refused with the map's error: safe.
                        Err(shared_runtime::Error::Corrupted(_)) => return 0,
                        Err(_) => return 23,
                    }
                    if held.len() > 64 {
                        return 0;
                    }
                };
                let g = mine.lock().unwrap();
                let stash = BROKEN_VAL.lock().unwrap();
                let old = stash.as_ref().unwrap();
                if catch_unwind(AssertUnwindSafe(|| old.getobj().set([5u64; 32]))).is_err() {
                    return 0;
                }
                if std::hint::black_box(&*g)[0] == 5 {
                    1
                } else {
                    22
                }
            })();
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) };
        }
        assert!(pid > 0);
        let _ = probe;
        drop(BROKEN_VAL.lock().unwrap().take());
        freed.set(1);
        // Wait with a timeout.
        let deadline = std::time::Instant::now() + common::PATIENCE;
        let code = loop {
            let mut status = 0;
            // SAFETY: plain waitpid on our child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    99
                };
            }
            if std::time::Instant::now() > deadline {
                // SAFETY: our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                common::wait_pid(pid);
                break 98;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        codes.push(code);
        // A child whose map was not held at the fork (10) proves nothing; one killed after
        // the timeout (98) may have been forked while the busy thread held a lock of
        // malloc's (a raw fork runs no handler): tried again, at most three times. A
        // broken child that was refused (0) may just have lost a race: a few more.
        let timeouts = codes.iter().filter(|&&c| c == 98).count();
        let retry = code == 10 || (code == 98 && timeouts < 3);
        if !retry && (code != 0 || codes.iter().filter(|&&c| c == 0).count() >= 8) {
            verdict = Some(code);
            break;
        }
    }
    stop.store(true, Relaxed);
    busy.join().unwrap();
    let tail: Vec<_> = codes.iter().rev().take(5).collect();
    let verdict = verdict.unwrap_or_else(|| panic!("never forked with the map held: {tail:?}"));
    assert_eq!(
        verdict, 0,
        "child of a raw fork with a broken map: code {verdict} (1: a second live handle of \
         the block, written behind the new Value's guard)"
    );
}
