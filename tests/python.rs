//! Python's own standard library attaches to a Rust arena and changes it.

mod common;

use std::process::Command;

fn python3_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn python_attaches_with_shared_memory_and_ctypes() {
    if !python3_available() {
        println!("skipped: python3 not found");
        return;
    }
    let out = Command::new(common::example("python_interop"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Python read what Rust wrote ...
    assert!(
        stdout.contains("python sees: counter = 41 points = [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]"),
        "{stdout}"
    );
    // ... and Rust sees what Python wrote.
    assert!(stdout.contains("after Python: counter = 42"), "{stdout}");
    assert!(
        stdout.contains("after Python: points = [(10.0, -2.0), (30.0, -4.0), (50.0, -6.0)]"),
        "{stdout}"
    );
    // The segment was removed when the example ended.
    let name = stdout
        .lines()
        .find_map(|l| l.strip_prefix("segment: "))
        .unwrap();
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}
