//! Time: draining due jobs (`run_due`), playing a manual clock forward
//! (`advance_clock`), the nightly sweep's start and scheduler, the worker
//! loop, and the dry-run sweep.

use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use roster_store::SweepCounts;

use super::{run_next, run_next_jobs};
use crate::engine::sweep::{start_sweep, sweep_range};
use crate::engine::{EngineError, EngineResult};
use crate::state::{AppState, Ctx};

/// Runs every job due at the clock's time, including those that running jobs
/// make due, and waits for due jobs other workers hold. Returns how many ran.
pub async fn run_due(state: &AppState) -> EngineResult<u64> {
    let mut ran = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let batch = run_next_jobs(state).await?.len() as u64;
        if batch > 0 {
            ran += batch;
            continue;
        }
        let mut tx = state.store.read().await?;
        let waiting = tx
            .count_due_jobs(state.clock.now().as_microsecond())
            .await?;
        tx.rollback().await?;
        if waiting == 0 || std::time::Instant::now() > deadline {
            return Ok(ran);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The first nightly sweep instant strictly after `after`.
pub fn next_nightly_after(after: Timestamp, ctx: &Ctx) -> Timestamp {
    let tz = ctx.settings.time_zone();
    let local = after.to_zoned(tz.clone());
    let mut day = local.date();
    loop {
        let instant = day
            .to_datetime(ctx.settings.sweep_time())
            .to_zoned(tz.clone())
            .map(|zoned| zoned.timestamp())
            .unwrap_or(after);
        if instant > after {
            return instant;
        }
        day = day.checked_add(1.day()).unwrap_or(day);
        if day == jiff::civil::Date::MAX {
            return Timestamp::MAX;
        }
    }
}

/// Plays a manual clock forward to `target`: every job at its `run_at` and
/// every nightly sweep at its time, in order, each seeing its own time.
pub async fn advance_clock(state: &AppState, target: Timestamp) -> EngineResult<()> {
    run_due(state).await?;
    loop {
        let current = state.clock.now();
        let mut tx = state.store.read().await?;
        let ctx = state.ctx(&mut tx, None).await?;
        let next_job = tx
            .next_job_time(target.as_microsecond())
            .await?
            .map(Timestamp::from_microsecond)
            .transpose()?
            .filter(|at| *at > current);
        tx.rollback().await?;
        let next_sweep = Some(next_nightly_after(current, &ctx)).filter(|at| *at <= target);
        match (next_job, next_sweep) {
            (Some(job_at), sweep_at) if sweep_at.is_none_or(|sweep_at| job_at < sweep_at) => {
                state.clock.set(&state.store, job_at).await?;
                run_due(state).await?;
            }
            (_, Some(sweep_at)) => {
                state.clock.set(&state.store, sweep_at).await?;
                start_nightly(state).await?;
                run_due(state).await?;
            }
            _ => {
                state.clock.set(&state.store, target).await?;
                run_due(state).await?;
                return Ok(());
            }
        }
    }
}

/// Starts the nightly sweep of the clock's local day, unless it exists or a
/// sweep is running (whichever process sees the time first wins).
pub async fn start_nightly(state: &AppState) -> EngineResult<Option<i64>> {
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    if tx.nightly_sweep_exists(&ctx.today.to_string()).await? {
        tx.rollback().await?;
        return Ok(None);
    }
    match start_sweep(&mut tx, &ctx, "nightly", ctx.today).await {
        Ok(id) => {
            tx.commit().await?;
            tracing::info!(sweep_id = id, day = %ctx.today, "nightly sweep started");
            state.jobs_ready.notify_waiters();
            Ok(Some(id))
        }
        Err(EngineError::Conflict(_)) => {
            tx.rollback().await?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// The background worker: runs due jobs, then waits for a notification or a
/// second, until the process stops.
pub async fn worker_loop(state: AppState) {
    loop {
        loop {
            match run_next(&state).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "job worker error");
                    break;
                }
            }
        }
        tokio::select! {
            _ = state.jobs_ready.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(1000)) => {}
        }
    }
}

/// The nightly scheduler on the system clock: once the local time passes
/// `nightly_sweep_at`, the day's sweep starts (once, across processes).
pub async fn scheduler_loop(state: AppState) {
    loop {
        if state.clock.mode() == crate::clock::ClockMode::System
            && let Err(error) = scheduler_tick(&state).await
        {
            tracing::warn!(error = %format!("{error:#}"), "scheduler error");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn scheduler_tick(state: &AppState) -> EngineResult<()> {
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let exists = tx.nightly_sweep_exists(&ctx.today.to_string()).await?;
    tx.rollback().await?;
    let local_time = ctx.now.to_zoned(ctx.settings.time_zone()).time();
    if !exists && local_time >= ctx.settings.sweep_time() {
        start_nightly(state).await?;
    }
    Ok(())
}

/// A dry-run sweep: every activity swept inside a transaction that is rolled
/// back; only the counts remain.
pub async fn dry_run_counts(state: &AppState, actor: Option<i64>) -> EngineResult<SweepCounts> {
    let mut tx = state.store.read().await?;
    let activities = tx.activities_with_rules().await?;
    tx.rollback().await?;
    let mut total = SweepCounts::default();
    for record in activities {
        let activity = crate::engine::rules::activity_from(record);
        let mut tx = state.store.write().await?;
        let ctx = state.ctx(&mut tx, actor).await?;
        let counts = sweep_range(&mut tx, &ctx, &activity, roster_core::sweep::UserRange::ALL)
            .await?
            .counts;
        tx.rollback().await?;
        total.created += counts.created;
        total.adopted += counts.adopted;
        total.closed += counts.closed;
        total.skipped += counts.skipped;
    }
    Ok(total)
}
