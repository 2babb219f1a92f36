use shared_runtime::{Arena, RawValue};
#[test]
fn perf() {
    let a = Arena::with_capacity(256 << 20).unwrap();
    let mut keep = Vec::new();
    for i in 0..10_000 {
        keep.push(a.create::<RawValue<u64>>(&format!("obj-{i}"), i).unwrap());
    }
    let t = std::time::Instant::now();
    for _ in 0..100 { drop(a.open::<RawValue<u64>>("obj-0").unwrap()); }
    eprintln!("open (oldest of 10k): {:?}", t.elapsed() / 100);
    let t = std::time::Instant::now();
    for _ in 0..100 { drop(a.open::<RawValue<u64>>("obj-9999").unwrap()); }
    eprintln!("open (newest of 10k): {:?}", t.elapsed() / 100);
    let t = std::time::Instant::now();
    let n = a.objects().unwrap().len();
    eprintln!("objects() of {n}: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    for i in 0..100 { a.remove(&format!("obj-{i}")).unwrap(); }
    eprintln!("remove (object still open): {:?}", t.elapsed() / 100);
    let h = keep[5000].handle();
    let (a2,) = (a.clone(),);
    let t = std::time::Instant::now();
    let p = shared_runtime::Process::start(move || {
        let t = std::time::Instant::now();
        for _ in 0..100 { drop(RawValue::<u64>::open_handle(&a2, &h).unwrap()); }
        (t.elapsed() / 100).as_micros() as u64
    }).unwrap().join().unwrap();
    eprintln!("open_handle in child: {p} us ({:?} total)", t.elapsed());
}
