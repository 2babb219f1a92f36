//! The seed example prints exactly the seed's output.

use std::path::PathBuf;
use std::process::Command;

/// `cargo test` builds the examples next to the test binaries' `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built; run through `cargo test`", path.display());
    path
}

#[test]
fn seed_prints_the_seed_output() {
    let out = Command::new(example("seed")).output().unwrap();
    assert!(out.status.success(), "seed failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "49\n0.1111111111111111\nHELLO WORLD\n\
         [(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]\n"
    );
}
