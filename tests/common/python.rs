//! Running `python3` from a test: bounded, and skipped with a message when it is absent.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `script` with `python3`, with `path` (if any) first on its module path, at most
/// `super::PATIENCE`; its standard output, or `None` (and a printed reason) if there is no
/// `python3`. Panics, with both outputs and the script, if Python fails or hangs.
pub fn run(script: &str, path: Option<&str>) -> Option<String> {
    let script = match path {
        Some(dir) => format!("import sys\nsys.path.insert(0, {dir:?})\n{script}"),
        None => script.to_string(),
    };
    let child = Command::new("python3")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: python3 not found");
            return None;
        }
        Err(e) => panic!("cannot run python3: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    drop(stdin);
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + super::PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("python3 hung for {:?} and was killed", super::PATIENCE);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "python3 failed ({status}):\n{out}\n{err}\n--- script ---\n{script}"
    );
    Some(out)
}
