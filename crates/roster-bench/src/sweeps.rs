//! The sweeps: W1 (cold), the raw-insert calibration beside it, W2 (warm),
//! W7 (cold again under learners' reads), and W3's delta.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::ToSpan;
use jiff::civil::Date;
use roster_store::bench::BenchUser;
use roster_store::{Backend, Store, SweepRecord};

use crate::Bench;
use crate::error::{BenchError, Result};
use crate::host::Host;
use crate::load::{Org, count_enrollments};
use crate::plan::{GROUPS, Plan, Rng};
use crate::progress::Progress;
use crate::reads::{CLIENTS, join_clients, spawn_clients};
use crate::report::Workload;

/// Pause of each W7 client between requests: learners browsing, not a
/// closed loop that would take both cores from the sweep it measures.
const W7_THINK: Duration = Duration::from_millis(50);

/// The figures of the sweeps before W3 and of the calibration, which the
/// ratios compare.
pub(crate) struct SweepFigures {
    pub(crate) workloads: Vec<Workload>,
    pub(crate) calibration_rows: i64,
    pub(crate) calibration_time: Duration,
    pub(crate) calibration_rate: f64,
    pub(crate) w1_time: Duration,
    pub(crate) w1_rows: i64,
    pub(crate) w2_time: Duration,
    pub(crate) w2_rows: i64,
}

/// W1, the calibration, W2 and W7, in this order.
pub(crate) async fn cold_and_warm<H: Host>(bench: &Bench<H>) -> Result<SweepFigures> {
    let store = bench.host.store();
    let workers = bench.workers;
    // W1: the cold sweep, as the nightly sweep runs it.
    bench.progress.stage("W1 sweep", 0);
    let (w1_time, w1) = sweep_now(bench).await?;
    let w1_rows = w1.created + w1.adopted + w1.closed;
    let mut workloads = vec![Workload::rows(
        "W1",
        "cold sweep",
        w1_time,
        w1_rows,
        format!(
            "created {}, adopted {}, closed {}, skipped {}; {} activities, {workers} workers",
            w1.created, w1.adopted, w1.closed, w1.skipped, w1.jobs_total
        ),
    )];

    // The physical limit: the same rows into a copy of the table.
    bench
        .progress
        .stage("calibrate", bench.org.rule_activities.len() as u64);
    store.bench_settle().await?;
    let (calibration_rows, calibration_time) =
        calibrate(store, &bench.org, &bench.progress).await?;
    // The calibration's table is gone: only its log is left to settle.
    store.bench_checkpoint().await?;
    let calibration_rate = calibration_rows as f64 / calibration_time.as_secs_f64().max(1e-9);

    // W2: nothing to do.
    bench.progress.stage("W2 sweep", 0);
    let before = count_enrollments(store).await?;
    let (w2_time, w2) = sweep_now(bench).await?;
    let after = count_enrollments(store).await?;
    let w2_rows = w2.created + w2.adopted + w2.closed + (after - before).abs();
    workloads.push(Workload::rows(
        "W2",
        "warm sweep",
        w2_time,
        w2_rows,
        format!(
            "skipped {}; enrollments {before} before, {after} after",
            w2.skipped
        ),
    ));
    workloads.extend(cold_under_reads(bench).await?);
    Ok(SweepFigures {
        workloads,
        calibration_rows,
        calibration_time,
        calibration_rate,
        w1_time,
        w1_rows,
        w2_time,
        w2_rows,
    })
}

/// W7: the cold sweep again, with learners reading over HTTP meanwhile.
async fn cold_under_reads<H: Host>(bench: &Bench<H>) -> Result<[Workload; 2]> {
    let store = bench.host.store();
    bench.progress.stage("W7 reset", 0);
    let mut tx = store.write().await?;
    tx.bench_reset_sweep().await?;
    tx.commit().await?;
    store.bench_settle().await?;
    bench.progress.stage("W7 sweep", 0);
    let stop = Arc::new(AtomicBool::new(false));
    let readers = spawn_clients(
        bench.address,
        Arc::new(bench.org.reader_tokens.clone()),
        CLIENTS,
        bench.seed ^ 0x77,
        None,
        W7_THINK,
        stop.clone(),
    );
    let (w7_time, w7) = sweep_now(bench).await?;
    stop.store(true, Ordering::SeqCst);
    let mut w7_samples: Vec<Duration> = join_clients(readers)
        .await?
        .into_iter()
        .map(|(_, latency)| latency)
        .collect();
    Ok([
        Workload::rows(
            "W7",
            "cold sweep under reads",
            w7_time,
            w7.created + w7.adopted + w7.closed,
            format!("the W1 sweep again while {CLIENTS} clients read"),
        ),
        Workload::rows(
            "W7",
            "reads during sweep",
            w7_time,
            0,
            format!(
                "History/Plan/home of random learners, {CLIENTS} clients, {} ms between requests",
                W7_THINK.as_millis()
            ),
        )
        .with_latencies(&mut w7_samples),
    ])
}

/// Starts a sweep of the clock's day as `POST /sweeps` does and drains it
/// with the job workers, as `roster serve` would. Answers the real time from
/// the start to the last activity's commit, and the sweep's record.
pub(crate) async fn sweep_now<H: Host>(bench: &Bench<H>) -> Result<(Duration, SweepRecord)> {
    let store = bench.host.store();
    let started = Instant::now();
    let id = bench.host.start_sweep().await?;
    let workers: Vec<_> = (0..bench.workers)
        .map(|_| {
            let host = bench.host.clone();
            tokio::spawn(async move { host.run_due().await })
        })
        .collect();
    // The time is taken when the last worker ends, not at the next look of
    // the progress bar.
    let all_done = async {
        for worker in workers {
            worker.await??;
        }
        Ok::<_, BenchError>(started.elapsed())
    };
    tokio::pin!(all_done);
    let elapsed = loop {
        tokio::select! {
            elapsed = &mut all_done => break elapsed?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let mut tx = store.read().await?;
                let record = tx.get_sweep(id).await?;
                tx.rollback().await?;
                if let Some(record) = &record {
                    bench.progress.set(record.jobs_done as u64, record.jobs_total as u64);
                    bench.progress.message(&format!("{} created", record.created));
                }
            }
        }
    };
    let mut tx = store.read().await?;
    let record = tx
        .get_sweep(id)
        .await?
        .ok_or_else(|| BenchError::Unexpected(format!("sweep {id} vanished")))?;
    tx.rollback().await?;
    if record.state != "done" {
        return Err(BenchError::Unexpected(format!(
            "sweep {id} ended {}",
            record.state
        )));
    }
    Ok((elapsed, record))
}

/// Inserts the rows the cold sweep created into an empty copy of the
/// enrollments table, activity by activity in user order, in one
/// transaction; answers the rows and the time spent writing (reading them
/// back is not counted).
async fn calibrate(store: &Store, org: &Org, progress: &Progress) -> Result<(i64, Duration)> {
    let mut tx = store.write().await?;
    tx.calibration_create().await?;
    tx.commit().await?;
    let mut tx = store.write().await?;
    let mut spent = Duration::ZERO;
    let mut rows = 0;
    match store.backend() {
        // Reading the rows back is not counted: only the inserts are.
        Backend::Sqlite => {
            for activity_id in &org.rule_activities {
                let batch = tx.bench_auto_rows(*activity_id).await?;
                rows += batch.len() as i64;
                spent += tx.calibration_insert(&batch).await?;
                progress.advance(1);
            }
        }
        Backend::Postgres => {
            let (count, text) = tx.calibration_rows_text(&org.rule_activities).await?;
            rows = count;
            spent += tx.calibration_copy(text).await?;
            progress.advance(org.rule_activities.len() as u64);
        }
    }
    // The log this transaction wrote is copied into the database by the
    // store's checkpointer afterwards, as W1's is: not timed for either.
    tx.calibration_hold_checkpoints(true).await?;
    let committing = Instant::now();
    tx.commit().await?;
    spent += committing.elapsed();
    let mut tx = store.write().await?;
    tx.calibration_hold_checkpoints(false).await?;
    tx.calibration_drop().await?;
    tx.commit().await?;
    Ok((rows, spent))
}

/// W3's changes, written the way an integration writes them with nightly
/// evaluation (R18): 1% of learners change groups, 1% new hires, 0.5%
/// deactivations. Answers a description.
pub(crate) async fn apply_delta<H: Host>(
    bench: &Bench<H>,
    plan: &Plan,
    rng: &mut Rng,
    day0: Date,
) -> Result<String> {
    let org = &bench.org;
    let now = bench.host.now().as_microsecond();
    let users = plan.users.len();
    let movers = (users / 100).max(1);
    let hires = (users / 100).max(1);
    let leavers = (users / 200).max(1);
    let indexes: Vec<usize> = (0..users).collect();
    let chosen = rng.sample(&indexes, movers + leavers);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for index in &chosen[..movers] {
        let user = &plan.users[*index];
        let leaving = user.groups[rng.below(user.groups.len())];
        removed.push((org.group_ids[leaving], org.user_ids[*index]));
        loop {
            let joining = rng.skewed(GROUPS, 2.2);
            if !user.groups.contains(&joining) {
                added.push((org.group_ids[joining], org.user_ids[*index]));
                break;
            }
        }
    }
    let deactivated: Vec<i64> = chosen[movers..]
        .iter()
        .map(|index| org.user_ids[*index])
        .filter(|id| !org.readers.contains(id))
        .collect();
    let hired_on = day0.tomorrow().unwrap_or(day0).to_string();
    let new_users: Vec<BenchUser> = (0..hires)
        .map(|index| BenchUser {
            username: format!("{}hire-{index:06}", org.prefix),
            active: true,
            hired_on: Some(hired_on.clone()),
            role: "learner",
        })
        .collect();
    let mut tx = bench.host.store().write().await?;
    tx.bench_remove_members(&removed).await?;
    tx.bench_insert_members(&added).await?;
    tx.bench_deactivate_users(&deactivated, now).await?;
    tx.bench_insert_users(&new_users, now).await?;
    let hired: Vec<i64> = tx
        .bench_user_ids(&format!("{}hire-", org.prefix))
        .await?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let mut memberships = Vec::new();
    for id in &hired {
        let wanted = 1 + rng.below(5);
        let mut groups = HashSet::new();
        while groups.len() < wanted {
            groups.insert(rng.skewed(GROUPS, 2.2));
        }
        memberships.extend(groups.into_iter().map(|group| (org.group_ids[group], *id)));
    }
    tx.bench_insert_members(&memberships).await?;
    tx.commit().await?;
    Ok(format!(
        "{movers} learners changed groups, {hires} hired, {leavers} deactivated, day {} to {}",
        day0,
        day0.checked_add(2.days()).unwrap_or(day0)
    ))
}
