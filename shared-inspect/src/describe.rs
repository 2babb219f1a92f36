//! What the runtime reports, as JSON values and as short English.

use shared_runtime::arena::{
    ArenaStats, HeapReport, LockKind, ObjectInfo, ObjectKind, SegmentInfo,
};
use shared_runtime::{Holder, HolderStatus, LockState, Poison, PoisonCause};

use crate::json::Json;

/// `alive`, `dead` or `unknown`.
pub fn status(s: HolderStatus) -> &'static str {
    match s {
        HolderStatus::Alive => "alive",
        HolderStatus::Dead => "dead",
        _ => "unknown",
    }
}

/// The kind's type name: `RawValue`, `RawArray`, `Value`, `Array`, `Lock`, `RLock`, `Event`,
/// `Condition`, `Semaphore`, `BoundedSemaphore`, `Barrier`, `Queue`.
pub fn kind(k: Option<ObjectKind>) -> &'static str {
    match k {
        Some(ObjectKind::RawValue) => "RawValue",
        Some(ObjectKind::RawArray) => "RawArray",
        Some(ObjectKind::Value(_)) => "Value",
        Some(ObjectKind::Array(_)) => "Array",
        Some(ObjectKind::Lock(LockKind::Lock)) => "Lock",
        Some(ObjectKind::Lock(LockKind::RLock)) => "RLock",
        Some(ObjectKind::Event) => "Event",
        Some(ObjectKind::Condition) => "Condition",
        Some(ObjectKind::Semaphore) => "Semaphore",
        Some(ObjectKind::BoundedSemaphore) => "BoundedSemaphore",
        Some(ObjectKind::Barrier) => "Barrier",
        Some(ObjectKind::Queue) => "Queue",
        _ => "unknown",
    }
}

fn cause(c: PoisonCause) -> &'static str {
    match c {
        PoisonCause::Panicked => "panicked",
        PoisonCause::Died => "died",
        PoisonCause::ThreadDied => "thread_died",
        _ => "unknown",
    }
}

/// `{"pid", "tid", "status"}`.
pub fn holder_json(h: &Holder) -> Json {
    Json::Obj(vec![
        ("pid", Json::opt(h.pid, Json::int)),
        ("tid", Json::int(h.tid)),
        ("status", Json::str(status(h.status))),
    ])
}

fn poison_json(p: &Poison) -> Json {
    Json::Obj(vec![
        ("cause", Json::str(cause(p.cause))),
        ("pid", Json::opt(p.pid, Json::int)),
    ])
}

/// `{"holder", "depth", "poison"}`.
pub fn lock_json(s: &LockState) -> Json {
    Json::Obj(vec![
        ("holder", Json::opt(s.holder.as_ref(), holder_json)),
        ("depth", Json::int(s.depth)),
        ("poison", Json::opt(s.poison.as_ref(), poison_json)),
    ])
}

/// `held by pid 12 tid 12 (alive), depth 1; poisoned: process 9 died while holding it`.
pub fn lock_text(s: &LockState) -> String {
    let mut out = match &s.holder {
        None => "free".to_string(),
        Some(h) => format!("held by {}, depth {}", holder_text(h), s.depth),
    };
    if let Some(p) = &s.poison {
        out.push_str(&format!("; poisoned ({}): {p}", cause(p.cause)));
    }
    out
}

/// `pid 12 tid 13 (alive)`.
pub fn holder_text(h: &Holder) -> String {
    let pid = h.pid.map_or("pid ?".to_string(), |p| format!("pid {p}"));
    format!("{pid} tid {} ({})", h.tid, status(h.status))
}

/// One named object.
pub fn object_json(o: &ObjectInfo) -> Json {
    Json::Obj(vec![
        ("name", Json::str(&o.name)),
        ("kind", Json::str(kind(o.kind))),
        ("label", Json::str(&o.label)),
        ("type", Json::str(&o.type_name)),
        ("size", Json::int(o.size)),
        ("len", Json::int(o.len)),
        ("fingerprint", Json::str(format!("{:#018x}", o.fingerprint))),
        ("open_count", Json::int(o.open_count)),
        ("lock", Json::opt(o.lock.as_ref(), lock_json)),
    ])
}

/// A segment's header summary, as fields of an object.
pub fn info_fields(i: &SegmentInfo) -> Vec<(&'static str, Json)> {
    vec![
        ("name", Json::str(&i.name)),
        ("capacity", Json::int(i.capacity)),
        ("id", Json::str(format!("{:#018x}", i.id))),
        ("creator_pid", Json::opt(i.creator_pid, Json::int)),
        ("creator", Json::str(status(i.creator))),
    ]
}

/// `pid 12 (alive)`.
pub fn creator_text(i: &SegmentInfo) -> String {
    let pid = i.creator_pid.map_or("?".to_string(), |p| p.to_string());
    format!("pid {pid} ({})", status(i.creator))
}

/// The allocator's counters.
pub fn stats_json(s: &ArenaStats) -> Json {
    Json::Obj(vec![
        ("capacity", Json::int(s.capacity)),
        ("bytes_in_use", Json::int(s.bytes_in_use)),
        (
            "free_bytes",
            Json::int(s.capacity.saturating_sub(s.bytes_in_use)),
        ),
        ("heap_bytes", Json::int(s.heap_bytes)),
        ("reserved_bytes", Json::int(s.reserved_bytes)),
        ("live_allocations", Json::int(s.live_allocations)),
        ("allocations", Json::int(s.allocations)),
        ("frees", Json::int(s.frees)),
    ])
}

/// The block walk's findings.
pub fn report_json(r: &HeapReport) -> Json {
    Json::Obj(vec![
        ("used_blocks", Json::int(r.used_blocks)),
        ("used_bytes", Json::int(r.used_bytes)),
        ("free_blocks", Json::int(r.free_blocks)),
        ("free_bytes", Json::int(r.free_bytes)),
        ("heap_bytes", Json::int(r.heap_bytes)),
    ])
}
