//! How long the next taker of a lock needs to notice that its holder was killed.
//!
//! `cargo run --release --example recovery_latency` kills a holder of a user `Lock`, and a
//! process in the middle of an allocation (holding the arena's allocator lock), 20 times
//! each, and prints how long the next acquisition took: once after the dead process was
//! reaped (its thread id no longer exists: one `kill(tid, 0)` proves the death before the
//! first sleep) and once while it is still an unreaped zombie (proved by `/proc` or a pidfd
//! at the first liveness check, which waiters make every 50 ms).

use std::time::{Duration, Instant};

use shared_runtime::test_hooks::crash_after_steps;
use shared_runtime::{Arena, Lock, Process, RawValue};

const ROUNDS: usize = 20;

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{label:<46} median {:>9.3?}  max {:>9.3?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

/// Kills a process holding a user lock; times the next `acquire` (reaped first or not).
fn user_lock(arena: &Arena, reap_first: bool) -> shared_runtime::Result<Duration> {
    let lock = Lock::new_in(arena)?;
    let held = RawValue::new_in(arena, 0u32)?;
    Process::scope(|s| {
        let (l, h) = (&lock, &held);
        let mut holder = s.start(move || {
            let _g = l.lock().unwrap();
            h.set(1);
            std::thread::sleep(Duration::from_secs(60));
        })?;
        while held.get() == 0 {
            std::thread::yield_now();
        }
        holder.kill()?;
        if reap_first {
            let _ = holder.join_timeout(Duration::from_secs(10));
        } else {
            std::thread::sleep(Duration::from_millis(5)); // dead, not reaped
        }
        let t = Instant::now();
        let outcome = lock.try_lock_for(Duration::from_secs(10));
        let took = t.elapsed();
        assert!(outcome.is_err_and(|e| matches!(e, std::sync::TryLockError::Poisoned(_))));
        let _ = holder.join_timeout(Duration::from_secs(10));
        Ok(took)
    })
}

/// Kills a process in the middle of an allocation; times the next allocation.
fn allocator_lock(arena: &Arena, reap_first: bool) -> shared_runtime::Result<Duration> {
    let in_child = arena.clone();
    let mut victim = Process::start(move || {
        crash_after_steps(2);
        let _ = RawValue::new_in(&in_child, 1u64);
    })?;
    if reap_first {
        let _ = victim.join_timeout(Duration::from_secs(10));
    } else {
        std::thread::sleep(Duration::from_millis(20)); // dead by now, not reaped
    }
    let t = Instant::now();
    let v = RawValue::new_in(arena, 2u64)?;
    let took = t.elapsed();
    drop(v);
    let _ = victim.join_timeout(Duration::from_secs(10));
    arena.check()?;
    Ok(took)
}

fn main() -> shared_runtime::Result<()> {
    let arena = Arena::with_capacity(16 << 20)?;
    for (label, f) in [
        (
            "Lock, holder SIGKILLed and reaped",
            (|a| user_lock(a, true)) as fn(&Arena) -> _,
        ),
        ("Lock, holder SIGKILLed, an unreaped zombie", |a| {
            user_lock(a, false)
        }),
        ("allocator, killed mid-operation and reaped", |a| {
            allocator_lock(a, true)
        }),
        ("allocator, killed mid-operation, unreaped", |a| {
            allocator_lock(a, false)
        }),
    ] {
        let times = (0..ROUNDS).map(|_| f(&arena)).collect::<Result<_, _>>()?;
        summary(label, times);
    }
    Ok(())
}
