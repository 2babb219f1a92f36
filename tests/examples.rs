//! The examples run and print what they promise (the seed example exactly).

mod common;

use std::process::Command;

#[test]
fn seed_prints_the_seed_output() {
    let out = Command::new(common::example("seed")).output().unwrap();
    assert!(
        out.status.success(),
        "seed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "49\n0.1111111111111111\nHELLO WORLD\n\
         [(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]\n"
    );
}

#[test]
fn spawn_example_shares_with_an_execd_child() {
    let out = Command::new(common::example("spawn")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("doubled 3 numbers"), "{stdout}");
    assert!(
        stdout.ends_with("parent sees [3.0, 5.0, 7.0]\n"),
        "{stdout}"
    );
}
