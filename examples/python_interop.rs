//! Rust and Python sharing one arena.
//!
//! Creates a named arena holding an array of `Point`s and an `i32` counter, prints the
//! segment name, the objects' offsets and the `ctypes` declaration generated from the Rust
//! layout, then (when `python3` is installed) runs `examples/python_attach.py`, which
//! attaches with `multiprocessing.shared_memory` + `ctypes.from_buffer`, reads the values
//! and changes them. The Rust side then prints what Python left behind.
//!
//! ```text
//! cargo run --example python_interop
//! ```

use std::process::Command;

use shared_runtime::{Arena, RawArray, RawValue, SharedStruct, SharedType};

#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shr-python-demo-{}", std::process::id());
    let arena = Arena::create_segment(&name, 1 << 20)?;
    let points = arena.create::<RawArray<Point>>(
        "points",
        &[
            Point { x: 1.0, y: 2.0 },
            Point { x: 3.0, y: 4.0 },
            Point { x: 5.0, y: 6.0 },
        ],
    )?;
    let counter = arena.create::<RawValue<i32>>("counter", 41)?;

    let declaration = Point::LAYOUT.to_ctypes();
    println!("segment: {name}");
    println!("counter: i32 at offset {}", counter.offset());
    println!(
        "points: {} x Point at offset {}",
        points.len(),
        points.offset()
    );
    println!("ctypes declaration:\n{declaration}");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python_attach.py");
    let decl_path = std::env::temp_dir().join(format!("{name}.py"));
    std::fs::write(&decl_path, &declaration)?;
    let run = Command::new("python3")
        .arg(script)
        .arg(&name)
        .arg(&decl_path)
        .arg(counter.offset().to_string())
        .arg(points.offset().to_string())
        .arg(points.len().to_string())
        .status();
    std::fs::remove_file(&decl_path)?;
    match run {
        Err(e) => {
            println!("python3 not run ({e}): skipped the Python side");
            return Ok(());
        }
        Ok(status) if !status.success() => return Err(format!("python3 failed: {status}").into()),
        Ok(_) => {}
    }
    println!("after Python: counter = {}", counter.get());
    let seen: Vec<(f64, f64)> = points.to_vec().iter().map(|p| (p.x, p.y)).collect();
    println!("after Python: points = {seen:?}");
    Ok(())
}
