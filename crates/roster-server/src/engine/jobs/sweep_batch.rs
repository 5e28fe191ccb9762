//! Sweep jobs (R13–R16) claimed in a batch: each planned in the claiming
//! transaction; those with a few changed users swept and finished there,
//! those with whole ranges to write deferred to `sweep_run` after the claim
//! commits.
//!
//! Up to `SWEEP_JOB_BATCH` jobs are claimed and planned together. Those with
//! nothing changed since their marks, or fewer than `BATCH_USERS` changed
//! users, finish in the claiming transaction: their marks written in one
//! statement (`Tx::put_sweep_marks_many`, which counts each range's skips)
//! and the jobs done in another (`Tx::complete_jobs`). Jobs with whole ranges
//! to write commit their claim with the batch; on PostgreSQL a worker keeps
//! at most `JOB_BATCH` of them and gives the others back (`Tx::release_jobs`)
//! so that the workers share a cold sweep. The batch adds its jobs' counts to
//! the sweep's row in one statement, last, because that row is what
//! concurrent workers share.

use roster_core::payload::{JobPayload, SweepActivityPayload};
use roster_store::{Backend, ClaimedJob, MarksWrite, SweepCounts, Tx, UserIds};
use serde::Serialize;

use super::sweep_plan::{BatchReads, SweepPlan, create_ahead, plan_sweep_activity};
use super::sweep_run::{run_sweep_activities, sweep_pass_unmarked};
use super::{Batch, JOB_BATCH, RanJob, SWEEP_JOB_BATCH};
use crate::engine::EngineResult;
use crate::state::AppState;

/// Runs the claimed sweep job `job` in `tx`, the transaction that claimed it,
/// with the due sweep jobs claimed together, up to `SWEEP_JOB_BATCH`, and
/// their activities and marks read in one statement each. A job with nothing
/// to do since its marks, or with one pass over fewer than `BATCH_USERS`
/// changed users, is swept and finished in this transaction. Those with more
/// to write are deferred: their claims commit with the others' completion,
/// and their passes run after, under their leases (`run_sweep_activities`):
/// on SQLite one transaction per range for all of them, on PostgreSQL one
/// per job and range.
pub(super) async fn run_batch(
    state: &AppState,
    mut tx: Tx,
    job: ClaimedJob,
    lease_until: i64,
) -> EngineResult<Batch> {
    let mut batch = vec![job];
    let mut reads = BatchReads::default();
    let prefetched = async {
        batch.extend(
            tx.claim_more_jobs(
                &state.worker_id,
                state.clock.now().as_microsecond(),
                lease_until,
                SweepActivityPayload::KIND,
                SWEEP_JOB_BATCH - 1,
            )
            .await?,
        );
        reads.prefetch(&mut tx, &batch).await
    }
    .await;
    if let Err(error) = prefetched {
        tx.rollback().await?;
        return Err(error);
    }
    let (plans, failed) = plan_batch(state, &mut tx, batch, &mut reads).await;
    let Sorted {
        next,
        mut here,
        deferred,
        mut released,
    } = sort_planned(state, &mut tx, plans, failed).await;
    // What the jobs finished here add to their sweeps, written once just
    // before the commit.
    let mut tally = SweepTally::default();
    // The jobs finished here (and the enrollments they created): their marks
    // and their completion written for all of them at once.
    let mut finished = Vec::new();
    let mut created_here = 0;
    let next = match next {
        SweepNext::Commit if !here.is_empty() => {
            match finish_here(state, &mut tx, &here, &mut tally).await {
                Ok(true) => {
                    created_here = here.iter().map(|done| done.counts.created as u64).sum();
                    finished.extend(here.drain(..).map(|done| RanJob {
                        job: done.job,
                        started: done.started,
                    }));
                    SweepNext::Commit
                }
                // A lease lost (it cannot be, within its own
                // transaction) or a failed write: the first job
                // stands for the batch.
                outcome => {
                    let first = here.swap_remove(0);
                    SweepNext::Rollback(first.job, first.started, outcome.map(|_| ()))
                }
            }
        }
        next => next,
    };
    let mut gave_back = false;
    if matches!(next, SweepNext::Commit) {
        gave_back = !released.is_empty();
        let written = async {
            if gave_back {
                tx.release_jobs(&UserIds(std::mem::take(&mut released)), &state.worker_id)
                    .await?;
            }
            tally.write(&mut tx, state).await
        }
        .await;
        if let Err(error) = written {
            tx.rollback().await?;
            return Err(error);
        }
    }
    match next {
        SweepNext::Commit => {
            tx.commit().await?;
            if gave_back {
                state.jobs_ready.notify_waiters();
            }
            metrics::counter!("roster_sweep_enrollments_created_total").increment(created_here);
            for ran in &finished {
                metrics::counter!("roster_jobs_done_total", "kind" => ran.job.kind.clone())
                    .increment(1);
            }
            finished.extend(run_sweep_activities(state, deferred, lease_until).await?);
            Ok(Batch::Ran(finished))
        }
        // The jobs finished or deferred before it are pending again.
        SweepNext::Rollback(job, started, result) => {
            tx.rollback().await?;
            Ok(Batch::Stopped(job, started, result))
        }
    }
}

/// A claimed sweep job, when its handler started, and its plan.
type Planned = (ClaimedJob, std::time::Instant, SweepPlan);

/// Plans every job of the batch first (reads only), so that the passes over
/// a few changed users can be evaluated together (`create_ahead`); answers
/// the plans and, when a job's planning failed, how the batch ends.
async fn plan_batch(
    state: &AppState,
    tx: &mut Tx,
    batch: Vec<ClaimedJob>,
    reads: &mut BatchReads,
) -> (Vec<Planned>, Option<SweepNext>) {
    let mut plans = Vec::with_capacity(batch.len());
    let mut failed = None;
    for current in batch {
        let current_started = std::time::Instant::now();
        match plan_sweep_activity(state, tx, &current, reads).await {
            Ok(plan) => plans.push((current, current_started, plan)),
            Err(error) => {
                failed = Some(SweepNext::Rollback(current, current_started, Err(error)));
                break;
            }
        }
    }
    if failed.is_none()
        && let Err(error) = create_ahead(tx, &mut plans, reads).await
    {
        // Blamed on the first job, whose attempt is counted.
        let (first, first_started, _) = plans.remove(0);
        failed = Some(SweepNext::Rollback(first, first_started, Err(error)));
    }
    (plans, failed)
}

/// The batch's jobs sorted by where they finish: here (their pass run
/// already), after the commit (`deferred`), or given back to the other
/// workers (`released`); and how the batch ends so far.
struct Sorted {
    next: SweepNext,
    here: Vec<FinishedHere>,
    deferred: Vec<Deferred>,
    released: Vec<i64>,
}

/// Runs the passes over a few changed users of the planned jobs here, in the
/// claiming transaction, and keeps the others for after the commit — on
/// PostgreSQL no more than a post-enrollment batch, so that the workers
/// share a cold sweep evenly, the others given back; on SQLite all (one
/// writer: they share its transactions).
async fn sort_planned(
    state: &AppState,
    tx: &mut Tx,
    plans: Vec<Planned>,
    mut failed: Option<SweepNext>,
) -> Sorted {
    let mut here: Vec<FinishedHere> = Vec::new();
    let mut deferred: Vec<Deferred> = Vec::new();
    let mut released = Vec::new();
    // A curriculum's or bundle's new enrollments add enrollments in its
    // items' activities: what was read of those beforehand is then read
    // again by their passes.
    let mut stale = false;
    let defer_at_most = match state.store.backend() {
        Backend::Postgres => JOB_BATCH as usize,
        Backend::Sqlite => usize::MAX,
    };
    let mut batch = plans.into_iter();
    let next = loop {
        if let Some(failed) = failed.take() {
            break failed;
        }
        let Some((current, current_started, mut plan)) = batch.next() else {
            break SweepNext::Commit;
        };
        if stale {
            for pass in &mut plan.passes {
                if let Some(narrowed) = &mut pass.narrowed {
                    narrowed.rows = None;
                    narrowed.close = None;
                }
            }
        }
        let planned = if plan.inline() {
            // One pass over the users changed since a mark is small
            // (fewer than `BATCH_USERS`): it runs here, in the
            // claiming transaction, and the job is finished with the
            // batch's others (`finish_here`).
            sweep_pass_unmarked(tx, &plan, &plan.passes[0], None)
                .await
                .map(|(counts, stamp)| {
                    stale |= counts.created > 0
                        && plan
                            .activity
                            .as_ref()
                            .is_some_and(|activity| activity.kind.has_items());
                    (counts, Some(stamp))
                })
        } else if plan.passes.is_empty() {
            Ok((SweepCounts::default(), None))
        } else if deferred.len() >= defer_at_most {
            // Given back, for the other workers.
            released.push(current.id);
            continue;
        } else {
            // Passes over whole ranges (or many changed users): the
            // job is claimed now, its passes run after the commit
            // (`run_sweep_activities`).
            deferred.push(Deferred {
                job: current,
                started: current_started,
                plan,
                counts: SweepCounts::default(),
            });
            continue;
        };
        match planned {
            Ok((counts, stamp)) => here.push(FinishedHere {
                job: current,
                started: current_started,
                plan,
                counts,
                stamp,
            }),
            Err(error) => break SweepNext::Rollback(current, current_started, Err(error)),
        }
    };
    Sorted {
        next,
        here,
        deferred,
        released,
    }
}

/// How a batch of sweep jobs ends: committed (the deferred jobs' passes
/// still to run), or rolled back because of this job.
enum SweepNext {
    Commit,
    Rollback(ClaimedJob, std::time::Instant, EngineResult<()>),
}

/// A claimed sweep job whose passes run after its claim commits, and what
/// they have done so far.
pub(super) struct Deferred {
    pub(super) job: ClaimedJob,
    pub(super) started: std::time::Instant,
    pub(super) plan: SweepPlan,
    pub(super) counts: SweepCounts,
}

/// A sweep job finished in the transaction that claimed it: its plan, what
/// its pass did (skips not yet counted), and the stamp of the pass's marks
/// (`None`: no pass, no marks).
struct FinishedHere {
    job: ClaimedJob,
    started: std::time::Instant,
    plan: SweepPlan,
    counts: SweepCounts,
    stamp: Option<i64>,
}

/// Writes what the jobs finished in their claiming transaction leave: the
/// marks of all their passes in one statement (which counts each range's
/// skips), then every job done, with its outcome, in another; adds each
/// job's counts to `tally`. Answers `false` when a lease was lost (it cannot
/// be, within the claiming transaction): the caller rolls back.
async fn finish_here(
    state: &AppState,
    tx: &mut Tx,
    here: &[FinishedHere],
    tally: &mut SweepTally,
) -> EngineResult<bool> {
    let days: Vec<String> = here
        .iter()
        .map(|done| done.plan.ctx.today.to_string())
        .collect();
    let marked: Vec<(usize, MarksWrite)> = here
        .iter()
        .zip(&days)
        .enumerate()
        .filter_map(|(index, (done, day))| {
            let stamp = done.stamp?;
            let pass = done.plan.passes.first()?;
            Some((
                index,
                MarksWrite {
                    activity_id: done.plan.activity_id,
                    ranges: &pass.marked,
                    fingerprint: &done.plan.fingerprint,
                    stamp,
                    day,
                },
            ))
        })
        .collect();
    let writes: Vec<MarksWrite> = marked.iter().map(|(_, write)| *write).collect();
    let skipped = tx.put_sweep_marks_many(&writes).await?;
    let mut counts: Vec<SweepCounts> = here.iter().map(|done| done.counts).collect();
    for ((index, _), skipped) in marked.iter().zip(skipped) {
        counts[*index].skipped = skipped;
    }
    let ids = UserIds(here.iter().map(|done| done.job.id).collect());
    let outcomes: Vec<String> = here
        .iter()
        .zip(&counts)
        .map(|(done, counts)| sweep_outcome(&done.plan, *counts))
        .collect::<EngineResult<_>>()?;
    let done = tx
        .complete_jobs(
            &ids,
            &outcomes,
            &state.worker_id,
            state.clock.now().as_microsecond(),
        )
        .await?;
    if done != ids.0.len() as u64 {
        return Ok(false);
    }
    for (done, counts) in here.iter().zip(&counts) {
        let unchanged = SweepCounts {
            skipped: done.plan.unchanged_skipped,
            ..SweepCounts::default()
        };
        tally.add(done.plan.sweep_id, &add_counts(*counts, unchanged));
    }
    Ok(true)
}

/// A sweep job's outcome: the counts of its passes plus the skips of the
/// ranges left alone.
fn sweep_outcome(plan: &SweepPlan, passes: SweepCounts) -> EngineResult<String> {
    Ok(serde_json::to_string(&SweepDone {
        activity_id: plan.activity_id,
        adopted: passes.adopted,
        closed: passes.closed,
        created: passes.created,
        skipped: passes.skipped + plan.unchanged_skipped,
    })?)
}

/// A sweep job's outcome as it is recorded.
#[derive(Serialize)]
struct SweepDone {
    activity_id: i64,
    adopted: i64,
    closed: i64,
    created: i64,
    skipped: i64,
}

/// Marks a sweep job done, its outcome the counts of its passes plus the
/// skips of the ranges left alone; answers those skips, still to add to the
/// sweep's counts (with the job itself, `finish_sweep_jobs`), or `None` when
/// the lease was lost.
pub(super) async fn finish_sweep_activity(
    state: &AppState,
    tx: &mut Tx,
    job: &ClaimedJob,
    plan: &SweepPlan,
    passes: SweepCounts,
) -> EngineResult<Option<SweepCounts>> {
    if !tx
        .complete_job(
            job.id,
            &state.worker_id,
            &sweep_outcome(plan, passes)?,
            state.clock.now().as_microsecond(),
        )
        .await?
    {
        return Ok(None);
    }
    Ok(Some(SweepCounts {
        skipped: plan.unchanged_skipped,
        ..SweepCounts::default()
    }))
}

pub(super) fn add_counts(a: SweepCounts, b: SweepCounts) -> SweepCounts {
    SweepCounts {
        created: a.created + b.created,
        adopted: a.adopted + b.adopted,
        closed: a.closed + b.closed,
        skipped: a.skipped + b.skipped,
    }
}

/// Sweep jobs finished in one transaction and their counts, by sweep.
#[derive(Default)]
pub(super) struct SweepTally(Vec<(i64, i64, SweepCounts)>);

impl SweepTally {
    /// A job finished, with what it adds to its sweep's counts.
    pub(super) fn add(&mut self, sweep_id: i64, counts: &SweepCounts) {
        self.add_jobs(sweep_id, 1, counts);
    }

    /// What a pass of a job not yet finished adds to its sweep's counts.
    pub(super) fn add_counts(&mut self, sweep_id: i64, counts: &SweepCounts) {
        self.add_jobs(sweep_id, 0, counts);
    }

    fn add_jobs(&mut self, sweep_id: i64, finished: i64, counts: &SweepCounts) {
        match self.0.iter_mut().find(|(id, _, _)| *id == sweep_id) {
            Some((_, jobs, total)) => {
                *jobs += finished;
                *total = add_counts(*total, *counts);
            }
            None => self.0.push((sweep_id, finished, *counts)),
        }
    }

    /// Adds the passes' counts to their sweeps (no job finished).
    pub(super) async fn write_counts(&self, tx: &mut Tx) -> EngineResult<()> {
        for (sweep_id, _, counts) in &self.0 {
            if *counts != SweepCounts::default() {
                tx.add_sweep_counts(
                    *sweep_id,
                    counts.created,
                    counts.adopted,
                    counts.closed,
                    counts.skipped,
                )
                .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn write(&self, tx: &mut Tx, state: &AppState) -> EngineResult<()> {
        for (sweep_id, jobs, counts) in &self.0 {
            tx.finish_sweep_jobs(*sweep_id, *jobs, counts, state.clock.now().as_microsecond())
                .await?;
        }
        Ok(())
    }
}
