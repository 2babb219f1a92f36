//! Compile-fail tests of `#[derive(SharedStruct)]` and of the API (`Process::start` refusing
//! a borrowing closure): one mistake per file in `tests/ui/`, each with the exact error rustc
//! prints in the `.stderr` beside it.
//!
//! To accept new messages after a deliberate change: `TRYBUILD=overwrite cargo test -p
//! shared-runtime --test ui`, then read every changed `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("../tests/ui/*.rs");
}
