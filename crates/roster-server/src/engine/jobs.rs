//! The job worker as a step function (`run_next`), the handlers of each job
//! kind, draining due jobs (`run_due`), playing a manual clock forward, and
//! the nightly scheduler.

use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use roster_core::decide::{TargetFacts, decide_target};
use roster_core::{Source, TargetOutcome};
use roster_store::{
    Changed, ClaimedJob, StoreError, SweepCounts, SweepMark, SweepSince, Tx, UserIds,
};
use serde_json::{Value, json};

use crate::engine::enroll::{Created, NewEnrollment, create_in};
use crate::engine::rules::{Activity, load_activity};
use crate::engine::sweep::{BATCH_USERS, fingerprint, start_sweep, sweep_range, sweep_range_since};
use crate::state::{AppState, Ctx};

/// How long a claimed job stays leased without renewal, in real seconds,
/// unless `--job-lease-seconds` says otherwise.
pub const LEASE_SECONDS: i64 = 30;

fn real_micros() -> i64 {
    Timestamp::now().as_microsecond()
}

/// Post-enrollment jobs (or sweep jobs with nothing to do) one worker claims
/// and runs in one transaction: each statement and commit saved is a round
/// trip on PostgreSQL; on SQLite, measured, batches ran the jobs of the bench's
/// W5 in half the time of one job per transaction.
pub const JOB_BATCH: i64 = 16;

/// Claims and runs due jobs (one, or a batch of post-enrollment jobs).
/// `Ok(false)` when none is due.
pub async fn run_next(state: &AppState) -> anyhow::Result<bool> {
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
/// claiming transaction, with further such jobs (up to `JOB_BATCH`); one with
/// more to write commits its claim and holds a lease while it writes its
/// ranges, one transaction each.
pub async fn run_next_jobs(state: &AppState) -> anyhow::Result<Vec<RanJob>> {
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
    // Whether the attempt's claim is in the database when the handler fails.
    let mut claim_committed = false;
    // Sweep jobs finished in the claiming transaction before the last one.
    let mut finished = Vec::new();
    let started = std::time::Instant::now();
    let (job, started, result) = match job.kind.as_str() {
        "post_enrollment" => {
            let mut batch = vec![job];
            batch.extend(
                tx.claim_more_jobs(
                    &state.worker_id,
                    state.clock.now().as_microsecond(),
                    lease_until,
                    "post_enrollment",
                    JOB_BATCH - 1,
                )
                .await?,
            );
            let mut ran = Vec::with_capacity(batch.len());
            let mut stopped = None;
            for job in batch {
                let started = std::time::Instant::now();
                match run_post_enrollment(state, &mut tx, &job).await {
                    Ok(true) => ran.push(RanJob { job, started }),
                    Ok(false) => {
                        stopped = Some((job, started, Ok(())));
                        break;
                    }
                    Err(error) => {
                        stopped = Some((job, started, Err(error)));
                        break;
                    }
                }
            }
            match stopped {
                None => {
                    tx.commit().await?;
                    for ran in &ran {
                        metrics::counter!("roster_jobs_done_total", "kind" => ran.job.kind.clone())
                            .increment(1);
                    }
                    return Ok(ran);
                }
                // The claim was lost (it cannot be, within its own
                // transaction) or the handler failed: nothing of the batch
                // is kept.
                Some((job, started, result)) => {
                    tx.rollback().await?;
                    (job, started, result)
                }
            }
        }
        "sweep_activity" => {
            // A job with nothing to do since its marks, or a few changed
            // users to sweep, is finished in this transaction and the next
            // due sweep job is claimed into it, up to `JOB_BATCH`; the first
            // one with more to write ends the batch: its claim commits with
            // the others' completion, and its passes run after, under its
            // lease.
            let mut current = job;
            let mut current_started = started;
            // What the jobs finished here add to their sweeps, written once
            // just before the commit.
            let mut tally = SweepTally::default();
            let mut reads = BatchReads::default();
            let next = loop {
                let planned = match plan_sweep_activity(state, &mut tx, &current, &mut reads).await
                {
                    // One pass over the users changed since a mark is small
                    // (fewer than `BATCH_USERS`): it runs here, in the
                    // claiming transaction, and the job is finished with it.
                    Ok(plan) if plan.inline() => {
                        match sweep_pass(&mut tx, &plan, &plan.passes[0]).await {
                            Ok(counts) => Ok((plan, counts)),
                            Err(error) => Err(error),
                        }
                    }
                    Ok(plan) if plan.passes.is_empty() => Ok((plan, SweepCounts::default())),
                    Ok(plan) => {
                        break SweepNext::Commit(Some(Box::new((current, current_started, plan))));
                    }
                    Err(error) => Err(error),
                };
                match planned {
                    Ok((plan, counts)) => {
                        match finish_sweep_activity(state, &mut tx, &current, &plan, counts).await {
                            Ok(Some(unchanged)) => {
                                tally.add(plan.sweep_id, &add_counts(counts, unchanged));
                                finished.push(RanJob {
                                    job: current,
                                    started: current_started,
                                });
                                if finished.len() as i64 >= JOB_BATCH {
                                    break SweepNext::Commit(None);
                                }
                                let more = tx
                                    .claim_more_jobs(
                                        &state.worker_id,
                                        state.clock.now().as_microsecond(),
                                        lease_until,
                                        "sweep_activity",
                                        1,
                                    )
                                    .await;
                                match more.map(|mut more| more.pop()) {
                                    Ok(Some(job)) => {
                                        current = job;
                                        current_started = std::time::Instant::now();
                                    }
                                    Ok(None) => break SweepNext::Commit(None),
                                    Err(error) => {
                                        tx.rollback().await?;
                                        return Err(error.into());
                                    }
                                }
                            }
                            Ok(None) => {
                                break SweepNext::Rollback(current, current_started, Ok(()));
                            }
                            Err(error) => {
                                break SweepNext::Rollback(current, current_started, Err(error));
                            }
                        }
                    }
                    Err(error) => break SweepNext::Rollback(current, current_started, Err(error)),
                }
            };
            if matches!(next, SweepNext::Commit(_))
                && let Err(error) = tally.write(&mut tx, state).await
            {
                tx.rollback().await?;
                return Err(error);
            }
            match next {
                SweepNext::Commit(None) => {
                    tx.commit().await?;
                    for ran in &finished {
                        metrics::counter!("roster_jobs_done_total", "kind" => ran.job.kind.clone())
                            .increment(1);
                    }
                    return Ok(finished);
                }
                SweepNext::Commit(Some(next)) => {
                    let (job, started, plan) = *next;
                    tx.commit().await?;
                    claim_committed = true;
                    let result = run_sweep_activity(state, &job, plan).await;
                    (job, started, result)
                }
                SweepNext::Rollback(job, started, result) => {
                    // The jobs finished before it are pending again.
                    tx.rollback().await?;
                    finished.clear();
                    (job, started, result)
                }
            }
        }
        other => {
            let error = anyhow::anyhow!("unknown job kind {other:?}");
            tx.rollback().await?;
            (job, started, Err(error))
        }
    };
    if let Err(error) = result {
        tracing::warn!(job_id = job.id, kind = %job.kind, error = %format!("{error:#}"), "job attempt failed");
        metrics::counter!("roster_jobs_failed_attempts_total").increment(1);
        let give_up = !roster_core::retry::should_retry(job.attempts as i32);
        let retry_at = state.clock.now().as_microsecond()
            + roster_core::retry::backoff_seconds(job.attempts as i32) * 1_000_000;
        let mut tx = state.store.write().await?;
        if !claim_committed {
            // The claim was rolled back with the attempt: count it here,
            // unless another worker has taken the job since.
            tx.fail_unclaimed_job(
                job.id,
                &format!("{error:#}"),
                retry_at,
                give_up,
                state.clock.now().as_microsecond(),
                real_micros(),
            )
            .await?;
        } else {
            tx.fail_job(
                job.id,
                &state.worker_id,
                &format!("{error:#}"),
                retry_at,
                give_up,
                state.clock.now().as_microsecond(),
            )
            .await?;
        }
        tx.commit().await?;
    } else {
        metrics::counter!("roster_jobs_done_total", "kind" => job.kind.clone()).increment(1);
    }
    for ran in &finished {
        metrics::counter!("roster_jobs_done_total", "kind" => ran.job.kind.clone()).increment(1);
    }
    finished.push(RanJob { job, started });
    Ok(finished)
}

/// How a batch of sweep jobs ends: committed (with a job whose passes are
/// still to run, or none), or rolled back because of this job.
enum SweepNext {
    Commit(Option<Box<(ClaimedJob, std::time::Instant, SweepPlan)>>),
    Rollback(ClaimedJob, std::time::Instant, anyhow::Result<()>),
}

/// R36, R41, R21: for each target of the snapshot, create or say why not,
/// in the transaction that claimed the job; false when the claim was lost.
async fn run_post_enrollment(
    state: &AppState,
    tx: &mut Tx,
    job: &ClaimedJob,
) -> anyhow::Result<bool> {
    let payload: Value = serde_json::from_str(&job.payload)?;
    let user_id = payload["user_id"].as_i64().unwrap_or_default();
    let rule_id = payload["rule_id"].as_i64().unwrap_or_default();
    let from_enrollment_id = payload["from_enrollment_id"].as_i64().unwrap_or_default();
    let allow_consecutive = payload["allow_consecutive"].as_bool().unwrap_or(false);
    let targets: Vec<i64> =
        serde_json::from_value(payload["target_ids"].clone()).unwrap_or_default();

    let ctx = state.ctx(tx, None).await?;
    let user = tx.get_user(user_id).await?;
    let user_active = user.as_ref().is_some_and(|user| user.active);
    // R10: no rule ever enrolls a service account.
    let service_account = user.as_ref().is_some_and(|user| user.role == "integration");
    let today = ctx.today.to_string();
    let mut outcomes = Vec::new();
    for target in targets {
        let Some(activity) = load_activity(tx, target).await? else {
            outcomes.push(json!({"activity_id": target, "outcome": "target_missing"}));
            continue;
        };
        if service_account && user_active {
            outcomes.push(json!({"activity_id": target, "outcome": "service_account"}));
            continue;
        }
        let (exempt, has_open, ever_passed) = tx.target_facts(user_id, target, &today).await?;
        let facts = TargetFacts {
            user_active,
            exempt,
            has_open,
            ever_passed,
        };
        let outcome = match decide_target(facts, allow_consecutive) {
            TargetOutcome::Create => {
                let source = Source::PostEnrollment {
                    rule_id,
                    from_enrollment_id,
                };
                match create_in(
                    tx,
                    &ctx,
                    NewEnrollment::by_rule(user_id, target, source),
                    Some(&activity),
                )
                .await?
                {
                    Created::Created(record) => {
                        json!({"activity_id": target, "outcome": "created", "enrollment_id": record.id})
                    }
                    Created::AlreadyEnrolled | Created::PeriodHeld => {
                        json!({"activity_id": target, "outcome": "already_enrolled"})
                    }
                }
            }
            other => json!({"activity_id": target, "outcome": other}),
        };
        outcomes.push(outcome);
    }
    Ok(tx
        .complete_job(
            job.id,
            &state.worker_id,
            &Value::Array(outcomes).to_string(),
            ctx.micros(),
        )
        .await?)
}

/// What one sweep job is to do: the activity and its rule, the day, and the
/// passes to make — users `lo..hi`, since a mark or in full, and the ranges
/// whose marks the pass renews — with the skips of the ranges left alone.
struct SweepPlan {
    sweep_id: i64,
    activity_id: i64,
    ctx: Ctx,
    activity: Option<Activity>,
    fingerprint: String,
    passes: Vec<Pass>,
    unchanged_skipped: i64,
}

/// What the jobs of one batch (one transaction) read once: the highest user
/// id, which only cuts the ranges (the last one is open-ended), and the
/// stamp taken before the batch's first read of changed users — earlier
/// than each job's own would be, so the marks written with it can only make
/// the next sweep look at more users, never fewer.
///
/// And the users changed since the marks: those stamped since the oldest
/// mark seen (with their stamps, so each activity takes those since its
/// own), and the exemptions that ran out since the marks' day. Read once,
/// they serve every activity of the batch. What is written after the read
/// is stamped at or after the batch's stamp, so the next sweep sees it.
#[derive(Default)]
struct BatchReads {
    max_user: Option<i64>,
    stamp: Option<i64>,
    stamped: Option<Stamped>,
    ended: Vec<Ended>,
}

/// Users stamped at or after a stamp, as (user, stamp), and whether the list
/// was cut at `BATCH_USERS`.
type Stamped = (i64, Vec<(i64, i64)>, bool);

/// Exemptions that ran out between a day and today, as (activity, user).
type Ended = ((String, String), Vec<(i64, i64)>);

impl BatchReads {
    /// The users of the activity changed since the mark (in id order), as
    /// `SweepSince` names them (stamped since, or whose exemption ran out
    /// since its day); `None` when they are `BATCH_USERS` or more.
    async fn changed_users(
        &mut self,
        tx: &mut Tx,
        activity_id: i64,
        since: &SweepSince,
        today: &str,
    ) -> anyhow::Result<Option<Vec<i64>>> {
        let covered = matches!(&self.stamped, Some((from, _, _)) if *from <= since.stamp);
        if !covered {
            let users = tx.sweep_stamped_users(since.stamp, BATCH_USERS).await?;
            let cut = users.len() as i64 >= BATCH_USERS;
            self.stamped = Some((since.stamp, users, cut));
        }
        let key = (since.day.clone(), today.to_string());
        if !self.ended.iter().any(|(ended, _)| *ended == key) {
            let ended = tx.sweep_exemptions_ended(&since.day, today).await?;
            self.ended.push((key.clone(), ended));
        }
        let Some((_, stamped, cut)) = &self.stamped else {
            return Ok(None);
        };
        if *cut {
            // The list stops at some id: who comes after it is unknown.
            return Ok(None);
        }
        let mut users: Vec<i64> = stamped
            .iter()
            .filter(|(_, stamp)| *stamp >= since.stamp)
            .map(|(id, _)| *id)
            .collect();
        if let Some((_, ended)) = self.ended.iter().find(|(ended, _)| *ended == key) {
            users.extend(
                ended
                    .iter()
                    .filter(|(activity, _)| *activity == activity_id)
                    .map(|(_, user)| *user),
            );
        }
        users.sort_unstable();
        users.dedup();
        Ok((users.len() < BATCH_USERS as usize).then_some(users))
    }
}

/// One pass of a sweep job: users `lo..hi`, in full or only those changed,
/// and the ranges whose marks it renews.
struct Pass {
    lo: i64,
    hi: i64,
    users: Option<Changed>,
    marked: Vec<(i64, i64)>,
    /// The stamp of the new marks, when it was taken before the pass's
    /// users were read; otherwise it is taken as the pass starts.
    stamp: Option<i64>,
}

impl SweepPlan {
    /// Whether the job is one pass over a few users read beforehand (fewer
    /// than `BATCH_USERS`), written in the claiming transaction.
    fn inline(&self) -> bool {
        self.activity.is_some()
            && matches!(
                self.passes.as_slice(),
                [Pass {
                    users: Some(Changed::Users(_)),
                    ..
                }]
            )
    }
}

/// Reads what a sweep job must do (in the transaction that claims it). A
/// range whose mark was taken under the same rule and period (and not on a
/// later day) is swept only for the users stamped since — or, when there are
/// none, not at all: it keeps its mark and reports the skips it recorded.
/// When every range has such a mark and fewer than `BATCH_USERS` users
/// changed, one pass over those users renews all the marks.
async fn plan_sweep_activity(
    state: &AppState,
    tx: &mut Tx,
    job: &ClaimedJob,
    reads: &mut BatchReads,
) -> anyhow::Result<SweepPlan> {
    let payload: Value = serde_json::from_str(&job.payload)?;
    let sweep_id = payload["sweep_id"].as_i64().unwrap_or_default();
    let activity_id = payload["activity_id"].as_i64().unwrap_or_default();
    let day = payload["day"].as_str().and_then(crate::body::parse_date);
    let ctx = match day {
        Some(day) => state.ctx_on(day),
        None => state.ctx(tx, None).await?,
    };
    let today = ctx.today.to_string();
    let activity = load_activity(tx, activity_id)
        .await?
        .filter(|activity| activity.rule.is_some());
    let mut passes = Vec::new();
    let mut unchanged_skipped = 0;
    let fingerprint = activity
        .as_ref()
        .and_then(|activity| activity.rule.as_ref())
        .map(|rule| fingerprint(rule, ctx.today))
        .unwrap_or_default();
    if activity.is_some() {
        let max_user = match reads.max_user {
            Some(max_user) => max_user,
            None => *reads.max_user.insert(tx.max_user_id().await?),
        };
        let marks = tx.sweep_marks(activity_id).await?;
        let ranges = user_ranges(max_user);
        let valid: Vec<Option<&SweepMark>> = ranges
            .iter()
            .map(|&(lo, hi)| {
                marks.iter().find(|mark| {
                    mark.user_lo == lo
                        && mark.user_hi == hi
                        && mark.fingerprint == fingerprint
                        && mark.day <= today
                })
            })
            .collect();
        let oldest = valid
            .iter()
            .flatten()
            .map(|mark| SweepSince {
                stamp: mark.stamp,
                day: mark.day.clone(),
            })
            .reduce(|a, b| SweepSince {
                stamp: a.stamp.min(b.stamp),
                day: a.day.min(b.day),
            });
        // Every range has its mark: one look at the users changed since the
        // oldest. None after a quiet day, and every range is left as it is;
        // a few, and one pass over them renews every range's mark. The
        // pass's stamp is taken before they are read, so that whatever is
        // written after the read is at or after the new marks.
        let all_marked = valid.iter().all(Option::is_some);
        let listed = match &oldest {
            Some(oldest) if all_marked => {
                let stamp = match reads.stamp {
                    Some(stamp) => stamp,
                    None => *reads.stamp.insert(tx.sweep_stamp_now().await?),
                };
                let users = reads.changed_users(tx, activity_id, oldest, &today).await?;
                Some((stamp, users))
            }
            _ => None,
        };
        match listed {
            Some((_, Some(users))) if users.is_empty() => {
                unchanged_skipped = valid.iter().flatten().map(|mark| mark.skipped).sum();
            }
            Some((stamp, Some(users))) => {
                passes.push(Pass {
                    lo: 0,
                    hi: i64::MAX,
                    users: Some(Changed::Users(UserIds(users))),
                    marked: ranges.clone(),
                    stamp: Some(stamp),
                });
            }
            listed => {
                // Many changed, or some ranges to sweep in full: range by
                // range, those with a mark only if someone in them changed.
                let any_changed = match (&oldest, listed) {
                    (_, Some(_)) => true,
                    (Some(oldest), None) => {
                        tx.sweep_range_dirty(activity_id, 0, i64::MAX, oldest, &today)
                            .await?
                    }
                    (None, None) => true,
                };
                for (&(lo, hi), mark) in ranges.iter().zip(valid) {
                    match mark {
                        Some(mark) => {
                            let since = SweepSince {
                                stamp: mark.stamp,
                                day: mark.day.clone(),
                            };
                            if any_changed
                                && tx
                                    .sweep_range_dirty(activity_id, lo, hi, &since, &today)
                                    .await?
                            {
                                passes.push(Pass {
                                    lo,
                                    hi,
                                    users: Some(Changed::Since(since)),
                                    marked: vec![(lo, hi)],
                                    stamp: None,
                                });
                            } else {
                                unchanged_skipped += mark.skipped;
                            }
                        }
                        None => passes.push(Pass {
                            lo,
                            hi,
                            users: None,
                            marked: vec![(lo, hi)],
                            stamp: None,
                        }),
                    }
                }
            }
        }
    }
    Ok(SweepPlan {
        sweep_id,
        activity_id,
        ctx,
        activity,
        fingerprint,
        passes,
        unchanged_skipped,
    })
}

/// One activity of a sweep: the plan's passes, one transaction each, the
/// lease renewed with every pass so a dead worker's job is taken over; then
/// the job is done.
async fn run_sweep_activity(
    state: &AppState,
    job: &ClaimedJob,
    plan: SweepPlan,
) -> anyhow::Result<()> {
    let mut total = SweepCounts::default();
    if plan.activity.is_some() {
        for pass in &plan.passes {
            let mut tx = state.store.write().await?;
            let counts = sweep_pass(&mut tx, &plan, pass).await?;
            let lease_until = real_micros() + state.lease_seconds * 1_000_000;
            if !tx
                .renew_lease(job.id, &state.worker_id, lease_until)
                .await?
            {
                tx.rollback().await?;
                anyhow::bail!("lost the lease of sweep job {}", job.id);
            }
            // Last: the sweep's row is shared by the workers.
            tx.add_sweep_counts(
                plan.sweep_id,
                counts.created,
                counts.adopted,
                counts.closed,
                counts.skipped,
            )
            .await?;
            tx.commit().await?;
            total.created += counts.created;
            total.adopted += counts.adopted;
            total.closed += counts.closed;
            total.skipped += counts.skipped;
        }
    }
    let mut tx = state.store.write().await?;
    match finish_sweep_activity(state, &mut tx, job, &plan, total).await? {
        Some(unchanged) => {
            tx.finish_sweep_jobs(
                plan.sweep_id,
                1,
                &unchanged,
                state.clock.now().as_microsecond(),
            )
            .await?;
            tx.commit().await?;
        }
        None => tx.rollback().await?,
    }
    Ok(())
}

/// One pass of a sweep job in `tx`: its users swept, the marks of the ranges
/// it covers renewed; answers its counts, for the caller to add to the
/// sweep's.
async fn sweep_pass(tx: &mut Tx, plan: &SweepPlan, pass: &Pass) -> anyhow::Result<SweepCounts> {
    let Some(activity) = &plan.activity else {
        return Ok(SweepCounts::default());
    };
    let (lo, hi) = (pass.lo, pass.hi);
    let stamp = match pass.stamp {
        Some(stamp) => stamp,
        None => tx.sweep_stamp_now().await?,
    };
    let mut counts = sweep_range_since(tx, &plan.ctx, activity, lo, hi, pass.users.clone())
        .await?
        .counts;
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

/// Marks a sweep job done, its outcome the counts of its passes plus the
/// skips of the ranges left alone; answers those skips, still to add to the
/// sweep's counts (with the job itself, `finish_sweep_jobs`), or `None` when
/// the lease was lost.
async fn finish_sweep_activity(
    state: &AppState,
    tx: &mut Tx,
    job: &ClaimedJob,
    plan: &SweepPlan,
    passes: SweepCounts,
) -> anyhow::Result<Option<SweepCounts>> {
    let outcome = json!({
        "activity_id": plan.activity_id,
        "created": passes.created,
        "adopted": passes.adopted,
        "closed": passes.closed,
        "skipped": passes.skipped + plan.unchanged_skipped,
    });
    if !tx
        .complete_job(
            job.id,
            &state.worker_id,
            &outcome.to_string(),
            state.clock.now().as_microsecond(),
        )
        .await?
    {
        return Ok(None);
    }
    metrics::counter!("roster_sweep_enrollments_created_total").increment(passes.created as u64);
    Ok(Some(SweepCounts {
        skipped: plan.unchanged_skipped,
        ..SweepCounts::default()
    }))
}

fn add_counts(a: SweepCounts, b: SweepCounts) -> SweepCounts {
    SweepCounts {
        created: a.created + b.created,
        adopted: a.adopted + b.adopted,
        closed: a.closed + b.closed,
        skipped: a.skipped + b.skipped,
    }
}

/// Sweep jobs finished in one transaction and their counts, by sweep.
#[derive(Default)]
struct SweepTally(Vec<(i64, i64, SweepCounts)>);

impl SweepTally {
    fn add(&mut self, sweep_id: i64, counts: &SweepCounts) {
        match self.0.iter_mut().find(|(id, _, _)| *id == sweep_id) {
            Some((_, jobs, total)) => {
                *jobs += 1;
                *total = add_counts(*total, *counts);
            }
            None => self.0.push((sweep_id, 1, *counts)),
        }
    }

    async fn write(&self, tx: &mut Tx, state: &AppState) -> anyhow::Result<()> {
        for (sweep_id, jobs, counts) in &self.0 {
            tx.finish_sweep_jobs(*sweep_id, *jobs, counts, state.clock.now().as_microsecond())
                .await?;
        }
        Ok(())
    }
}

/// The user id ranges a sweep cuts an activity into, each one transaction:
/// `BATCH_USERS` ids each, the last one open-ended and holding between one
/// and two batches, so that the boundaries (and the ranges' marks) stay put
/// as users are added.
pub fn user_ranges(max_user: i64) -> Vec<(i64, i64)> {
    let mut ranges = Vec::new();
    let mut lo = 0;
    loop {
        if lo + 2 * BATCH_USERS > max_user + 1 {
            ranges.push((lo, i64::MAX));
            return ranges;
        }
        ranges.push((lo, lo + BATCH_USERS));
        lo += BATCH_USERS;
    }
}

/// Runs every job due at the clock's time, including those that running jobs
/// make due, and waits for due jobs other workers hold. Returns how many ran.
pub async fn run_due(state: &AppState) -> anyhow::Result<u64> {
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
pub async fn advance_clock(state: &AppState, target: Timestamp) -> anyhow::Result<()> {
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
pub async fn start_nightly(state: &AppState) -> anyhow::Result<Option<i64>> {
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
        Err(StoreError::Conflict(_)) => {
            tx.rollback().await?;
            Ok(None)
        }
        Err(error) => Err(error.into()),
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

async fn scheduler_tick(state: &AppState) -> anyhow::Result<()> {
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
pub async fn dry_run_counts(state: &AppState, actor: Option<i64>) -> anyhow::Result<SweepCounts> {
    let mut tx = state.store.read().await?;
    let activities = tx.activities_with_rules().await?;
    tx.rollback().await?;
    let mut total = SweepCounts::default();
    for record in activities {
        let activity = crate::engine::rules::activity_from(record);
        let mut tx = state.store.write().await?;
        let ctx = state.ctx(&mut tx, actor).await?;
        let counts = sweep_range(&mut tx, &ctx, &activity, 0, i64::MAX)
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

#[cfg(test)]
mod tests {
    use super::{BATCH_USERS, user_ranges};

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

#[cfg(test)]
mod batch_tests {
    use roster_store::NewJob;

    use super::*;

    fn post_job(run_at: i64, payload: &str) -> NewJob {
        NewJob {
            kind: "post_enrollment".into(),
            run_at,
            payload: payload.into(),
            ..NewJob::default()
        }
    }

    /// A failing job in a batch rolls the batch back: only its attempt is
    /// counted, and the others run with the next claim, exactly once.
    #[tokio::test]
    async fn a_failing_post_enrollment_job_does_not_take_its_batch_with_it() {
        let path = std::env::temp_dir().join(format!(
            "roster-batch-{}-{}.db",
            std::process::id(),
            real_micros()
        ));
        let state = crate::app::offline_state(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let now = state.clock.now().as_microsecond();
        let empty = r#"{"user_id":1,"rule_id":1,"from_enrollment_id":1,"target_ids":[]}"#;
        let mut tx = state.store.write().await.unwrap();
        let first = tx.enqueue(&post_job(now - 3, empty), now).await.unwrap();
        let broken = tx
            .enqueue(&post_job(now - 2, "not json"), now)
            .await
            .unwrap();
        let last = tx.enqueue(&post_job(now - 1, empty), now).await.unwrap();
        tx.commit().await.unwrap();
        let (first, broken, last) = (first.unwrap(), broken.unwrap(), last.unwrap());

        let ran = run_next_jobs(&state).await.unwrap();
        assert_eq!(
            ran.iter().map(|ran| ran.job.id).collect::<Vec<_>>(),
            vec![broken]
        );
        let mut tx = state.store.read().await.unwrap();
        for id in [first, last] {
            let job = tx.get_job(id).await.unwrap().unwrap();
            assert_eq!(
                (job.state.as_str(), job.attempts),
                ("pending", 0),
                "{job:?}"
            );
        }
        let failed = tx.get_job(broken).await.unwrap().unwrap();
        assert_eq!((failed.state.as_str(), failed.attempts), ("pending", 1));
        assert!(failed.run_at > now, "retried later: {failed:?}");
        assert!(failed.last_error.is_some());
        tx.rollback().await.unwrap();

        let ran = run_next_jobs(&state).await.unwrap();
        assert_eq!(
            ran.iter().map(|ran| ran.job.id).collect::<Vec<_>>(),
            vec![first, last]
        );
        assert!(run_next_jobs(&state).await.unwrap().is_empty());
        let mut tx = state.store.read().await.unwrap();
        for id in [first, last] {
            let job = tx.get_job(id).await.unwrap().unwrap();
            assert_eq!((job.state.as_str(), job.attempts), ("done", 1), "{job:?}");
        }
        tx.rollback().await.unwrap();
        state.store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
