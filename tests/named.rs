//! Named arenas, named objects and handles, across processes that did not fork from the
//! creator; and opening damaged segments.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::process::Command;

use common::{finish, forking, in_child, unique};
use shared_runtime::handle::Handle;
use shared_runtime::{Arena, Error, Process, RawArray, RawValue};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/{name}")
}

#[test]
fn named_arena_round_trip_and_unlink_on_drop() {
    let name = unique("rt");
    let a = Arena::create_segment(&name, 1 << 20).unwrap();
    assert_eq!(a.name(), Some(name.as_str()));
    let counter = a.create::<RawValue<i32>>("counter", 41).unwrap();
    let b = Arena::open_segment(&name).unwrap();
    assert_eq!(b.id(), a.id());
    let c = b.open::<RawValue<i32>>("counter").unwrap();
    c.set(c.get() + 1);
    assert_eq!(counter.get(), 42);
    let err = Arena::create_segment(&name, 1 << 20).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    drop((counter, c, b));
    drop(a);
    assert!(matches!(
        Arena::open_segment(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn bad_names_are_refused() {
    for name in ["", "a/b", "/lead", "nul\0byte", ".", ".."] {
        let err = Arena::create_segment(name, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
        assert!(
            matches!(Arena::open_segment(name), Err(Error::InvalidName { .. })),
            "{name:?}"
        );
    }
    let long = "x".repeat(300);
    assert!(matches!(
        Arena::create_segment(&long, 1 << 20),
        Err(Error::InvalidName { .. })
    ));
    let arena = Arena::with_capacity(1 << 20).unwrap();
    assert!(matches!(
        arena.create::<RawValue<u8>>("", 1),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        arena.create::<RawValue<u8>>(&"y".repeat(201), 1),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn layout_mismatch_names_both_layouts() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    arena.create::<RawValue<[f64; 2]>>("p", [1.0, 2.0]).unwrap();
    let err = arena.open::<RawValue<[f32; 4]>>("p").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::LayoutMismatch { .. }), "{text}");
    assert!(
        text.contains("[f64; 2]") && text.contains("[f32; 4]"),
        "{text}"
    );
    arena.create::<RawArray<u8>>("xs", &[1, 2]).unwrap();
    assert!(matches!(
        arena.open::<RawValue<u8>>("xs"),
        Err(Error::KindMismatch { .. })
    ));
    assert!(matches!(
        arena.open::<RawArray<u8>>("p"),
        Err(Error::KindMismatch { .. })
    ));
    assert!(matches!(
        arena.open::<RawValue<u8>>("missing"),
        Err(Error::NotFound { .. })
    ));
    let (same, created) = arena.find_or_create::<RawArray<u8>>("xs", &[0; 2]).unwrap();
    assert!(!created);
    assert_eq!(same.to_vec(), [1, 2]);
    assert!(matches!(
        arena.find_or_create::<RawArray<u8>>("xs", &[0; 3]),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(arena.remove("xs").unwrap());
    assert_eq!(arena.names().unwrap(), ["p"]);
    arena.check().unwrap();
}

#[test]
fn foreign_truncated_and_damaged_segments_are_errors() {
    let _serial = forking(); // writes segments other tests' remove_stale_segments may look at
                             // Another program's segment under a name we open.
    let foreign = unique("foreign");
    std::fs::write(shm_path(&foreign), vec![7u8; 64 << 10]).unwrap();
    let err = Arena::open_segment(&foreign).unwrap_err();
    assert!(matches!(err, Error::InvalidSegment { .. }), "{err}");
    assert!(err.to_string().contains("magic"), "{err}");
    std::fs::write(shm_path(&foreign), b"").unwrap();
    assert!(matches!(
        Arena::open_segment(&foreign),
        Err(Error::InvalidSegment { .. })
    ));
    std::fs::remove_file(shm_path(&foreign)).unwrap();

    // A real arena, truncated behind our back.
    let name = unique("trunc");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    file.set_len(300_000).unwrap();
    let err = Arena::open_segment(&name).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    file.set_len(1 << 20).unwrap(); // the header survived: usable again
    Arena::open_segment(&name).unwrap();

    // Wrong magic, wrong version.
    let magic = file.read_at_owned(0, 8);
    file.write_at(b"notmagic", 0).unwrap();
    assert!(Arena::open_segment(&name)
        .unwrap_err()
        .to_string()
        .contains("magic"));
    file.write_at(&magic, 0).unwrap();
    file.write_at(&99u32.to_le_bytes(), 8).unwrap();
    assert!(Arena::open_segment(&name)
        .unwrap_err()
        .to_string()
        .contains("version 99"));
    file.set_len(100).unwrap();
    assert!(matches!(
        Arena::open_segment(&name),
        Err(Error::InvalidSegment { .. })
    ));
    drop(arena);
}

trait ReadAtOwned {
    fn read_at_owned(&self, at: u64, n: usize) -> Vec<u8>;
}

impl ReadAtOwned for std::fs::File {
    fn read_at_owned(&self, at: u64, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.read_exact_at(&mut buf, at).unwrap();
        buf
    }
}

/// Flips random bytes of a segment's header and allocator state and opens it 10 000 times:
/// every outcome is an `Ok` or an `Error`, never a crash, hang or out-of-bounds access.
#[test]
fn fuzzed_headers_never_crash() {
    let _serial = forking();
    let name = unique("fuzz");
    let arena = Arena::create_segment(&name, 4 << 20).unwrap();
    let objects: Vec<_> = (0..40)
        .map(|i| RawArray::<u8>::zeroed_in(&arena, 100 * i + 1).unwrap())
        .collect();
    // Free every other one, so that the bins are populated.
    let objects: Vec<_> = objects.into_iter().step_by(2).collect();
    let keep: Vec<_> = (0..10)
        .map(|i| {
            arena
                .create::<RawValue<u64>>(&format!("o{i}"), i as u64)
                .unwrap()
        })
        .collect();
    let (lock_at, lock_len, heap_start) = shared_runtime::test_hooks::layout_for_tests();
    // The header, the allocator state, and the first blocks.
    let span = heap_start as usize + 4096;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    let pristine = file.read_at_owned(0, span);
    let mut seed = std::env::var("SHR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1234_5678_9abc_def0u64);
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..10_000 {
        file.write_at(&pristine, 0).unwrap();
        for _ in 0..1 + rand() % 4 {
            let at = (rand() % span as u64) as usize;
            if (lock_at..lock_at + lock_len).contains(&at) {
                continue;
            }
            let bit = 1u8 << (rand() % 8);
            file.write_at(&[pristine[at] ^ bit], at as u64).unwrap();
        }
        match Arena::open_segment(&name) {
            Ok(a) => {
                opened += 1;
                // Use it: every answer must be a value or an error.
                let _ = a.check();
                let _ = a.names();
                if let Ok(v) = RawValue::new_in(&a, 1u64) {
                    v.set(2);
                }
                let _ = a.open::<RawValue<u64>>("o3");
            }
            Err(_) => refused += 1,
        }
    }
    assert_eq!(opened + refused, 10_000);
    assert!(
        refused > 0 && opened > 0,
        "opened {opened}, refused {refused}"
    );
    file.write_at(&pristine, 0).unwrap();
    drop((keep, objects));
    drop(arena);
}

/// Two processes race `find_or_create` on one name: exactly one creates it.
#[test]
fn racing_find_or_create_makes_one_object() {
    let _serial = forking();
    for _ in 0..20 {
        let name = unique("race");
        let arena = Arena::create_segment(&name, 1 << 20).unwrap();
        let created = RawArray::<u8>::zeroed_in(&arena, 4).unwrap();
        let go = RawValue::new_in(&arena, 0u8).unwrap();
        Process::scope(|s| {
            let (created, go) = (&created, &go);
            let racers: Vec<_> = (0..4)
                .map(|i| {
                    s.start(move || {
                        let mine = Arena::open_segment(&name_of(go))
                            .unwrap_or_else(|_| go.arena().clone());
                        while go.get() == 0 {
                            std::hint::spin_loop();
                        }
                        let (v, made) = mine
                            .find_or_create::<RawValue<u32>>("shared", i as u32)
                            .unwrap();
                        created.set(i, made as u8);
                        let _ = v.get();
                    })
                    .unwrap()
                })
                .collect();
            go.set(1);
            for r in racers {
                finish(r).unwrap();
            }
            assert_eq!(created.to_vec().iter().map(|&c| c as u32).sum::<u32>(), 1);
            assert_eq!(arena.names().unwrap(), ["shared"]);
        });
    }
}

fn name_of(v: &RawValue<u8>) -> String {
    v.arena().name().unwrap().to_string()
}

#[test]
fn creator_exit_and_panic_unlink_the_name_but_sigkill_leaves_it() {
    let _serial = forking();
    let gone = |name: &str| matches!(Arena::open_segment(name), Err(Error::NotFound { .. }));
    let name = unique("exit");
    in_child(|| drop(Arena::create_segment(&name, 1 << 20).unwrap())).unwrap();
    assert!(gone(&name), "normal exit removes the name");

    let name = unique("panic");
    let err = in_child::<()>(|| {
        let _a = Arena::create_segment(&name, 1 << 20).unwrap();
        panic!("creator panics");
    })
    .unwrap_err();
    assert!(matches!(err, Error::ChildPanicked { .. }), "{err}");
    assert!(gone(&name), "unwinding removes the name");

    let name = unique("kill");
    let err = in_child(|| {
        let _a = Arena::create_segment(&name, 1 << 20).unwrap();
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    })
    .unwrap_err();
    assert!(err.to_string().contains("SIGKILL"), "{err}");
    assert!(!gone(&name), "SIGKILL leaves the name behind");
    // A live creator's segment is not stale; the dead one's is.
    let live = unique("live");
    let _live = Arena::create_segment(&live, 1 << 20).unwrap();
    let removed = Arena::remove_stale_segments().unwrap();
    assert!(removed.contains(&name), "{removed:?}");
    assert!(!removed.contains(&live));
    assert!(gone(&name));
}

#[test]
fn handles_round_trip_and_check_what_they_open() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = RawValue::new_in(&arena, [1u16, 2, 3]).unwrap();
    let h: Handle = v.handle().to_string().parse().unwrap();
    assert_eq!(h, v.handle());
    // This process owns the value: it is told to clone its handle, not given a second.
    let err = RawValue::<[u16; 3]>::open_handle(&arena, &h).unwrap_err();
    assert!(err.to_string().contains("clone"), "{err}");
    let (a2, h2) = (arena.clone(), h);
    let child = Process::start(move || RawValue::<[u16; 3]>::open_handle(&a2, &h2).unwrap().get());
    let got = finish(child.unwrap()).unwrap();
    assert_eq!(got, [1, 2, 3]);
    assert!(matches!(
        RawValue::<[u16; 4]>::open_handle(&arena, &h),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(
        RawArray::<[u16; 3]>::open_handle(&arena, &h).is_err(),
        "a value is no array"
    );
    let other = Arena::with_capacity(1 << 20).unwrap();
    assert!(matches!(
        RawValue::<[u16; 3]>::open_handle(&other, &h),
        Err(Error::InvalidHandle { .. })
    ));
    let forged = Handle {
        offset: h.offset + 4096,
        ..h
    };
    assert!(RawValue::<[u16; 3]>::open_handle(&arena, &forged).is_err());
    let forged = Handle {
        offset: u64::MAX - 7,
        ..h
    };
    assert!(RawValue::<[u16; 3]>::open_handle(&arena, &forged).is_err());
    for text in [
        "",
        "shr1:1:2:3",
        "shr2:1:2:3:4:vb",
        "shr1:zz:2:3:4:vb",
        "shr1:1:2:3:4:xx",
    ] {
        assert!(
            matches!(text.parse::<Handle>(), Err(Error::InvalidHandle { .. })),
            "{text:?}"
        );
    }
    // Ownership travels with an owned handle, once.
    let a = RawArray::from_slice_in(&arena, &[9u8; 5]).unwrap();
    let owned = a.into_handle().unwrap();
    let mine = RawArray::<u8>::open_handle(&arena, &owned).unwrap();
    assert!(RawArray::<u8>::open_handle(&arena, &owned).is_err());
    let live = arena.stats().unwrap().live_allocations;
    drop(mine);
    assert_eq!(
        arena.stats().unwrap().live_allocations,
        live - 1,
        "the new owner frees it"
    );
}

/// The child side of `spawned_program_opens_handles`: runs only when spawned by it.
#[test]
#[ignore = "run as a child process by spawned_program_opens_handles"]
fn spawned_child() {
    let arena = Arena::from_env()
        .unwrap()
        .expect("started without an arena");
    let value: Handle = std::env::var("SHR_TEST_VALUE").unwrap().parse().unwrap();
    let array: Handle = std::env::var("SHR_TEST_ARRAY").unwrap().parse().unwrap();
    let v = RawValue::<u64>::open_handle(&arena, &value).unwrap();
    v.set(v.get() * 2);
    let a = RawArray::<i32>::open_handle(&arena, &array).unwrap();
    a.write(0, &a.to_vec().iter().map(|x| -x).collect::<Vec<_>>());
    // Take over the array it was given ownership of, and give back a new object by name.
    arena.create::<RawValue<u8>>("from-child", 77).unwrap();
}

fn run_spawned_child(arena: &Arena, value: &Handle, array: &Handle) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "spawned_child", "--test-threads=1"])
        .env("SHR_TEST_VALUE", value.to_string())
        .env("SHR_TEST_ARRAY", array.to_string());
    arena.share_with(&mut cmd).unwrap();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A program started with exec (this test binary, again) opens objects from handles, in
/// an inherited anonymous arena and in a named one.
#[test]
fn spawned_program_opens_handles() {
    let _serial = forking();
    for named in [false, true] {
        let name = unique("spawn");
        let arena = if named {
            Arena::create_segment(&name, 1 << 20).unwrap()
        } else {
            Arena::with_capacity(1 << 20).unwrap()
        };
        let v = RawValue::new_in(&arena, 21u64).unwrap();
        let a = RawArray::from_slice_in(&arena, &[1i32, 2, 3]).unwrap();
        let array_handle = a.handle();
        run_spawned_child(&arena, &v.handle(), &array_handle);
        assert_eq!(v.get(), 42, "named: {named}");
        assert_eq!(a.to_vec(), [-1, -2, -3]);
        assert_eq!(arena.open::<RawValue<u8>>("from-child").unwrap().get(), 77);
        arena.check().unwrap();
    }
}

/// Two views of one named object cannot both be wrapped with a lock: their guards would
/// give two `&mut` to the same memory.
#[test]
fn only_owned_objects_can_be_synchronized() {
    use shared_runtime::synchronized;
    let arena = Arena::with_capacity(1 << 20).unwrap();
    arena.create::<RawValue<u64>>("x", 1).unwrap();
    let view = arena.open::<RawValue<u64>>("x").unwrap();
    let err = synchronized(view, None).unwrap_err();
    assert!(matches!(err, Error::NotOwned), "{err}");
    let owned = RawValue::new_in(&arena, 2u64).unwrap();
    // A second, borrowed handle of an owned value is not even made.
    assert!(RawValue::<u64>::open_handle(&arena, &owned.handle()).is_err());
    assert_eq!(synchronized(owned, None).unwrap().get(), 2);
}

/// A program the arena is shared with cannot shrink it (which would make every process's
/// accesses raise SIGBUS): the memory file is sealed.
#[test]
fn inherited_arena_cannot_be_resized() {
    let arena = Arena::with_capacity(1 << 20).unwrap();
    let v = RawValue::new_in(&arena, 5u32).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        r#"fd=${SHARED_RUNTIME_ARENA#fd:}; truncate -s 4096 /proc/self/fd/$fd"#,
    ]);
    arena.share_with(&mut cmd).unwrap();
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "truncate succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
    assert_eq!(v.get(), 5);
    arena.check().unwrap();
}

/// A creator whose name was removed and re-created by someone else does not remove the new
/// segment when it goes.
#[test]
fn a_creator_does_not_unlink_a_recreated_name() {
    let name = unique("recreate");
    let first = Arena::create_segment(&name, 1 << 20).unwrap();
    assert!(Arena::remove_segment(&name).unwrap());
    let second = Arena::create_segment(&name, 1 << 20).unwrap();
    drop(first);
    let opened = Arena::open_segment(&name).unwrap();
    assert_eq!(opened.id(), second.id());
    drop((opened, second));
    assert!(matches!(
        Arena::open_segment(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn handle_text_has_one_spelling() {
    let v = RawValue::new(1u8).unwrap();
    let text = v.handle().to_string();
    let plus = text.replacen(":", ":+", 2).replacen("shr1:+", "shr1:", 1);
    assert_ne!(plus, text);
    assert!(plus.parse::<Handle>().is_err(), "{plus}");
    assert!(text.parse::<Handle>().is_ok());
}
