//! The inspector against live arenas: objects, a lock holder alive, then dead, then the
//! poison of the recovery; `--json` carries the same facts; looking changes nothing.

mod support;

use std::time::Duration;

use shared_runtime::{Arena, Lock, Process, RawArray, RawValue, Value};
use support::{forking, inspect, ok, ok_json, unique, wait_until, Cleanup};

/// Starts a child that opens `name` by name, takes `"big-lock"` and sets `"ready"`, then
/// sleeps until killed.
fn holder(name: &str) -> Process<()> {
    let seg = name.to_string();
    Process::<()>::start(move || {
        let arena = Arena::open_segment(&seg).unwrap();
        let lock: Lock = arena.open("big-lock").unwrap();
        let ready: RawValue<u8> = arena.open("ready").unwrap();
        let _g = lock.lock().unwrap();
        ready.set(1);
        loop {
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .unwrap()
}

#[test]
fn a_lock_holder_is_shown_alive_then_dead_then_the_poison() {
    let _serial = forking();
    let name = unique("live");
    let _cleanup = Cleanup(name.clone());
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let hits = arena.create::<Value<u64>>("hits", 41).unwrap();
    let _buf = arena.create::<RawArray<u8>>("buf", &[0u8; 16]).unwrap();
    let lock = arena.create::<Lock>("big-lock", ()).unwrap();
    let ready = arena.create::<RawValue<u8>>("ready", 0).unwrap();

    // Every object with its kind and layout; all locks free.
    let shown = ok_json(&["show", &name]);
    assert_eq!(
        shown.get("creator_pid").int(),
        i128::from(std::process::id())
    );
    assert_eq!(shown.get("creator").str(), "alive");
    let objects = shown.get("objects");
    assert_eq!(objects.arr().len(), 4);
    for (obj, kind, label, size, len) in [
        ("hits", "Value", "Value<u64, RLock>", 8, 1),
        ("buf", "RawArray", "RawArray<u8>", 1, 16),
        ("big-lock", "Lock", "Lock", 24, 1),
        ("ready", "RawValue", "RawValue<u8>", 1, 1),
    ] {
        let o = objects.named(obj);
        assert_eq!(o.get("kind").str(), kind, "{obj}");
        assert_eq!(o.get("label").str(), label, "{obj}");
        assert_eq!(
            (o.get("size").int(), o.get("len").int()),
            (size, len),
            "{obj}"
        );
        assert_eq!(o.get("open_count").int(), 1, "{obj}");
    }
    assert!(objects.named("buf").get("lock").is_null());
    assert!(objects.named("hits").get("lock").get("holder").is_null());

    // A Value's own lock held here shows this process, depth 1.
    {
        let _g = hits.lock().unwrap();
        let shown = ok_json(&["show", &name]);
        let h = shown.get("objects").named("hits").get("lock");
        assert_eq!(h.get("depth").int(), 1);
        let holder = h.get("holder");
        assert_eq!(holder.get("pid").int(), i128::from(std::process::id()));
        assert_eq!(holder.get("status").str(), "alive");
    }

    // Held by a child: its pid, alive; and in the text form too.
    let mut child = holder(&name);
    let pid = child.pid();
    assert!(wait_until(|| ready.get() == 1));
    let shown = ok_json(&["show", &name]);
    let l = shown.get("objects").named("big-lock").get("lock");
    assert_eq!(l.get("holder").get("pid").int(), i128::from(pid));
    assert_eq!(l.get("holder").get("status").str(), "alive");
    assert_eq!(l.get("depth").int(), 1);
    assert!(l.get("poison").is_null());
    let text = ok(&["show", &name]);
    assert!(
        text.contains(&format!("held by pid {pid} tid {pid} (alive), depth 1")),
        "{text}"
    );
    // The child's open records count.
    assert_eq!(
        shown
            .get("objects")
            .named("big-lock")
            .get("open_count")
            .int(),
        2
    );

    // Killed: the same holder, now dead.
    child.kill().unwrap();
    assert!(child.join_timeout(Duration::from_secs(60)).is_err());
    let shown = ok_json(&["show", &name]);
    let l = shown.get("objects").named("big-lock").get("lock");
    assert_eq!(l.get("holder").get("pid").int(), i128::from(pid));
    assert_eq!(l.get("holder").get("status").str(), "dead");
    assert!(ok(&["show", &name]).contains("(dead)"));

    // Recovered by the next taker: free, poisoned by the dead child.
    assert!(lock.lock().is_err());
    let shown = ok_json(&["show", &name]);
    let l = shown.get("objects").named("big-lock").get("lock");
    assert!(l.get("holder").is_null());
    assert_eq!(l.get("poison").get("cause").str(), "died");
    assert_eq!(l.get("poison").get("pid").int(), i128::from(pid));
    let text = ok(&["show", &name]);
    assert!(
        text.contains(&format!(
            "poisoned (died): process {pid} died while holding it"
        )),
        "{text}"
    );
}

#[test]
fn looking_changes_nothing_and_stats_agree() {
    let name = unique("still");
    let _cleanup = Cleanup(name.clone());
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let _v = arena.create::<Value<u32>>("v", 1).unwrap();
    let before = arena.stats().unwrap();
    let shown = ok_json(&["show", &name]);
    let text = ok(&["show", &name]);
    ok(&["list"]);
    assert_eq!(arena.stats().unwrap(), before, "the inspector allocated");
    assert_eq!(arena.objects().unwrap()[0].open_count, 1);
    let stats = shown.get("stats");
    assert_eq!(stats.get("capacity").int(), i128::from(before.capacity));
    assert_eq!(
        stats.get("bytes_in_use").int(),
        i128::from(before.bytes_in_use)
    );
    assert_eq!(
        stats.get("live_allocations").int(),
        i128::from(before.live_allocations)
    );
    let report = arena.check().unwrap();
    assert_eq!(
        shown.get("check").get("used_blocks").int(),
        i128::from(report.used_blocks)
    );
    assert!(shown.get("allocator_holder").is_null());
    assert!(text.contains("every invariant holds"), "{text}");
    assert!(
        text.contains(&format!("{} bytes in use", before.bytes_in_use)),
        "{text}"
    );
}

#[test]
fn list_shows_our_arenas_and_remove_stale_removes_a_dead_creators() {
    let _serial = forking();
    let mine = unique("list");
    let _c1 = Cleanup(mine.clone());
    let arena = Arena::create_segment(&mine, 1 << 20).unwrap();
    let _a = arena.create::<RawValue<u64>>("a", 1).unwrap();
    let _b = arena.create::<Lock>("b", ()).unwrap();

    // A segment whose creator is killed stays behind, creator dead.
    let orphan = unique("orphan");
    let _c2 = Cleanup(orphan.clone());
    let made = arena.create::<RawValue<u8>>("made", 0).unwrap();
    let seg = orphan.clone();
    let mut child = Process::<()>::start(move || {
        let _keep = Arena::create_segment(&seg, 1 << 20).unwrap();
        let arena = Arena::open_segment(&seg).unwrap();
        let _named = arena.create::<RawValue<u8>>("x", 0).unwrap();
        made.set(1);
        loop {
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .unwrap();
    let made: RawValue<u8> = arena.open("made").unwrap();
    assert!(wait_until(|| made.get() == 1));
    let alive = ok_json(&["list"]);
    let row = alive.get("segments").named(&orphan);
    assert_eq!(row.get("creator_pid").int(), i128::from(child.pid()));
    assert_eq!(row.get("creator").str(), "alive");
    child.kill().unwrap();
    assert!(child.join_timeout(Duration::from_secs(60)).is_err());

    let listed = ok_json(&["list"]);
    let row = listed.get("segments").named(&mine);
    assert_eq!(row.get("arena"), &support::json::Value::Bool(true));
    assert_eq!(row.get("capacity").int(), 1 << 20);
    assert_eq!(row.get("creator").str(), "alive");
    assert_eq!(row.get("objects").int(), 3);
    let row = listed.get("segments").named(&orphan);
    assert_eq!(row.get("creator").str(), "dead");
    assert_eq!(row.get("objects").int(), 1);
    let text = ok(&["list"]);
    assert!(text.contains(&mine) && text.contains(&orphan), "{text}");

    let removed = ok_json(&["remove-stale"]);
    let names: Vec<&str> = removed
        .get("removed")
        .arr()
        .iter()
        .map(|v| v.str())
        .collect();
    assert!(names.contains(&orphan.as_str()), "{names:?}");
    assert!(!names.contains(&mine.as_str()), "{names:?}");
    assert!(!std::path::Path::new(&format!("/dev/shm/{orphan}")).exists());
    let run = inspect(&["show", &orphan]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}
