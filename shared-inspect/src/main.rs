//! `shared-inspect`: lists, shows and cleans up the named arenas of `shared-runtime`.
//!
//! ```text
//! shared-inspect list [--json]          every segment in /dev/shm: arenas and the rest
//! shared-inspect show NAME [--json]     stats, blocks, named objects, lock holders, poison
//! shared-inspect remove-stale [--json]  remove the names of arenas whose creator died
//! ```
//!
//! Segments are mapped read-only and copied; nothing is written, no lock taken, no open
//! record made. Exit status: 0 success, 1 error (message on stderr), 2 usage.

mod commands;
mod describe;
mod json;
mod text;

use clap::{Parser, Subcommand};

/// Inspects the named shared-memory arenas of shared-runtime (read-only).
#[derive(Parser)]
#[command(name = "shared-inspect", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists every segment in /dev/shm: arenas with size, creator and object count,
    /// other segments with why they are not readable arenas.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows an arena's counters, block walk and named objects with their locks.
    Show {
        /// The segment's name, without the leading slash.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Removes the names of arenas whose creating process is provably gone.
    RemoveStale {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let done = match cli.command {
        Command::List { json } => commands::list(json),
        Command::Show { name, json } => commands::show(&name, json),
        Command::RemoveStale { json } => commands::remove_stale(json),
    };
    if let Err(message) = done {
        // (Messages may quote what the segment holds.)
        eprintln!("shared-inspect: {}", text::clean(&message));
        std::process::exit(1);
    }
}
