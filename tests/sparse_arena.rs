//! Lazy pages and a sparse arena that stays sparse for tools: only the part of an arena's
//! mapping that its heap has reached is accessible (the rest is `PROT_NONE` and left out
//! of core dumps), every process extends its own part before touching a block another
//! process made, and a size-limited tmpfs that fills up is an `Error`, never a `SIGBUS`.

mod common;

use common::{forking, in_child, unique, unshare_or_userns, wait_until};
use shared_runtime::{Arena, Error, Process, RawArray, RawValue};

/// One region of this process's mappings.
struct Region {
    start: u64,
    end: u64,
    readable: bool,
    dumped: bool,
}

/// The regions of `/proc/self/smaps` that lie inside `[base, base + len)`.
fn regions(base: u64, len: u64) -> Vec<Region> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut out: Vec<Region> = Vec::new();
    let mut current: Option<Region> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                out.extend(current.take());
                let perms = line.split_whitespace().nth(1).unwrap_or("");
                current = (a >= base && b <= base + len).then(|| Region {
                    start: a,
                    end: b,
                    readable: perms.starts_with('r'),
                    dumped: true,
                });
                continue;
            }
        }
        if let (Some(r), Some(flags)) = (current.as_mut(), line.strip_prefix("VmFlags:")) {
            r.dumped = !flags.split_whitespace().any(|f| f == "dd");
        }
    }
    out.extend(current);
    out
}

/// The arena's base address, from its `Debug` output.
fn base_of(arena: &Arena) -> u64 {
    let text = format!("{arena:?}");
    let hex = text.split("base: 0x").nth(1).unwrap();
    let hex: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).unwrap()
}

/// (readable and dumped bytes, unreadable and undumped bytes) of the arena's mapping.
fn visible_and_hidden(arena: &Arena) -> (u64, u64) {
    let rs = regions(base_of(arena), arena.capacity());
    let total: u64 = rs.iter().map(|r| r.end - r.start).sum();
    assert_eq!(
        total,
        arena.capacity(),
        "the mapping is not where Debug says"
    );
    let mut seen = (0, 0);
    for r in rs {
        assert_eq!(
            r.readable, r.dumped,
            "a region is dumped exactly when it is accessible"
        );
        if r.readable {
            seen.0 += r.end - r.start;
        } else {
            seen.1 += r.end - r.start;
        }
    }
    seen
}

#[test]
fn only_the_reached_part_of_an_arena_is_visible_to_tools() {
    let arena = Arena::with_capacity(1 << 30).unwrap();
    let (visible, hidden) = visible_and_hidden(&arena);
    assert!(
        visible <= 2 << 20,
        "{visible} bytes visible in a fresh arena"
    );
    assert_eq!(visible + hidden, 1 << 30);

    let big = RawArray::<u8>::zeroed_in(&arena, 64 << 20).unwrap();
    big.set((64 << 20) - 1, 9);
    let (visible, _) = visible_and_hidden(&arena);
    assert!(
        (64 << 20..=70 << 20).contains(&visible),
        "{visible} bytes visible with 64 MiB in use"
    );
    // Freeing does not hide memory again: other threads of this process never need to
    // re-check, so the visible part only grows.
    drop(big);
    assert!(visible_and_hidden(&arena).0 >= 64 << 20);
    arena.check().unwrap();
}

#[test]
fn the_global_arena_shows_tools_only_what_its_heap_reached() {
    let global = Arena::global();
    let (visible, hidden) = visible_and_hidden(global);
    let used = global.stats().unwrap().reserved_bytes;
    assert!(
        visible >= used && visible <= used + (2 << 20),
        "{visible} vs {used}"
    );
    assert_eq!(visible + hidden, global.capacity());
}

/// A block made after the fork, far past what the child could touch when it was forked,
/// is adopted and used by the child: its allocator call extends its own mapping first.
fn hand_over_a_block_made_after_the_fork(arena: &Arena, reopen: Option<&str>) {
    const LEN: usize = 8 << 20; // 64 MiB of u64
    let mailbox = RawValue::new_in(arena, 0u64).unwrap();
    let (mailbox_ref, arena_ref) = (&mailbox, arena);
    let child = Process::scope(|s| {
        let child = s.start(move || {
            assert!(wait_until(|| mailbox_ref.get() != 0), "no offset came");
            let reopened;
            let arena = match reopen {
                Some(name) => {
                    reopened = Arena::open_segment(name).unwrap();
                    &reopened
                }
                None => arena_ref,
            };
            let a = RawArray::<u64>::from_offset_in(arena, mailbox_ref.get(), LEN).unwrap();
            let last = a.get(LEN - 1).unwrap();
            a.set(LEN - 1, last + 1);
            a.set(0, 5);
            let offset = a.into_offset().unwrap();
            mailbox_ref.set(offset);
            last
        })?;
        // Made after the fork: far past the child's accessible part of the mapping.
        let big = RawArray::<u64>::zeroed_in(arena_ref, LEN).unwrap();
        big.set(LEN - 1, 41);
        mailbox_ref.set(big.into_offset().unwrap());
        common::finish(child)
    });
    assert_eq!(child.unwrap(), 41);
    let back = RawArray::<u64>::from_offset_in(arena, mailbox.get(), LEN).unwrap();
    assert_eq!((back.get(0), back.get(LEN - 1)), (Some(5), Some(42)));
    drop(back);
    arena.check().unwrap();
}

#[test]
fn a_forked_child_reaches_blocks_made_after_it_was_forked() {
    let _serial = forking();
    let arena = Arena::with_capacity(1 << 30).unwrap();
    hand_over_a_block_made_after_the_fork(&arena, None);
}

#[test]
fn a_process_that_opens_a_segment_reaches_blocks_beyond_its_first_view() {
    let _serial = forking();
    let name = unique("sparse");
    let arena = Arena::create_segment(&name, 256 << 20).unwrap();
    hand_over_a_block_made_after_the_fork(&arena, Some(&name));
}

const SKIPPED: u64 = u64::MAX;

/// Mounts a fresh 8 MiB tmpfs on `/dev/shm` in a private mount namespace of the calling
/// (forked, single-threaded) process; `false` if the system does not allow that here.
fn small_dev_shm() -> bool {
    use nix::mount::{mount, MsFlags};
    if !unshare_or_userns(libc::CLONE_NEWNS) {
        return false;
    }
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, private, None::<&str>).is_ok()
        && mount(
            Some("none"),
            "/dev/shm",
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=8m"),
        )
        .is_ok()
}

/// A named segment larger than the tmpfs it lives on: allocations fail with
/// `NoSystemMemory` once the tmpfs is full (every byte handed out before was written, so a
/// page that was not really there would have raised `SIGBUS` and killed the child), and a
/// freed block is handed out again although the tmpfs is still full.
#[test]
fn a_full_size_limited_dev_shm_is_an_error_not_sigbus() {
    let _serial = forking();
    let got = in_child(|| {
        if !small_dev_shm() {
            return SKIPPED;
        }
        let name = unique("full");
        let arena = Arena::create_segment(&name, 64 << 20).unwrap();
        let mut kept = Vec::new();
        let err = loop {
            match RawArray::<u8>::zeroed_in(&arena, 1 << 20) {
                Ok(a) => {
                    a.write(0, &vec![7u8; 1 << 20]);
                    kept.push(a);
                }
                Err(e) => break e,
            }
            assert!(kept.len() < 64, "64 MiB fitted in an 8 MiB tmpfs");
        };
        assert!(
            matches!(err, Error::NoSystemMemory { .. }),
            "expected NoSystemMemory, got {err}"
        );
        let filled = kept.len() as u64;
        // A freed block is reused without reserving anything new.
        let middle = kept.remove(filled as usize / 2);
        drop(middle);
        let again = RawArray::<u8>::zeroed_in(&arena, 1 << 20).unwrap();
        assert!(again.to_vec().iter().all(|&b| b == 0));
        again.write(0, &vec![9u8; 1 << 20]);
        arena.check().unwrap();
        filled
    })
    .unwrap();
    if got == SKIPPED {
        eprintln!("skipped: cannot mount a tmpfs in a private mount namespace here");
        return;
    }
    assert!((3..8).contains(&got), "{got} MiB fitted in an 8 MiB tmpfs");
}
