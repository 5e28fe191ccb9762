//! The job worker as a step function (`run_next`), the handlers of each job
//! kind, draining due jobs (`run_due`), playing a manual clock forward, and
//! the nightly scheduler.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use roster_core::decide::{TargetFacts, decide_target};
use roster_core::{AutoRule, PostRule};
use roster_core::{Source, TargetOutcome};
use roster_store::{
    Backend, Changed, ClaimedJob, MarksWrite, Narrowed, StoreError, SweepCounts, SweepMark,
    SweepSince, SweepUser, Tx, UserIds,
};
use serde_json::{Value, json};

use crate::engine::enroll::{Created, NewEnrollment, create_in};
use crate::engine::rules::{Activity, activity_from, load_activity, post_rule_from};
use crate::engine::sweep::{
    BATCH_USERS, Exempted, Held, activity_sweep, after_sweep_create, decide, fingerprint, narrow,
    rollover_may_close, start_sweep, sweep_range, sweep_range_since,
};
use crate::state::{AppState, Ctx};

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
/// claiming transaction, and further sweep jobs are claimed into it (up to
/// `SWEEP_JOB_BATCH`); those with more to write commit their claim there and hold
/// a lease while their passes run (`run_sweep_activities`): on SQLite one
/// transaction per range for all of them, on PostgreSQL one per job and
/// range.
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
            // What the batch's jobs read once: their learners, their target
            // activities with their post-enrollment rules, and the facts of
            // each (learner, target) pair.
            // Each payload is parsed once; one that does not parse fails
            // its job when the job runs.
            let payloads: Vec<_> = batch.iter().map(PostPayload::parse).collect();
            let mut reads = PostReads::default();
            let ctx = match reads.prefetch(state, &mut tx, &payloads).await {
                Ok(ctx) => ctx,
                Err(error) => {
                    // Blamed on the first job, whose attempt is counted.
                    tx.rollback().await?;
                    let job = batch.swap_remove(0);
                    record_failure(state, &job, error, false).await?;
                    return Ok(vec![RanJob { job, started }]);
                }
            };
            let mut outcomes = Vec::with_capacity(batch.len());
            for (job, payload) in batch.into_iter().zip(payloads) {
                let started = std::time::Instant::now();
                match run_post_enrollment(&mut tx, &ctx, payload, &mut reads).await {
                    Ok(outcome) => {
                        outcomes.push(outcome);
                        ran.push(RanJob { job, started });
                    }
                    Err(error) => {
                        stopped = Some((job, started, Err(error)));
                        break;
                    }
                }
            }
            // The batch's jobs are done in one statement. Fewer done than
            // ran means a claim was lost (it cannot be, within its own
            // transaction): the first job stands for the batch, which is
            // rolled back.
            if stopped.is_none() {
                let ids = UserIds(ran.iter().map(|ran| ran.job.id).collect());
                match tx
                    .complete_jobs(&ids, &outcomes, &state.worker_id, ctx.micros())
                    .await
                {
                    Ok(done) if done == ids.0.len() as u64 => {}
                    Ok(_) => {
                        let first = ran.swap_remove(0);
                        stopped = Some((first.job, first.started, Ok(())));
                    }
                    Err(error) => {
                        let first = ran.swap_remove(0);
                        stopped = Some((first.job, first.started, Err(error.into())));
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
            // The due sweep jobs are claimed together, up to `SWEEP_JOB_BATCH`,
            // and their activities and marks read in one statement each. A
            // job with nothing to do since its marks, or a few changed users
            // to sweep, is finished in this transaction. Those with more to
            // write are deferred: their claims commit with the others'
            // completion, and their passes run after, under their leases.
            let mut batch = vec![job];
            let mut reads = BatchReads::default();
            let prefetched = async {
                batch.extend(
                    tx.claim_more_jobs(
                        &state.worker_id,
                        state.clock.now().as_microsecond(),
                        lease_until,
                        "sweep_activity",
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
            // What the jobs finished here add to their sweeps, written once
            // just before the commit.
            let mut tally = SweepTally::default();
            // Enrollments the jobs finished here created.
            let mut created_here = 0;
            // The jobs finished here, written at the end (`finish_here`).
            let mut here: Vec<FinishedHere> = Vec::new();
            // Jobs whose passes run after the commit.
            let mut deferred: Vec<Deferred> = Vec::new();
            // Every job is planned first (reads only), so that the passes
            // over a few changed users can be evaluated together
            // (`create_ahead`).
            let mut plans = Vec::with_capacity(batch.len());
            let mut failed = None;
            for current in batch {
                let current_started = std::time::Instant::now();
                match plan_sweep_activity(state, &mut tx, &current, &mut reads).await {
                    Ok(plan) => plans.push((current, current_started, plan)),
                    Err(error) => {
                        failed = Some(SweepNext::Rollback(current, current_started, Err(error)));
                        break;
                    }
                }
            }
            if failed.is_none()
                && let Err(error) = create_ahead(&mut tx, &mut plans, &reads).await
            {
                // Blamed on the first job, whose attempt is counted.
                let (first, first_started, _) = plans.remove(0);
                failed = Some(SweepNext::Rollback(first, first_started, Err(error)));
            }
            // A curriculum's or bundle's new enrollments add enrollments in
            // its items' activities: what was read of those beforehand is
            // then read again by their passes.
            let mut stale = false;
            // Jobs with whole ranges to write, kept for after the commit: on
            // PostgreSQL no more than a post-enrollment batch, so that the
            // workers share a cold sweep evenly; the others are given back.
            // On SQLite all (one writer: they share its transactions).
            let defer_at_most = match state.store.backend() {
                Backend::Postgres => JOB_BATCH as usize,
                Backend::Sqlite => usize::MAX,
            };
            let mut released = Vec::new();
            let mut gave_back = false;
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
                    sweep_pass_unmarked(&mut tx, &plan, &plan.passes[0], None)
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
            // The jobs finished here: their marks and their completion
            // written for all of them at once.
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
                    metrics::counter!("roster_sweep_enrollments_created_total")
                        .increment(created_here);
                    for ran in &finished {
                        metrics::counter!("roster_jobs_done_total", "kind" => ran.job.kind.clone())
                            .increment(1);
                    }
                    finished.extend(run_sweep_activities(state, deferred, lease_until).await?);
                    return Ok(finished);
                }
                SweepNext::Rollback(job, started, result) => {
                    // The jobs finished or deferred before it are pending
                    // again.
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
        record_failure(state, &job, error, false).await?;
    } else {
        metrics::counter!("roster_jobs_done_total", "kind" => job.kind.clone()).increment(1);
    }
    for ran in &finished {
        metrics::counter!("roster_jobs_done_total", "kind" => ran.job.kind.clone()).increment(1);
    }
    finished.push(RanJob { job, started });
    Ok(finished)
}

/// Records a failed attempt of `job`: retried after a backoff, or given up.
/// When its claim was rolled back with the attempt (`claim_committed`
/// false), the attempt is counted here, unless another worker has taken the
/// job since.
async fn record_failure(
    state: &AppState,
    job: &ClaimedJob,
    error: anyhow::Error,
    claim_committed: bool,
) -> anyhow::Result<()> {
    tracing::warn!(job_id = job.id, kind = %job.kind, error = %format!("{error:#}"), "job attempt failed");
    metrics::counter!("roster_jobs_failed_attempts_total").increment(1);
    let give_up = !roster_core::retry::should_retry(job.attempts as i32);
    // A transaction another one deadlocked with is not the job's fault: its
    // first such failure is due again at once (the attempt still counts).
    let transient = error.chain().any(|cause| {
        cause
            .downcast_ref::<roster_store::StoreError>()
            .is_some_and(roster_store::StoreError::is_transient)
    });
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

/// How a batch of sweep jobs ends: committed (the deferred jobs' passes
/// still to run), or rolled back because of this job.
enum SweepNext {
    Commit,
    Rollback(ClaimedJob, std::time::Instant, anyhow::Result<()>),
}

/// A claimed sweep job whose passes run after its claim commits, and what
/// they have done so far.
struct Deferred {
    job: ClaimedJob,
    started: std::time::Instant,
    plan: SweepPlan,
    counts: SweepCounts,
}

/// The snapshot a post-enrollment job carries (R33).
struct PostPayload {
    user_id: i64,
    rule_id: i64,
    from_enrollment_id: i64,
    allow_consecutive: bool,
    target_ids: Vec<i64>,
}

impl PostPayload {
    fn parse(job: &ClaimedJob) -> anyhow::Result<PostPayload> {
        let payload: Value = serde_json::from_str(&job.payload)?;
        Ok(PostPayload {
            user_id: payload["user_id"].as_i64().unwrap_or_default(),
            rule_id: payload["rule_id"].as_i64().unwrap_or_default(),
            from_enrollment_id: payload["from_enrollment_id"].as_i64().unwrap_or_default(),
            allow_consecutive: payload["allow_consecutive"].as_bool().unwrap_or(false),
            target_ids: serde_json::from_value(payload["target_ids"].clone()).unwrap_or_default(),
        })
    }
}

/// What a batch of post-enrollment jobs reads once, in three statements
/// before its first job runs, instead of per job and target: the learners
/// (a job writes no user; locked, so that another worker's batch for the
/// same learner waits for this one and then reads what it wrote), every
/// target activity of the batch with its post-enrollment rules (a job
/// writes neither; `None` when gone), and the facts of each (learner, target) pair (exempt, open enrollment, ever
/// passed). A job writes only its own learner's enrollments, so the facts
/// read hold for a learner until a job of the batch has created an
/// enrollment for them (`written`); then that learner's facts are read
/// again, at the time of use, as a job alone would read them.
#[derive(Default)]
struct PostReads {
    users: HashMap<i64, roster_store::UserRecord>,
    targets: HashMap<i64, Option<Activity>>,
    facts: HashMap<(i64, i64), (bool, bool, bool)>,
    written: std::collections::HashSet<i64>,
}

impl PostReads {
    /// Reads what the batch's jobs need and answers the batch's context
    /// (one time for all its jobs: they commit together). A payload that
    /// did not parse is left out.
    async fn prefetch(
        &mut self,
        state: &AppState,
        tx: &mut Tx,
        payloads: &[anyhow::Result<PostPayload>],
    ) -> anyhow::Result<Ctx> {
        let ctx = state.ctx(tx, None).await?;
        let payloads: Vec<&PostPayload> = payloads.iter().flatten().collect();
        let mut user_ids: Vec<i64> = payloads.iter().map(|p| p.user_id).collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        self.users = tx
            .lock_users(&UserIds(user_ids))
            .await?
            .into_iter()
            .map(|user| (user.id, user))
            .collect();
        let mut target_ids: Vec<i64> = payloads
            .iter()
            .flat_map(|p| p.target_ids.iter().copied())
            .collect();
        target_ids.sort_unstable();
        target_ids.dedup();
        if !target_ids.is_empty() {
            let ids = UserIds(target_ids.clone());
            let mut rules: HashMap<i64, Vec<PostRule>> = HashMap::new();
            for rule in tx.post_rules_of(&ids).await? {
                rules
                    .entry(rule.activity_id)
                    .or_default()
                    .push(post_rule_from(&rule));
            }
            for id in &target_ids {
                self.targets.insert(*id, None);
            }
            for record in tx.get_activities(&ids).await? {
                let mut activity = activity_from(record);
                activity.post_rules = Some(rules.remove(&activity.record.id).unwrap_or_default());
                self.targets.insert(activity.record.id, Some(activity));
            }
        }
        // Each pair asked once; a pair the read does not answer (it answers
        // every one) is read again when used.
        let (mut pair_users, mut pair_targets) = (Vec::new(), Vec::new());
        let mut asked = std::collections::HashSet::new();
        for payload in payloads {
            for target in &payload.target_ids {
                if asked.insert((payload.user_id, *target)) {
                    pair_users.push(payload.user_id);
                    pair_targets.push(*target);
                }
            }
        }
        if !pair_users.is_empty() {
            for (user, target, exempt, open, passed) in tx
                .target_facts_of(
                    &UserIds(pair_users),
                    &UserIds(pair_targets),
                    &ctx.today.to_string(),
                )
                .await?
            {
                self.facts.insert((user, target), (exempt, open, passed));
            }
        }
        Ok(ctx)
    }

    /// The facts of (user, target) now: as read for the batch, unless a job
    /// of the batch has written the learner's enrollments since.
    async fn facts(
        &self,
        tx: &mut Tx,
        user_id: i64,
        target: i64,
        today: &str,
    ) -> anyhow::Result<(bool, bool, bool)> {
        match self.facts.get(&(user_id, target)) {
            Some(facts) if !self.written.contains(&user_id) => Ok(*facts),
            _ => Ok(tx.target_facts(user_id, target, today).await?),
        }
    }
}

/// R36, R41, R21: for each target of the snapshot, create or say why not,
/// in the transaction that claimed the job, and answer the job's outcome
/// (the caller marks the batch's jobs done together).
async fn run_post_enrollment(
    tx: &mut Tx,
    ctx: &Ctx,
    payload: anyhow::Result<PostPayload>,
    reads: &mut PostReads,
) -> anyhow::Result<String> {
    let PostPayload {
        user_id,
        rule_id,
        from_enrollment_id,
        allow_consecutive,
        target_ids,
    } = payload?;
    let user = reads.users.get(&user_id);
    let user_active = user.is_some_and(|user| user.active);
    // R10: no rule ever enrolls a service account.
    let service_account = user.is_some_and(|user| user.role == "integration");
    let today = ctx.today.to_string();
    let mut outcomes = Vec::new();
    for target in target_ids {
        // Every target of the batch's payloads was read for the batch.
        let Some(activity) = reads.targets.get(&target).and_then(Option::as_ref) else {
            outcomes.push(json!({"activity_id": target, "outcome": "target_missing"}));
            continue;
        };
        if service_account && user_active {
            outcomes.push(json!({"activity_id": target, "outcome": "service_account"}));
            continue;
        }
        let (exempt, has_open, ever_passed) = reads.facts(tx, user_id, target, &today).await?;
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
                    ctx,
                    NewEnrollment::by_rule(user_id, target, source),
                    Some(activity),
                )
                .await?
                {
                    Created::Created(record) => {
                        reads.written.insert(user_id);
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
    Ok(Value::Array(outcomes).to_string())
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
///
/// And what each activity's scope reads of those users (`facts`, in id
/// order, with `asked` the ids asked for, found or not), to narrow each
/// activity's pass to the users its scope may hold.
#[derive(Default)]
struct BatchReads {
    max_user: Option<i64>,
    stamp: Option<i64>,
    stamped: Option<Stamped>,
    ended: Vec<Ended>,
    facts: Vec<SweepUser>,
    asked: std::collections::HashSet<i64>,
    /// The batch's activities (with a rule or not, `None` when gone) and
    /// their marks, read together; each job takes its own.
    activities: HashMap<i64, Option<Activity>>,
    marks: HashMap<i64, Vec<SweepMark>>,
}

/// Users stamped at or after a stamp, as (user, stamp), and whether the list
/// was cut at `BATCH_USERS`.
type Stamped = (i64, Vec<(i64, i64)>, bool);

/// Exemptions that ran out between a day and today, as (activity, user).
type Ended = ((String, String), Vec<(i64, i64)>);

impl BatchReads {
    /// Reads the activities of the sweep jobs `jobs` and their marks.
    async fn prefetch(&mut self, tx: &mut Tx, jobs: &[ClaimedJob]) -> anyhow::Result<()> {
        let ids: Vec<i64> = jobs
            .iter()
            .filter_map(|job| serde_json::from_str::<Value>(&job.payload).ok())
            .filter_map(|payload| payload["activity_id"].as_i64())
            .collect();
        let ids = UserIds(ids);
        for &id in &ids.0 {
            self.activities.insert(id, None);
            self.marks.insert(id, Vec::new());
        }
        for record in tx.get_activities(&ids).await? {
            self.activities
                .insert(record.id, Some(activity_from(record)));
        }
        for mark in tx.sweep_marks_of(&ids).await? {
            self.marks.entry(mark.activity_id).or_default().push(mark);
        }
        Ok(())
    }

    /// The activity, as read with the batch or now.
    async fn activity(&mut self, tx: &mut Tx, id: i64) -> anyhow::Result<Option<Activity>> {
        match self.activities.remove(&id) {
            Some(activity) => Ok(activity),
            None => load_activity(tx, id).await,
        }
    }

    /// The activity's marks, as read with the batch or now.
    async fn marks(&mut self, tx: &mut Tx, id: i64) -> anyhow::Result<Vec<SweepMark>> {
        match self.marks.remove(&id) {
            Some(marks) => Ok(marks),
            None => Ok(tx.sweep_marks(id).await?),
        }
    }

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

    /// `users` narrowed to those the rule's scope may hold (`narrow`), from
    /// the facts read once per batch (those not read yet are read now).
    async fn narrowed(
        &mut self,
        tx: &mut Tx,
        activity_id: i64,
        rule: &AutoRule,
        users: &[i64],
    ) -> anyhow::Result<Narrowed> {
        let missing: Vec<i64> = users
            .iter()
            .copied()
            .filter(|id| !self.asked.contains(id))
            .collect();
        if !missing.is_empty() {
            let found = tx.sweep_user_facts(&UserIds(missing.clone())).await?;
            self.asked.extend(missing);
            self.facts.extend(found);
            self.facts.sort_unstable_by_key(|user| user.id);
        }
        Ok(narrow(activity_id, rule, users, &self.facts))
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
    /// What was read beforehand of the users `users` names, when it names
    /// them.
    narrowed: Option<Narrowed>,
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
    let activity = reads
        .activity(tx, activity_id)
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
        let marks = reads.marks(tx, activity_id).await?;
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
                let narrowed = match activity
                    .as_ref()
                    .and_then(|activity| activity.rule.as_ref())
                {
                    Some(rule) => Some(reads.narrowed(tx, activity_id, rule, &users).await?),
                    None => None,
                };
                passes.push(Pass {
                    lo: 0,
                    hi: i64::MAX,
                    users: Some(Changed::Users(UserIds(users))),
                    marked: ranges.clone(),
                    stamp: Some(stamp),
                    narrowed,
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
                                    narrowed: None,
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
                            narrowed: None,
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
async fn run_sweep_activities(
    state: &AppState,
    mut jobs: Vec<Deferred>,
    mut lease_until: i64,
) -> anyhow::Result<Vec<RanJob>> {
    let mut ran = Vec::new();
    if jobs.is_empty() {
        // A batch whose jobs all finished in the claiming transaction.
        return Ok(ran);
    }
    let steps: Vec<Step> = match state.store.backend() {
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
    };
    // (With no step at all, the jobs are done after the loop.)
    let last_step = steps.len().saturating_sub(1);
    for (index, (only, ranges)) in steps.into_iter().enumerate() {
        if only.is_some_and(|id| !jobs.iter().any(|deferred| deferred.job.id == id)) {
            // That job has left the batch.
            continue;
        }
        loop {
            let mut tx = state.store.write_sweep().await?;
            // Taken before this transaction reads anything: the marks of
            // every pass in it.
            let stamp = tx.sweep_stamp_now().await?;
            let mut counts = Vec::with_capacity(jobs.len());
            let mut failed = None;
            // The leases' new end, once this transaction commits.
            let mut pending_until = None;
            'jobs: for (at, deferred) in jobs.iter().enumerate() {
                let mut job_counts = SweepCounts::default();
                if only.is_none_or(|id| id == deferred.job.id) {
                    for pass in deferred
                        .plan
                        .passes
                        .iter()
                        .filter(|pass| ranges.contains(&(pass.lo, pass.hi)))
                    {
                        match sweep_pass(&mut tx, &deferred.plan, pass, Some(stamp)).await {
                            Ok(pass_counts) => job_counts = add_counts(job_counts, pass_counts),
                            Err(error) => {
                                failed = Some((at, Some(error)));
                                break 'jobs;
                            }
                        }
                    }
                }
                counts.push(job_counts);
            }
            // The leases are renewed, all in one statement, once a third of
            // their time has passed: well before they run out, however many
            // ranges a batch writes.
            let lease = state.lease_seconds * 1_000_000;
            let now = real_micros();
            if failed.is_none() && lease_until - now < lease - lease / 3 {
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
            let finishing = index == last_step;
            if failed.is_none() {
                for (at, (deferred, pass_counts)) in jobs.iter().zip(&counts).enumerate() {
                    let total = add_counts(deferred.counts, *pass_counts);
                    tally.add_counts(deferred.plan.sweep_id, pass_counts);
                    if finishing {
                        match finish_sweep_activity(
                            state,
                            &mut tx,
                            &deferred.job,
                            &deferred.plan,
                            total,
                        )
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
                if jobs.is_empty() {
                    return Ok(ran);
                }
                continue;
            }
            if finishing {
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
                lease_until = renewed_until;
            }
            if finishing {
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
            break;
        }
    }
    if jobs.is_empty() {
        return Ok(ran);
    }
    // The last step was that of a job which had left the batch: the others
    // are done in a transaction of their own.
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
    Ok(ran)
}

/// The passes of a batch over a few changed users each (`SweepPlan::inline`),
/// evaluated together before any runs: what each activity's scope holds of
/// its candidates — their enrollments and exemptions in the batch's
/// activities, read in two statements for all of them, instead of one
/// statement per activity (`Narrowed::rows`) — and the enrollments the
/// rules must create for them, written in one statement for every course
/// of the batch with their audit and `enrolled` jobs (`Narrowed::created`).
/// A pass that cannot be decided so (an annual rule where someone holds
/// another period's open enrollment; a curriculum or bundle, whose new
/// enrollments expand) looks for its creations itself, as before. The
/// passes' own statements still check every user they touch.
async fn create_ahead(
    tx: &mut Tx,
    plans: &mut [(ClaimedJob, std::time::Instant, SweepPlan)],
    reads: &BatchReads,
) -> anyhow::Result<()> {
    // Every user of the passes (the candidates among them), for whether
    // an annual rule's rollover has anything to close among them too.
    let mut users = std::collections::BTreeSet::new();
    let mut activities = Vec::new();
    for (_, _, plan) in plans.iter() {
        if let Some(passed) = ahead_users(plan) {
            users.extend(passed.iter().copied());
            activities.push(plan.activity_id);
        }
    }
    if activities.is_empty() {
        return Ok(());
    }
    let users = UserIds(users.into_iter().collect());
    let ids = UserIds(activities);
    let mut enrollments: HashMap<i64, Held> = HashMap::new();
    let records = tx.sweep_user_records(&users, &ids).await?;
    for (user, activity, id, status, period, due_on) in records.enrollments {
        enrollments
            .entry(activity)
            .or_default()
            .entry(user)
            .or_default()
            .push((id, status, period, due_on));
    }
    let mut exemptions: HashMap<i64, Exempted> = HashMap::new();
    for (user, activity, until) in records.exemptions {
        exemptions
            .entry(activity)
            .or_default()
            .entry(user)
            .or_default()
            .push(until);
    }
    let empty_enrollments = HashMap::new();
    let empty_exemptions = HashMap::new();
    // The creations of one day are written together, the batch's first
    // deciding pass's (one sweep's jobs share its day), at its instant.
    let mut day: Option<(String, i64)> = None;
    let mut creations = Vec::new();
    // The plans whose creations are decided here, with their period.
    let mut creating: Vec<(usize, String)> = Vec::new();
    for (at, (_, _, plan)) in plans.iter_mut().enumerate() {
        let close = plan_closes(plan, enrollments.get(&plan.activity_id));
        if let Some(narrowed) = plan
            .passes
            .first_mut()
            .and_then(|pass| pass.narrowed.as_mut())
        {
            narrowed.close = close;
        }
        let Some(candidates) = ahead_candidates(plan).map(<[i64]>::to_vec) else {
            continue;
        };
        let (Some(activity), Some(pass)) = (&plan.activity, plan.passes.first_mut()) else {
            continue;
        };
        let Some(rule) = &activity.rule else {
            continue;
        };
        let sweep = activity_sweep(
            plan.activity_id,
            rule,
            plan.ctx.today,
            &plan.ctx,
            pass.lo,
            pass.hi,
        );
        let (rows, decided) = decide(
            rule,
            &sweep,
            &candidates,
            &reads.facts,
            enrollments
                .get(&plan.activity_id)
                .unwrap_or(&empty_enrollments),
            exemptions
                .get(&plan.activity_id)
                .unwrap_or(&empty_exemptions),
        );
        let Some(narrowed) = &mut pass.narrowed else {
            continue;
        };
        narrowed.rows = Some(rows);
        if activity.kind.has_items() || day.as_ref().is_some_and(|(today, _)| *today != sweep.today)
        {
            continue;
        }
        if let Some(decided) = decided {
            day.get_or_insert((sweep.today.clone(), sweep.now));
            narrowed.created = Some(Vec::new());
            creating.push((at, sweep.period.clone()));
            creations.extend(decided);
        }
    }
    let Some((today, now)) = day else {
        return Ok(());
    };
    let mut created: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for (id, user, activity) in tx.sweep_create_many(&creations, &today, now).await? {
        created.entry(activity).or_default().push((id, user));
    }
    let with_rules = UserIds(created.keys().copied().collect());
    let mut rules: HashMap<i64, Vec<PostRule>> = HashMap::new();
    if !with_rules.0.is_empty() {
        for record in tx.post_rules_of(&with_rules).await? {
            rules
                .entry(record.activity_id)
                .or_default()
                .push(post_rule_from(&record));
        }
    }
    for (at, period) in creating {
        let (_, _, plan) = &mut plans[at];
        let Some(mine) = created.remove(&plan.activity_id) else {
            continue;
        };
        let (Some(activity), Some(pass)) = (&plan.activity, plan.passes.first_mut()) else {
            continue;
        };
        after_sweep_create(
            tx,
            &plan.ctx,
            activity,
            &period,
            &mine,
            Some(rules.remove(&plan.activity_id).unwrap_or_default()),
        )
        .await?;
        if let Some(narrowed) = &mut pass.narrowed {
            narrowed.created = Some(mine);
        }
    }
    Ok(())
}

/// The users of a plan's one pass over a few changed users, if it is one.
fn ahead_users(plan: &SweepPlan) -> Option<&[i64]> {
    if !plan.inline() {
        return None;
    }
    match &plan.passes.first()?.users {
        Some(Changed::Users(users)) => Some(users.0.as_slice()),
        _ => None,
    }
}

/// For a plan's one pass over a few changed users, whether its annual
/// rule's rollover may close anything among them (`rollover_may_close`);
/// `None` for any other pass.
fn plan_closes(plan: &SweepPlan, held: Option<&Held>) -> Option<bool> {
    let users = ahead_users(plan)?;
    let rule = plan.activity.as_ref()?.rule.as_ref()?;
    rollover_may_close(&rule.recurrence, plan.ctx.today, users, held)
}

/// The candidates of a plan's one pass over a few changed users, if it is
/// one and has any.
fn ahead_candidates(plan: &SweepPlan) -> Option<&[i64]> {
    if !plan.inline() {
        return None;
    }
    let narrowed = plan.passes.first()?.narrowed.as_ref()?;
    (!narrowed.candidates.0.is_empty()).then_some(narrowed.candidates.0.as_slice())
}

/// One pass of a sweep job in `tx`: its users swept, the marks of the ranges
/// it covers renewed; answers its counts, for the caller to add to the
/// sweep's.
async fn sweep_pass(
    tx: &mut Tx,
    plan: &SweepPlan,
    pass: &Pass,
    stamp: Option<i64>,
) -> anyhow::Result<SweepCounts> {
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
async fn sweep_pass_unmarked(
    tx: &mut Tx,
    plan: &SweepPlan,
    pass: &Pass,
    stamp: Option<i64>,
) -> anyhow::Result<(SweepCounts, i64)> {
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
        pass.lo,
        pass.hi,
        pass.users.clone(),
        pass.narrowed.clone(),
    )
    .await?
    .counts;
    Ok((counts, stamp))
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
) -> anyhow::Result<bool> {
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
        .collect();
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
fn sweep_outcome(plan: &SweepPlan, passes: SweepCounts) -> String {
    json!({
        "activity_id": plan.activity_id,
        "created": passes.created,
        "adopted": passes.adopted,
        "closed": passes.closed,
        "skipped": passes.skipped + plan.unchanged_skipped,
    })
    .to_string()
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
    if !tx
        .complete_job(
            job.id,
            &state.worker_id,
            &sweep_outcome(plan, passes),
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
    /// A job finished, with what it adds to its sweep's counts.
    fn add(&mut self, sweep_id: i64, counts: &SweepCounts) {
        self.add_jobs(sweep_id, 1, counts);
    }

    /// What a pass of a job not yet finished adds to its sweep's counts.
    fn add_counts(&mut self, sweep_id: i64, counts: &SweepCounts) {
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
    async fn write_counts(&self, tx: &mut Tx) -> anyhow::Result<()> {
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
    use super::{BATCH_USERS, shared_steps, user_ranges};

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
