//! Activities, their auto-enrollment rule (R10–R13) with its preview (R17),
//! and their post-enrollment rules (R30, R31, R35).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use roster_core::calendar::{add_months, annual_period_end};
use roster_core::validate::check_auto_rule;
use roster_core::{
    ActivityKind, AutoRule, MonthDay, OneTimeDue, Period, PostRule, Recurrence, Scope, Trigger,
};
use roster_store::{ActivityRecord, PostRuleRecord, Tx};
use serde_json::{Map, Value, json};

use crate::api::{activity_json, page, post_rule_json};
use crate::auth::{Actor, new_token};
use crate::body::{Fields, JsonBody, QueryParams, path_id};
use crate::engine::enroll::{NewEnrollment, create};
use crate::engine::rules::load_activity;
use crate::engine::sweep::sweep_range;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::{AppState, Ctx};

async fn audit_activity(
    tx: &mut Tx,
    ctx: &Ctx,
    action: &str,
    id: i64,
    before: Option<Value>,
    after: Option<Value>,
) -> anyhow::Result<()> {
    crate::api::audit_change(tx, ctx, "activity", action, id, before, after).await
}

/// Checks prerequisite and item ids against the store (422 field errors).
async fn check_links(
    tx: &mut Tx,
    id: Option<i64>,
    kind: ActivityKind,
    prerequisites: Option<&[i64]>,
    items: Option<&[i64]>,
) -> ApiResult<()> {
    let mut errors = Vec::new();
    if let Some(prerequisites) = prerequisites {
        let missing = tx.missing_activities(prerequisites).await?;
        if !missing.is_empty() {
            errors.push(FieldError {
                field: "prerequisite_ids".into(),
                message: format!("unknown activities {missing:?}"),
            });
        }
        if id.is_some_and(|id| prerequisites.contains(&id)) {
            errors.push(FieldError {
                field: "prerequisite_ids".into(),
                message: "an activity cannot be its own prerequisite".into(),
            });
        }
    }
    if let Some(items) = items {
        if !kind.has_items() && !items.is_empty() {
            errors.push(FieldError {
                field: "item_ids".into(),
                message: "only curricula and bundles hold items".into(),
            });
        }
        for item in items {
            match tx.get_activity(*item).await? {
                None => errors.push(FieldError {
                    field: "item_ids".into(),
                    message: format!("unknown activity {item}"),
                }),
                Some(record) => {
                    let item_kind: ActivityKind =
                        record.kind.parse().unwrap_or(ActivityKind::OnlineCourse);
                    if item_kind.has_items() || Some(*item) == id {
                        errors.push(FieldError {
                            field: "item_ids".into(),
                            message: format!("activity {item} is not a course"),
                        });
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_many(errors))
    }
}

pub async fn create_activity(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    actor.require_admin()?;
    let mut fields = body.fields();
    let title = fields.required_string("title")?;
    let kind = fields.enumeration::<ActivityKind>("kind")?;
    if kind.is_none() && !fields.has("kind") {
        fields.error("kind", "is required");
    }
    let active = fields.bool("active")?.unwrap_or(true);
    let in_catalog = fields.bool("in_catalog")?.unwrap_or(true);
    let allow_failure = fields.bool("allow_failure")?.unwrap_or(false);
    let prerequisites = fields.ids("prerequisite_ids")?.unwrap_or_default();
    let items = fields.ids("item_ids")?.unwrap_or_default();
    fields.finish()?;
    let kind = kind.ok_or_else(|| ApiError::invalid("kind", "is required"))?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    check_links(&mut tx, None, kind, Some(&prerequisites), Some(&items)).await?;
    let record = ActivityRecord {
        id: 0,
        title: title.trim().to_string(),
        kind: kind.as_str().into(),
        active,
        in_catalog,
        allow_failure,
        enrollment_token: new_token()[..32].to_string(),
        auto_rule: None,
        created_at: ctx.micros(),
    };
    let id = tx.insert_activity(&record, ctx.micros()).await?;
    tx.set_prerequisites(id, &prerequisites).await?;
    tx.set_items(id, &items).await?;
    let created = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let view = activity_json(&mut tx, created).await?;
    audit_activity(
        &mut tx,
        &ctx,
        "activity.create",
        id,
        None,
        Some(view.clone()),
    )
    .await?;
    tx.commit().await?;
    state.activity_cache.clear();
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list_activities(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let (limit, cursor) = query.page()?;
    let kind = query.enumeration::<ActivityKind>("kind")?;
    let mut tx = state.store.read().await?;
    let records = tx
        .list_activities(
            query.text("q").as_deref(),
            kind.map(|kind| kind.as_str()),
            false,
            cursor.unwrap_or(0),
            limit,
        )
        .await?;
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        items.push(activity_json(&mut tx, record).await?);
    }
    tx.rollback().await?;
    Ok(Json(page(items, limit)))
}

pub async fn get_activity(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let mut tx = state.store.read().await?;
    let record = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let view = activity_json(&mut tx, record).await?;
    tx.rollback().await?;
    Ok(Json(view))
}

pub async fn patch_activity(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let mut fields = body.fields();
    let title = fields.string("title")?;
    if title
        .as_deref()
        .is_some_and(|title| title.trim().is_empty())
    {
        fields.error("title", "must not be empty");
    }
    if fields.has("kind") {
        fields.error("kind", "cannot be changed");
    }
    let active = fields.bool("active")?;
    let in_catalog = fields.bool("in_catalog")?;
    let allow_failure = fields.bool("allow_failure")?;
    let prerequisites = fields.ids("prerequisite_ids")?;
    let items = fields.ids("item_ids")?;
    fields.finish()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let kind: ActivityKind = before.kind.parse().unwrap_or(ActivityKind::OnlineCourse);
    check_links(
        &mut tx,
        Some(id),
        kind,
        prerequisites.as_deref(),
        items.as_deref(),
    )
    .await?;
    let before_view = activity_json(&mut tx, before.clone()).await?;
    let mut record = before.clone();
    if let Some(title) = title {
        record.title = title.trim().to_string();
    }
    record.active = active.unwrap_or(record.active);
    record.in_catalog = in_catalog.unwrap_or(record.in_catalog);
    record.allow_failure = allow_failure.unwrap_or(record.allow_failure);
    tx.update_activity(&record, ctx.micros()).await?;
    if let Some(prerequisites) = &prerequisites {
        tx.set_prerequisites(id, prerequisites).await?;
    }
    if let Some(items) = &items {
        let old_items = tx.item_ids(id).await?;
        tx.set_items(id, items).await?;
        let added: Vec<i64> = items
            .iter()
            .copied()
            .filter(|item| !old_items.contains(item))
            .collect();
        if kind == ActivityKind::CourseBundle && !added.is_empty() {
            // R40: the one retroactive case; open bundle enrollments get the new courses.
            for bundle_enrollment in tx.open_enrollments_in(id).await? {
                for item in &added {
                    let source = roster_core::Source::Bundle {
                        enrollment_id: bundle_enrollment.id,
                    };
                    create(
                        &mut tx,
                        &ctx,
                        NewEnrollment::by_rule(bundle_enrollment.user_id, *item, source),
                    )
                    .await?;
                }
            }
        }
    }
    let after = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let view = activity_json(&mut tx, after).await?;
    audit_activity(
        &mut tx,
        &ctx,
        "activity.update",
        id,
        Some(before_view),
        Some(view.clone()),
    )
    .await?;
    tx.commit().await?;
    state.activity_cache.clear();
    state.jobs_ready.notify_waiters();
    Ok(Json(view))
}

/// Reads an auto-enrollment rule body; `Ok(None)` for scope `none`.
pub fn read_auto_rule(map: Map<String, Value>) -> ApiResult<Option<AutoRule>> {
    let mut fields = Fields::from_map(map);
    let scope = match fields.string("scope")?.as_deref() {
        None => {
            fields.error("scope", "is required");
            None
        }
        Some("none") => Some(Scope::None),
        Some("company") => Some(Scope::Company),
        Some("groups") => Some(Scope::Groups),
        Some(other) => {
            fields.error(
                "scope",
                format!("unknown value {other:?}; expected one of none, company, groups"),
            );
            None
        }
    };
    if scope == Some(Scope::None) {
        return Ok(None);
    }
    let group_ids = fields.ids("group_ids")?.unwrap_or_default();
    let hired_after = fields.date("hired_after")?.flatten();
    let initial_due_days = match fields.int("initial_due_days")? {
        None => None,
        Some(days) if (0..=3650).contains(&days) => Some(days as u32),
        Some(_) => {
            fields.error("initial_due_days", "must be between 0 and 3650");
            None
        }
    };
    let recurrence = match fields.raw("recurrence").cloned() {
        None | Some(Value::Null) => {
            fields.error("recurrence", "is required");
            None
        }
        Some(Value::Object(map)) => read_recurrence(&mut fields, map)?,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "field recurrence must be an object".into(),
            ));
        }
    };
    let (Some(scope), Some(recurrence)) = (scope, recurrence) else {
        fields.finish()?;
        return Err(ApiError::rule("invalid rule"));
    };
    let rule = AutoRule {
        scope,
        group_ids,
        hired_after,
        recurrence,
        initial_due_days,
    };
    for error in check_auto_rule(&rule) {
        fields.error(&error.field, error.message);
    }
    fields.finish()?;
    Ok(Some(rule))
}

fn read_recurrence(outer: &mut Fields, map: Map<String, Value>) -> ApiResult<Option<Recurrence>> {
    let mut fields = Fields::from_map(map);
    let kind = fields.string("kind")?;
    let recurrence = match kind.as_deref() {
        Some("one_time") => {
            let due = match fields.raw("due").cloned() {
                None | Some(Value::Null) => None,
                Some(Value::Object(due)) => {
                    let mut due_fields = Fields::from_map(due);
                    if due_fields.has("within_days") {
                        match due_fields.int("within_days")? {
                            Some(days) if (0..=3650).contains(&days) => {
                                Some(OneTimeDue::WithinDays(days as u32))
                            }
                            _ => {
                                outer.error(
                                    "recurrence.due.within_days",
                                    "must be between 0 and 3650",
                                );
                                None
                            }
                        }
                    } else if due_fields.has("on_date") {
                        match due_fields.date("on_date")? {
                            Some(Some(date)) => Some(OneTimeDue::OnDate(date)),
                            _ => {
                                outer.error(
                                    "recurrence.due.on_date",
                                    "must be a valid date YYYY-MM-DD",
                                );
                                None
                            }
                        }
                    } else {
                        outer.error(
                            "recurrence.due",
                            "must be null, {\"within_days\":N} or {\"on_date\":\"YYYY-MM-DD\"}",
                        );
                        None
                    }
                }
                Some(_) => {
                    return Err(ApiError::BadRequest(
                        "field recurrence.due must be an object or null".into(),
                    ));
                }
            };
            Some(Recurrence::OneTime { due })
        }
        Some("annual") => match fields.string("due_each_year_on")? {
            None => {
                outer.error("recurrence.due_each_year_on", "is required (MM-DD)");
                None
            }
            Some(text) => match MonthDay::parse(&text) {
                Some(month_day) => Some(Recurrence::Annual {
                    due_each_year_on: month_day,
                }),
                None => {
                    outer.error(
                        "recurrence.due_each_year_on",
                        format!("{text:?} is not a valid MM-DD"),
                    );
                    None
                }
            },
        },
        Some("every_months") => match fields.int("months")? {
            Some(months) if (1..=120).contains(&months) => Some(Recurrence::EveryMonths {
                months: months as u32,
            }),
            Some(_) => {
                outer.error("recurrence.months", "must be between 1 and 120");
                None
            }
            None => {
                outer.error("recurrence.months", "is required");
                None
            }
        },
        Some(other) => {
            outer.error(
                "recurrence.kind",
                format!("unknown value {other:?}; expected one of one_time, annual, every_months"),
            );
            None
        }
        None => {
            outer.error("recurrence.kind", "is required");
            None
        }
    };
    Ok(recurrence)
}

pub async fn put_auto_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(map): JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let rule = read_auto_rule(map)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    if let Some(rule) = &rule {
        let missing = tx.missing_groups(&rule.group_ids).await?;
        if !missing.is_empty() {
            return Err(ApiError::invalid(
                "group_ids",
                format!("unknown groups {missing:?}"),
            ));
        }
    }
    let json_text = rule
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(anyhow::Error::from)?;
    let group_ids = rule
        .as_ref()
        .map(|rule| rule.group_ids.clone())
        .unwrap_or_default();
    tx.set_auto_rule(id, json_text.as_deref(), &group_ids, ctx.micros())
        .await?;
    audit_activity(
        &mut tx,
        &ctx,
        "activity.auto_enrollment",
        id,
        Some(json!({"auto_enrollment": before.auto_rule.and_then(|text| serde_json::from_str::<Value>(&text).ok())})),
        Some(json!({"auto_enrollment": rule})),
    )
    .await?;
    let after = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let view = activity_json(&mut tx, after).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// R17: what a sweep today would do with the body's rule (or the saved one),
/// computed by running it in a transaction that is rolled back.
pub async fn preview_auto_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    query: QueryParams,
    JsonBody(map): JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let (limit, cursor) = query.page()?;
    let proposed = if map.is_empty() {
        None
    } else {
        Some(read_auto_rule(map)?)
    };
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let saved = load_activity(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let rule = match &proposed {
        Some(rule) => rule.clone(),
        None => saved.rule.clone(),
    };
    let Some(rule) = rule else {
        tx.rollback().await?;
        return Ok(Json(
            json!({"rule": null, "enroll": 0, "adopt": 0, "close": 0, "skip": 0, "users": {"items": [], "next_cursor": null}, "due_date_changes": []}),
        ));
    };
    let missing = tx.missing_groups(&rule.group_ids).await?;
    if !missing.is_empty() {
        return Err(ApiError::invalid(
            "group_ids",
            format!("unknown groups {missing:?}"),
        ));
    }
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
    let outcome = sweep_range(&mut tx, &ctx, &activity, 0, i64::MAX).await?;
    // Every user the sweep would touch, in user order; details for one page only.
    let mut listed: Vec<(i64, i64, &str)> = outcome
        .created
        .iter()
        .map(|(id, user)| (*user, *id, "enroll"))
        .chain(
            outcome
                .adopted
                .iter()
                .map(|(id, user)| (*user, *id, "adopt")),
        )
        .filter(|(user, _, _)| cursor.is_none_or(|cursor| *user > cursor))
        .collect();
    listed.sort();
    let has_more = listed.len() as i64 > limit;
    listed.truncate(limit as usize);
    let mut users: Vec<Value> = Vec::with_capacity(listed.len());
    for (user_id, enrollment_id, action) in listed {
        let enrollment = tx.get_enrollment(enrollment_id).await?;
        let username = tx
            .get_user(user_id)
            .await?
            .map(|user| user.username)
            .unwrap_or_default();
        users.push(json!({"user_id": user_id, "username": username, "action": action, "due_on": enrollment.and_then(|e| e.due_on)}));
    }
    let outcome = outcome.counts;
    tx.rollback().await?;
    let next_cursor = has_more
        .then(|| {
            users
                .last()
                .and_then(|user| user["user_id"].as_i64())
                .map(|id| id.to_string())
        })
        .flatten();
    Ok(Json(json!({
        "rule": rule,
        "today": ctx.today.to_string(),
        "enroll": outcome.created,
        "adopt": outcome.adopted,
        "close": outcome.closed,
        "skip": outcome.skipped,
        "users": {"items": users, "next_cursor": next_cursor},
        "due_date_changes": due_date_changes,
    })))
}

/// For a change to a saved rule: the open enrollments the rule holds whose
/// due date (or the next period's) would differ under the proposed rule.
async fn due_date_changes(
    tx: &mut Tx,
    ctx: &Ctx,
    activity_id: i64,
    old: &AutoRule,
    new: &AutoRule,
) -> anyhow::Result<Vec<Value>> {
    let mut changes = Vec::new();
    for record in tx.open_enrollments_in(activity_id).await? {
        let Some(period) = record.period.as_deref().and_then(Period::parse) else {
            continue;
        };
        let moved = match (&old.recurrence, &new.recurrence, &period) {
            (
                Recurrence::Annual {
                    due_each_year_on: a,
                },
                Recurrence::Annual {
                    due_each_year_on: b,
                },
                Period::Annual(_),
            ) if a != b => {
                let next = annual_period_end(ctx.today, *b);
                Some((record.due_on.clone(), Some(next.to_string()), "period end"))
            }
            (
                Recurrence::EveryMonths { months: a },
                Recurrence::EveryMonths { months: b },
                Period::Cycle(_),
            ) if a != b => Some((
                Some(add_months(ctx.today, *a).to_string()),
                Some(add_months(ctx.today, *b).to_string()),
                "next cycle if completed today",
            )),
            _ => None,
        };
        if let Some((from, to, what)) = moved {
            changes.push(json!({"user_id": record.user_id, "enrollment_id": record.id, "due_on": from, "new_due_on": to, "what": what}));
        }
    }
    Ok(changes)
}

/// Reads a post-enrollment rule body onto `rule` (R30, R31).
fn read_post_rule(fields: &mut Fields, rule: &mut PostRule, creating: bool) -> ApiResult<()> {
    match fields.enumeration::<Trigger>("when")? {
        Some(when) => rule.when = when,
        None if creating && !fields.has("when") => fields.error("when", "is required"),
        None => {}
    }
    if let Some(days) = fields.int("delay_days")? {
        if (0..=3650).contains(&days) {
            rule.delay_days = days as u32;
        } else {
            fields.error("delay_days", "must be between 0 and 3650");
        }
    }
    match fields.ids("target_ids")? {
        Some(ids) if ids.is_empty() => fields.error("target_ids", "needs at least one activity"),
        Some(ids) => rule.target_ids = ids,
        None if creating => fields.error("target_ids", "is required"),
        None => {}
    }
    if let Some(allow) = fields.bool("allow_consecutive")? {
        rule.allow_consecutive = allow;
    }
    Ok(())
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
        return Err(ApiError::invalid(
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
        delay_days: rule.delay_days as i64,
        target_ids: serde_json::to_string(&rule.target_ids).unwrap_or_else(|_| "[]".into()),
        allow_consecutive: rule.allow_consecutive,
    }
}

pub async fn list_post_rules(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let mut tx = state.store.read().await?;
    tx.get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let rules = crate::engine::rules::post_rules(&mut tx, id).await?;
    tx.rollback().await?;
    Ok(Json(
        json!({"items": rules.iter().map(post_rule_json).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

pub async fn create_post_rule(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let mut fields = body.fields();
    let mut rule = PostRule {
        id: 0,
        activity_id: id,
        when: Trigger::Enrolled,
        delay_days: 0,
        target_ids: Vec::new(),
        allow_consecutive: false,
    };
    read_post_rule(&mut fields, &mut rule, true)?;
    fields.finish()?;
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
    audit_activity(
        &mut tx,
        &ctx,
        "post_rule.create",
        id,
        None,
        Some(post_rule_json(&rule)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(post_rule_json(&rule))))
}

async fn find_post_rule(tx: &mut Tx, activity_id: i64, rule_id: i64) -> ApiResult<PostRule> {
    crate::engine::rules::post_rules(tx, activity_id)
        .await?
        .into_iter()
        .find(|rule| rule.id == rule_id)
        .ok_or_else(|| ApiError::not_found("post-enrollment rule"))
}

pub async fn patch_post_rule(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, rule_id)): Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let rule_id = path_id(&rule_id, "post-enrollment rule")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let activity = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let before = find_post_rule(&mut tx, id, rule_id).await?;
    let mut rule = before.clone();
    let mut fields = body.fields();
    read_post_rule(&mut fields, &mut rule, false)?;
    fields.finish()?;
    check_post_rule(&mut tx, &activity, &rule).await?;
    tx.update_post_rule(&post_record(&rule)).await?;
    audit_activity(
        &mut tx,
        &ctx,
        "post_rule.update",
        id,
        Some(post_rule_json(&before)),
        Some(post_rule_json(&rule)),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(post_rule_json(&rule)))
}

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
    audit_activity(
        &mut tx,
        &ctx,
        "post_rule.delete",
        id,
        Some(post_rule_json(&before)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
