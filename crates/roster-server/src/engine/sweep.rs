//! The sweep (R13–R16): one job per activity with a rule, each cutting the
//! users into id ranges written one transaction each; the same code evaluates
//! one user at once (R18) and previews a rule inside a rolled-back
//! transaction (R17).

use jiff::civil::Date;
use roster_core::calendar::{current_period, due_for_new};
use roster_core::payload::{JobPayload, SweepActivityPayload};
use roster_core::sweep::UserRange;
use roster_core::{AutoRule, PostRule, Recurrence, Scope, Source, Trigger};
use roster_store::{
    ActivitySweep, AuditEntry, Changed, Narrowed, NewJob, StoreError, SweepCounts, SweepKind, Tx,
};
use serde::Serialize;

use crate::engine::enroll::{Fired, after_create, trigger_job};
use crate::engine::rules::{Activity, activity_from, post_rules};
use crate::engine::{EngineError, EngineResult};
use crate::state::Ctx;

/// User ids per range of a sweep: one transaction each (see `jobs::user_ranges`).
pub const BATCH_USERS: i64 = 5_000;

/// The store's description of `rule` on `today` over `users`.
pub fn activity_sweep(
    activity_id: i64,
    rule: &AutoRule,
    today: Date,
    ctx: &Ctx,
    users: UserRange,
) -> ActivitySweep {
    let period = current_period(&rule.recurrence, today);
    let kind = match rule.recurrence {
        Recurrence::OneTime { .. } => SweepKind::OneTime,
        Recurrence::Annual { .. } => SweepKind::Annual,
        Recurrence::EveryMonths { .. } => SweepKind::EveryMonths,
    };
    let source = Source::AutoEnrollment {
        activity_id,
        period: period.to_string(),
    };
    ActivitySweep {
        activity_id,
        by_groups: rule.scope == Scope::Groups,
        hired_after: rule.hired_after.map(|date| date.to_string()),
        period: period.to_string(),
        kind,
        due_first: due_for_new(rule, &period, today, true).map(|date| date.to_string()),
        due_later: due_for_new(rule, &period, today, false).map(|date| date.to_string()),
        today: today.to_string(),
        now: ctx.micros(),
        source_json: serde_json::to_string(&source).unwrap_or_default(),
        user_lo: users.lo,
        user_hi: users.hi,
        since: None,
        matching: None,
        count_skips: true,
        narrowed: None,
        holds: None,
    }
}

/// What a range's mark must match for the range to be swept incrementally:
/// the rule as saved and the period it needs today. Anything else a rule
/// reads either stamps the users it concerns or is an exemption's end date.
pub fn fingerprint(rule: &AutoRule, today: Date) -> String {
    format!(
        "{}|{}",
        current_period(&rule.recurrence, today),
        serde_json::to_string(rule).unwrap_or_default()
    )
}

/// What one range of a sweep did: counts, and the enrollments created and
/// adopted as (enrollment id, user id).
#[derive(Clone, Debug, Default)]
pub struct RangeOutcome {
    pub counts: SweepCounts,
    pub created: Vec<(i64, i64)>,
    pub adopted: Vec<(i64, i64)>,
}

/// The audit log's view of an enrollment a new period rolled over (R16).
#[derive(Serialize)]
struct RolledOver<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    new_period: Option<&'a str>,
    status: &'a str,
}

/// The audit log's view of an enrollment the rule adopted (R15).
#[derive(Serialize)]
struct Adopted<'a> {
    due_on: Option<&'a str>,
    period: Option<&'a str>,
    #[serde(rename = "type")]
    enrollment_type: &'a str,
}

/// The audit log's view of the enrollments one range of a sweep created.
#[derive(Serialize)]
struct SweepCreated<'a> {
    enrollment_ids: Vec<i64>,
    period: &'a str,
}

/// The audit log's view of a sweep's start.
#[derive(Serialize)]
struct SweepStarted<'a> {
    activities: usize,
    day: Date,
    trigger: &'a str,
}

/// Sweeps one activity's rule over `users` on `ctx.today`, in `tx`.
pub async fn sweep_range(
    tx: &mut Tx,
    ctx: &Ctx,
    activity: &Activity,
    users: UserRange,
) -> EngineResult<RangeOutcome> {
    sweep_users(tx, ctx, activity, users, None, None, true).await
}

/// A pass of a sweep job: sweeps one activity's rule over `users` on
/// `ctx.today`, in `tx` — every user of the range, or with `since` only those
/// changed. The skipped count is left at 0: the marks the caller writes next
/// count the skips of their ranges (`Tx::put_sweep_marks`).
///
/// `narrowed` is what the caller read beforehand of the users `since` names
/// (see `roster_core::sweep::narrow`).
pub async fn sweep_range_since(
    tx: &mut Tx,
    ctx: &Ctx,
    activity: &Activity,
    users: UserRange,
    since: Option<Changed>,
    narrowed: Option<Narrowed>,
) -> EngineResult<RangeOutcome> {
    sweep_users(tx, ctx, activity, users, since, narrowed, false).await
}

/// The sweep of `users` (or of the users `since` names among them),
/// counting the range's skips afterwards when `count_skips`.
async fn sweep_users(
    tx: &mut Tx,
    ctx: &Ctx,
    activity: &Activity,
    users: UserRange,
    since: Option<Changed>,
    narrowed: Option<Narrowed>,
    count_skips: bool,
) -> EngineResult<RangeOutcome> {
    let mut outcome = RangeOutcome::default();
    let Some(rule) = &activity.rule else {
        return Ok(outcome);
    };
    if rule.scope == Scope::None {
        return Ok(outcome);
    }
    let mut sweep = activity_sweep(activity.record.id, rule, ctx.today, ctx, users);
    sweep.since = since;
    sweep.narrowed = narrowed;
    sweep.count_skips = count_skips;
    if sweep.since.is_some() {
        // Only the changed users in the rule's scope are evaluated; the
        // others' recorded skips are forgotten.
        sweep.matching = Some(tx.sweep_matching_users(&sweep).await?);
    } else {
        // A whole range: whether it holds any enrollment or exemption of
        // the activity spares a cold range the statements that look for
        // them (rollover, adoption, per-user probes, skips).
        sweep.holds = Some(tx.sweep_range_holds(&sweep).await?);
    }
    let counts = &mut outcome.counts;

    let mut outcome_adopted = Vec::new();
    let closed = tx.sweep_close_earlier(&sweep).await?;
    counts.closed = closed.len() as i64;
    let rolled_before = serde_json::to_string(&RolledOver {
        new_period: None,
        status: "in_progress",
    })?;
    let rolled_after = serde_json::to_string(&RolledOver {
        new_period: Some(&sweep.period),
        status: "incomplete",
    })?;
    let entries: Vec<AuditEntry> = closed
        .iter()
        .map(|(id, _)| AuditEntry {
            actor_id: ctx.actor,
            action: "enrollment.rollover",
            entity: "enrollment",
            entity_id: Some(*id),
            before: Some(rolled_before.clone()),
            after: Some(rolled_after.clone()),
        })
        .collect();
    tx.audit_many(&entries, ctx.micros()).await?;

    for (id, user_id, old_type, old_due, first) in tx.sweep_adopt_candidates(&sweep).await? {
        let due = old_due.clone().or(if first {
            sweep.due_first.clone()
        } else {
            sweep.due_later.clone()
        });
        let adopted = match tx
            .sweep_adopt(id, &sweep.period, due.as_deref(), ctx.micros())
            .await
        {
            Ok(adopted) => adopted,
            Err(StoreError::Conflict(_)) => false,
            Err(error) => return Err(error.into()),
        };
        if adopted {
            counts.adopted += 1;
            outcome_adopted.push((id, user_id));
            tx.audit(
                AuditEntry {
                    actor_id: ctx.actor,
                    action: "enrollment.adopt",
                    entity: "enrollment",
                    entity_id: Some(id),
                    before: Some(serde_json::to_string(&Adopted {
                        due_on: old_due.as_deref(),
                        period: None,
                        enrollment_type: &old_type,
                    })?),
                    after: Some(serde_json::to_string(&Adopted {
                        due_on: due.as_deref(),
                        period: Some(&sweep.period),
                        enrollment_type: "required",
                    })?),
                },
                ctx.micros(),
            )
            .await?;
        }
    }

    // Created beforehand for a batch (with their audit and jobs), or now.
    let created_before = matches!(&sweep.narrowed, Some(narrowed) if narrowed.created.is_some());
    let created = tx.sweep_create(&sweep).await?;
    counts.created = created.len() as i64;
    if !created_before {
        after_sweep_create(tx, ctx, activity, &sweep.period, &created, None).await?;
    }
    counts.skipped = tx.sweep_record_skips(&sweep).await?;
    outcome.adopted = outcome_adopted;
    outcome.created = created;
    Ok(outcome)
}

/// What a sweep's new enrollments in `activity` set off: their audit entry,
/// and for a curriculum or bundle their expansion and completion (R39, R40),
/// for a course the jobs of its `enrolled` rules (R32) — `rules`, when the
/// caller read the activity's post-enrollment rules already.
pub async fn after_sweep_create(
    tx: &mut Tx,
    ctx: &Ctx,
    activity: &Activity,
    period: &str,
    created: &[(i64, i64)],
    rules: Option<Vec<PostRule>>,
) -> EngineResult<()> {
    if created.is_empty() {
        return Ok(());
    }
    tx.audit(
        AuditEntry {
            actor_id: ctx.actor,
            action: "sweep.create",
            entity: "activity",
            entity_id: Some(activity.record.id),
            before: None,
            after: Some(serde_json::to_string(&SweepCreated {
                enrollment_ids: created.iter().map(|(id, _)| *id).collect(),
                period,
            })?),
        },
        ctx.micros(),
    )
    .await?;
    if activity.kind.has_items() {
        // Curricula and bundles: expansion and completion (R39, R40),
        // enrollment by enrollment.
        for (id, _) in created {
            if let Some(record) = tx.get_enrollment(*id).await? {
                after_create(tx, ctx, &record, activity).await?;
            }
        }
        return Ok(());
    }
    // A new in-progress enrollment in a course sets off only its activity's
    // `enrolled` rules (R32, what `after_create` would do): their jobs are
    // written in one batch, not one by one.
    let rules = match rules {
        Some(rules) => rules,
        None => post_rules(tx, activity.record.id).await?,
    };
    let rules: Vec<&PostRule> = rules
        .iter()
        .filter(|rule| rule.when == Trigger::Enrolled)
        .collect();
    let jobs: Vec<NewJob> = created
        .iter()
        .flat_map(|(id, user_id)| {
            rules.iter().map(|rule| {
                let fired = Fired {
                    enrollment_id: *id,
                    user_id: *user_id,
                };
                trigger_job(ctx, rule, Trigger::Enrolled, fired)
            })
        })
        .collect();
    if !jobs.is_empty() {
        tx.enqueue_many(&jobs, ctx.micros()).await?;
    }
    Ok(())
}

/// R18: evaluates one user against every saved rule, in the caller's transaction.
pub async fn evaluate_user(tx: &mut Tx, ctx: &Ctx, user_id: i64) -> EngineResult<SweepCounts> {
    let mut total = SweepCounts::default();
    for record in tx.activities_with_rules().await? {
        let activity = activity_from(record);
        let counts = sweep_range(tx, ctx, &activity, UserRange::one(user_id))
            .await?
            .counts;
        total.created += counts.created;
        total.adopted += counts.adopted;
        total.closed += counts.closed;
        total.skipped += counts.skipped;
    }
    Ok(total)
}

/// Starts a sweep: the record and one job per activity with a rule, in one
/// transaction. `Conflict` when one is queued or running (or the nightly of
/// `day` exists).
pub async fn start_sweep(tx: &mut Tx, ctx: &Ctx, trigger_by: &str, day: Date) -> EngineResult<i64> {
    let sweep_id = match tx
        .insert_sweep(false, trigger_by, &day.to_string(), ctx.micros(), ctx.actor)
        .await
    {
        Ok(sweep_id) => sweep_id,
        Err(StoreError::Conflict(_)) => {
            return Err(EngineError::Conflict(
                "another sweep is queued or running".into(),
            ));
        }
        Err(error) => return Err(error.into()),
    };
    let activities = tx.activities_with_rules().await?;
    let jobs: Vec<NewJob> = activities
        .iter()
        .map(|activity| NewJob {
            kind: SweepActivityPayload::KIND.into(),
            run_at: ctx.micros(),
            dedupe_key: Some(format!("sweep:{sweep_id}:{}", activity.id)),
            payload: SweepActivityPayload {
                activity_id: activity.id,
                day,
                sweep_id,
            }
            .to_json(),
            rule_id: None,
            sweep_id: Some(sweep_id),
            user_id: None,
        })
        .collect();
    tx.enqueue_many(&jobs, ctx.micros()).await?;
    if activities.is_empty() {
        tx.finish_sweep(sweep_id, "done", ctx.micros()).await?;
    } else {
        tx.set_sweep_jobs(sweep_id, activities.len() as i64, "queued")
            .await?;
    }
    tx.audit(
        AuditEntry {
            actor_id: ctx.actor,
            action: "sweep.start",
            entity: "sweep",
            entity_id: Some(sweep_id),
            before: None,
            after: Some(serde_json::to_string(&SweepStarted {
                activities: activities.len(),
                day,
                trigger: trigger_by,
            })?),
        },
        ctx.micros(),
    )
    .await?;
    Ok(sweep_id)
}
