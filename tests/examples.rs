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

#[test]
fn pipeline_moves_every_job_through_two_stages() {
    let out = Command::new(common::example("pipeline")).output().unwrap();
    assert!(
        out.status.success(),
        "pipeline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "pipeline: 1 producer -> 2 workers -> 1 collector, queues of 16 slots\n\
         produced 1000 jobs\n\
         workers did 1000 jobs between them\n\
         collected 1000 results, 0 missing\n\
         sum of squares 1..=1000: 333833500 (expected 333833500)\n"
    );
}
