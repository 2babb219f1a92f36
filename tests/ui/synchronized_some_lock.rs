// `Some(lock)` with a plain `Lock`: only `None`, `Some(rlock)` or a lock itself are lock
// arguments of `synchronized` (so that a bare `None` needs no annotation).
use shared_runtime::{synchronized, Lock, RawValue};

fn main() -> shared_runtime::Result<()> {
    let lock = Lock::new()?;
    let v = synchronized(RawValue::new(1u8)?, Some(lock))?;
    assert_eq!(v.get(), 1);
    Ok(())
}
