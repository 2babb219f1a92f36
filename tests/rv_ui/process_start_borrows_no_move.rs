// Probe (not part of the ui suite): the commonest mistake, a non-`move` closure borrowing a
// local, gets E0373 "use the `move` keyword" and never a pointer at `Process::scope`;
// following the hint moves `n` away (E0382 on the next line). The ui suite only covers
// `move || n_ref.set(1)`.
use shared_runtime::{Process, RawValue};

fn main() {
    let n = RawValue::new(0u32).unwrap();
    Process::start(|| n.set(1)).unwrap().join().unwrap();
    assert_eq!(n.get(), 1);
}
