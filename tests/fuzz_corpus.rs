//! Replays the committed fuzz corpus of damaged segments on stable Rust.
