//! Post-enrollment jobs (R33–R36): a batch of them claimed, run and marked
//! done in one transaction, with what they read fetched once for the batch.
//!
//! Up to `JOB_BATCH` jobs are claimed, run and completed in the one
//! transaction: a crash leaves them pending with nothing written, and a
//! failing one rolls the batch back with only its own attempt counted. Before
//! the first job runs, the batch reads in three statements its learners (on
//! PostgreSQL locked in id order, so another worker's batch for the same
//! learner waits and then reads what this one wrote), its target activities
//! with their post-enrollment rules (no job writes a user, an activity or a
//! rule), and the facts of each (learner, target) pair; those facts hold for
//! a learner until a job of the batch enrolls them, and are then read again
//! when used (`PostReads`). The jobs are marked done in one statement
//! (`Tx::complete_jobs`), which checks each lease.

use std::collections::HashMap;

use roster_core::decide::{TargetFacts, decide_target};
use roster_core::payload::{JobPayload, PayloadError, PostEnrollmentPayload};
use roster_core::{PostRule, Source, TargetOutcome};
use roster_store::{ClaimedJob, Tx, UserIds};
use serde::Serialize;

use super::{Batch, JOB_BATCH, RanJob, record_failure};
use crate::engine::EngineResult;
use crate::engine::enroll::{Created, NewEnrollment, create_in};
use crate::engine::rules::{Activity, activity_from, post_rule_from};
use crate::state::{AppState, Ctx};

/// Runs the claimed post-enrollment job `job` in `tx`, the transaction that
/// claimed it, together with up to `JOB_BATCH - 1` more post-enrollment jobs
/// due then, and marks them done in the same transaction: a worker that dies
/// midway leaves them pending, to be run again at once, with nothing of the
/// attempt written. When one of them fails, the whole transaction is rolled
/// back and only the failing job's attempt is recorded (by the caller); the
/// others are pending again, unchanged, and run with the next claim.
pub(super) async fn run_batch(
    state: &AppState,
    mut tx: Tx,
    job: ClaimedJob,
    started: std::time::Instant,
    lease_until: i64,
) -> EngineResult<Batch> {
    let mut batch = vec![job];
    batch.extend(
        tx.claim_more_jobs(
            &state.worker_id,
            state.clock.now().as_microsecond(),
            lease_until,
            PostEnrollmentPayload::KIND,
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
    let payloads: Vec<_> = batch
        .iter()
        .map(|job| PostEnrollmentPayload::from_json(&job.payload))
        .collect();
    let mut reads = PostReads::default();
    let ctx = match reads.prefetch(state, &mut tx, &payloads).await {
        Ok(ctx) => ctx,
        Err(error) => {
            // Blamed on the first job, whose attempt is counted.
            tx.rollback().await?;
            let job = batch.swap_remove(0);
            record_failure(state, &job, error, false).await?;
            return Ok(Batch::Ran(vec![RanJob { job, started }]));
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
            Ok(Batch::Ran(ran))
        }
        // The claim was lost (it cannot be, within its own
        // transaction) or the handler failed: nothing of the batch
        // is kept.
        Some((job, started, result)) => {
            tx.rollback().await?;
            Ok(Batch::Stopped(job, started, result))
        }
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
        payloads: &[Result<PostEnrollmentPayload, PayloadError>],
    ) -> EngineResult<Ctx> {
        let ctx = state.ctx(tx, None).await?;
        let payloads: Vec<&PostEnrollmentPayload> = payloads.iter().flatten().collect();
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
    ) -> EngineResult<(bool, bool, bool)> {
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
    payload: Result<PostEnrollmentPayload, PayloadError>,
    reads: &mut PostReads,
) -> EngineResult<String> {
    let PostEnrollmentPayload {
        user_id,
        rule_id,
        from_enrollment_id,
        allow_consecutive,
        target_ids,
        ..
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
            outcomes.push(TargetDone::named(target, "target_missing"));
            continue;
        };
        if service_account && user_active {
            outcomes.push(TargetDone::named(target, "service_account"));
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
                        TargetDone {
                            enrollment_id: Some(record.id),
                            ..TargetDone::named(target, "created")
                        }
                    }
                    Created::AlreadyEnrolled | Created::PeriodHeld => {
                        TargetDone::named(target, "already_enrolled")
                    }
                }
            }
            other => TargetDone {
                activity_id: target,
                enrollment_id: None,
                outcome: Done::Decided(other),
            },
        };
        outcomes.push(outcome);
    }
    Ok(serde_json::to_string(&outcomes)?)
}

/// What a post-enrollment job did for one target, as its outcome records it.
#[derive(Serialize)]
struct TargetDone {
    activity_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollment_id: Option<i64>,
    outcome: Done,
}

/// A target's outcome: the core's decision, or what the job found first.
#[derive(Serialize)]
#[serde(untagged)]
enum Done {
    Named(&'static str),
    Decided(TargetOutcome),
}

impl TargetDone {
    fn named(activity_id: i64, outcome: &'static str) -> TargetDone {
        TargetDone {
            activity_id,
            enrollment_id: None,
            outcome: Done::Named(outcome),
        }
    }
}

#[cfg(test)]
mod tests {
    use roster_core::Trigger;
    use roster_core::payload::{JobPayload, PostEnrollmentPayload};
    use roster_store::NewJob;

    use crate::engine::jobs::{real_micros, run_next_jobs};
    use crate::state::AppState;

    fn post_job(run_at: i64, payload: &str) -> NewJob {
        NewJob {
            kind: PostEnrollmentPayload::KIND.into(),
            run_at,
            payload: payload.into(),
            ..NewJob::default()
        }
    }

    /// A post-enrollment payload of a rule with no target, as `trigger_job`
    /// writes it.
    fn no_target_payload() -> String {
        PostEnrollmentPayload {
            activity_id: 1,
            allow_consecutive: false,
            delay_days: 0,
            from_enrollment_id: 1,
            rule_id: 1,
            target_ids: Vec::new(),
            triggered_at: jiff::Timestamp::UNIX_EPOCH,
            user_id: 1,
            when: Trigger::Enrolled,
        }
        .to_json()
    }

    /// A state on a fresh SQLite file named after `name`, and the file.
    async fn offline(name: &str) -> (AppState, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "roster-{name}-{}-{}.db",
            std::process::id(),
            real_micros()
        ));
        let state = crate::app::offline_state(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        (state, path)
    }

    async fn close(state: AppState, path: std::path::PathBuf) {
        state.store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// R33: a payload missing a field fails its job, naming the field,
    /// rather than running with id 0.
    #[tokio::test]
    async fn r33_a_post_enrollment_payload_missing_a_field_fails_its_job_naming_it() {
        let (state, path) = offline("payload").await;
        let now = state.clock.now().as_microsecond();
        let mut payload: serde_json::Value = serde_json::from_str(&no_target_payload()).unwrap();
        payload.as_object_mut().unwrap().remove("rule_id");
        let mut tx = state.store.write().await.unwrap();
        let job = tx
            .enqueue(&post_job(now - 1, &payload.to_string()), now)
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();

        let ran = run_next_jobs(&state).await.unwrap();
        assert_eq!(
            ran.iter().map(|ran| ran.job.id).collect::<Vec<_>>(),
            vec![job]
        );
        let mut tx = state.store.read().await.unwrap();
        let failed = tx.get_job(job).await.unwrap().unwrap();
        assert_eq!((failed.state.as_str(), failed.attempts), ("pending", 1));
        assert_eq!(
            failed.last_error.as_deref(),
            Some("post_enrollment payload: missing field `rule_id`")
        );
        tx.rollback().await.unwrap();
        close(state, path).await;
    }

    /// A failing job in a batch rolls the batch back: only its attempt is
    /// counted, and the others run with the next claim, exactly once.
    #[tokio::test]
    async fn a_failing_post_enrollment_job_does_not_take_its_batch_with_it() {
        let (state, path) = offline("batch").await;
        let now = state.clock.now().as_microsecond();
        let empty = &no_target_payload();
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
        close(state, path).await;
    }
}
