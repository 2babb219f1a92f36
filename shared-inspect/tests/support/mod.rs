//! Helpers of the inspector's tests: running the binary, unique names, bounded waits, and
//! a small JSON parser (the workspace takes no JSON crate).
#![allow(dead_code)] // each test binary uses a different subset

use std::process::Command;
use std::time::{Duration, Instant};

pub mod json;

/// What one run of the inspector printed, and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `shared-inspect args...`, killing it (and failing) if it runs for a minute.
pub fn inspect(args: &[&str]) -> Run {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shared-inspect"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the inspector starts");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the inspector hung on {args:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs the inspector expecting success; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let run = inspect(args);
    assert_eq!(run.code, Some(0), "{args:?} failed: {}", run.stderr);
    run.stdout
}

/// Runs the inspector with `--json` expecting success; returns the parsed output.
pub fn ok_json(args: &[&str]) -> json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(&all);
    json::parse(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

/// A segment name no other test or run uses.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("shr-inspect-{tag}-{}-{n}", std::process::id())
}

/// Polls `cond` for up to a minute; whether it held.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Serialises the tests of one binary that fork: a child forked while another test's
/// thread holds a process-private lock could hang on it.
pub fn forking() -> std::sync::MutexGuard<'static, ()> {
    static FORK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    FORK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes `/dev/shm/name` when dropped (a failed test leaves nothing behind).
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}
