//! `#[derive(SharedStruct)]` for `shared-runtime` (implemented in a later issue).
