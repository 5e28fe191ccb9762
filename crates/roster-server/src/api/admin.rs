//! Operations for administrators: sweeps (R13), jobs (R35), the clock,
//! audit, settings, exemptions (R21) and the forecast (R17).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use jiff::{Timestamp, ToSpan};
use roster_core::calendar::annual_period_end;
use roster_core::{Recurrence, Scope};
use roster_store::{AuditEntry, ExemptionRecord, JobFilter, JobRecord, StoreError, SweepRecord};
use serde_json::{Value, json};

use crate::api::{page, timestamp_text};
use crate::auth::Actor;
use crate::body::{JsonBody, QueryParams, path_id};
use crate::clock::ClockMode;
use crate::engine::jobs::{advance_clock, dry_run_counts, run_due};
use crate::engine::rules::activity_from;
use crate::engine::sweep::{activity_sweep, start_sweep as begin_sweep};
use crate::error::{ApiError, ApiResult};
use crate::settings::Settings;
use crate::state::AppState;

pub fn sweep_json(record: &SweepRecord) -> Value {
    json!({
        "id": record.id,
        "state": record.state,
        "dry_run": record.dry_run,
        "trigger": record.trigger_by,
        "day": record.day,
        "started_at": timestamp_text(record.started_at),
        "finished_at": record.finished_at.map(timestamp_text),
        "duration_ms": record.duration_ms,
        "created": record.created,
        "adopted": record.adopted,
        "closed": record.closed,
        "skipped": record.skipped,
        "jobs_total": record.jobs_total,
        "jobs_done": record.jobs_done,
    })
}

pub async fn start_sweep(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    actor.require_admin()?;
    let mut fields = body.fields();
    let dry_run = fields.bool("dry_run")?.unwrap_or(false);
    fields.finish()?;
    if dry_run {
        let mut tx = state.store.write().await?;
        let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
        let id = match tx
            .insert_sweep(
                true,
                "manual",
                &ctx.today.to_string(),
                ctx.micros(),
                Some(actor.id()),
            )
            .await
        {
            Ok(id) => id,
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::Conflict("another dry run is in progress".into()));
            }
            Err(error) => return Err(error.into()),
        };
        tx.commit().await?;
        let counts = dry_run_counts(&state, Some(actor.id())).await;
        let mut tx = state.store.write().await?;
        let record = match counts {
            Ok(counts) => {
                tx.add_sweep_counts(
                    id,
                    counts.created,
                    counts.adopted,
                    counts.closed,
                    counts.skipped,
                )
                .await?;
                tx.finish_sweep(id, "done", ctx.micros()).await?;
                tx.get_sweep(id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("sweep"))?
            }
            Err(error) => {
                tx.finish_sweep(id, "failed", ctx.micros()).await?;
                tx.commit().await?;
                return Err(error.into());
            }
        };
        tx.commit().await?;
        return Ok((StatusCode::ACCEPTED, Json(sweep_json(&record))));
    }
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    if let Some(running) = tx.running_sweep().await? {
        return Err(ApiError::Conflict(format!(
            "sweep {} is {}; wait for it to finish",
            running.id, running.state
        )));
    }
    let id = begin_sweep(&mut tx, &ctx, "manual", ctx.today).await?;
    let record = tx
        .get_sweep(id)
        .await?
        .ok_or_else(|| ApiError::not_found("sweep"))?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(sweep_json(&record))))
}

pub async fn list_sweeps(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let (limit, cursor) = query.page()?;
    let mut tx = state.store.read().await?;
    let sweeps = tx.list_sweeps(cursor, limit).await?;
    tx.rollback().await?;
    Ok(Json(page(sweeps.iter().map(sweep_json).collect(), limit)))
}

pub async fn get_sweep(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "sweep")?;
    let mut tx = state.store.read().await?;
    let record = tx
        .get_sweep(id)
        .await?
        .ok_or_else(|| ApiError::not_found("sweep"))?;
    tx.rollback().await?;
    Ok(Json(sweep_json(&record)))
}

pub fn job_json(record: &JobRecord) -> Value {
    let parse =
        |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::String(text.to_string()));
    json!({
        "id": record.id,
        "kind": record.kind,
        "state": record.state,
        "run_at": timestamp_text(record.run_at),
        "attempts": record.attempts,
        "rule_id": record.rule_id,
        "sweep_id": record.sweep_id,
        "user_id": record.user_id,
        "payload": parse(&record.payload),
        "outcome": record.outcome.as_deref().map(parse),
        "last_error": record.last_error,
        "created_at": timestamp_text(record.created_at),
        "finished_at": record.finished_at.map(timestamp_text),
    })
}

const JOB_STATES: &[&str] = &["pending", "running", "done", "failed", "cancelled"];
const JOB_KINDS: &[&str] = &["post_enrollment", "sweep_activity"];

pub async fn list_jobs(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let (limit, cursor) = query.page()?;
    let job_state = query.text("state");
    if let Some(value) = &job_state
        && !JOB_STATES.contains(&value.as_str())
    {
        return Err(ApiError::invalid(
            "state",
            format!(
                "unknown value {value:?}; expected one of {}",
                JOB_STATES.join(", ")
            ),
        ));
    }
    let kind = query.text("kind");
    if let Some(value) = &kind
        && !JOB_KINDS.contains(&value.as_str())
    {
        return Err(ApiError::invalid(
            "kind",
            format!(
                "unknown value {value:?}; expected one of {}",
                JOB_KINDS.join(", ")
            ),
        ));
    }
    let mut tx = state.store.read().await?;
    let jobs = tx
        .list_jobs(&JobFilter {
            state: job_state,
            kind,
            rule_id: query.int("rule_id")?,
            user_id: query.int("user_id")?,
            activity_id: query.int("activity_id")?,
            after_id: cursor.unwrap_or(0),
            limit,
        })
        .await?;
    tx.rollback().await?;
    Ok(Json(page(jobs.iter().map(job_json).collect(), limit)))
}

pub async fn get_job(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "job")?;
    let mut tx = state.store.read().await?;
    let record = tx
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    tx.rollback().await?;
    Ok(Json(job_json(&record)))
}

/// R35: cancel one pending job deliberately.
pub async fn cancel_job(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "job")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = tx
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if !tx.cancel_job(id, ctx.micros()).await? {
        return Err(ApiError::Conflict(format!(
            "job {id} is {}; only pending jobs can be cancelled",
            before.state
        )));
    }
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "job.cancel",
            entity: "job",
            entity_id: Some(id),
            before: Some(job_json(&before).to_string()),
            after: None,
        },
        ctx.micros(),
    )
    .await?;
    let after = tx
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    tx.commit().await?;
    Ok(Json(job_json(&after)))
}

pub async fn run_due_jobs(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let ran = run_due(&state).await?;
    Ok(Json(json!({"ran": ran})))
}

async fn clock_json(state: &AppState) -> ApiResult<Value> {
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    tx.rollback().await?;
    Ok(json!({
        "now": ctx.now.to_string(),
        "mode": state.clock.mode().as_str(),
        "today": ctx.today.to_string(),
        "timezone": ctx.settings.timezone,
    }))
}

pub async fn get_clock(State(state): State<AppState>, _actor: Actor) -> ApiResult<Json<Value>> {
    Ok(Json(clock_json(&state).await?))
}

/// Moves a manual clock forward, playing the time in between (sweeps and
/// jobs at their times) before answering.
pub async fn set_clock(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    if state.clock.mode() != ClockMode::Manual {
        return Err(ApiError::Forbidden(
            "the clock can be set only when the server runs with --clock manual".into(),
        ));
    }
    let mut fields = body.fields();
    let text = fields.required_string("now")?;
    fields.finish()?;
    let target: Timestamp = text
        .parse()
        .map_err(|_| ApiError::invalid("now", format!("{text:?} is not an RFC 3339 timestamp")))?;
    let current = state.clock.now();
    if target < current {
        return Err(ApiError::invalid(
            "now",
            format!("the clock only moves forward; it is {current}"),
        ));
    }
    advance_clock(&state, target).await?;
    Ok(Json(clock_json(&state).await?))
}

pub async fn list_audit(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let (limit, cursor) = query.page()?;
    let mut tx = state.store.read().await?;
    let entries = tx
        .list_audit(
            query.text("entity").as_deref(),
            query.int("id")?,
            cursor.unwrap_or(0),
            limit,
        )
        .await?;
    tx.rollback().await?;
    let parse = |text: &Option<String>| {
        text.as_deref()
            .map(|text| serde_json::from_str::<Value>(text).unwrap_or(Value::String(text.into())))
    };
    let items = entries
        .iter()
        .map(|entry| {
            json!({
                "id": entry.id,
                "at": timestamp_text(entry.at),
                "actor_id": entry.actor_id,
                "action": entry.action,
                "entity": entry.entity,
                "entity_id": entry.entity_id,
                "before": parse(&entry.before),
                "after": parse(&entry.after),
            })
        })
        .collect();
    Ok(Json(page(items, limit)))
}

pub async fn get_settings(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Settings>> {
    actor.require_admin()?;
    let mut tx = state.store.read().await?;
    let settings = Settings::load(&mut tx).await?;
    tx.rollback().await?;
    Ok(Json(settings))
}

pub async fn patch_settings(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<Json<Settings>> {
    actor.require_admin()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    // The settings as committed, not as cached: the change is made to them.
    let before = Settings::load(&mut tx).await?;
    let mut settings = before.clone();
    settings.patch(body.fields())?;
    settings.save(&mut tx).await?;
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "settings.update",
            entity: "settings",
            entity_id: None,
            before: Some(serde_json::to_string(&before).map_err(anyhow::Error::from)?),
            after: Some(serde_json::to_string(&settings).map_err(anyhow::Error::from)?),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    state.settings_cache.clear();
    Ok(Json(settings))
}

fn exemption_json(record: &ExemptionRecord) -> Value {
    json!({
        "id": record.id,
        "user_id": record.user_id,
        "activity_id": record.activity_id,
        "reason": record.reason,
        "until": record.until,
        "created_by": record.created_by,
        "created_at": timestamp_text(record.created_at),
    })
}

/// R21: exempt a user from an activity's automation.
pub async fn create_exemption(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    actor.require_admin()?;
    let mut fields = body.fields();
    let user_id = fields.int("user_id")?;
    let activity_id = fields.int("activity_id")?;
    if user_id.is_none() {
        fields.error("user_id", "is required");
    }
    if activity_id.is_none() {
        fields.error("activity_id", "is required");
    }
    let reason = fields.required_string("reason")?;
    let until = fields.date("until")?.flatten();
    fields.finish()?;
    let (user_id, activity_id) = (user_id.unwrap_or_default(), activity_id.unwrap_or_default());
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    tx.get_user(user_id)
        .await?
        .ok_or_else(|| ApiError::invalid("user_id", "unknown user"))?;
    tx.get_activity(activity_id)
        .await?
        .ok_or_else(|| ApiError::invalid("activity_id", "unknown activity"))?;
    let mut record = ExemptionRecord {
        id: 0,
        user_id,
        activity_id,
        reason,
        until: until.map(|date| date.to_string()),
        created_by: Some(actor.id()),
        created_at: ctx.micros(),
    };
    record.id = tx.insert_exemption(&record).await?;
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "exemption.create",
            entity: "exemption",
            entity_id: Some(record.id),
            before: None,
            after: Some(exemption_json(&record).to_string()),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(exemption_json(&record))))
}

pub async fn list_exemptions(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let (limit, cursor) = query.page()?;
    let mut tx = state.store.read().await?;
    let records = tx
        .list_exemptions(
            query.int("user_id")?,
            query.int("activity_id")?,
            cursor.unwrap_or(0),
            limit,
        )
        .await?;
    tx.rollback().await?;
    Ok(Json(page(
        records.iter().map(exemption_json).collect(),
        limit,
    )))
}

pub async fn delete_exemption(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    actor.require_admin()?;
    let id = path_id(&id, "exemption")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let record = tx
        .get_exemption(id)
        .await?
        .ok_or_else(|| ApiError::not_found("exemption"))?;
    tx.delete_exemption(id).await?;
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "exemption.delete",
            entity: "exemption",
            entity_id: Some(id),
            before: Some(exemption_json(&record).to_string()),
            after: None,
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// R17 forecast: per day of the range, what the rules and pending jobs will
/// do, from the rules, users and jobs as they stand.
pub async fn forecast(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let from = query.date("from")?.unwrap_or(ctx.today);
    let to = query
        .date("to")?
        .unwrap_or_else(|| from.checked_add(30.days()).unwrap_or(from));
    if to < from {
        return Err(ApiError::invalid("to", "must not be before from"));
    }
    if from
        .until(to)
        .map(|span| span.get_days())
        .unwrap_or(i32::MAX)
        > 3660
    {
        return Err(ApiError::invalid("to", "the range is limited to ten years"));
    }
    let only = query.int("activity_id")?;
    let mut days: std::collections::BTreeMap<String, Vec<Value>> =
        std::collections::BTreeMap::new();
    for record in tx.activities_with_rules().await? {
        if only.is_some_and(|id| id != record.id) {
            continue;
        }
        let activity = activity_from(record);
        let Some(rule) = activity.rule.clone() else {
            continue;
        };
        if rule.scope == Scope::None {
            continue;
        }
        let probe = activity_sweep(activity.record.id, &rule, ctx.today, &ctx, 0, i64::MAX);
        let matching = tx.sweep_matching_count(&probe).await?;
        if let Recurrence::Annual { due_each_year_on } = rule.recurrence {
            let mut day = from;
            while day <= to {
                let yesterday = day.yesterday().unwrap_or(day);
                if annual_period_end(yesterday, due_each_year_on)
                    != annual_period_end(day, due_each_year_on)
                {
                    let period = annual_period_end(day, due_each_year_on);
                    days.entry(day.to_string()).or_default().push(json!({
                        "kind": "annual_period_start",
                        "activity_id": activity.record.id,
                        "activity_title": activity.record.title,
                        "users": matching,
                        "period": period.to_string(),
                        "text": format!("{matching} users start a new annual period of \"{}\" (due {period})", activity.record.title),
                    }));
                }
                day = day.tomorrow().unwrap_or(to.tomorrow().unwrap_or(to));
                if day == jiff::civil::Date::MAX {
                    break;
                }
            }
        }
        for (due_on, count) in tx
            .due_counts(activity.record.id, &from.to_string(), &to.to_string())
            .await?
        {
            days.entry(due_on.clone()).or_default().push(json!({
                "kind": "enrollments_due",
                "activity_id": activity.record.id,
                "activity_title": activity.record.title,
                "count": count,
                "text": format!("{count} open enrollments in \"{}\" fall due", activity.record.title),
            }));
        }
    }
    let tz = ctx.settings.time_zone();
    let start = from
        .to_zoned(tz.clone())
        .map_err(anyhow::Error::from)?
        .timestamp()
        .as_microsecond();
    let end = to
        .tomorrow()
        .unwrap_or(to)
        .to_zoned(tz.clone())
        .map_err(anyhow::Error::from)?
        .timestamp()
        .as_microsecond();
    let mut per_day: std::collections::BTreeMap<String, (i64, std::collections::BTreeSet<i64>)> =
        Default::default();
    for job in tx.pending_jobs_between(start, end).await? {
        if job.kind != "post_enrollment" {
            continue;
        }
        let payload: Value = serde_json::from_str(&job.payload).unwrap_or(Value::Null);
        let targets: Vec<i64> =
            serde_json::from_value(payload["target_ids"].clone()).unwrap_or_default();
        if only
            .is_some_and(|id| !targets.contains(&id) && payload["activity_id"].as_i64() != Some(id))
        {
            continue;
        }
        let day = Timestamp::from_microsecond(job.run_at)
            .map_err(anyhow::Error::from)?
            .to_zoned(tz.clone())
            .date()
            .to_string();
        let entry = per_day.entry(day).or_default();
        entry.0 += 1;
        if let Some(rule_id) = job.rule_id {
            entry.1.insert(rule_id);
        }
    }
    for (day, (count, rules)) in per_day {
        days.entry(day).or_default().push(json!({
            "kind": "post_enrollment_jobs",
            "count": count,
            "rule_ids": rules,
            "text": format!("{count} post-enrollment jobs run"),
        }));
    }
    tx.rollback().await?;
    let days: Vec<Value> = days
        .into_iter()
        .map(|(date, events)| json!({"date": date, "events": events}))
        .collect();
    Ok(Json(
        json!({"from": from.to_string(), "to": to.to_string(), "days": days}),
    ))
}
