//! Synchronization-object benchmarks, two processes each, with their baselines in the same
//! run so that the ratios between them are meaningful:
//!
//! - `event_ping_pong`: a parent and a forked child hand a turn back and forth through two
//!   `Event`s (one per direction), against the same ping-pong over a
//!   `std::os::unix::net::UnixStream` pair with 1-byte messages. Time per round trip.
//! - `queue_round_trip`: the parent pushes a `u64` into one `Queue`, the child pops it and
//!   pushes it plus one into another, the parent pops that; against a `UnixStream` pair
//!   carrying 8-byte messages, and against CPython's `multiprocessing.Queue` doing the same
//!   (`benches/mp_queue.py`, run when `python3` is present; the figure is the script's own
//!   timing of the round trips, so Python's start-up is not in it). Time per round trip.
//!
//! Each sample forks one child, does one untimed round trip (the child is then running),
//! and times `iters` round trips; the child is joined after the clock stops. Every wait is
//! bounded (`DEADLINE`), every child is killed and reaped if the parent leaves early (a
//! panic included), and a child dies with the benchmark (`PR_SET_PDEATHSIG`).
//!
//! Run with
//! `cargo bench -p shared-runtime --bench sync -- --warm-up-time 1 --measurement-time 3`.
//! See `docs/benchmarks.md` for results.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use shared_runtime::{Error, Event, Process, Queue};

/// The longest any single wait of a benchmark may take before it is declared lost.
const DEADLINE: Duration = Duration::from_secs(30);

/// A forked child that is killed and reaped whichever way the parent leaves: by
/// [`finish`](Self::finish), or by a panic that drops it.
struct Reaped(Option<Process<()>>);

impl Reaped {
    /// Forks a child running `f`; the child is killed if this process dies first.
    fn start(f: impl FnOnce() + 'static) -> Self {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let p = Process::start(move || {
            // SAFETY: prctl(PR_SET_PDEATHSIG) only sets this process's parent-death signal;
            // getppid has no preconditions.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The parent may have died before the prctl: then nothing would come.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            f()
        })
        .expect("fork the benchmark's child");
        Reaped(Some(p))
    }

    /// Waits (at most `DEADLINE`) for the child to end; panics if it failed or hung.
    fn finish(mut self) {
        let mut p = self.0.take().expect("finished once");
        if let Err(e) = p.join_timeout(DEADLINE) {
            stop(p);
            panic!("the benchmark's child failed: {e}");
        }
    }
}

/// Kills `p` and reaps it, waiting at most `DEADLINE`; a child that even then does not end
/// is left unreaped rather than waited for without end.
fn stop(mut p: Process<()>) {
    let _ = p.kill();
    // Any other error means the child has ended (and been reaped).
    if let Err(Error::Timeout(_)) = p.join_timeout(DEADLINE) {
        eprintln!("child {} did not end after SIGKILL; left unreaped", p.pid());
        std::mem::forget(p);
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            stop(p);
        }
    }
}

/// A connected `UnixStream` pair whose reads give up after `DEADLINE`.
fn stream_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    for s in [&a, &b] {
        s.set_read_timeout(Some(DEADLINE))
            .expect("set a read timeout");
    }
    (a, b)
}

/// `iters` + 1 round trips of `round`, the first untimed; returns the time of the rest.
fn timed_rounds(iters: u64, mut round: impl FnMut(u64)) -> Duration {
    round(0);
    let start = Instant::now();
    for i in 1..=iters {
        round(i);
    }
    start.elapsed()
}

/// Ping-pong through two events: the parent sets `ping` and waits for `pong`, the child
/// waits for `ping`, clears it and sets `pong`.
fn event_ping_pong(iters: u64) -> Duration {
    let ping = Event::new().expect("an event");
    let pong = Event::new().expect("an event");
    let (ping2, pong2) = (ping.clone(), pong.clone());
    let child = Reaped::start(move || {
        for _ in 0..=iters {
            assert!(ping2.wait_timeout(DEADLINE), "the parent stopped pinging");
            ping2.clear();
            pong2.set();
        }
    });
    let t = timed_rounds(iters, |_| {
        ping.set();
        assert!(pong.wait_timeout(DEADLINE), "the child stopped ponging");
        pong.clear();
    });
    child.finish();
    t
}

/// The same ping-pong over a `UnixStream` pair, one byte each way.
fn stream_ping_pong(iters: u64) -> Duration {
    let (a, b) = stream_pair();
    let child = Reaped::start(move || {
        let mut b = b;
        let mut byte = [0u8; 1];
        for _ in 0..=iters {
            b.read_exact(&mut byte).expect("read the ping");
            b.write_all(&byte).expect("write the pong");
        }
    });
    let mut a = a;
    let t = timed_rounds(iters, |_| {
        let mut byte = [1u8; 1];
        a.write_all(&byte).expect("write the ping");
        a.read_exact(&mut byte).expect("read the pong");
    });
    child.finish();
    t
}

fn event(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_ping_pong");
    g.sampling_mode(SamplingMode::Flat).sample_size(20);
    g.bench_function("Event pair", |b| b.iter_custom(event_ping_pong));
    g.bench_function("UnixStream pair, 1 byte", |b| {
        b.iter_custom(stream_ping_pong)
    });
    g.finish();
}

/// The `Queue` round trip's baseline: 8-byte messages over a `UnixStream` pair, the child
/// answering each number with the number plus one.
fn stream_round_trip(iters: u64) -> Duration {
    let (a, b) = stream_pair();
    let child = Reaped::start(move || {
        let mut b = b;
        let mut msg = [0u8; 8];
        for _ in 0..=iters {
            b.read_exact(&mut msg).expect("read a number");
            let x = u64::from_le_bytes(msg);
            b.write_all(&(x + 1).to_le_bytes()).expect("write it back");
        }
    });
    let mut a = a;
    let t = timed_rounds(iters, |i| {
        let mut msg = i.to_le_bytes();
        a.write_all(&msg).expect("write a number");
        a.read_exact(&mut msg).expect("read the answer");
        assert_eq!(u64::from_le_bytes(msg), i + 1, "wrong answer");
    });
    child.finish();
    t
}

// ---------------------------------------------------------------------------------------
// Queue<u64> round trip.
// ---------------------------------------------------------------------------------------

/// Round trips through two queues of capacity 1: the parent pushes `i` into `q1`, the
/// child pops it and pushes `i + 1` into `q2`, the parent pops that. The child ends when
/// `q1` is closed. A watchdog thread closes both queues if a sample outlives `DEADLINE`,
/// which makes every blocked `push`/`pop` return, so no wait is unbounded.
fn queue_round_trip(iters: u64) -> Duration {
    let q1 = Queue::<u64>::new(1).expect("a queue");
    let q2 = Queue::<u64>::new(1).expect("a queue");
    let (c1, c2) = (q1.clone(), q2.clone());
    let child = Reaped::start(move || {
        while let Some(x) = c1.pop().expect("pop from q1") {
            c2.push(x + 1).expect("push into q2");
        }
    });
    // Started after the fork: the child is a copy of a single-threaded parent.
    let (done, watch) = mpsc::channel::<()>();
    let (w1, w2) = (q1.clone(), q2.clone());
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(DEADLINE) == Err(mpsc::RecvTimeoutError::Timeout) {
            w1.close();
            w2.close();
        }
    });
    let t = timed_rounds(iters, |i| {
        q1.push(i).expect("push into q1");
        let back = q2.pop().expect("pop from q2");
        assert_eq!(
            back,
            Some(i + 1),
            "wrong answer, or the child stopped answering"
        );
    });
    q1.close();
    let _ = done.send(());
    watchdog.join().expect("the watchdog");
    child.finish();
    t
}

// ---------------------------------------------------------------------------------------
// CPython's multiprocessing.Queue, through benches/mp_queue.py.
// ---------------------------------------------------------------------------------------

/// The script, next to this file.
fn mp_queue_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/mp_queue.py")
}

/// Kills and reaps a script that is still running when its handle is dropped.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The fewest round trips one run of the script times: Python's start-up (tens of
/// milliseconds) is outside the timing but not outside criterion's wall clock, so each run
/// is made long enough to be worth it.
const MIN_PYTHON_ROUND_TRIPS: u64 = 2_000;

/// The script's mean round trip, times `iters`: one run of at least
/// `MIN_PYTHON_ROUND_TRIPS` round trips.
fn python_iters(iters: u64) -> Duration {
    let n = iters.max(MIN_PYTHON_ROUND_TRIPS);
    let total = python_round_trips(n).unwrap_or_else(|e| panic!("{e}"));
    total.mul_f64(iters as f64 / n as f64)
}

/// Runs the script for `n` round trips and returns what it measured, or why it could not.
/// The script gets `DEADLINE` plus a second per 10 000 round trips, then it is killed.
fn python_round_trips(n: u64) -> Result<Duration, String> {
    let child = Command::new("python3")
        .arg(mp_queue_script())
        .arg(n.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let mut script = Script(child);
    let limit = DEADLINE + Duration::from_secs(n / 10_000);
    let start = Instant::now();
    let status = loop {
        match script.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > limit => {
                return Err(format!("mp_queue.py took more than {limit:?}; killed"))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("waiting for mp_queue.py: {e}")),
        }
    };
    // The output is one short line (a pipe buffer holds it), read once the script ended.
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = script.0.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = script.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        return Err(format!("mp_queue.py failed ({status}): {}", err.trim()));
    }
    let ns: f64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unexpected output from mp_queue.py: {out:?}"))?;
    Ok(Duration::from_secs_f64(ns * n as f64 / 1e9))
}

/// Whether CPython's baseline can run here; if not, says why on standard output.
fn python_usable() -> bool {
    match python_round_trips(10) {
        Ok(_) => true,
        Err(why) => {
            println!("queue_round_trip/CPython multiprocessing.Queue: skipped: {why}");
            false
        }
    }
}

fn queue(c: &mut Criterion) {
    let python = python_usable();
    let mut g = c.benchmark_group("queue_round_trip");
    g.sampling_mode(SamplingMode::Flat).sample_size(20);
    g.bench_function("Queue<u64>, capacity 1", |b| {
        b.iter_custom(queue_round_trip)
    });
    g.bench_function("UnixStream pair, 8 bytes", |b| {
        b.iter_custom(stream_round_trip)
    });
    if python {
        g.sample_size(10);
        g.bench_function("CPython multiprocessing.Queue", |b| {
            b.iter_custom(python_iters)
        });
    }
    g.finish();
}

criterion_group!(benches, event, queue);
criterion_main!(benches);
