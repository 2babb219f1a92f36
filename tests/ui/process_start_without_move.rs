// The commonest mistake: a closure without `move` that borrows a local. `Process::start`
// wants one that owns what it uses; `Process::scope` takes one that borrows.
use shared_runtime::{Process, RawValue};

fn main() {
    let n = RawValue::new(0u32).unwrap();
    Process::start(|| n.set(1)).unwrap().join().unwrap();
    assert_eq!(n.get(), 1);
}
