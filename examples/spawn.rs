//! Sharing with a program started by `exec`, not `fork`.
//!
//! The parent creates an arena and an array, passes the arena to a new program (this
//! example again) with `Arena::share_with`, and the array as a `Handle` in an argument.
//! The child maps the arena with `Arena::from_env`, opens the handle — the layout
//! fingerprint is checked — and doubles every element.
//!
//! ```text
//! cargo run --example spawn
//! ```

use std::process::Command;

use shared_runtime::handle::Handle;
use shared_runtime::{Arena, RawArray};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(arena) = Arena::from_env()? {
        // The child: started by the parent below.
        let handle: Handle = std::env::args()
            .nth(1)
            .ok_or("no handle argument")?
            .parse()?;
        let data = RawArray::<f64>::open_handle(&arena, &handle)?;
        let doubled: Vec<f64> = data.to_vec().iter().map(|x| x * 2.0).collect();
        data.write(0, &doubled);
        println!(
            "child {}: doubled {} numbers",
            std::process::id(),
            data.len()
        );
        return Ok(());
    }
    let arena = Arena::with_capacity(1 << 20)?;
    let data = RawArray::from_slice_in(&arena, &[1.5, 2.5, 3.5])?;
    let mut child = Command::new(std::env::current_exe()?);
    child.arg(data.handle().to_string());
    arena.share_with(&mut child)?;
    let status = child.status()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    println!("parent sees {:?}", data.to_vec());
    Ok(())
}
