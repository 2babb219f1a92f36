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

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use shared_runtime::{Arena, RawValue, Value};

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
