//! The inspector against damaged and foreign segments: an error message and exit status 1
//! (or, in `list`, a row with the reason), never a crash or a hang.

mod support;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use shared_runtime::{Arena, RawValue};
use support::{inspect, ok, ok_json, unique, Cleanup};

fn shm(name: &str) -> std::fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(format!("/dev/shm/{name}"))
        .unwrap()
}

/// `show name` fails with status 1, its message naming the segment and containing `why`.
fn refused(name: &str, why: &str) {
    for json in [false, true] {
        let mut args = vec!["show", name];
        if json {
            args.push("--json");
        }
        let run = inspect(&args);
        assert_eq!(run.code, Some(1), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.starts_with("shared-inspect: "), "{}", run.stderr);
        assert!(run.stderr.contains(name), "{}", run.stderr);
        assert!(run.stderr.contains(why), "{why:?} not in {}", run.stderr);
    }
}

/// `list` succeeds and shows `name` as no arena, with `why`.
fn listed_as_not_an_arena(name: &str, why: &str) {
    let row = ok_json(&["list"]);
    let row = row.get("segments").named(name);
    assert_eq!(row.get("arena"), &support::json::Value::Bool(false));
    assert!(row.get("error").str().contains(why), "{row:?}");
    assert!(ok(&["list"]).contains(name));
}

#[test]
fn garbage_in_the_header_is_an_error() {
    let name = unique("magic");
    let _cleanup = Cleanup(name.clone());
    let _arena = Arena::create_segment(&name, 1 << 20).unwrap();
    shm(&name).write_all_at(&[0xde; 8], 0).unwrap();
    refused(&name, "is not an arena's");
    listed_as_not_an_arena(&name, "magic number");
}

#[test]
fn a_truncated_segment_is_an_error() {
    let name = unique("short");
    let _cleanup = Cleanup(name.clone());
    // Not touched after the truncation (its pages past the end are gone).
    let _arena = Arena::create_segment(&name, 1 << 20).unwrap();
    shm(&name).set_len(64 * 1024).unwrap();
    refused(&name, "truncated");
    listed_as_not_an_arena(&name, "truncated");
}

#[test]
fn other_programs_files_are_errors() {
    let text = unique("text");
    let _c1 = Cleanup(text.clone());
    shm(&text)
        .write_all_at(&b"not an arena at all\n".repeat(4000), 0)
        .unwrap();
    refused(&text, "is not an arena's");
    listed_as_not_an_arena(&text, "is not an arena's");

    let tiny = unique("tiny");
    let _c2 = Cleanup(tiny.clone());
    shm(&tiny).write_all_at(b"shctypes", 0).unwrap();
    refused(&tiny, "too small");

    let empty = unique("empty");
    let _c3 = Cleanup(empty.clone());
    shm(&empty);
    refused(&empty, "empty");
}

#[test]
fn a_fifo_or_a_directory_does_not_hang_the_inspector() {
    let fifo = unique("fifo");
    let _c1 = Cleanup(fifo.clone());
    let path = std::ffi::CString::new(format!("/dev/shm/{fifo}")).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    refused(&fifo, "not a regular file");
    listed_as_not_an_arena(&fifo, "not a regular file");

    let dir = unique("dir");
    std::fs::create_dir(format!("/dev/shm/{dir}")).unwrap();
    let run = inspect(&["show", &dir]);
    let _ = std::fs::remove_dir(format!("/dev/shm/{dir}"));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
}

#[test]
fn a_broken_block_chain_is_an_error() {
    let name = unique("chain");
    let _cleanup = Cleanup(name.clone());
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let _v = arena.create::<RawValue<u64>>("v", 1).unwrap();
    let (_, _, heap_start) = shared_runtime::test_hooks::layout_for_tests();
    // The first block's size word: an impossible size.
    shm(&name)
        .write_all_at(&0xffff_fff0u64.to_le_bytes(), heap_start)
        .unwrap();
    refused(&name, "impossible size");
    let row = ok_json(&["list"]);
    let row = row.get("segments").named(&name);
    assert!(row.get("objects").is_null());
    assert!(
        row.get("error").str().contains("impossible size"),
        "{row:?}"
    );
}

#[test]
fn an_allocator_lock_that_stays_held_is_shown_not_waited_on() {
    let name = unique("busy");
    let _cleanup = Cleanup(name.clone());
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let _v = arena.create::<RawValue<u64>>("v", 1).unwrap();
    let (lock_at, _, _) = shared_runtime::test_hooks::layout_for_tests();
    // Thread 1 (init, which runs for as long as the machine) as the holder: a forgery
    // naming a live thread, which no waiter may take the lock from.
    shm(&name)
        .write_all_at(&1u64.to_le_bytes(), lock_at as u64)
        .unwrap();
    let shown = ok_json(&["show", &name]);
    let holder = shown.get("allocator_holder");
    assert_eq!(holder.get("tid").int(), 1);
    assert_eq!(holder.get("status").str(), "alive");
    assert_eq!(shown.get("settled"), &support::json::Value::Bool(false));
    assert_eq!(
        shown.get("objects").named("v").get("kind").str(),
        "RawValue"
    );
    assert!(ok(&["show", &name]).contains("allocator lock: held by pid ? tid 1 (alive)"));
    // The lock word was not touched by looking.
    assert!(arena.allocator_lock_held_for_tests());
    shm(&name)
        .write_all_at(&0u64.to_le_bytes(), lock_at as u64)
        .unwrap();
}
