//! An activity's rules: its auto-enrollment rule (R10–R13) with its preview
//! (R17), and its post-enrollment rules (R30, R31, R35). A rule body
//! deserializes into the core's own rule types.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use roster_core::calendar::{add_months, annual_period_end};
use roster_core::date::Day;
use roster_core::validate::AutoRuleInput;
use roster_core::{ActivityKind, AutoRule, MAX_DELAY_DAYS, Period, PostRule, Recurrence, Trigger};
use roster_store::{ActivityRecord, PostRuleRecord, Tx};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::activities::Activity;
use crate::api::views::{Page, page_bounds};
use crate::auth::Actor;
use crate::engine::rules::{activity_from, load_activity, post_rules};
use crate::engine::sweep::{RangeOutcome, sweep_range};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::input::{Body, OptionalBody, Query, from_json, path_id};
use crate::state::{AppState, Ctx};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_auto_enrollment))
        .routes(routes!(preview_auto_enrollment))
        .routes(routes!(list_post_rules, create_post_rule))
        .routes(routes!(patch_post_rule, delete_post_rule))
}

/// The body of the preview (R17): a rule as for `PUT …/auto-enrollment`, or
/// an empty object, `null` or no body for the saved rule.
pub struct PreviewBody(pub Option<AutoRuleInput>);

impl PreviewBody {
    /// Reads the rule of a non-empty object with the statuses of
    /// [`crate::input`], field paths included.
    fn read(object: Option<Map<String, Value>>) -> ApiResult<PreviewBody> {
        let Some(object) = object.filter(|object| !object.is_empty()) else {
            return Ok(PreviewBody(None));
        };
        let bytes = serde_json::to_vec(&object).map_err(anyhow::Error::from)?;
        Ok(PreviewBody(Some(from_json(&bytes)?)))
    }
}

impl PartialSchema for PreviewBody {
    fn schema() -> RefOr<Schema> {
        let saved = ObjectBuilder::new()
            .schema_type(Type::Object)
            .max_properties(Some(0))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .description(Some("The saved rule"));
        OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(AutoRuleInput::name()))
            .item(saved)
            .into()
    }
}

impl ToSchema for PreviewBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((AutoRuleInput::name().into(), AutoRuleInput::schema()));
        AutoRuleInput::schemas(schemas);
    }
}

/// The query of the preview: a page of its users.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Users per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// What a sweep today would do with a rule (R17).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preview {
    /// The rule previewed: the body's, else the saved one; null when neither
    /// is a rule, and then nothing would happen.
    #[schema(required = true)]
    pub rule: Option<AutoRule>,
    pub today: Day,
    /// Enrollments the sweep would create.
    pub enroll: i64,
    /// Open enrollments the sweep would take into the rule's period.
    pub adopt: i64,
    /// Open enrollments of earlier periods the sweep would close.
    pub close: i64,
    /// Users the sweep would pass over (exempt, already done, …).
    pub skip: i64,
    /// The users enrolled or adopted, by user id; `cursor` pages them.
    pub users: Page<PreviewUser>,
    /// For a change to a saved rule: the open enrollments whose due date
    /// (or the next period's) would move.
    pub due_date_changes: Vec<DueDateChange>,
}

impl Preview {
    /// The preview of no rule: nothing would happen.
    fn nothing(today: Day) -> Preview {
        Preview {
            rule: None,
            today,
            enroll: 0,
            adopt: 0,
            close: 0,
            skip: 0,
            users: Page {
                items: Vec::new(),
                next_cursor: None,
            },
            due_date_changes: Vec::new(),
        }
    }
}

/// A user the previewed sweep would enroll or adopt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewUser {
    pub user_id: i64,
    pub username: String,
    pub action: PreviewAction,
    /// The due date the enrollment would have.
    #[schema(value_type = Option<Day>, required = true)]
    pub due_on: Option<String>,
}

/// What the previewed sweep would do for a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreviewAction {
    Adopt,
    Enroll,
}

/// An open enrollment whose due date a change of rule would move.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DueDateChange {
    pub user_id: i64,
    pub enrollment_id: i64,
    /// The due date under the saved rule.
    #[schema(value_type = Option<Day>, required = true)]
    pub due_on: Option<String>,
    /// The due date under the proposed rule.
    pub new_due_on: Day,
    pub what: DueDateMove,
}

/// Which due date moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum DueDateMove {
    /// An annual rule's period ends on another day.
    #[serde(rename = "period end")]
    PeriodEnd,
    /// An every_months rule's next cycle, were the enrollment completed today.
    #[serde(rename = "next cycle if completed today")]
    NextCycle,
}

/// The body of `POST /activities/{id}/post-enrollments` (R31).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPostRuleBody {
    /// `failed` only while the activity's `allow_failure` is on.
    pub when: Trigger,
    /// Days after the trigger; default 0.
    #[schema(minimum = 0, maximum = 3650)]
    pub delay_days: Option<u32>,
    /// The activities to enroll into; at least one.
    #[schema(min_items = 1)]
    pub target_ids: Vec<i64>,
    /// Default `false` (R36).
    pub allow_consecutive: Option<bool>,
}

/// The body of `PATCH /activities/{id}/post-enrollments/{rule_id}`: only
/// the fields given change; `target_ids` replaces the list.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostRuleChangeBody {
    pub when: Option<Trigger>,
    #[schema(minimum = 0, maximum = 3650)]
    pub delay_days: Option<u32>,
    #[schema(min_items = 1)]
    pub target_ids: Option<Vec<i64>>,
    pub allow_consecutive: Option<bool>,
}

/// A post-enrollment rule's fields as validated.
#[derive(Debug)]
pub struct PostRuleChange {
    pub when: Option<Trigger>,
    pub delay_days: Option<u32>,
    pub target_ids: Option<Vec<i64>>,
    pub allow_consecutive: Option<bool>,
}

impl TryFrom<PostRuleChangeBody> for PostRuleChange {
    type Error = FieldErrors;

    fn try_from(body: PostRuleChangeBody) -> Result<PostRuleChange, FieldErrors> {
        let mut errors = FieldErrors::new();
        if let Some(days) = body.delay_days {
            errors.check(
                days <= MAX_DELAY_DAYS,
                "delay_days",
                format!("must be between 0 and {MAX_DELAY_DAYS}"),
            );
        }
        if let Some(target_ids) = &body.target_ids {
            errors.check(
                !target_ids.is_empty(),
                "target_ids",
                "needs at least one activity",
            );
        }
        errors.finish(PostRuleChange {
            when: body.when,
            delay_days: body.delay_days,
            target_ids: body.target_ids,
            allow_consecutive: body.allow_consecutive,
        })
    }
}

impl TryFrom<NewPostRuleBody> for PostRuleChange {
    type Error = FieldErrors;

    fn try_from(body: NewPostRuleBody) -> Result<PostRuleChange, FieldErrors> {
        PostRuleChange::try_from(PostRuleChangeBody {
            when: Some(body.when),
            delay_days: body.delay_days,
            target_ids: Some(body.target_ids),
            allow_consecutive: body.allow_consecutive,
        })
    }
}

impl PostRuleChange {
    /// `rule` with this change applied.
    fn apply(&self, rule: &PostRule) -> PostRule {
        let mut rule = rule.clone();
        rule.when = self.when.unwrap_or(rule.when);
        rule.delay_days = self.delay_days.unwrap_or(rule.delay_days);
        if let Some(target_ids) = &self.target_ids {
            rule.target_ids = target_ids.clone();
        }
        rule.allow_consecutive = self.allow_consecutive.unwrap_or(rule.allow_consecutive);
        rule
    }
}

async fn check_groups(tx: &mut Tx, rule: &AutoRule) -> ApiResult<()> {
    let missing = tx.missing_groups(&rule.group_ids).await?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::unknown(
        "group_ids",
        format!("unknown groups {missing:?}"),
    ))
}

/// Set or clear (`{"scope":"none"}`) the auto-enrollment rule (R10–R12).
#[utoipa::path(
    put, path = "/activities/{id}/auto-enrollment", tag = "activities",
    params(("id" = i64, Path, description = "The activity's id")),
    request_body = AutoRuleInput,
    responses((status = 200, description = "The activity with its rule", body = Activity))
)]
pub async fn put_auto_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Body(body): Body<AutoRuleInput>,
) -> ApiResult<Json<Activity>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let rule = Option::<AutoRule>::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = tx
        .get_activity(id)
        .await?
        .map(activity_from)
        .ok_or_else(|| ApiError::not_found("activity"))?;
    if let Some(rule) = &rule {
        check_groups(&mut tx, rule).await?;
    }
    let text = rule
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(anyhow::Error::from)?;
    let group_ids = rule
        .as_ref()
        .map(|rule| rule.group_ids.clone())
        .unwrap_or_default();
    tx.set_auto_rule(id, text.as_deref(), &group_ids, ctx.micros())
        .await?;
    crate::api::audit_change(
        &mut tx,
        &ctx,
        "activity",
        "activity.auto_enrollment",
        id,
        Some(json!({"auto_enrollment": before.rule})),
        Some(json!({"auto_enrollment": rule})),
    )
    .await?;
    let view = Activity::find(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// R17: what a sweep today would do with the body's rule (or the saved
/// one), computed by running it in a transaction that is rolled back.
#[utoipa::path(
    post, path = "/activities/{id}/auto-enrollment/preview", tag = "activities",
    params(("id" = i64, Path, description = "The activity's id"), PreviewQuery),
    request_body(content = Option<PreviewBody>, description = "A rule, or `{}`, `null` or no body for the saved rule"),
    responses((status = 200, description = "What a sweep today would do", body = Preview))
)]
pub async fn preview_auto_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(query): Query<PreviewQuery>,
    OptionalBody(object): OptionalBody<Option<Map<String, Value>>>,
) -> ApiResult<Json<Preview>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    // `None`: the saved rule; `Some(None)`: a proposed `{"scope":"none"}`.
    let proposed = PreviewBody::read(object.flatten())?
        .0
        .map(Option::<AutoRule>::try_from)
        .transpose()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let saved = load_activity(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let Some(rule) = proposed.clone().unwrap_or_else(|| saved.rule.clone()) else {
        tx.rollback().await?;
        return Ok(Json(Preview::nothing(Day(ctx.today))));
    };
    check_groups(&mut tx, &rule).await?;
    let due_date_changes = match (&saved.rule, &proposed) {
        (Some(old), Some(Some(new))) => due_date_changes(&mut tx, &ctx, id, old, new).await?,
        _ => Vec::new(),
    };
    let text = serde_json::to_string(&rule).map_err(anyhow::Error::from)?;
    tx.set_auto_rule(id, Some(&text), &rule.group_ids, ctx.micros())
        .await?;
    let activity = load_activity(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let outcome = sweep_range(&mut tx, &ctx, &activity, roster_core::sweep::UserRange::ALL).await?;
    let users = preview_users(&mut tx, &outcome, limit, cursor).await?;
    tx.rollback().await?;
    let counts = outcome.counts;
    Ok(Json(Preview {
        rule: Some(rule),
        today: Day(ctx.today),
        enroll: counts.created,
        adopt: counts.adopted,
        close: counts.closed,
        skip: counts.skipped,
        users,
        due_date_changes,
    }))
}

/// Every user the previewed sweep touches, in user order; details for one
/// page only.
async fn preview_users(
    tx: &mut Tx,
    outcome: &RangeOutcome,
    limit: i64,
    cursor: Option<i64>,
) -> ApiResult<Page<PreviewUser>> {
    let created = outcome
        .created
        .iter()
        .map(|(enrollment_id, user_id)| (*user_id, *enrollment_id, PreviewAction::Enroll));
    let adopted = outcome
        .adopted
        .iter()
        .map(|(enrollment_id, user_id)| (*user_id, *enrollment_id, PreviewAction::Adopt));
    let mut listed: Vec<(i64, i64, PreviewAction)> = created
        .chain(adopted)
        .filter(|(user_id, _, _)| cursor.is_none_or(|cursor| *user_id > cursor))
        .collect();
    listed.sort();
    let has_more = listed.len() as i64 > limit;
    listed.truncate(limit as usize);
    let mut items = Vec::with_capacity(listed.len());
    for (user_id, enrollment_id, action) in listed {
        let enrollment = tx.get_enrollment(enrollment_id).await?;
        let username = tx
            .get_user(user_id)
            .await?
            .map(|user| user.username)
            .unwrap_or_default();
        items.push(PreviewUser {
            user_id,
            username,
            action,
            due_on: enrollment.and_then(|enrollment| enrollment.due_on),
        });
    }
    let next_cursor = if has_more {
        items.last().map(|user| user.user_id.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// For a change to a saved rule: the open enrollments the rule holds whose
/// due date (or the next period's) would differ under the proposed rule.
async fn due_date_changes(
    tx: &mut Tx,
    ctx: &Ctx,
    activity_id: i64,
    old: &AutoRule,
    new: &AutoRule,
) -> ApiResult<Vec<DueDateChange>> {
    let mut changes = Vec::new();
    for record in tx.open_enrollments_in(activity_id).await? {
        let Some(period) = record.period.as_deref().and_then(Period::parse) else {
            continue;
        };
        let moved = match (&old.recurrence, &new.recurrence, &period) {
            (
                Recurrence::Annual {
                    due_each_year_on: old_day,
                },
                Recurrence::Annual {
                    due_each_year_on: new_day,
                },
                Period::Annual(_),
            ) if old_day != new_day => Some((
                record.due_on.clone(),
                annual_period_end(ctx.today, *new_day),
                DueDateMove::PeriodEnd,
            )),
            (
                Recurrence::EveryMonths { months: old_months },
                Recurrence::EveryMonths { months: new_months },
                Period::Cycle(_),
            ) if old_months != new_months => Some((
                Some(add_months(ctx.today, *old_months).to_string()),
                add_months(ctx.today, *new_months),
                DueDateMove::NextCycle,
            )),
            _ => None,
        };
        if let Some((due_on, new_due_on, what)) = moved {
            changes.push(DueDateChange {
                user_id: record.user_id,
                enrollment_id: record.id,
                due_on,
                new_due_on: Day(new_due_on),
                what,
            });
        }
    }
    Ok(changes)
}

async fn check_post_rule(tx: &mut Tx, activity: &ActivityRecord, rule: &PostRule) -> ApiResult<()> {
    let kind: ActivityKind = activity.kind.parse().unwrap_or(ActivityKind::OnlineCourse);
    if !kind.accepts_post_enrollments() {
        return Err(ApiError::rule(
            "post-enrollment rules cannot be added to course bundles (R30)",
        ));
    }
    if rule.when == Trigger::Failed && !activity.allow_failure {
        return Err(ApiError::invalid(
            "when",
            "failed can be chosen only while the activity's allow_failure is on (R31)",
        ));
    }
    let missing = tx.missing_activities(&rule.target_ids).await?;
    if !missing.is_empty() {
        return Err(ApiError::unknown(
            "target_ids",
            format!("unknown activities {missing:?}"),
        ));
    }
    Ok(())
}

fn post_record(rule: &PostRule) -> PostRuleRecord {
    PostRuleRecord {
        id: rule.id,
        activity_id: rule.activity_id,
        trigger_on: rule.when.as_str().into(),
        delay_days: i64::from(rule.delay_days),
        target_ids: serde_json::to_string(&rule.target_ids).unwrap_or_else(|_| "[]".into()),
        allow_consecutive: rule.allow_consecutive,
    }
}

async fn audit_post_rule(
    tx: &mut Tx,
    ctx: &Ctx,
    action: &str,
    activity_id: i64,
    before: Option<&PostRule>,
    after: Option<&PostRule>,
) -> ApiResult<()> {
    let json = |rule: &PostRule| serde_json::to_value(rule).unwrap_or_default();
    crate::api::audit_change(
        tx,
        ctx,
        "activity",
        action,
        activity_id,
        before.map(json),
        after.map(json),
    )
    .await?;
    Ok(())
}

async fn find_post_rule(tx: &mut Tx, activity_id: i64, rule_id: i64) -> ApiResult<PostRule> {
    post_rules(tx, activity_id)
        .await?
        .into_iter()
        .find(|rule| rule.id == rule_id)
        .ok_or_else(|| ApiError::not_found("post-enrollment rule"))
}

/// The post-enrollment rules of an activity, all on one page.
#[utoipa::path(
    get, path = "/activities/{id}/post-enrollments", tag = "activities",
    params(("id" = i64, Path, description = "The activity's id")),
    responses((status = 200, description = "The activity's post-enrollment rules", body = Page<PostRule>))
)]
pub async fn list_post_rules(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Page<PostRule>>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let mut tx = state.store.read().await?;
    tx.get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let items = post_rules(&mut tx, id).await?;
    tx.rollback().await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Add a post-enrollment rule (R30, R31); not to course bundles.
#[utoipa::path(
    post, path = "/activities/{id}/post-enrollments", tag = "activities",
    params(("id" = i64, Path, description = "The activity's id")),
    request_body = NewPostRuleBody,
    responses((status = 201, description = "The new rule", body = PostRule))
)]
pub async fn create_post_rule(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Body(body): Body<NewPostRuleBody>,
) -> ApiResult<(StatusCode, Json<PostRule>)> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let change = PostRuleChange::try_from(body)?;
    let mut rule = change.apply(&PostRule {
        id: 0,
        activity_id: id,
        when: Trigger::Enrolled,
        delay_days: 0,
        target_ids: Vec::new(),
        allow_consecutive: false,
    });
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let activity = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    check_post_rule(&mut tx, &activity, &rule).await?;
    rule.id = tx
        .insert_post_rule(&post_record(&rule), ctx.micros())
        .await?;
    audit_post_rule(&mut tx, &ctx, "post_rule.create", id, None, Some(&rule)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// Change a post-enrollment rule; jobs it already queued keep their
/// snapshot (R35).
#[utoipa::path(
    patch, path = "/activities/{id}/post-enrollments/{rule_id}", tag = "activities",
    params(
        ("id" = i64, Path, description = "The activity's id"),
        ("rule_id" = i64, Path, description = "The rule's id"),
    ),
    request_body = PostRuleChangeBody,
    responses((status = 200, description = "The rule as changed", body = PostRule))
)]
pub async fn patch_post_rule(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, rule_id)): Path<(String, String)>,
    Body(body): Body<PostRuleChangeBody>,
) -> ApiResult<Json<PostRule>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let rule_id = path_id(&rule_id, "post-enrollment rule")?;
    let change = PostRuleChange::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let activity = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let before = find_post_rule(&mut tx, id, rule_id).await?;
    let rule = change.apply(&before);
    check_post_rule(&mut tx, &activity, &rule).await?;
    tx.update_post_rule(&post_record(&rule)).await?;
    audit_post_rule(
        &mut tx,
        &ctx,
        "post_rule.update",
        id,
        Some(&before),
        Some(&rule),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(rule))
}

/// Delete a post-enrollment rule; jobs it already queued still run (R35).
#[utoipa::path(
    delete, path = "/activities/{id}/post-enrollments/{rule_id}", tag = "activities",
    params(
        ("id" = i64, Path, description = "The activity's id"),
        ("rule_id" = i64, Path, description = "The rule's id"),
    ),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_post_rule(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, rule_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let rule_id = path_id(&rule_id, "post-enrollment rule")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = find_post_rule(&mut tx, id, rule_id).await?;
    tx.delete_post_rule(rule_id).await?;
    audit_post_rule(&mut tx, &ctx, "post_rule.delete", id, Some(&before), None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_delay_is_the_checked_one() {
        for schema in [NewPostRuleBody::schema(), PostRuleChangeBody::schema()] {
            let schema = serde_json::to_value(schema).unwrap_or_default();
            assert_eq!(
                schema["properties"]["delay_days"]["maximum"].as_u64(),
                Some(u64::from(MAX_DELAY_DAYS)),
                "{schema}"
            );
        }
    }
}
