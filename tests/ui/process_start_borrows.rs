// `Process::start` wants a closure that owns what it uses ('static); one that borrows a
// local is refused, and the note points at `Process::scope`, which takes such closures.
use shared_runtime::{Process, RawValue};

fn main() {
    let n = RawValue::new(0u32).unwrap();
    let n_ref = &n;
    Process::start(move || n_ref.set(1)).unwrap().join().unwrap();
    assert_eq!(n.get(), 1);
}
