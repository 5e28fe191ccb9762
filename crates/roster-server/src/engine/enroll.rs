//! Creating and changing enrollments, with every effect the rules attach:
//! post-enrollment triggers (R32, R33), the next period on completion (R19),
//! curriculum and bundle completion and bundle expansion (R39, R40).

use std::future::Future;
use std::pin::Pin;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use roster_core::calendar::next_period_on_completion;
use roster_core::payload::{JobPayload, PostEnrollmentPayload};
use roster_core::{
    ActivityKind, EnrollmentType, Period, PostRule, Recurrence, Source, Status, Trigger,
};
use roster_store::{AuditEntry, EnrollmentInsert, EnrollmentPatch, EnrollmentRecord, NewJob, Tx};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::engine::rules::{Activity, activity_from, load_activity, post_rule_from, post_rules};
use crate::engine::sweep::activity_sweep;
use crate::engine::{EngineError, EngineResult};
use crate::state::Ctx;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An enrollment to create.
#[derive(Clone, Debug)]
pub struct NewEnrollment {
    pub user_id: i64,
    pub activity_id: i64,
    pub enrollment_type: EnrollmentType,
    pub status: Status,
    pub due_on: Option<Date>,
    pub required_by: Option<String>,
    pub reason: Option<String>,
    pub source: Source,
    pub period: Option<String>,
}

impl NewEnrollment {
    /// A required, in-progress enrollment without due date made by a rule.
    pub fn by_rule(user_id: i64, activity_id: i64, source: Source) -> NewEnrollment {
        NewEnrollment {
            user_id,
            activity_id,
            enrollment_type: EnrollmentType::Required,
            status: Status::InProgress,
            due_on: None,
            required_by: None,
            reason: None,
            source,
            period: None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Created {
    Created(EnrollmentRecord),
    /// An open enrollment exists (R2).
    AlreadyEnrolled,
    /// The rule period is held by another enrollment (R14).
    PeriodHeld,
}

/// The fields a change may set; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub enrollment_type: Option<EnrollmentType>,
    pub status: Option<Status>,
    pub due_on: Option<Option<Date>>,
    pub required_by: Option<Option<String>>,
    pub reason: Option<Option<String>>,
}

/// An enrollment as the audit log keeps it (fields in the order the log has
/// always written them).
#[derive(Clone, Debug, Serialize)]
pub struct AuditedEnrollment<'a> {
    pub activity_id: i64,
    pub completed_at: Option<Timestamp>,
    pub due_on: Option<&'a str>,
    pub enrolled_at: Timestamp,
    pub id: i64,
    pub period: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub required_by: Option<&'a str>,
    /// Why it exists, as stored (null when the stored text does not read).
    pub source: Option<&'a RawValue>,
    pub status: &'a str,
    #[serde(rename = "type")]
    pub enrollment_type: &'a str,
    pub user_id: i64,
}

impl<'a> AuditedEnrollment<'a> {
    pub fn of(record: &'a EnrollmentRecord) -> AuditedEnrollment<'a> {
        let timestamp =
            |micros| Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH);
        AuditedEnrollment {
            activity_id: record.activity_id,
            completed_at: record.completed_at.map(timestamp),
            due_on: record.due_on.as_deref(),
            enrolled_at: timestamp(record.enrolled_at),
            id: record.id,
            period: record.period.as_deref(),
            reason: record.reason.as_deref(),
            required_by: record.required_by.as_deref(),
            source: serde_json::from_str(&record.source).ok(),
            status: &record.status,
            enrollment_type: &record.enrollment_type,
            user_id: record.user_id,
        }
    }

    /// The audit log's text of `record`.
    pub fn text(record: &EnrollmentRecord) -> EngineResult<String> {
        Ok(serde_json::to_string(&AuditedEnrollment::of(record))?)
    }
}

/// Creates the enrollment unless R2 or R14 refuse it, then applies its effects.
pub fn create<'a>(
    tx: &'a mut Tx,
    ctx: &'a Ctx,
    new: NewEnrollment,
) -> BoxFuture<'a, EngineResult<Created>> {
    Box::pin(async move {
        let activity = load_activity(tx, new.activity_id).await?;
        create_in(tx, ctx, new, activity.as_ref()).await
    })
}

/// `create` for a caller that has loaded the activity already (`None`: it
/// does not exist, and the insert's foreign key refuses the enrollment).
pub fn create_in<'a>(
    tx: &'a mut Tx,
    ctx: &'a Ctx,
    new: NewEnrollment,
    activity: Option<&'a Activity>,
) -> BoxFuture<'a, EngineResult<Created>> {
    Box::pin(async move {
        let Some(record) = tx.insert_enrollment(&insert_of(ctx, &new)?).await? else {
            return Ok(
                match tx.open_enrollment(new.user_id, new.activity_id).await? {
                    Some(_) => Created::AlreadyEnrolled,
                    None => Created::PeriodHeld,
                },
            );
        };
        inserted(tx, ctx, record, activity).await
    })
}

/// `create_in` for many learners' enrollments in one loaded activity, as a
/// bulk enrollment makes them: inserted in multi-row statements, then each
/// created one's audit entry and effects, in the order given. Answers each
/// one's outcome in that order; one that R2 or its period's uniqueness
/// refuses is `AlreadyEnrolled`. The learners must be distinct.
pub async fn create_many_in(
    tx: &mut Tx,
    ctx: &Ctx,
    news: &[NewEnrollment],
    activity: &Activity,
) -> EngineResult<Vec<Created>> {
    let inserts = news
        .iter()
        .map(|new| insert_of(ctx, new))
        .collect::<EngineResult<Vec<_>>>()?;
    let mut by_user: std::collections::HashMap<i64, EnrollmentRecord> = tx
        .insert_enrollments(&inserts)
        .await?
        .into_iter()
        .map(|record| (record.user_id, record))
        .collect();
    let mut outcomes = Vec::with_capacity(news.len());
    for new in news {
        outcomes.push(match by_user.remove(&new.user_id) {
            Some(record) => inserted(tx, ctx, record, Some(activity)).await?,
            None => Created::AlreadyEnrolled,
        });
    }
    Ok(outcomes)
}

/// The row a new enrollment is inserted as.
fn insert_of(ctx: &Ctx, new: &NewEnrollment) -> EngineResult<EnrollmentInsert> {
    Ok(EnrollmentInsert {
        user_id: new.user_id,
        activity_id: new.activity_id,
        enrollment_type: new.enrollment_type.as_str().into(),
        status: new.status.as_str().into(),
        due_on: new.due_on.map(|date| date.to_string()),
        required_by: new.required_by.clone(),
        reason: new.reason.clone(),
        enrolled_at: ctx.micros(),
        completed_at: new.status.is_complete().then(|| ctx.micros()),
        source_kind: new.source.kind().into(),
        source: serde_json::to_string(&new.source)?,
        period: new.period.clone(),
    })
}

/// An inserted enrollment's audit entry and effects.
async fn inserted(
    tx: &mut Tx,
    ctx: &Ctx,
    record: EnrollmentRecord,
    activity: Option<&Activity>,
) -> EngineResult<Created> {
    tx.audit(
        AuditEntry {
            actor_id: ctx.actor,
            action: "enrollment.create",
            entity: "enrollment",
            entity_id: Some(record.id),
            before: None,
            after: Some(AuditedEnrollment::text(&record)?),
        },
        ctx.micros(),
    )
    .await?;
    let Some(activity) = activity else {
        return Ok(Created::Created(record));
    };
    after_create(tx, ctx, &record, activity).await?;
    if !activity.kind.has_items() {
        return Ok(Created::Created(record));
    }
    // Effects may have completed it (a curriculum already passed, R39).
    let record = tx.get_enrollment(record.id).await?.unwrap_or(record);
    Ok(Created::Created(record))
}

/// The effects of a new enrollment (R32, R39, R40), whichever path made it.
pub fn after_create<'a>(
    tx: &'a mut Tx,
    ctx: &'a Ctx,
    record: &'a EnrollmentRecord,
    activity: &'a Activity,
) -> BoxFuture<'a, EngineResult<()>> {
    Box::pin(async move {
        let known = activity.post_rules.as_deref();
        fire(tx, ctx, record, Trigger::Enrolled, known).await?;
        let status: Status = record.status.parse().unwrap_or(Status::InProgress);
        match status {
            Status::Passed => {
                fire(tx, ctx, record, Trigger::Completed, known).await?;
                on_passed(tx, ctx, record, activity, true).await?;
            }
            Status::Failed => fire(tx, ctx, record, Trigger::Failed, known).await?,
            _ => {}
        }
        // R10: bundle expansion is a rule, and no rule enrolls a service account.
        if activity.kind == ActivityKind::CourseBundle
            && !tx
                .get_user(record.user_id)
                .await?
                .is_some_and(|user| user.role == "integration")
        {
            for item_id in tx.item_ids(activity.record.id).await? {
                let source = Source::Bundle {
                    enrollment_id: record.id,
                };
                create(
                    tx,
                    ctx,
                    NewEnrollment::by_rule(record.user_id, item_id, source),
                )
                .await?;
            }
        }
        if activity.kind.has_items() && status.is_open() {
            complete_if_all_items_passed(tx, ctx, record.id).await?;
        }
        Ok(())
    })
}

/// Applies a change to an enrollment and its effects (R5, R19, R32, R39).
pub fn change<'a>(
    tx: &'a mut Tx,
    ctx: &'a Ctx,
    before: EnrollmentRecord,
    change: Change,
) -> BoxFuture<'a, EngineResult<EnrollmentRecord>> {
    Box::pin(async move {
        let old_status: Status = before.status.parse().unwrap_or(Status::InProgress);
        let new_status = change.status.unwrap_or(old_status);
        let patch = patch_of(ctx, &before, &change);
        let after = tx
            .update_enrollment(before.id, &patch, ctx.micros())
            .await?
            .ok_or(EngineError::NotFound("enrollment"))?;
        audit_update(tx, ctx, &before, &after).await?;
        if new_status != old_status {
            match new_status {
                Status::Passed => {
                    // The activity, whether it is an item, and its post
                    // rules in one read; the rules serve the trigger and
                    // the next period's enrollment (R19) alike.
                    let Some((record, is_item, rules)) =
                        tx.get_activity_for_completion(after.activity_id).await?
                    else {
                        return Ok(after);
                    };
                    let activity = Activity {
                        post_rules: Some(rules.iter().map(post_rule_from).collect()),
                        ..activity_from(record)
                    };
                    let rules = activity.post_rules.as_deref();
                    fire(tx, ctx, &after, Trigger::Completed, rules).await?;
                    on_passed(tx, ctx, &after, &activity, is_item).await?;
                }
                Status::Failed => fire(tx, ctx, &after, Trigger::Failed, None).await?,
                _ => {}
            }
        }
        Ok(after)
    })
}

/// `change` for many enrollments at once when it sets no status, and so
/// sets nothing off: one multi-row update and each one's audit entry.
/// Answers the enrollments as changed, by id; an id not found is missing.
/// The enrollments must be distinct.
pub async fn change_fields_of_many(
    tx: &mut Tx,
    ctx: &Ctx,
    befores: Vec<EnrollmentRecord>,
    change: &Change,
) -> EngineResult<std::collections::HashMap<i64, EnrollmentRecord>> {
    if change.status.is_some() {
        return Err(EngineError::internal("a status change runs one by one"));
    }
    let patches: Vec<(i64, EnrollmentPatch)> = befores
        .iter()
        .map(|before| (before.id, patch_of(ctx, before, change)))
        .collect();
    let afters: std::collections::HashMap<i64, EnrollmentRecord> = tx
        .update_enrollments(&patches, ctx.micros())
        .await?
        .into_iter()
        .map(|after| (after.id, after))
        .collect();
    for before in &befores {
        if let Some(after) = afters.get(&before.id) {
            audit_update(tx, ctx, before, after).await?;
        }
    }
    Ok(afters)
}

/// The enrollment's fields after `change`.
fn patch_of(ctx: &Ctx, before: &EnrollmentRecord, change: &Change) -> EnrollmentPatch {
    let old_status: Status = before.status.parse().unwrap_or(Status::InProgress);
    let new_status = change.status.unwrap_or(old_status);
    let completed_at = if !new_status.is_complete() {
        None
    } else if new_status != old_status {
        Some(ctx.micros())
    } else {
        before.completed_at
    };
    EnrollmentPatch {
        enrollment_type: change
            .enrollment_type
            .map(|value| value.as_str().to_string())
            .unwrap_or_else(|| before.enrollment_type.clone()),
        status: new_status.as_str().into(),
        due_on: match change.due_on {
            Some(due) => due.map(|date| date.to_string()),
            None => before.due_on.clone(),
        },
        required_by: change
            .required_by
            .clone()
            .unwrap_or_else(|| before.required_by.clone()),
        reason: change
            .reason
            .clone()
            .unwrap_or_else(|| before.reason.clone()),
        completed_at,
        period: before.period.clone(),
    }
}

async fn audit_update(
    tx: &mut Tx,
    ctx: &Ctx,
    before: &EnrollmentRecord,
    after: &EnrollmentRecord,
) -> EngineResult<()> {
    tx.audit(
        AuditEntry {
            actor_id: ctx.actor,
            action: "enrollment.update",
            entity: "enrollment",
            entity_id: Some(before.id),
            before: Some(AuditedEnrollment::text(before)?),
            after: Some(AuditedEnrollment::text(after)?),
        },
        ctx.micros(),
    )
    .await?;
    Ok(())
}

/// Captures every rule in force on the activity for `trigger` as a job, in the
/// caller's transaction, due `delay_days` × 24 hours from now (R33). The
/// rules are read unless the caller read them already in this transaction
/// (`known`).
async fn fire(
    tx: &mut Tx,
    ctx: &Ctx,
    record: &EnrollmentRecord,
    trigger: Trigger,
    known: Option<&[PostRule]>,
) -> EngineResult<()> {
    let read;
    let rules = match known {
        Some(rules) => rules,
        None => {
            read = post_rules(tx, record.activity_id).await?;
            &read
        }
    };
    let jobs: Vec<NewJob> = rules
        .iter()
        .filter(|rule| rule.when == trigger)
        .map(|rule| {
            let fired = Fired {
                enrollment_id: record.id,
                user_id: record.user_id,
            };
            trigger_job(ctx, rule, trigger, fired)
        })
        .collect();
    // Written when the transaction commits, with every other job it set
    // off: one statement for all of them.
    if !jobs.is_empty() {
        tx.enqueue_at_commit(jobs, ctx.micros()).await?;
    }
    Ok(())
}

/// The enrollment whose event fires a post-enrollment rule (R32), and its
/// learner: named, so that the two ids cannot be swapped.
#[derive(Clone, Copy, Debug)]
pub struct Fired {
    pub enrollment_id: i64,
    pub user_id: i64,
}

/// The job capturing `rule` for a trigger on enrollment `enrollment_id` of
/// `user_id` (R33): due `delay_days` × 24 hours from now, with the rule's
/// snapshot. The sweep writes the same jobs in batches.
pub fn trigger_job(ctx: &Ctx, rule: &PostRule, trigger: Trigger, fired: Fired) -> NewJob {
    let Fired {
        enrollment_id,
        user_id,
    } = fired;
    let run_at = ctx
        .now
        .checked_add((rule.delay_days as i64 * 24).hours())
        .unwrap_or(ctx.now);
    let payload = PostEnrollmentPayload {
        activity_id: rule.activity_id,
        allow_consecutive: rule.allow_consecutive,
        delay_days: rule.delay_days,
        from_enrollment_id: enrollment_id,
        rule_id: rule.id,
        target_ids: rule.target_ids.clone(),
        triggered_at: ctx.now,
        user_id,
        when: trigger,
    };
    NewJob {
        kind: PostEnrollmentPayload::KIND.into(),
        run_at: run_at.as_microsecond(),
        dedupe_key: None,
        payload: payload.to_json(),
        rule_id: Some(rule.id),
        sweep_id: None,
        user_id: Some(user_id),
    }
}

/// What a pass sets off: the rule's next period (R19) and the completion of
/// curricula and bundles holding the activity (R39, R40), looked for unless
/// the caller knows the activity is nobody's item (`may_be_item` false).
async fn on_passed(
    tx: &mut Tx,
    ctx: &Ctx,
    record: &EnrollmentRecord,
    activity: &Activity,
    may_be_item: bool,
) -> EngineResult<()> {
    next_period(tx, ctx, record, activity).await?;
    if !may_be_item {
        return Ok(());
    }
    for parent in tx
        .open_parent_enrollments(record.user_id, record.activity_id)
        .await?
    {
        complete_if_all_items_passed(tx, ctx, parent.id).await?;
    }
    Ok(())
}

/// R19: a passed period of an annual or every_months rule enrolls the learner
/// in the next one at once, if they still match and it does not exist yet.
async fn next_period(
    tx: &mut Tx,
    ctx: &Ctx,
    record: &EnrollmentRecord,
    activity: &Activity,
) -> EngineResult<()> {
    let (Some(rule), Some(period)) = (
        &activity.rule,
        record.period.as_deref().and_then(Period::parse),
    ) else {
        return Ok(());
    };
    if matches!(rule.recurrence, Recurrence::OneTime { .. }) {
        return Ok(());
    }
    let Some((next, due)) =
        next_period_on_completion(&rule.recurrence, &period, ctx.today, ctx.today)
    else {
        return Ok(());
    };
    let probe = activity_sweep(
        activity.record.id,
        rule,
        ctx.today,
        ctx,
        roster_core::sweep::UserRange::one(record.user_id),
    );
    if tx.sweep_matching_count(&probe).await? == 0 {
        return Ok(());
    }
    let next = next.to_string();
    let source = Source::AutoEnrollment {
        activity_id: activity.record.id,
        period: next.clone(),
    };
    let mut new = NewEnrollment::by_rule(record.user_id, activity.record.id, source);
    new.due_on = due;
    new.period = Some(next);
    if activity.post_rules.is_some() {
        // The caller read the activity with its rules in this transaction.
        create_in(tx, ctx, new, Some(activity)).await?;
    } else {
        create(tx, ctx, new).await?;
    }
    Ok(())
}

/// Passes an open curriculum or bundle enrollment whose courses are all passed.
fn complete_if_all_items_passed<'a>(
    tx: &'a mut Tx,
    ctx: &'a Ctx,
    enrollment_id: i64,
) -> BoxFuture<'a, EngineResult<()>> {
    Box::pin(async move {
        let Some(parent) = tx.get_enrollment(enrollment_id).await? else {
            return Ok(());
        };
        if parent.status != Status::InProgress.as_str() {
            return Ok(());
        }
        if tx
            .passed_all_items(parent.user_id, parent.activity_id)
            .await?
        {
            change(
                tx,
                ctx,
                parent,
                Change {
                    status: Some(Status::Passed),
                    ..Change::default()
                },
            )
            .await?;
        }
        Ok(())
    })
}
