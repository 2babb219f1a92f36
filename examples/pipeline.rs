//! A pipeline of processes connected by `Queue`s: a producer pushes jobs, two workers pop
//! them and push results, a collector pops the results. Each stage ends the next with
//! `close()`: the producer closes the job queue when it has pushed everything, and once
//! both workers have drained it and ended, the results queue is closed, so the collector
//! drains it and ends.
//!
//! ```text
//! cargo run --example pipeline
//! ```
//!
//! The output is the same on every run (which worker did which job is not printed).

use shared_runtime::{Process, Queue, SharedStruct};

/// Jobs pushed by the producer.
const JOBS: u64 = 1000;
/// Slots of each queue: far fewer than the jobs, so that stages wait for each other.
const CAPACITY: usize = 16;

/// What a worker sends the collector.
#[derive(SharedStruct, Clone, Copy, Debug)]
#[repr(C)]
struct Done {
    job: u64,
    square: u64,
    worker: u64,
}

fn main() -> shared_runtime::Result<()> {
    let jobs = Queue::<u64>::new(CAPACITY)?;
    let results = Queue::<Done>::new(CAPACITY)?;
    println!("pipeline: 1 producer -> 2 workers -> 1 collector, queues of {CAPACITY} slots");

    let producer = {
        let jobs = jobs.clone();
        Process::start(move || {
            for job in 1..=JOBS {
                jobs.push(job)
                    .expect("the job queue is open until this closes it");
            }
            jobs.close(); // the workers drain what is left, then stop
            JOBS
        })?
    };

    let workers: Vec<_> = (0..2u64)
        .map(|worker| {
            let (jobs, results) = (jobs.clone(), results.clone());
            Process::start(move || {
                let mut done = 0u64;
                while let Some(job) = jobs.pop().expect("the job queue works") {
                    let square = job * job;
                    results
                        .push(Done {
                            job,
                            square,
                            worker,
                        })
                        .expect("the results queue is open until both workers end");
                    done += 1;
                }
                done
            })
        })
        .collect::<shared_runtime::Result<_>>()?;

    let collector = {
        let results = results.clone();
        Process::start(move || {
            // (count, sum of squares, how many jobs came more than once or not at all)
            let mut seen = vec![false; JOBS as usize + 1];
            let (mut count, mut sum) = (0u64, 0u64);
            while let Some(d) = results.pop().expect("the results queue works") {
                assert_eq!(d.square, d.job * d.job, "worker {} got it wrong", d.worker);
                assert!(!seen[d.job as usize], "job {} came twice", d.job);
                seen[d.job as usize] = true;
                count += 1;
                sum += d.square;
            }
            let missing = seen[1..].iter().filter(|&&s| !s).count() as u64;
            [count, sum, missing]
        })?
    };

    let produced = producer.join()?;
    let mut worked = 0;
    for w in workers {
        worked += w.join()?;
    }
    results.close(); // both workers are done: the collector drains, then stops
    let [count, sum, missing] = collector.join()?;

    println!("produced {produced} jobs");
    println!("workers did {worked} jobs between them");
    println!("collected {count} results, {missing} missing");
    let expected = JOBS * (JOBS + 1) * (2 * JOBS + 1) / 6;
    println!("sum of squares 1..={JOBS}: {sum} (expected {expected})");
    if count != JOBS || missing != 0 || sum != expected {
        eprintln!("pipeline lost or duplicated work");
        std::process::exit(1);
    }
    Ok(())
}
