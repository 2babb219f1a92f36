//! `python/sharedctypes_rs.py`, the pure-Python helper, against arenas made here: it lists
//! the named objects, maps them by name after checking kind, size and fingerprint, writes
//! words Rust then sees, refuses wrong declarations, and raises on damaged segments.
//! Skipped (with a message) when `python3` is not installed.

mod common;

use shared_runtime::{Arena, Lock, RawArray, RawValue, SharedStruct, SharedType, Value};

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

/// As large as a `Point`, with another layout (so another fingerprint).
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Other {
    a: u64,
    b: u64,
}

/// Runs `script` with `python3`, the helper's directory on its path; `None` (and a
/// message) if there is no `python3`.
fn python(script: &str) -> Option<String> {
    common::python::run(
        script,
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../python")),
    )
}

/// The output line starting with `key `, without the key.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no line {key:?} in:\n{out}"))
}

#[test]
fn python_lists_reads_and_writes_named_objects() {
    let name = common::unique("pyhelper");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    let raw = arena.create::<RawValue<u64>>("raw", 41).unwrap();
    let locked = arena.create::<Value<u64>>("locked", 77).unwrap();
    let points = arena
        .create::<RawArray<Point>>(
            "points",
            &[Point { x: 1.0, y: 2.0 }, Point { x: 3.0, y: 4.0 }],
        )
        .unwrap();
    let xs = arena.create::<RawArray<i32>>("xs", &[1, 2, 3]).unwrap();
    let _big = arena.create::<Lock>("big", ()).unwrap();
    let script = format!(
        r#"
import ctypes
import sharedctypes_rs as s
{point}
{other}
class Handwritten(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]

a = s.open_arena({name:?})
print("heap_start", s.HEAP_START)
for o in sorted(a.objects()):
    print("obj", o.name, o.kind, o.lock, o.type_name, o.label, o.size, o.len, o.fingerprint)
raw = a.get("raw", ctypes.c_uint64, kind="RawValue")
print("raw", raw.value)
raw.value = 12345
locked = a.get("locked", ctypes.c_uint64)
print("locked", locked.value)
pts = a.get("points", Point)
print("points", [(p.x, p.y) for p in pts])
pts[1].x = -3.5
xs = a.get("xs", ctypes.c_int32)
print("xs", list(xs))
xs[2] = 99

def refused(key, f):
    try:
        f()
        print(key, "accepted")
    except s.ArenaError as e:
        print(key, type(e).__name__, e)

refused("other_struct", lambda: a.get("points", Other))
refused("handwritten", lambda: a.get("points", Handwritten))
refused("forced", lambda: print("forced_ok", a.get("points", Handwritten, fingerprint={point_fp})[0].x))
refused("signed", lambda: a.get("raw", ctypes.c_int64))
refused("narrow", lambda: a.get("raw", ctypes.c_uint32))
refused("lock", lambda: a.get("big", ctypes.c_uint64))
refused("kind", lambda: a.get("raw", ctypes.c_uint64, kind="Value"))
refused("missing", lambda: a.get("nope", ctypes.c_uint64))
refused("closed_with_views", a.close)
del raw, locked, pts, xs
a.close()
refused("no_segment", lambda: s.open_arena({name:?} + "-none"))

for key, t in [("i8", ctypes.c_int8), ("u8", ctypes.c_uint8), ("i16", ctypes.c_int16),
               ("u16", ctypes.c_uint16), ("i32", ctypes.c_int32), ("u32", ctypes.c_uint32),
               ("i64", ctypes.c_int64), ("u64", ctypes.c_uint64), ("f32", ctypes.c_float),
               ("f64", ctypes.c_double), ("cchar", ctypes.c_char), ("wchar", ctypes.c_wchar),
               ("u16x4", ctypes.c_uint16 * 4), ("f64x3x2", (ctypes.c_double * 3) * 2),
               ("point", Point)]:
    print("fp_" + key, *sorted(s.fingerprints(t)))
"#,
        point = Point::LAYOUT.to_ctypes(),
        other = Other::LAYOUT.to_ctypes(),
        point_fp = Point::LAYOUT.fingerprint(),
    );
    let Some(out) = python(&script) else { return };

    // The listing: every object, with Rust's kind, type, size, length and fingerprint.
    let (_, _, heap_start) = shared_runtime::test_hooks::layout_for_tests();
    assert_eq!(line(&out, "heap_start"), heap_start.to_string());
    let objects: Vec<&str> = out.lines().filter(|l| l.starts_with("obj ")).collect();
    let fp = |l: &shared_runtime::layout::TypeLayout| l.fingerprint();
    assert_eq!(
        objects,
        [
            "obj big Lock Lock  Lock 24 1 0".to_string(),
            format!(
                "obj locked Value RLock u64 Value<u64, RLock> 8 1 {}",
                fp(&u64::LAYOUT)
            ),
            format!(
                "obj points RawArray None Point RawArray<Point> 16 2 {}",
                fp(&Point::LAYOUT)
            ),
            format!(
                "obj raw RawValue None u64 RawValue<u64> 8 1 {}",
                fp(&u64::LAYOUT)
            ),
            format!(
                "obj xs RawArray None i32 RawArray<i32> 4 3 {}",
                fp(&i32::LAYOUT)
            ),
        ],
        "{out}"
    );
    // Reads by name.
    assert_eq!(line(&out, "raw"), "41");
    assert_eq!(line(&out, "locked"), "77");
    assert_eq!(line(&out, "points"), "[(1.0, 2.0), (3.0, 4.0)]");
    assert_eq!(line(&out, "xs"), "[1, 2, 3]");
    // Single-word writes, seen here.
    assert_eq!(raw.get(), 12345);
    assert_eq!(points.get(1).unwrap().x, -3.5);
    assert_eq!(xs.to_vec(), [1, 2, 99]);
    assert_eq!(locked.get(), 77);
    // Refusals, each with the reason.
    let refusal = |key: &str, kind: &str, words: &[&str]| {
        let l = line(&out, key);
        assert!(l.starts_with(kind), "{key}: {l}");
        for w in words {
            assert!(l.contains(w), "{key}: {w:?} missing from {l}");
        }
    };
    let points_fp = format!("{:#018x}", Point::LAYOUT.fingerprint());
    let other_fp = format!("{:#018x}", Other::LAYOUT.fingerprint());
    refusal(
        "other_struct",
        "LayoutMismatch",
        &["RawArray<Point>", &points_fp, &other_fp],
    );
    refusal(
        "handwritten",
        "LayoutMismatch",
        &["fingerprint=", "to_ctypes"],
    );
    assert_eq!(line(&out, "forced_ok"), "1.0");
    assert_eq!(line(&out, "forced"), "accepted");
    refusal("signed", "LayoutMismatch", &["RawValue<u64>"]);
    refusal("narrow", "LayoutMismatch", &["8-byte", "4 bytes"]);
    refusal(
        "lock",
        "KindMismatch",
        &["is a Lock", "cannot take a Rust lock"],
    );
    refusal("kind", "KindMismatch", &["RawValue<u64>, not a Value"]);
    refusal("missing", "NotFoundError", &["'nope'"]);
    refusal("closed_with_views", "ArenaError", &["still alive"]);
    refusal("no_segment", "NotFoundError", &["no shared-memory segment"]);
    // Python hashes primitives and arrays as Rust does (c_uint64 may be u64 or usize:
    // both are candidates); generated classes carry Rust's fingerprint.
    let has = |key: &str, layout: &shared_runtime::layout::TypeLayout| {
        let fps = line(&out, &format!("fp_{key}"));
        assert!(
            fps.split(' ')
                .any(|f| f == layout.fingerprint().to_string()),
            "{key}: {fps} lacks {}",
            layout.fingerprint()
        );
    };
    use shared_runtime::{CChar, WChar};
    has("i8", &i8::LAYOUT);
    has("u8", &u8::LAYOUT);
    has("i16", &i16::LAYOUT);
    has("u16", &u16::LAYOUT);
    has("i32", &i32::LAYOUT);
    has("u32", &u32::LAYOUT);
    has("i64", &i64::LAYOUT);
    has("i64", &isize::LAYOUT);
    has("u64", &u64::LAYOUT);
    has("u64", &usize::LAYOUT);
    has("f32", &f32::LAYOUT);
    has("f64", &f64::LAYOUT);
    has("cchar", &CChar::LAYOUT);
    has("wchar", &WChar::LAYOUT);
    has("u16x4", &<[u16; 4]>::LAYOUT);
    has("f64x3x2", &<[[f64; 3]; 2]>::LAYOUT);
    has("point", &Point::LAYOUT);
    assert_eq!(line(&out, "fp_point").split(' ').count(), 1);
    assert_eq!(line(&out, "fp_f64").split(' ').count(), 1);
}

#[test]
fn python_refuses_damaged_segments() {
    let name = common::unique("pyhelper-damaged");
    let arena = Arena::create_segment(&name, 1 << 20).unwrap();
    for i in 0..4u64 {
        arena.create::<RawValue<u64>>(&format!("v{i}"), i).unwrap();
    }
    arena.create::<Value<[f64; 2]>>("pair", [1.0, 2.0]).unwrap();
    let script = format!(
        r#"
import ctypes, random, struct
import sharedctypes_rs as s

NAME = {name:?}
a = s.open_arena(NAME)
print("names", *a.names())
seg = s._attach(NAME)          # a second, raw mapping to damage the segment through
buf = seg.buf
head = struct.unpack_from("<Q", buf, s._REGISTRY)[0]
top = struct.unpack_from("<Q", buf, s._TOP)[0]

def word(at):
    return struct.unpack_from("<Q", buf, at)[0]

def put(at, v):
    struct.pack_into("<Q", buf, at, v & ((1 << 64) - 1))

def check(key, at, value, call):
    old = word(at)
    put(at, value)
    try:
        call()
        print(key, "accepted")
    except s.ArenaError as e:
        print(key, type(e).__name__, e)
    finally:
        put(at, old)

check("loop", head, head, a.objects)               # the newest entry names itself next
check("next_out", head, 1 << 40, a.objects)        # next beyond the segment
check("next_odd", head, head + 8, a.objects)       # next between block boundaries
check("next_mid", head, head + 64, a.objects)      # next inside a block, not at its start
check("object_out", head + 8, 1 << 40, a.objects)  # the object's offset
check("object_odd", head + 8, word(head + 8) + 16, a.objects)
check("huge_len", head + 16, 1 << 60, a.objects)
check("data_at", head + 48, 8, a.objects)
check("name_len", head + 60, 1000, a.objects)
check("magic", 0, 0x1234, lambda: s.open_arena(NAME))
check("version", 8, 99, lambda: s.open_arena(NAME))
check("capacity", 16, 4096, lambda: s.open_arena(NAME))
check("top", s._TOP, 1 << 40, a.objects)
check("registry", s._REGISTRY, 24, a.objects)
print("intact", *a.names())
# Flag bits in the high part of a block's size word (heap.rs FLAGS) are no size: read as
# Rust reads them.
flags = (0x3F << 56) | (1 << 62)
check("tag_entry", head - 16, word(head - 16) | flags, a.objects)
check("tag_object", word(head + 8) - 16, word(word(head + 8) - 16) | flags, a.objects)

# Random damage: any byte of the header and the blocks, any value. Each walk either
# succeeds or raises ArenaError; nothing else, and never a hang (the test's deadline).
rng = random.Random(7)
outcomes = {{"ok": 0, "refused": 0}}
for _ in range(3000):
    at = rng.randrange(0, top)
    old = buf[at]
    buf[at] = rng.randrange(256)
    try:
        for o in a.objects():
            pass
        outcomes["ok"] += 1
    except s.ArenaError:
        outcomes["refused"] += 1
    finally:
        buf[at] = old
print("random", outcomes["ok"] + outcomes["refused"], outcomes["refused"] > 0)
del buf
seg.close()
print("restored", *a.names())
a.close()
"#
    );
    let Some(out) = python(&script) else { return };
    let names = "pair v3 v2 v1 v0";
    assert_eq!(line(&out, "names"), names);
    for (key, words) in [
        ("loop", "the object directory loops"),
        ("next_out", "outside the heap"),
        ("next_odd", "not on a block boundary"),
        ("next_mid", "impossible size"),
        ("object_out", "outside the heap"),
        ("object_odd", "object 'pair'"),
        ("huge_len", "does not fit its block"),
        ("data_at", "does not fit its block"),
        ("name_len", "bad name length"),
        ("magic", "is not an arena's"),
        ("version", "format version 99"),
        ("capacity", "truncated?"),
        ("top", "heap bounds"),
        ("registry", "outside the heap"),
    ] {
        let l = line(&out, key);
        assert!(
            l.starts_with("InvalidArena") && l.contains(words),
            "{key}: expected InvalidArena with {words:?}, got {l}"
        );
    }
    assert_eq!(line(&out, "intact"), names);
    assert_eq!(line(&out, "tag_entry"), "accepted");
    assert_eq!(line(&out, "tag_object"), "accepted");
    assert_eq!(line(&out, "random"), "3000 True");
    assert_eq!(line(&out, "restored"), names);
    // The Rust side still reads its arena after Python's damage was undone.
    assert_eq!(arena.open::<RawValue<u64>>("v2").unwrap().get(), 2);
    arena.check().unwrap();
}
