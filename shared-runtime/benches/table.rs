//! The one-table benchmark: every row of the project's performance goals, with its
//! baselines, measured in one run and printed as one Markdown table (ratios beside the
//! times).
//!
//! Run with `cargo bench -p shared-runtime --bench table` (about three minutes). It runs
//! its criterion groups (names starting with `table_`; criterion's usual arguments work,
//! e.g. a filter), a few one-shot measurements, and CPython's locked `Value` increment
//! (`benches/value_lock.py`, when `python3` is on the `PATH`; otherwise that row says why
//! it was skipped), then reads criterion's estimates back from
//! `target/criterion/<group>/<bench>/new/estimates.json` and prints the table. Rows whose
//! benchmark did not run (filtered out) are left out. See `docs/benchmarks.md`.

mod common;

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{limit_cpus, restore_cpus, run_processes, CasLock, PthreadBaseline};
use criterion::{Criterion, SamplingMode};
use shared_runtime::{Arena, Array, Lock, RawArray, RawValue, Value};

const UNCONTENDED: &str = "table_uncontended";
const ALLOC: &str = "table_alloc_free";
const ZEROED: &str = "table_zeroed_10M_f64";
const BULK: &str = "table_bulk_1M_f64";
/// The process counts of the contention rows (all on at most 2 CPUs).
const PROCS: [usize; 3] = [2, 4, 16];

fn contended_group(procs: usize) -> String {
    format!("table_contended_{procs}proc")
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group(UNCONTENDED);
    let value = Value::new(0i64).unwrap();
    g.bench_function("value_update", |b| b.iter(|| value.update(|x| *x += 1)));
    let lock = Lock::new().unwrap();
    let raw = RawValue::new(0i64).unwrap();
    g.bench_function("lock_rawvalue", |b| {
        b.iter(|| {
            let _held = lock.lock().unwrap();
            raw.set(raw.get() + 1);
        })
    });
    let robust = PthreadBaseline::new(true, libc::PTHREAD_MUTEX_NORMAL);
    g.bench_function("pthread_robust", |b| b.iter(|| robust.increment()));
    let plain = PthreadBaseline::new(false, libc::PTHREAD_MUTEX_NORMAL);
    g.bench_function("pthread_plain", |b| b.iter(|| plain.increment()));
    let std_mutex = std::sync::Mutex::new(0i64);
    g.bench_function("std_mutex", |b| {
        b.iter(|| *black_box(&std_mutex).lock().unwrap() += 1)
    });
    let cas = CasLock::new();
    g.bench_function("bare_cas", |b| b.iter(|| black_box(&cas).increment()));
    g.finish();
}

/// The fewest increments one contended run does (criterion may ask for fewer: the time is
/// then scaled down), so that the handshake around the timed span is noise.
const MIN_CONTENDED_INCREMENTS: u64 = 200_000;

/// `procs` processes on at most two CPUs increment one counter, each its share of the
/// iterations (at least [`MIN_CONTENDED_INCREMENTS`] in all); wall time per increment.
fn contended(c: &mut Criterion) {
    let previous = limit_cpus(2);
    for procs in PROCS {
        let mut g = c.benchmark_group(contended_group(procs));
        g.sampling_mode(SamplingMode::Flat).sample_size(10);
        let value = Value::new(0u64).unwrap();
        g.bench_function("value_update", |b| {
            b.iter_custom(|iters| {
                let before = value.get();
                let total = iters.max(MIN_CONTENDED_INCREMENTS);
                let (run, done) = run_processes(procs, total, &|n| {
                    for _ in 0..n {
                        value.update(|x| *x += 1);
                    }
                    Duration::ZERO
                });
                assert_eq!(value.get() - before, done);
                run.wall.mul_f64(iters as f64 / done as f64)
            })
        });
        let robust = PthreadBaseline::new(true, libc::PTHREAD_MUTEX_NORMAL);
        g.bench_function("pthread_robust", |b| {
            b.iter_custom(|iters| {
                let before = robust.counter();
                let total = iters.max(MIN_CONTENDED_INCREMENTS);
                let (run, done) = run_processes(procs, total, &|n| {
                    for _ in 0..n {
                        robust.increment();
                    }
                    Duration::ZERO
                });
                assert_eq!(robust.counter() - before, done);
                run.wall.mul_f64(iters as f64 / done as f64)
            })
        });
        g.finish();
    }
    restore_cpus(previous);
}

/// Increments per process in a worst-waiter run.
const WORST_WAIT_INCREMENTS: u64 = 50_000;

/// The longest single acquisition any of `procs` processes (on at most two CPUs) waited,
/// each doing [`WORST_WAIT_INCREMENTS`] timed increments: `(Value, robust pthread)`, each
/// the median of three runs (one run's maximum is mostly the scheduler's doing).
fn worst_waits(procs: usize) -> (Duration, Duration) {
    let previous = limit_cpus(2);
    let total = WORST_WAIT_INCREMENTS * procs as u64;
    let value = Value::new(0u64).unwrap();
    let robust = PthreadBaseline::new(true, libc::PTHREAD_MUTEX_NORMAL);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let before = value.get();
        let (run, done) = run_processes(procs, total, &|n| {
            let mut worst = Duration::ZERO;
            for _ in 0..n {
                let start = Instant::now();
                let mut guard = value.lock().unwrap();
                worst = worst.max(start.elapsed());
                *guard += 1;
            }
            worst
        });
        assert_eq!(value.get() - before, done);
        ours.push(run.worst);
        let before = robust.counter();
        let (run, done) = run_processes(procs, total, &|n| {
            (0..n)
                .map(|_| robust.timed_increment())
                .max()
                .unwrap_or_default()
        });
        assert_eq!(robust.counter() - before, done);
        theirs.push(run.worst);
    }
    restore_cpus(previous);
    ours.sort();
    theirs.sort();
    (ours[1], theirs[1])
}

fn alloc_free(c: &mut Criterion) {
    let mut g = c.benchmark_group(ALLOC);
    g.bench_function("rawvalue_i32", |b| {
        b.iter(|| RawValue::new(black_box(1i32)).unwrap())
    });
    g.bench_function("value_i32", |b| {
        b.iter(|| Value::new(black_box(1i32)).unwrap())
    });
    g.bench_function("box_i32", |b| b.iter(|| Box::new(black_box(1i32))));
    g.finish();
}

fn zeroed(c: &mut Criterion) {
    const N: usize = 10_000_000;
    let mut g = c.benchmark_group(ZEROED);
    g.sample_size(20);
    g.bench_function("rawarray_zeroed", |b| {
        b.iter(|| RawArray::<f64>::zeroed(N).unwrap())
    });
    g.bench_function("vec_zeroed", |b| b.iter(|| vec![0.0f64; N]));
    g.finish();
}

fn bulk(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let src: Vec<f64> = (0..N).map(|i| i as f64).collect();
    let raw = RawArray::from_slice(&src).unwrap();
    let locked = Array::from_slice(&src).unwrap();
    let mut dst = vec![0.0f64; N];
    let mut g = c.benchmark_group(BULK);
    g.bench_function("memcpy", |b| {
        b.iter(|| black_box(&mut dst[..]).copy_from_slice(black_box(&src)))
    });
    g.bench_function("vec_to_vec", |b| b.iter(|| black_box(&src).to_vec()));
    g.bench_function("rawarray_write", |b| {
        b.iter(|| black_box(&raw).write(0, black_box(&src)))
    });
    g.bench_function("array_write", |b| {
        b.iter(|| black_box(&locked).write(0, black_box(&src)))
    });
    g.bench_function("rawarray_to_vec", |b| b.iter(|| black_box(&raw).to_vec()));
    g.bench_function("array_to_vec", |b| b.iter(|| black_box(&locked).to_vec()));
    g.finish();
    assert_eq!(raw.read(N - 1..), [(N - 1) as f64]);
}

/// Arena bytes (block headers included) per object made by `make`, over 1 000 objects in
/// a fresh arena.
fn bytes_per<T>(make: impl Fn(&Arena) -> T) -> f64 {
    const N: usize = 1000;
    let arena = Arena::with_capacity(1 << 24).unwrap();
    let before = arena.stats().unwrap().bytes_in_use;
    let objects: Vec<T> = (0..N).map(|_| make(&arena)).collect();
    let after = arena.stats().unwrap().bytes_in_use;
    drop(objects);
    (after - before) as f64 / N as f64
}

/// 1 000 000 locked `Value<i32>` made in a fresh arena: ns each and MiB of arena in use.
fn million_values() -> (f64, f64) {
    const MILLION: u32 = 1_000_000;
    let arena = Arena::with_capacity(1 << 30).unwrap();
    let start = Instant::now();
    let values: Vec<Value<i32>> = (0..MILLION)
        .map(|i| Value::new_in(&arena, i as i32).unwrap())
        .collect();
    let ns = start.elapsed().as_nanos() as f64 / f64::from(MILLION);
    let mib = arena.stats().unwrap().bytes_in_use as f64 / f64::from(1u32 << 20);
    drop(values);
    (ns, mib)
}

/// `benches/value_lock.py`, next to this file.
fn python_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/value_lock.py")
}

/// CPython's locked increment in ns (the median of three runs of 200 000), or why not.
fn python_increment() -> Result<f64, String> {
    let mut runs = (0..3)
        .map(|_| python_run(200_000))
        .collect::<Result<Vec<f64>, String>>()?;
    runs.sort_by(f64::total_cmp);
    Ok(runs[1])
}

fn python_run(n: u64) -> Result<f64, String> {
    let mut child = Command::new("python3")
        .arg(python_script())
        .arg(n.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > Duration::from_secs(60) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("value_lock.py took more than 60 s; killed".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for value_lock.py: {e}")),
        }
    };
    // The output is one short line (a pipe buffer holds it), read once the script ended.
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        return Err(format!("value_lock.py failed ({status}): {}", err.trim()));
    }
    out.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unexpected output from value_lock.py: {out:?}"))
}

/// Criterion's estimate of one iteration, in ns: the slope where criterion fitted one
/// (linear sampling), else the mean; `None` unless the file was written after `since`.
/// Read from `estimates.json` by hand (a number after a key), so the benchmark needs no
/// JSON library.
fn estimate(out: &Path, since: SystemTime, group: &str, bench: &str) -> Option<f64> {
    let path = out.join(group).join(bench).join("new/estimates.json");
    // Only what this run measured (a benchmark filtered out keeps an older file).
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json = std::fs::read_to_string(path).ok()?;
    let point = |key: &str| -> Option<f64> {
        let at = json.find(&format!("\"{key}\":{{"))?;
        let rest = &json[at..];
        let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
        let rest = &rest[p..];
        let end = rest.find([',', '}'])?;
        rest[..end].trim().parse().ok()
    };
    point("slope").or_else(|| point("mean"))
}

fn time(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.2} ns"),
        ns if ns < 1e6 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{:.2} ms", ns / 1e6),
    }
}

/// The table being printed.
struct Table(Vec<[String; 4]>);

impl Table {
    fn row(&mut self, label: &str, value: String, ratio: String, target: &str) {
        self.0.push([label.into(), value, ratio, target.into()]);
    }

    /// A timed row: its time and its ratio to `reference` (`per` names the reference).
    fn timed(
        &mut self,
        label: &str,
        ns: Option<f64>,
        reference: Option<f64>,
        per: &str,
        target: &str,
    ) {
        let Some(ns) = ns else {
            return;
        };
        let value = time(ns);
        let ratio = match reference {
            Some(b) if b > 0.0 => format!("{:.2}× {per}", ns / b),
            _ => "–".into(),
        };
        self.row(label, value, ratio, target);
    }

    fn print(&self) {
        println!("| operation | measured | ratio | target |");
        println!("| --- | ---: | ---: | --- |");
        for [a, b, c, d] in &self.0 {
            println!("| {a} | {b} | {c} | {d} |");
        }
    }
}

/// Criterion's options that take a value (so that the value is not taken for a filter).
const VALUED_OPTIONS: [&str; 14] = [
    "--warm-up-time",
    "--measurement-time",
    "--sample-size",
    "--save-baseline",
    "--baseline",
    "--load-baseline",
    "--profile-time",
    "--output-format",
    "--color",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--nresamples",
    "--plotting-backend",
];

/// The benchmark filter given on the command line, if any (criterion's first free
/// argument); the one-shot measurements run when their name contains it.
fn filter() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if VALUED_OPTIONS.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

fn machine() {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read("/proc/sys/kernel/osrelease");
    let load = read("/proc/loadavg");
    println!(
        "machine: {cpus} CPUs ({model}), kernel {}, load average {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn main() {
    // `SHR_SLABS=0`: small objects as blocks of their own (slabs are on by default:
    // docs/design.md, "Slabs of small objects"), so that the same binary measures both.
    if std::env::var_os("SHR_SLABS").is_some_and(|v| v == "0") {
        shared_runtime::test_hooks::set_slabs_for_tests(false);
    }
    // Criterion's default place (`target/criterion`), from this executable's
    // `target/<profile>/deps/` directory, so the estimates can be read back.
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let out = exe
        .ancestors()
        .nth(3)
        .expect("the benchmark runs from target/<profile>/deps")
        .join("criterion");
    let started = SystemTime::now();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .output_directory(&out)
        .configure_from_args();

    uncontended(&mut c);
    contended(&mut c);
    alloc_free(&mut c);
    zeroed(&mut c);
    bulk(&mut c);
    c.final_summary();

    // The one-shot measurements after the criterion groups: the million values leave the
    // heap in a state that makes `vec![0.0; N]` clear its memory instead of mapping it.
    let filter = filter();
    // Not when criterion only checks that the benchmarks run (as it does without
    // `--bench`, which `cargo bench` passes and `cargo test --benches` does not, or with
    // `--test`) or lists them.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let measuring = has("--bench") && !has("--test") && !has("--list");
    // A plain name or names separated by `|` (criterion takes the filter as a regex).
    let wanted = |name: &str| {
        measuring
            && filter
                .as_deref()
                .is_none_or(|f| f.split('|').any(|f| name.contains(f)))
    };
    let python = wanted("table_python").then(|| {
        let r = python_increment();
        if let Err(why) = &r {
            println!("table_python: skipped: {why}");
        }
        r
    });
    let sizes = wanted("table_sizes").then(|| {
        [
            (
                "RawValue<i32>",
                bytes_per(|a| RawValue::new_in(a, 0i32).unwrap()),
            ),
            ("Value<i32>", bytes_per(|a| Value::new_in(a, 0i32).unwrap())),
            ("Lock", bytes_per(|a| Lock::new_in(a).unwrap())),
        ]
    });
    let worst: Vec<(usize, (Duration, Duration))> = if wanted("table_worst_wait") {
        [4, 16].into_iter().map(|p| (p, worst_waits(p))).collect()
    } else {
        Vec::new()
    };
    let million = wanted("table_million").then(million_values);

    let e = |group: &str, bench: &str| estimate(&out, started, group, bench);
    let mut t = Table(Vec::new());
    let robust = e(UNCONTENDED, "pthread_robust");
    let r = "robust";
    t.timed(
        "uncontended `Value::<i64>::update(\\|x\\| *x += 1)`",
        e(UNCONTENDED, "value_update"),
        robust,
        r,
        "≤ 0.6×",
    );
    t.timed(
        "uncontended `Lock` + `RawValue<i64>` get/set",
        e(UNCONTENDED, "lock_rawvalue"),
        robust,
        r,
        "≤ 0.5×",
    );
    t.timed(
        "glibc robust pshared mutex + counter in its line (baseline)",
        robust,
        robust,
        r,
        "",
    );
    t.timed(
        "glibc plain (not robust) pshared mutex",
        e(UNCONTENDED, "pthread_plain"),
        robust,
        r,
        "",
    );
    t.timed(
        "`std::sync::Mutex<i64>` (one process only)",
        e(UNCONTENDED, "std_mutex"),
        robust,
        r,
        "",
    );
    t.timed(
        "bare CAS + store (the floor)",
        e(UNCONTENDED, "bare_cas"),
        robust,
        r,
        "",
    );
    match &python {
        Some(Ok(ns)) => t.timed(
            "CPython `Value('q', lock=True)`: `get_lock()` + `value += 1`",
            Some(*ns),
            robust,
            r,
            "",
        ),
        Some(Err(why)) => t.row(
            "CPython `Value('q', lock=True)`",
            format!("skipped: {why}"),
            "–".into(),
            "",
        ),
        None => {}
    }
    for procs in PROCS {
        let g = contended_group(procs);
        let theirs = e(&g, "pthread_robust");
        let target = if procs == 2 { "≤ 0.9×" } else { "≤ 1.0×" };
        t.timed(
            &format!("{procs} processes on 2 cores, one `Value::update` (per increment)"),
            e(&g, "value_update"),
            theirs,
            &format!("robust, {procs} proc."),
            target,
        );
        t.timed(
            &format!("{procs} processes on 2 cores, robust pthread mutex"),
            theirs,
            theirs,
            &format!("robust, {procs} proc."),
            "",
        );
    }
    for (procs, (ours, theirs)) in &worst {
        let (ours, theirs) = (ours.as_nanos() as f64, theirs.as_nanos() as f64);
        t.timed(
            &format!(
                "worst single wait (median of 3 runs), {procs} processes on 2 cores, `Value::lock`"
            ),
            Some(ours),
            Some(theirs),
            "robust",
            "no starvation",
        );
        t.timed(
            &format!("worst single wait (median of 3 runs), {procs} processes on 2 cores, robust pthread"),
            Some(theirs),
            Some(theirs),
            "robust",
            "",
        );
    }
    let boxed = e(ALLOC, "box_i32");
    t.timed(
        "`RawValue<i32>::new` + drop",
        e(ALLOC, "rawvalue_i32"),
        boxed,
        "`Box`",
        "≤ 2× `Box`",
    );
    t.timed(
        "`Value<i32>::new` + drop",
        e(ALLOC, "value_i32"),
        boxed,
        "`Box`",
        "≤ 4× `Box`",
    );
    t.timed(
        "`Box::new(1i32)` + drop (reference)",
        boxed,
        boxed,
        "`Box`",
        "",
    );
    if let Some((ns, mib)) = million {
        t.row(
            "1 000 000 locked `Value<i32>` alive (fresh arena)",
            format!("{ns:.1} ns each"),
            format!("{mib:.1} MiB of arena"),
            "≤ 60 ns each, ≤ 32 MiB",
        );
    }
    for (name, bytes) in sizes.into_iter().flatten() {
        let target = if name == "RawValue<i32>" { "≤ 8" } else { "" };
        t.row(
            &format!("arena bytes of a `{name}` (headers included)"),
            format!("{bytes:.1} B"),
            "".into(),
            target,
        );
    }
    let vec = e(ZEROED, "vec_zeroed");
    t.timed(
        "`RawArray::<f64>::zeroed(10_000_000)` + drop",
        e(ZEROED, "rawarray_zeroed"),
        vec,
        "`vec!`",
        "≤ 1 ms",
    );
    t.timed(
        "`vec![0.0f64; 10_000_000]` + drop (reference)",
        vec,
        vec,
        "`vec!`",
        "",
    );
    let memcpy = e(BULK, "memcpy");
    let to_vec = e(BULK, "vec_to_vec");
    let percent = |ns: Option<f64>, reference: Option<f64>| match (ns, reference) {
        (Some(a), Some(b)) => format!("{:.0} % of memcpy", b / a * 100.0),
        _ => "–".into(),
    };
    for (label, ns, reference) in [
        ("8 MB `copy_from_slice` (memcpy, reference)", memcpy, memcpy),
        (
            "`RawArray::write`, 1M f64",
            e(BULK, "rawarray_write"),
            memcpy,
        ),
        (
            "`Array::write` (locked), 1M f64",
            e(BULK, "array_write"),
            memcpy,
        ),
        (
            "`<[f64]>::to_vec` (alloc + memcpy, reference)",
            to_vec,
            to_vec,
        ),
        (
            "`RawArray::to_vec`, 1M f64",
            e(BULK, "rawarray_to_vec"),
            to_vec,
        ),
        (
            "`Array::to_vec` (locked), 1M f64",
            e(BULK, "array_to_vec"),
            to_vec,
        ),
    ] {
        let target = if ns == reference { "" } else { "≥ 90 %" };
        if let Some(ns) = ns {
            t.row(label, time(ns), percent(Some(ns), reference), target);
        }
    }
    println!();
    machine();
    println!();
    t.print();
}
