//! The passes of deferred sweep jobs over whole ranges of users, after their
//! claims commit: in steps of one transaction each, under the jobs' leases.
//!
//! On SQLite one transaction holds every deferred job's passes over
//! consecutive ranges, up to `SWEEP_JOB_BATCH` passes, so each page of the
//! enrollments' user index is written once per range and batch and a
//! rollover of a few activities commits all its ranges at once. On
//! PostgreSQL each job's range is its own transaction: there is nothing to
//! gain from sharing, and a long transaction holds its rows' locks against
//! the other workers. The leases are renewed in one statement once a third of
//! their time has passed; the jobs are marked done in the last transaction;
//! a job whose pass fails leaves the batch with its attempt counted, and the
//! step is written again without it.

use roster_store::{Backend, SweepCounts, Tx, UserIds};

use super::sweep_batch::{Deferred, SweepTally, add_counts, finish_sweep_activity};
use super::sweep_plan::{Pass, SweepPlan};
use super::{RanJob, SWEEP_JOB_BATCH, real_micros, record_failure};
use crate::engine::sweep::sweep_range_since;
use crate::engine::{EngineError, EngineResult};
use crate::state::AppState;

/// One transaction of `run_sweep_activities`: the passes of one job (or of
/// every job, `None`) over some ranges of user ids.
type Step = (Option<i64>, Vec<(i64, i64)>);

/// SQLite's steps for passes over `ranges` (one entry per pass): each step
/// every job's passes over consecutive ranges in id order, ranges added
/// while the step holds no more than `most` passes; a range is never split,
/// so one with more passes than `most` is a step of its own.
fn shared_steps(mut ranges: Vec<(i64, i64)>, most: usize) -> Vec<Step> {
    ranges.sort_unstable();
    let mut steps: Vec<Step> = Vec::new();
    let mut passes_in_step = 0;
    for same in ranges.chunk_by(|a, b| a == b) {
        match steps.last_mut() {
            Some((_, step)) if passes_in_step + same.len() <= most => {
                step.push(same[0]);
                passes_in_step += same.len();
            }
            _ => {
                steps.push((None, vec![same[0]]));
                passes_in_step = same.len();
            }
        }
    }
    steps
}

/// The deferred jobs of a batch: their passes in steps of one transaction
/// each — on SQLite a step covers every job's passes over consecutive ranges,
/// ranges added while the step holds no more than `SWEEP_JOB_BATCH` passes
/// (so a cold sweep writes one range of 64 activities per transaction, and a
/// rollover of a few activities all its ranges in one: each commit writes
/// the pages it touched to the log again); on PostgreSQL one step per job
/// and range, as its transactions do not share pages' writes and a long one
/// holds its rows' locks against the other workers — with every job's lease
/// (ending at `lease_until` as claimed) renewed in one statement by the
/// first transaction after a third of it has passed, so that a dead
/// worker's jobs are taken over and a waiting one's are not. The jobs are
/// done in the last step's transaction. A job whose pass fails has its
/// attempt recorded and leaves the batch; one whose lease was lost leaves it
/// too; the step is then written again without it. Answers the jobs that
/// ran.
pub(super) async fn run_sweep_activities(
    state: &AppState,
    mut jobs: Vec<Deferred>,
    mut lease_until: i64,
) -> EngineResult<Vec<RanJob>> {
    let mut ran = Vec::new();
    if jobs.is_empty() {
        // A batch whose jobs all finished in the claiming transaction.
        return Ok(ran);
    }
    let steps = steps_of(state, &jobs);
    // (With no step at all, the jobs are done after the loop.)
    let last_step = steps.len().saturating_sub(1);
    for (index, (only, ranges)) in steps.into_iter().enumerate() {
        if only.is_some_and(|id| !jobs.iter().any(|deferred| deferred.job.id == id)) {
            // That job has left the batch.
            continue;
        }
        let step = StepRun {
            only,
            ranges: &ranges,
            finishing: index == last_step,
        };
        // Written again, without the job that left, until it commits.
        while !run_step(state, &mut jobs, &step, &mut lease_until, &mut ran).await? {
            if jobs.is_empty() {
                return Ok(ran);
            }
        }
    }
    if jobs.is_empty() {
        return Ok(ran);
    }
    // The last step was that of a job which had left the batch: the others
    // are done in a transaction of their own.
    finish_left(state, jobs, &mut ran).await?;
    Ok(ran)
}

/// The steps of the deferred jobs' passes: on SQLite shared by the jobs
/// (`shared_steps`), on PostgreSQL one per job and range.
fn steps_of(state: &AppState, jobs: &[Deferred]) -> Vec<Step> {
    match state.store.backend() {
        Backend::Sqlite => {
            let ranges: Vec<(i64, i64)> = jobs
                .iter()
                .flat_map(|deferred| deferred.plan.passes.iter().map(|pass| (pass.lo, pass.hi)))
                .collect();
            shared_steps(ranges, SWEEP_JOB_BATCH as usize)
        }
        Backend::Postgres => jobs
            .iter()
            .flat_map(|deferred| {
                deferred
                    .plan
                    .passes
                    .iter()
                    .map(|pass| (Some(deferred.job.id), vec![(pass.lo, pass.hi)]))
            })
            .collect(),
    }
}

/// A step as `run_step` writes it: the passes of one job (or of every job,
/// `None`) over `ranges`, and whether it is the last step, which finishes
/// the jobs.
struct StepRun<'a> {
    only: Option<i64>,
    ranges: &'a [(i64, i64)],
    finishing: bool,
}

/// A job that leaves the batch in a step: its index, and the error of its
/// pass (`None`: its lease was lost).
type Left = (usize, Option<EngineError>);

/// Writes one step in a transaction of its own, renewing the leases when
/// due, and answers whether it committed. When a job's pass failed or its
/// lease was lost, the transaction is rolled back and the job leaves the
/// batch (its attempt recorded and the job counted in `ran` when it failed):
/// the caller writes the step again without it.
async fn run_step(
    state: &AppState,
    jobs: &mut Vec<Deferred>,
    step: &StepRun<'_>,
    lease_until: &mut i64,
    ran: &mut Vec<RanJob>,
) -> EngineResult<bool> {
    let mut tx = state.store.write_sweep().await?;
    let (counts, mut failed) = step_passes(&mut tx, jobs, step).await?;
    // The leases' new end, once this transaction commits.
    let mut pending_until = None;
    // The leases are renewed, all in one statement, once a third of
    // their time has passed: well before they run out, however many
    // ranges a batch writes.
    let lease = state.lease_seconds * 1_000_000;
    let now = real_micros();
    if failed.is_none() && *lease_until - now < lease - lease / 3 {
        let renewed_until = now + lease;
        let ids = UserIds(jobs.iter().map(|deferred| deferred.job.id).collect());
        let held = tx
            .renew_leases(&ids, &state.worker_id, renewed_until)
            .await?;
        match jobs
            .iter()
            .position(|deferred| !held.contains(&deferred.job.id))
        {
            Some(at) => failed = Some((at, None)),
            None => pending_until = Some(renewed_until),
        }
    }
    // Last: the sweep's row is shared by the workers.
    let mut tally = SweepTally::default();
    if failed.is_none() {
        for (at, (deferred, pass_counts)) in jobs.iter().zip(&counts).enumerate() {
            let total = add_counts(deferred.counts, *pass_counts);
            tally.add_counts(deferred.plan.sweep_id, pass_counts);
            if step.finishing {
                match finish_sweep_activity(state, &mut tx, &deferred.job, &deferred.plan, total)
                    .await?
                {
                    Some(unchanged) => tally.add(deferred.plan.sweep_id, &unchanged),
                    None => {
                        failed = Some((at, None));
                        break;
                    }
                }
            }
        }
    }
    if let Some((at, error)) = failed {
        tx.rollback().await?;
        let gone = jobs.remove(at);
        match error {
            Some(error) => {
                record_failure(state, &gone.job, error, true).await?;
                ran.push(RanJob {
                    job: gone.job,
                    started: gone.started,
                });
            }
            None => tracing::warn!(job_id = gone.job.id, "lost the lease of a sweep job"),
        }
        return Ok(false);
    }
    if step.finishing {
        tally.write(&mut tx, state).await?;
        // The jobs finish durably, with all their passes before.
        tx.make_commit_durable().await?;
    } else {
        tally.write_counts(&mut tx).await?;
    }
    tx.commit().await?;
    for (deferred, pass_counts) in jobs.iter_mut().zip(&counts) {
        deferred.counts = add_counts(deferred.counts, *pass_counts);
    }
    if let Some(renewed_until) = pending_until {
        *lease_until = renewed_until;
    }
    if step.finishing {
        for deferred in jobs.drain(..) {
            metrics::counter!("roster_sweep_enrollments_created_total")
                .increment(deferred.counts.created as u64);
            metrics::counter!("roster_jobs_done_total", "kind" => deferred.job.kind.clone())
                .increment(1);
            ran.push(RanJob {
                job: deferred.job,
                started: deferred.started,
            });
        }
    }
    Ok(true)
}

/// The passes of a step in `tx`, all with the marks' stamp taken before the
/// transaction reads anything: each job's counts, up to the job whose pass
/// failed, if one did.
async fn step_passes(
    tx: &mut Tx,
    jobs: &[Deferred],
    step: &StepRun<'_>,
) -> EngineResult<(Vec<SweepCounts>, Option<Left>)> {
    let stamp = tx.sweep_stamp_now().await?;
    let mut counts = Vec::with_capacity(jobs.len());
    for (at, deferred) in jobs.iter().enumerate() {
        let mut job_counts = SweepCounts::default();
        if step.only.is_none_or(|id| id == deferred.job.id) {
            for pass in deferred
                .plan
                .passes
                .iter()
                .filter(|pass| step.ranges.contains(&(pass.lo, pass.hi)))
            {
                match sweep_pass(tx, &deferred.plan, pass, Some(stamp)).await {
                    Ok(pass_counts) => job_counts = add_counts(job_counts, pass_counts),
                    Err(error) => return Ok((counts, Some((at, Some(error))))),
                }
            }
        }
        counts.push(job_counts);
    }
    Ok((counts, None))
}

/// Finishes the jobs left when the last step was that of a job which had
/// left the batch, in a transaction of their own.
async fn finish_left(
    state: &AppState,
    jobs: Vec<Deferred>,
    ran: &mut Vec<RanJob>,
) -> EngineResult<()> {
    let mut tx = state.store.write().await?;
    let mut tally = SweepTally::default();
    let mut done = Vec::new();
    for deferred in jobs {
        if let Some(unchanged) = finish_sweep_activity(
            state,
            &mut tx,
            &deferred.job,
            &deferred.plan,
            deferred.counts,
        )
        .await?
        {
            tally.add(deferred.plan.sweep_id, &unchanged);
            metrics::counter!("roster_sweep_enrollments_created_total")
                .increment(deferred.counts.created as u64);
            done.push(deferred);
        }
    }
    tally.write(&mut tx, state).await?;
    tx.commit().await?;
    for deferred in done {
        metrics::counter!("roster_jobs_done_total", "kind" => deferred.job.kind.clone())
            .increment(1);
        ran.push(RanJob {
            job: deferred.job,
            started: deferred.started,
        });
    }
    Ok(())
}

/// One pass of a sweep job in `tx`: its users swept, the marks of the ranges
/// it covers renewed; answers its counts, for the caller to add to the
/// sweep's.
async fn sweep_pass(
    tx: &mut Tx,
    plan: &SweepPlan,
    pass: &Pass,
    stamp: Option<i64>,
) -> EngineResult<SweepCounts> {
    if plan.activity.is_none() {
        return Ok(SweepCounts::default());
    }
    let (mut counts, stamp) = sweep_pass_unmarked(tx, plan, pass, stamp).await?;
    // The ranges marked are the pass's users `lo..hi`, cut by range: their
    // skips are the pass's.
    counts.skipped = tx
        .put_sweep_marks(
            plan.activity_id,
            &pass.marked,
            &plan.fingerprint,
            stamp,
            &plan.ctx.today.to_string(),
        )
        .await?;
    Ok(counts)
}

/// `sweep_pass` without its marks: answers the pass's counts (skips not
/// counted) and the stamp its marks are to have.
pub(super) async fn sweep_pass_unmarked(
    tx: &mut Tx,
    plan: &SweepPlan,
    pass: &Pass,
    stamp: Option<i64>,
) -> EngineResult<(SweepCounts, i64)> {
    let stamp = match pass.stamp.or(stamp) {
        Some(stamp) => stamp,
        None => tx.sweep_stamp_now().await?,
    };
    let Some(activity) = &plan.activity else {
        return Ok((SweepCounts::default(), stamp));
    };
    let counts = sweep_range_since(
        tx,
        &plan.ctx,
        activity,
        roster_core::sweep::UserRange {
            lo: pass.lo,
            hi: pass.hi,
        },
        pass.users.clone(),
        pass.narrowed.clone(),
    )
    .await?
    .counts;
    Ok((counts, stamp))
}

#[cfg(test)]
mod tests {
    use super::shared_steps;
    use crate::engine::jobs::user_ranges;
    use crate::engine::sweep::BATCH_USERS;

    #[test]
    fn r14_sqlite_steps_share_ranges_up_to_the_passes_allowed_and_never_split_one() {
        let a = (0, BATCH_USERS);
        let b = (BATCH_USERS, 2 * BATCH_USERS);
        let c = (2 * BATCH_USERS, i64::MAX);
        // A rollover of three activities: all its ranges in one step.
        let few: Vec<_> = [a, b, c].iter().flat_map(|range| [*range; 3]).collect();
        assert_eq!(shared_steps(few, 64), vec![(None, vec![a, b, c])]);
        // A cold sweep of 64 activities: one range per step, in id order.
        let cold: Vec<_> = [c, a, b].iter().flat_map(|range| [*range; 64]).collect();
        assert_eq!(
            shared_steps(cold, 64),
            vec![(None, vec![a]), (None, vec![b]), (None, vec![c])]
        );
        // 40 + 20 passes fit; the next 40 start a step; a range of more
        // passes than allowed is a step of its own.
        let mixed: Vec<_> = std::iter::repeat_n(a, 40)
            .chain(std::iter::repeat_n(b, 20))
            .chain(std::iter::repeat_n(c, 70))
            .collect();
        assert_eq!(
            shared_steps(mixed, 64),
            vec![(None, vec![a, b]), (None, vec![c])]
        );
        assert!(shared_steps(Vec::new(), 64).is_empty());
    }

    #[test]
    fn r14_sweep_ranges_keep_their_boundaries_and_the_last_one_is_open() {
        assert_eq!(user_ranges(0), vec![(0, i64::MAX)]);
        assert_eq!(user_ranges(2 * BATCH_USERS - 2), vec![(0, i64::MAX)]);
        assert_eq!(
            user_ranges(2 * BATCH_USERS - 1),
            vec![(0, BATCH_USERS), (BATCH_USERS, i64::MAX)]
        );
        let ranges = user_ranges(10 * BATCH_USERS + 17);
        assert_eq!(ranges.len(), 10);
        assert_eq!(ranges.last(), Some(&(9 * BATCH_USERS, i64::MAX)));
        // Adjacent, from 0, covering every id.
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
        }
    }
}
