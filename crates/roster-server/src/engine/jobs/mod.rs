//! The job worker as a step function (`run_next_jobs`: claim, run, record
//! a failure), with each job kind's batch in its own module: post-enrollment
//! jobs (`post`), sweep jobs (`sweep_batch`, planned in `sweep_plan`, their
//! passes over whole ranges run by `sweep_run`), and the scheduler and
//! clock play (`schedule`).

mod post;
mod schedule;
mod sweep_batch;
mod sweep_plan;
mod sweep_run;

use jiff::Timestamp;
use roster_core::payload::{JobPayload, PostEnrollmentPayload, SweepActivityPayload};
use roster_store::ClaimedJob;

use crate::engine::{EngineError, EngineResult};
use crate::state::AppState;

pub use schedule::{
    advance_clock, dry_run_counts, next_nightly_after, run_due, scheduler_loop, start_nightly,
    worker_loop,
};
pub use sweep_plan::user_ranges;

/// How long a claimed job stays leased without renewal, in real seconds,
/// unless `--job-lease-seconds` says otherwise.
pub const LEASE_SECONDS: i64 = 30;

fn real_micros() -> i64 {
    Timestamp::now().as_microsecond()
}

/// Jobs of one kind a worker claims in one transaction (post-enrollment jobs
/// are run there too; sweep jobs there or, with whole ranges to write, right
/// after): each statement and commit saved is a round trip on PostgreSQL; on
/// SQLite, measured, batches ran the jobs of the bench's W5 in half the time
/// of one job per transaction.
pub const JOB_BATCH: i64 = 16;

/// Sweep jobs a worker claims in one transaction: those with a few changed
/// users are all evaluated together there (`create_ahead`); of those with
/// whole ranges to write, on PostgreSQL, it keeps `JOB_BATCH` and gives the
/// others back.
pub const SWEEP_JOB_BATCH: i64 = 64;

/// Claims and runs due jobs (one, or a batch of post-enrollment jobs).
/// `Ok(false)` when none is due.
pub async fn run_next(state: &AppState) -> EngineResult<bool> {
    Ok(!run_next_jobs(state).await?.is_empty())
}

/// A job a worker ran (its handler succeeded, or its attempt was recorded as
/// failed) and when its handler started.
pub struct RanJob {
    pub job: ClaimedJob,
    pub started: std::time::Instant,
}

/// Claims and runs the earliest due job and answers which jobs ran; none when
/// none is due. The bench reads it to time each job from enqueue to start.
///
/// A post-enrollment job is claimed, run and marked done in one transaction,
/// together with up to `JOB_BATCH - 1` more post-enrollment jobs due then: a
/// worker that dies midway leaves them pending, to be run again at once,
/// with nothing of the attempt written. When one of them fails, the whole
/// transaction is rolled back and only the failing job's attempt is
/// recorded; the others are pending again, unchanged, and run with the next
/// claim. A sweep job with nothing to do since its marks, or with one pass
/// over fewer than `BATCH_USERS` changed users, is swept and finished in the
/// claiming transaction, and further sweep jobs are claimed into it (up to
/// `SWEEP_JOB_BATCH`); those with more to write commit their claim there and hold
/// a lease while their passes run (`run_sweep_activities`): on SQLite one
/// transaction per range for all of them, on PostgreSQL one per job and
/// range.
pub async fn run_next_jobs(state: &AppState) -> EngineResult<Vec<RanJob>> {
    let mut tx = state.store.write().await?;
    let lease_until = real_micros() + state.lease_seconds * 1_000_000;
    let claimed = tx
        .claim_job(
            &state.worker_id,
            state.clock.now().as_microsecond(),
            real_micros(),
            lease_until,
            None,
        )
        .await?;
    let Some(job) = claimed else {
        tx.rollback().await?;
        return Ok(Vec::new());
    };
    let started = std::time::Instant::now();
    let batch = match job.kind.as_str() {
        PostEnrollmentPayload::KIND => {
            post::run_batch(state, tx, job, started, lease_until).await?
        }
        SweepActivityPayload::KIND => sweep_batch::run_batch(state, tx, job, lease_until).await?,
        other => {
            let error = EngineError::internal(format!("unknown job kind {other:?}"));
            tx.rollback().await?;
            Batch::Stopped(job, started, Err(error))
        }
    };
    let (job, started, result) = match batch {
        Batch::Ran(ran) => return Ok(ran),
        Batch::Stopped(job, started, result) => (job, started, result),
    };
    if let Err(error) = result {
        record_failure(state, &job, error, false).await?;
    } else {
        metrics::counter!("roster_jobs_done_total", "kind" => job.kind.clone()).increment(1);
    }
    Ok(vec![RanJob { job, started }])
}

/// How a claimed batch of jobs ended: committed, with the jobs that ran, or
/// rolled back because of one job, with its result (its attempt is recorded
/// when it failed; the batch's others are pending again, unchanged).
enum Batch {
    Ran(Vec<RanJob>),
    Stopped(ClaimedJob, std::time::Instant, EngineResult<()>),
}

/// Records a failed attempt of `job`: retried after a backoff, or given up.
/// When its claim was rolled back with the attempt (`claim_committed`
/// false), the attempt is counted here, unless another worker has taken the
/// job since.
async fn record_failure(
    state: &AppState,
    job: &ClaimedJob,
    error: EngineError,
    claim_committed: bool,
) -> EngineResult<()> {
    tracing::warn!(job_id = job.id, kind = %job.kind, error = %format!("{error:#}"), "job attempt failed");
    metrics::counter!("roster_jobs_failed_attempts_total").increment(1);
    let give_up = !roster_core::retry::should_retry(job.attempts as i32);
    // A transaction another one deadlocked with is not the job's fault: its
    // first such failure is due again at once (the attempt still counts).
    let transient = error.is_transient();
    let retry_at = state.clock.now().as_microsecond()
        + roster_core::retry::retry_delay_seconds(job.attempts as i32, transient) * 1_000_000;
    let mut tx = state.store.write().await?;
    if claim_committed {
        tx.fail_job(
            job.id,
            &state.worker_id,
            &format!("{error:#}"),
            retry_at,
            give_up,
            state.clock.now().as_microsecond(),
        )
        .await?;
    } else {
        tx.fail_unclaimed_job(
            job.id,
            &format!("{error:#}"),
            retry_at,
            give_up,
            state.clock.now().as_microsecond(),
            real_micros(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
