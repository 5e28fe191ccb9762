//! W5: a burst of completions firing post-enrollment rules, with the job
//! workers running the jobs as they come, then the delayed jobs a day later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::ToSpan;
use serde_json::Value;

use crate::Bench;
use crate::error::{BenchError, Result};
use crate::host::{Host, RanJob};
use crate::load::{Org, count_jobs};
use crate::plan::Rng;
use crate::report::Workload;

/// W5's completions come from this many clients at once.
const PRODUCERS: usize = 4;

/// When each completion was committed, by enrollment id.
type Commits = Arc<Mutex<HashMap<i64, Instant>>>;

/// What the burst of completions did, and how long it took.
struct Burst {
    completed: u64,
    /// From the first completion to the last one's commit.
    enqueue_time: Duration,
    /// From the first completion to the moment no job was due.
    drain_time: Duration,
    /// From a completion's commit to the start of a job it fired at once.
    latencies: Vec<Duration>,
}

/// Completes one enrollment per learner (half in activities whose
/// `completed` rules fire at once, half a day later), one transaction per
/// completion as `PATCH /enrollments/{id}` does, from `PRODUCERS` tasks at
/// once as from as many clients, while the workers run the jobs as they
/// come; then plays the clock a day forward and drains the delayed half.
pub(crate) async fn event_burst<H: Host>(
    bench: &Bench<H>,
    rng: &mut Rng,
    users: usize,
) -> Result<[Workload; 3]> {
    let (host, org, workers) = (&bench.host, &bench.org, bench.workers);
    let chosen = choose(host, org, rng, users).await?;
    let jobs_of = |rules: &[i64]| -> i64 {
        chosen
            .iter()
            .filter(|(_, activity)| rules.contains(activity))
            .map(|(_, activity)| org.completed_rules.get(activity).copied().unwrap_or(0))
            .sum()
    };
    let (immediate_jobs, delayed_jobs) =
        (jobs_of(&org.completed_now), jobs_of(&org.completed_later));

    let done_before = count_jobs(host.store(), "done").await?;
    let mut burst = burst(bench, chosen).await?;
    let done_now = count_jobs(host.store(), "done").await?;

    // The delayed half, a day later.
    bench.progress.message("delayed jobs");
    host.set_clock(host.now().checked_add(25.hours())?).await?;
    let started = Instant::now();
    let drains: Vec<_> = (0..workers)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.run_due().await })
        })
        .collect();
    for drain in drains {
        drain.await??;
    }
    let delayed_time = started.elapsed();
    let done_later = count_jobs(host.store(), "done").await?;

    Ok([
        Workload::rows(
            "W5",
            "completions",
            burst.enqueue_time,
            immediate_jobs + delayed_jobs,
            format!(
                "{} completions from {PRODUCERS} clients, one transaction each, enqueueing {} jobs at once and {} for a day later",
                burst.completed, immediate_jobs, delayed_jobs
            ),
        ),
        Workload::rows(
            "W5",
            "jobs at once",
            burst.drain_time,
            done_now - done_before,
            format!(
                "jobs run by {workers} workers during and after the burst (chains included); p50/p99: enqueue to start of the {} jobs timed",
                burst.latencies.len()
            ),
        )
        .with_latencies(&mut burst.latencies),
        Workload::rows(
            "W5",
            "jobs a day later",
            delayed_time,
            done_later - done_now,
            format!("the clock a day forward, {workers} workers drain the delayed jobs and their chains"),
        ),
    ])
}

/// The open enrollments (id, activity id) to complete, half with rules
/// firing at once and half a day later, in a random order.
async fn choose<H: Host>(
    host: &H,
    org: &Org,
    rng: &mut Rng,
    users: usize,
) -> Result<Vec<(i64, i64)>> {
    let mut tx = host.store().read().await?;
    let now_pool = tx.bench_open_enrollments(&org.completed_now).await?;
    let later_pool = tx.bench_open_enrollments(&org.completed_later).await?;
    tx.rollback().await?;
    let half = users / 2;
    let mut chosen = rng.sample(&now_pool, half);
    chosen.extend(rng.sample(&later_pool, users - half));
    let order: Vec<usize> = (0..chosen.len()).collect();
    Ok(rng
        .sample(&order, order.len())
        .into_iter()
        .map(|index| chosen[index])
        .collect())
}

/// The completions from `PRODUCERS` tasks while the workers run, until no
/// job is due.
async fn burst<H: Host>(bench: &Bench<H>, chosen: Vec<(i64, i64)>) -> Result<Burst> {
    let host = &bench.host;
    let commits: Commits = Arc::new(Mutex::new(HashMap::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let worker_tasks: Vec<_> = (0..bench.workers)
        .map(|_| {
            tokio::spawn(timed_worker(
                host.clone(),
                commits.clone(),
                latencies.clone(),
                stop.clone(),
            ))
        })
        .collect();

    bench.progress.set(0, chosen.len() as u64);
    let started = Instant::now();
    let total = chosen.len() as u64;
    let chosen = Arc::new(chosen);
    let next = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let producer = |host: H| {
        let (chosen, next, completed, commits, progress) = (
            chosen.clone(),
            next.clone(),
            completed.clone(),
            commits.clone(),
            bench.progress.clone(),
        );
        async move {
            while let Some((id, _)) = chosen.get(next.fetch_add(1, Ordering::SeqCst)) {
                let committing = || {
                    lock(&commits).insert(*id, Instant::now());
                };
                if !host.complete(*id, committing).await? {
                    continue;
                }
                let done = completed.fetch_add(1, Ordering::SeqCst) + 1;
                if done % 256 == 0 {
                    progress.set(done, total);
                }
            }
            Ok::<_, BenchError>(())
        }
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| tokio::spawn(producer(host.clone())))
        .collect();
    for producer in producers {
        producer.await??;
    }
    let enqueue_time = started.elapsed();
    // The workers go on until nothing due is left.
    loop {
        let mut tx = host.store().read().await?;
        let due = tx.count_due_jobs(host.now().as_microsecond()).await?;
        tx.rollback().await?;
        if due == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_time = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    host.jobs_ready().notify_waiters();
    for worker in worker_tasks {
        worker.await??;
    }
    let latencies = std::mem::take(&mut *lock(&latencies));
    Ok(Burst {
        completed: completed.load(Ordering::SeqCst),
        enqueue_time,
        drain_time,
        latencies,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|error| error.into_inner())
}

/// The worker loop of `roster serve`, noting for each job fired at once by
/// a completion the real time from the completion's commit to the job's
/// start.
async fn timed_worker<H: Host>(
    host: H,
    commits: Commits,
    latencies: Arc<Mutex<Vec<Duration>>>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    loop {
        loop {
            let ran = host.run_next_jobs().await?;
            if ran.is_empty() {
                break;
            }
            for RanJob { payload, started } in ran {
                let payload: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
                if payload["when"] == "completed" && payload["delay_days"] == 0 {
                    let from = payload["from_enrollment_id"].as_i64().unwrap_or_default();
                    if let Some(committed) = lock(&commits).get(&from).copied() {
                        lock(&latencies).push(started.saturating_duration_since(committed));
                    }
                }
            }
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        tokio::select! {
            _ = host.jobs_ready().notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(1000)) => {}
        }
    }
}
