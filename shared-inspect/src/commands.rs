//! The three commands. Each prints its report on stdout and returns an error message for
//! stderr when it cannot do its job.

use shared_runtime::arena::{ObjectInfo, Snapshot};
use shared_runtime::Arena;

use crate::describe::{self as d};
use crate::json::Json;
use crate::text::clean;

/// A command's failure: the message `main` prints on stderr before exiting with 1.
pub type Failure = String;

/// `list`: every segment in `/dev/shm`, arenas with their summary, others with the reason.
pub fn list(json: bool) -> Result<(), Failure> {
    let names = Arena::segment_names().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut text = vec![[
        "NAME".to_string(),
        "SIZE".into(),
        "CREATOR".into(),
        "OBJECTS".into(),
    ]];
    for name in names {
        match Arena::segment_info(&name) {
            Ok(info) => {
                let objects = Arena::snapshot_segment(&name).and_then(|s| s.objects());
                let mut fields = d::info_fields(&info);
                fields.insert(1, ("arena", Json::Bool(true)));
                let count = match &objects {
                    Ok(o) => {
                        fields.push(("objects", Json::int(o.len() as u64)));
                        o.len().to_string()
                    }
                    Err(e) => {
                        fields.push(("objects", Json::Null));
                        fields.push(("error", Json::str(e.to_string())));
                        format!("? (damaged: {e})")
                    }
                };
                rows.push(Json::Obj(fields));
                text.push([
                    clean(&name),
                    info.capacity.to_string(),
                    d::creator_text(&info),
                    count,
                ]);
            }
            Err(e) => {
                rows.push(Json::Obj(vec![
                    ("name", Json::str(&name)),
                    ("arena", Json::Bool(false)),
                    ("error", Json::str(e.to_string())),
                ]));
                text.push([
                    clean(&name),
                    "-".into(),
                    "-".into(),
                    clean(&format!("- ({e})")),
                ]);
            }
        }
    }
    if json {
        println!(
            "{}",
            Json::Obj(vec![("segments", Json::Arr(rows))]).render()
        );
    } else {
        print_table(&text);
    }
    Ok(())
}

/// `show NAME`: header, allocator counters, block walk and every named object.
pub fn show(name: &str, json: bool) -> Result<(), Failure> {
    let fail = |e: shared_runtime::Error| format!("{name}: {e}");
    let snap = Arena::snapshot_segment(name).map_err(fail)?;
    let stats = snap.stats().map_err(fail)?;
    let objects = snap.objects().map_err(fail)?;
    let check = snap.check();
    if json {
        println!("{}", show_json(&snap, &stats, &objects, &check).render());
    } else {
        show_text(&snap, &stats, &objects, &check);
    }
    check.map(drop).map_err(fail)
}

fn show_json(
    snap: &Snapshot,
    stats: &shared_runtime::arena::ArenaStats,
    objects: &[ObjectInfo],
    check: &shared_runtime::Result<shared_runtime::arena::HeapReport>,
) -> Json {
    let mut fields = d::info_fields(snap.info());
    fields.push((
        "allocator_holder",
        Json::opt(snap.allocator_holder().as_ref(), d::holder_json),
    ));
    fields.push(("settled", Json::Bool(snap.settled())));
    fields.push(("stats", d::stats_json(stats)));
    fields.push((
        "check",
        match check {
            Ok(r) => d::report_json(r),
            Err(e) => Json::Obj(vec![("error", Json::str(e.to_string()))]),
        },
    ));
    fields.push((
        "objects",
        Json::Arr(objects.iter().map(d::object_json).collect()),
    ));
    Json::Obj(fields)
}

fn show_text(
    snap: &Snapshot,
    s: &shared_runtime::arena::ArenaStats,
    objects: &[ObjectInfo],
    check: &shared_runtime::Result<shared_runtime::arena::HeapReport>,
) {
    let info = snap.info();
    println!(
        "arena {}: {} bytes, id {:#018x}, created by {}",
        clean(&info.name),
        info.capacity,
        info.id,
        d::creator_text(info)
    );
    match snap.allocator_holder() {
        None => println!("allocator lock: free"),
        Some(h) => println!("allocator lock: held by {}", d::holder_text(&h)),
    }
    if !snap.settled() {
        println!("  (busy while copied: free lists and counters rebuilt from the blocks)");
    }
    println!(
        "memory: {} bytes in use by {} allocations, {} free; heap {} bytes, {} reserved; \
         {} allocations and {} frees so far",
        s.bytes_in_use,
        s.live_allocations,
        s.capacity.saturating_sub(s.bytes_in_use),
        s.heap_bytes,
        s.reserved_bytes,
        s.allocations,
        s.frees
    );
    match check {
        Ok(r) => println!(
            "blocks: {} used ({} bytes), {} free ({} bytes); every invariant holds",
            r.used_blocks, r.used_bytes, r.free_blocks, r.free_bytes
        ),
        Err(e) => println!("blocks: DAMAGED: {}", clean(&e.to_string())),
    }
    println!("objects: {}", objects.len());
    let mut rows = vec![[
        "  NAME".to_string(),
        "KIND".into(),
        "LABEL".into(),
        "SIZE".into(),
        "LEN".into(),
        "OPEN".into(),
        "LOCK".into(),
    ]];
    for o in objects {
        rows.push([
            format!("  {}", clean(&o.name)),
            d::kind(o.kind).into(),
            clean(&o.label),
            o.size.to_string(),
            o.len.to_string(),
            o.open_count.to_string(),
            o.lock.as_ref().map_or("-".into(), d::lock_text),
        ]);
    }
    if !objects.is_empty() {
        print_table(&rows);
    }
}

/// `remove-stale`: removes the names of arenas whose creator is provably gone.
pub fn remove_stale(json: bool) -> Result<(), Failure> {
    let removed = Arena::remove_stale_segments().map_err(|e| e.to_string())?;
    if json {
        let names = removed.iter().map(Json::str).collect();
        println!(
            "{}",
            Json::Obj(vec![("removed", Json::Arr(names))]).render()
        );
    } else if removed.is_empty() {
        println!("no stale segment");
    } else {
        for name in &removed {
            println!("removed {}", clean(name));
        }
    }
    Ok(())
}

/// Prints rows in columns, each as wide as its widest cell (the last one unpadded).
fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}
