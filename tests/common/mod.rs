//! Helpers shared by the multi-process tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use shared_runtime::{Process, Result};

static FORK: Mutex<()> = Mutex::new(());

/// Serialises the tests of one binary that fork: a child forked while another test's thread
/// holds a process-private lock could hang on it.
pub fn forking() -> MutexGuard<'static, ()> {
    FORK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long any test waits for a child before calling it hung.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Joins `p`, killing it (and failing) if it has not ended within [`PATIENCE`].
pub fn finish(mut p: Process<'_>) -> Result<()> {
    match p.join_timeout(PATIENCE) {
        Err(shared_runtime::Error::Timeout(_)) => {
            p.kill().unwrap();
            let _ = p.join_timeout(PATIENCE);
            panic!("child {} hung for {PATIENCE:?} and was killed", p.pid());
        }
        other => other,
    }
}

/// Polls `cond` until it holds or [`PATIENCE`] runs out; returns whether it held.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

/// The path of example `name`: `cargo test` builds examples next to the test binaries'
/// `deps/` directory.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} was not built; run through `cargo test`",
        path.display()
    );
    path
}
