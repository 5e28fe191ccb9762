//! Enrollments for administrators: manual enrollment (R50), lists and CSV
//! (R55), details, bulk update (R51), bulk delete (R53), attachments and
//! tasks (R52), explain (R20) and the purge of inactive users' enrollments
//! (R54). Learners reach their own enrollments by id (R63).

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_core::{EnrollmentType, Source, Status};
use roster_store::{
    AttachmentRecord, AuditEntry, EnrollmentFilter, EnrollmentRecord, TaskRecord, Tx,
};
use serde_json::{Value, json};

use crate::api::{
    EnrollmentView, Page, enrollment_view, enrollments_csv, timestamp_text, wants_csv,
};
use crate::auth::{Actor, new_token};
use crate::body::{JsonBody, QueryParams, path_id};
use crate::engine::enroll::{
    AuditedEnrollment, Change, Created, NewEnrollment, change, change_fields_of_many,
    create_many_in,
};
use crate::engine::explain;
use crate::engine::rules::load_activity;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Ctx};

/// R50: an administrator enrolls users into an activity.
pub async fn enroll_users(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let activity_id = path_id(&id, "activity")?;
    let mut fields = body.fields();
    let user_ids = fields.ids("user_ids")?.unwrap_or_default();
    if user_ids.is_empty() {
        fields.error("user_ids", "needs at least one user");
    }
    let due_on = fields.date("due_on")?.flatten();
    let status = fields
        .enumeration::<Status>("status")?
        .unwrap_or(Status::InProgress);
    let enrollment_type = fields
        .enumeration::<EnrollmentType>("type")?
        .unwrap_or(EnrollmentType::Recommended);
    if enrollment_type == EnrollmentType::Elected {
        fields.error(
            "type",
            "elected enrollments are the learner's own choice; use recommended or required",
        );
    }
    let required_by = fields.nullable_string("required_by")?;
    let reason = fields.string("reason")?;
    fields.finish()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    // Read once for the whole request: the activity with its post rules,
    // and which users exist.
    let activity = load_activity(&mut tx, activity_id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?
        .with_post_rules(&mut tx)
        .await?;
    let existing = tx.existing_user_ids(&user_ids).await?;
    let default_by = if actor.user.display_name.is_empty() {
        actor.user.username.clone()
    } else {
        actor.user.display_name.clone()
    };
    let required_by = match required_by {
        None => Some(default_by),
        Some(value) => value,
    };
    // The users' enrollments are inserted together, then each one's effects
    // run; the answer keeps the request's order (a repeated user once).
    let mut seen = std::collections::HashSet::new();
    let mut news = Vec::with_capacity(user_ids.len());
    for &user_id in &user_ids {
        if existing.contains(&user_id) && seen.insert(user_id) {
            news.push(NewEnrollment {
                user_id,
                activity_id,
                enrollment_type,
                status,
                due_on,
                required_by: required_by.clone(),
                reason: reason.clone(),
                source: Source::Manual { by: actor.id() },
                period: None,
            });
        }
    }
    let mut outcomes = create_many_in(&mut tx, &ctx, &news, &activity)
        .await?
        .into_iter();
    let today = ctx.today.to_string();
    let mut results = Vec::with_capacity(user_ids.len());
    let mut answered = std::collections::HashSet::new();
    for user_id in user_ids {
        if !answered.insert(user_id) {
            continue;
        }
        if !existing.contains(&user_id) {
            results.push(json!({"user_id": user_id, "outcome": "user_not_found"}));
            continue;
        }
        match outcomes.next() {
            Some(Created::Created(record)) => results.push(json!({
                "user_id": user_id,
                "outcome": "created",
                "enrollment": enrollment_view(&record, &today),
            })),
            Some(Created::AlreadyEnrolled | Created::PeriodHeld) | None => {
                results.push(json!({"user_id": user_id, "outcome": "already_enrolled"}))
            }
        }
    }
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(Json(json!({"results": results})))
}

/// Reads the R55 filters of a list request.
fn list_filter(query: &QueryParams, today: String) -> ApiResult<EnrollmentFilter> {
    let (limit, cursor) = query.page()?;
    let source = query.text("source");
    if let Some(source) = &source
        && !Source::KINDS.contains(&source.as_str())
    {
        return Err(ApiError::invalid(
            "source",
            format!(
                "unknown value {source:?}; expected one of {}",
                Source::KINDS.join(", ")
            ),
        ));
    }
    Ok(EnrollmentFilter {
        user_id: query.int("user_id")?,
        activity_id: query.int("activity_id")?,
        status: query
            .enumeration::<Status>("status")?
            .map(|status| status.as_str().into()),
        enrollment_type: query
            .enumeration::<EnrollmentType>("type")?
            .map(|value| value.as_str().into()),
        source_kind: source,
        overdue: query.bool("overdue")?,
        today,
        due_from: query.date("due_from")?.map(|date| date.to_string()),
        due_to: query.date("due_to")?.map(|date| date.to_string()),
        title_q: query.text("q"),
        cursor,
        limit,
        ..EnrollmentFilter::default()
    })
}

async fn list_response(
    state: &AppState,
    headers: &HeaderMap,
    mut filter: EnrollmentFilter,
    filename: &str,
) -> ApiResult<Response> {
    let csv = wants_csv(headers);
    let limit = filter.limit;
    if csv && filter.cursor.is_none() {
        filter.limit = i64::MAX;
    }
    let mut tx = state.store.read().await?;
    let rows = tx.list_enrollments(&filter).await?;
    tx.rollback().await?;
    if csv {
        return Ok(enrollments_csv(&rows, &filter.today, filename)?);
    }
    let items = rows
        .iter()
        .map(|row| EnrollmentView::of_row(row, &filter.today))
        .collect();
    Ok(Json(Page::new(items, limit, |view: &EnrollmentView| view.id)).into_response())
}

async fn today_text(state: &AppState) -> ApiResult<String> {
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    tx.rollback().await?;
    Ok(ctx.today.to_string())
}

pub async fn list_enrollments(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    query: QueryParams,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let filter = list_filter(&query, today_text(&state).await?)?;
    list_response(&state, &headers, filter, "enrollments.csv").await
}

pub async fn list_activity_enrollments(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: QueryParams,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let mut tx = state.store.read().await?;
    tx.get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    tx.rollback().await?;
    let mut filter = list_filter(&query, today_text(&state).await?)?;
    filter.activity_id = Some(id);
    list_response(
        &state,
        &headers,
        filter,
        &format!("activity-{id}-enrollments.csv"),
    )
    .await
}

pub async fn list_user_enrollments(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: QueryParams,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut tx = state.store.read().await?;
    crate::api::users::visible_user(&mut tx, &actor, id).await?;
    tx.rollback().await?;
    let mut filter = list_filter(&query, today_text(&state).await?)?;
    filter.user_id = Some(id);
    list_response(
        &state,
        &headers,
        filter,
        &format!("user-{id}-enrollments.csv"),
    )
    .await
}

/// An enrollment the actor may see: learners only their own (R63), others 404.
pub async fn visible_enrollment(
    tx: &mut Tx,
    actor: &Actor,
    id: i64,
) -> ApiResult<EnrollmentRecord> {
    let record = tx
        .get_enrollment(id)
        .await?
        .ok_or_else(|| ApiError::not_found("enrollment"))?;
    if !actor.may_see_user(record.user_id) {
        return Err(ApiError::not_found("enrollment"));
    }
    Ok(record)
}

pub async fn get_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let record = visible_enrollment(&mut tx, &actor, id).await?;
    let mut view = enrollment_view(&record, &ctx.today.to_string());
    if let Some(activity) = tx.get_activity(record.activity_id).await? {
        view["activity_title"] = json!(activity.title);
    }
    if let Some(user) = tx.get_user(record.user_id).await? {
        view["user"] = crate::api::views::User::read(&mut tx, &user)
            .await?
            .audit_json();
    }
    tx.rollback().await?;
    Ok(Json(view))
}

/// Reads the fields of a PATCH or bulk update.
fn read_change(fields: &mut crate::body::Fields, bulk: bool) -> ApiResult<Change> {
    let mut change = Change {
        due_on: fields.date("due_on")?,
        status: fields.enumeration::<Status>("status")?,
        enrollment_type: fields.enumeration::<EnrollmentType>("type")?,
        ..Change::default()
    };
    if change.enrollment_type == Some(EnrollmentType::Elected) {
        fields.error("type", "an administrator cannot make an enrollment elected");
    }
    if !bulk {
        change.required_by = fields.nullable_string("required_by")?;
        change.reason = fields.nullable_string("reason")?;
    }
    Ok(change)
}

pub async fn patch_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.write().await?;
    let before = visible_enrollment(&mut tx, &actor, id).await?;
    let mut fields = body.fields();
    let change_request = read_change(&mut fields, false)?;
    fields.finish()?;
    if !actor.is_admin() {
        // R63: learners may drop or resume their own enrollments, nothing else.
        let only_status = change_request.due_on.is_none()
            && change_request.enrollment_type.is_none()
            && change_request.required_by.is_none()
            && change_request.reason.is_none();
        if !only_status
            || change_request
                .status
                .is_some_and(|status| status.is_complete())
        {
            return Err(ApiError::Forbidden(
                "learners cannot set their own status to passed or failed, nor change other fields"
                    .into(),
            ));
        }
    }
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let after = change(&mut tx, &ctx, before, change_request).await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(Json(enrollment_view(&after, &ctx.today.to_string())))
}

/// R51: bulk update of selected enrollments.
pub async fn bulk_update(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let mut fields = body.fields();
    let ids = fields.ids("ids")?.unwrap_or_default();
    if ids.is_empty() {
        fields.error("ids", "needs at least one enrollment");
    }
    let change_request = read_change(&mut fields, true)?;
    fields.finish()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let mut results = Vec::with_capacity(ids.len());
    let distinct = ids.iter().collect::<std::collections::HashSet<_>>().len() == ids.len();
    if change_request.status.is_none() && distinct {
        // Fields only: nothing is set off, and no enrollment's change
        // depends on another's. Read together, updated together.
        let today = ctx.today.to_string();
        let mut found = tx.get_enrollments(&ids).await?;
        let befores = ids.iter().filter_map(|id| found.remove(id)).collect();
        let afters = change_fields_of_many(&mut tx, &ctx, befores, &change_request).await?;
        for id in ids {
            results.push(match afters.get(&id) {
                Some(after) => json!({"id": id, "outcome": "updated", "enrollment": enrollment_view(after, &today)}),
                None => json!({"id": id, "outcome": "not_found"}),
            });
        }
        tx.commit().await?;
        return Ok(Json(json!({"results": results})));
    }
    // Read once for the whole request, unless a change may reach other
    // enrollments (a pass or a failure completes curricula and bundles,
    // R39, and opens next periods, R19): then each is read when its turn
    // comes, as the earlier changes left it.
    let cascades = change_request
        .status
        .is_some_and(|status| status.is_complete());
    let mut found = if cascades {
        Default::default()
    } else {
        tx.get_enrollments(&ids).await?
    };
    for id in ids {
        // (An id given twice is read again the second time.)
        let before = match found.remove(&id) {
            Some(record) => Some(record),
            None => tx.get_enrollment(id).await?,
        };
        let Some(before) = before else {
            results.push(json!({"id": id, "outcome": "not_found"}));
            continue;
        };
        // A conflict must not poison the transaction: check R2 first.
        if change_request.status == Some(Status::InProgress)
            && before.status != "in_progress"
            && tx
                .open_enrollment(before.user_id, before.activity_id)
                .await?
                .is_some()
        {
            results.push(json!({"id": id, "outcome": "conflict", "detail": "the user already has an open enrollment in this activity"}));
            continue;
        }
        let after = change(&mut tx, &ctx, before, change_request.clone()).await?;
        results.push(json!({"id": id, "outcome": "updated", "enrollment": enrollment_view(&after, &ctx.today.to_string())}));
    }
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(Json(json!({"results": results})))
}

async fn delete_one(
    state: &AppState,
    tx: &mut Tx,
    ctx: &Ctx,
    record: &EnrollmentRecord,
    action: &str,
) -> anyhow::Result<()> {
    let attachments = tx.attachments_of(record.id).await?;
    let tasks = tx.tasks_of(record.id).await?;
    let mut whole = serde_json::to_value(AuditedEnrollment::of(record))?;
    whole["attachments"] = json!(attachments.iter().map(attachment_json).collect::<Vec<_>>());
    whole["tasks"] = json!(tasks.iter().map(task_json).collect::<Vec<_>>());
    tx.delete_enrollment(record.id).await?;
    tx.audit(
        AuditEntry {
            actor_id: ctx.actor,
            action,
            entity: "enrollment",
            entity_id: Some(record.id),
            before: Some(whole.to_string()),
            after: None,
        },
        ctx.micros(),
    )
    .await?;
    for attachment in attachments {
        let path = state
            .data_dir
            .join("attachments")
            .join(&attachment.storage_name);
        let _ = tokio::fs::remove_file(path).await;
    }
    Ok(())
}

/// R53: permanent deletion after explicit confirmation; the audit log keeps
/// the deleted records whole.
pub async fn bulk_delete(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let mut fields = body.fields();
    let ids = fields.ids("ids")?.unwrap_or_default();
    if ids.is_empty() {
        fields.error("ids", "needs at least one enrollment");
    }
    if fields.bool("confirm")? != Some(true) {
        fields.error(
            "confirm",
            "deleting enrollments is permanent: send \"confirm\": true",
        );
    }
    fields.finish()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let mut deleted = Vec::new();
    let mut not_found = Vec::new();
    for id in ids {
        match tx.get_enrollment(id).await? {
            Some(record) => {
                delete_one(&state, &mut tx, &ctx, &record, "enrollment.delete").await?;
                deleted.push(id);
            }
            None => not_found.push(id),
        }
    }
    tx.commit().await?;
    Ok(Json(
        json!({"deleted": deleted.len(), "ids": deleted, "not_found": not_found}),
    ))
}

/// R54: delete every in-progress enrollment of inactive users, after a dry run.
pub async fn purge_inactive(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let mut fields = body.fields();
    let dry_run = fields.bool("dry_run")?;
    let confirm = fields.bool("confirm")?;
    if dry_run != Some(true) && confirm != Some(true) {
        fields.error("confirm", "send {\"dry_run\": true} to see what would be deleted, then {\"confirm\": true} to delete it");
    }
    fields.finish()?;
    let dry = dry_run == Some(true);
    let mut tx = if dry {
        state.store.read().await?
    } else {
        state.store.write().await?
    };
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let candidates = tx.purge_candidates().await?;
    let items: Vec<Value> = candidates
        .iter()
        .map(|record| enrollment_view(record, &ctx.today.to_string()))
        .collect();
    if dry {
        tx.rollback().await?;
        return Ok(Json(
            json!({"dry_run": true, "count": items.len(), "items": items}),
        ));
    }
    for record in &candidates {
        delete_one(&state, &mut tx, &ctx, record, "enrollment.purge").await?;
    }
    tx.audit(
        AuditEntry {
            actor_id: ctx.actor,
            action: "maintenance.purge_inactive",
            entity: "maintenance",
            entity_id: None,
            before: Some(Value::Array(items.clone()).to_string()),
            after: Some(json!({"deleted": items.len()}).to_string()),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({"dry_run": false, "count": items.len(), "items": items}),
    ))
}

pub async fn explain_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<explain::EnrollmentExplanation>> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    let record = visible_enrollment(&mut tx, &actor, id).await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let answer = explain::explain_enrollment(&mut tx, &ctx, &record).await?;
    tx.rollback().await?;
    Ok(Json(answer))
}

pub async fn explain_pair(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let mut errors = Vec::new();
    let user_id = query.int("user_id")?;
    let activity_id = query.int("activity_id")?;
    if user_id.is_none() {
        errors.push(crate::error::FieldError {
            field: "user_id".into(),
            message: "is required".into(),
        });
    }
    if activity_id.is_none() {
        errors.push(crate::error::FieldError {
            field: "activity_id".into(),
            message: "is required".into(),
        });
    }
    let (Some(user_id), Some(activity_id)) = (user_id, activity_id) else {
        return Err(ApiError::invalid_many(errors));
    };
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let user = tx
        .get_user(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let activity = tx
        .get_activity(activity_id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let explanation = explain::explain_pair(&mut tx, &ctx, &user, activity).await?;
    tx.rollback().await?;
    let today = ctx.today.to_string();
    let answer = PairAnswer {
        open_enrollment: explanation
            .open_enrollment
            .as_ref()
            .map(|record| EnrollmentView::of(record, &today)),
        explanation: &explanation,
    };
    Ok(crate::api::json_response(&answer))
}

/// `GET /explain`'s answer: the engine's explanation, with the open
/// enrollment as the API shows enrollments.
#[derive(serde::Serialize)]
struct PairAnswer<'a> {
    #[serde(flatten)]
    explanation: &'a explain::PairExplanation,
    open_enrollment: Option<EnrollmentView<'a>>,
}

pub fn attachment_json(record: &AttachmentRecord) -> Value {
    json!({
        "id": record.id,
        "enrollment_id": record.enrollment_id,
        "filename": record.filename,
        "content_type": record.content_type,
        "size_bytes": record.size_bytes,
        "created_by": record.created_by,
        "created_at": timestamp_text(record.created_at),
        "download_url": format!("/api/v1/enrollments/{}/attachments/{}", record.enrollment_id, record.id),
    })
}

pub fn task_json(record: &TaskRecord) -> Value {
    json!({
        "id": record.id,
        "enrollment_id": record.enrollment_id,
        "title": record.title,
        "completed_on": record.completed_on,
        "note": record.note,
        "created_by": record.created_by,
        "created_at": timestamp_text(record.created_at),
    })
}

/// R52: upload a `file` field, size-limited by `attachment_max_bytes`.
pub async fn upload_attachment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<impl IntoResponse> {
    actor.require_admin()?;
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    tx.get_enrollment(id)
        .await?
        .ok_or_else(|| ApiError::not_found("enrollment"))?;
    tx.rollback().await?;
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::BadRequest(format!("expected multipart/form-data: {rejection}"))
    })?;
    let limit = ctx.settings.attachment_max_bytes;
    let directory = state.data_dir.join("attachments");
    tokio::fs::create_dir_all(&directory)
        .await
        .map_err(anyhow::Error::from)?;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => {
                return Err(ApiError::invalid(
                    "file",
                    "is required: send the file in a multipart field named file",
                ));
            }
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge(format!(
                    "attachments are limited to {limit} bytes"
                )));
            }
            Err(error) => {
                return Err(ApiError::BadRequest(format!(
                    "malformed multipart body: {error}"
                )));
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        let filename = field
            .file_name()
            .map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name).to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "attachment".into());
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let storage_name = new_token();
        let path = directory.join(&storage_name);
        let mut field = field;
        let mut size: i64 = 0;
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(anyhow::Error::from)?;
        use tokio::io::AsyncWriteExt;
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(error) => {
                    let _ = tokio::fs::remove_file(&path).await;
                    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        return Err(ApiError::TooLarge(format!(
                            "attachments are limited to {limit} bytes"
                        )));
                    }
                    return Err(ApiError::BadRequest(format!(
                        "malformed multipart body: {error}"
                    )));
                }
            };
            size += chunk.len() as i64;
            if size > limit {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(ApiError::TooLarge(format!(
                    "attachments are limited to {limit} bytes"
                )));
            }
            file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
        }
        file.sync_all().await.map_err(anyhow::Error::from)?;
        let mut tx = state.store.write().await?;
        let record = AttachmentRecord {
            id: 0,
            enrollment_id: id,
            filename,
            content_type,
            size_bytes: size,
            storage_name,
            created_by: Some(actor.id()),
            created_at: ctx.micros(),
        };
        let attachment_id = tx.insert_attachment(&record).await?;
        let record = AttachmentRecord {
            id: attachment_id,
            ..record
        };
        tx.audit(
            AuditEntry {
                actor_id: Some(actor.id()),
                action: "attachment.create",
                entity: "enrollment",
                entity_id: Some(id),
                before: None,
                after: Some(attachment_json(&record).to_string()),
            },
            ctx.micros(),
        )
        .await?;
        tx.commit().await?;
        return Ok((StatusCode::CREATED, Json(attachment_json(&record))));
    }
}

pub async fn list_attachments(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    visible_enrollment(&mut tx, &actor, id).await?;
    let attachments = tx.attachments_of(id).await?;
    tx.rollback().await?;
    Ok(Json(
        json!({"items": attachments.iter().map(attachment_json).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

/// Content types served as they are; anything else (HTML, SVG, scripts…) is
/// served as bytes.
fn safe_content_type(stored: &str) -> &str {
    let lower = stored.to_ascii_lowercase();
    let safe = lower.starts_with("image/png")
        || lower.starts_with("image/jpeg")
        || lower.starts_with("image/gif")
        || lower.starts_with("image/webp")
        || lower.starts_with("application/pdf")
        || lower.starts_with("text/plain")
        || lower.starts_with("text/csv")
        || lower.starts_with("application/zip");
    if safe {
        stored
    } else {
        "application/octet-stream"
    }
}

pub async fn download_attachment(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, aid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = path_id(&id, "enrollment")?;
    let aid = path_id(&aid, "attachment")?;
    let mut tx = state.store.read().await?;
    visible_enrollment(&mut tx, &actor, id).await?;
    let record = tx
        .get_attachment(id, aid)
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    tx.rollback().await?;
    let bytes = tokio::fs::read(
        state
            .data_dir
            .join("attachments")
            .join(&record.storage_name),
    )
    .await
    .map_err(|_| ApiError::not_found("attachment file"))?;
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(safe_content_type(&record.content_type))
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    let ascii_name: String = record
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{ascii_name}\""))
            .unwrap_or(HeaderValue::from_static("attachment")),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

pub async fn delete_attachment(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, aid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    actor.require_admin()?;
    let id = path_id(&id, "enrollment")?;
    let aid = path_id(&aid, "attachment")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let record = tx
        .get_attachment(id, aid)
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    tx.delete_attachment(aid).await?;
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "attachment.delete",
            entity: "enrollment",
            entity_id: Some(id),
            before: Some(attachment_json(&record).to_string()),
            after: None,
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    let _ = tokio::fs::remove_file(
        state
            .data_dir
            .join("attachments")
            .join(&record.storage_name),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create_task(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    actor.require_admin()?;
    let id = path_id(&id, "enrollment")?;
    let mut fields = body.fields();
    let title = fields.required_string("title")?;
    let completed_on = fields.date("completed_on")?.flatten();
    let note = fields.string("note")?;
    fields.finish()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    tx.get_enrollment(id)
        .await?
        .ok_or_else(|| ApiError::not_found("enrollment"))?;
    let record = TaskRecord {
        id: 0,
        enrollment_id: id,
        title,
        completed_on: completed_on.map(|date| date.to_string()),
        note,
        created_by: Some(actor.id()),
        created_at: ctx.micros(),
    };
    let task_id = tx.insert_task(&record).await?;
    let record = TaskRecord {
        id: task_id,
        ..record
    };
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "task.create",
            entity: "enrollment",
            entity_id: Some(id),
            before: None,
            after: Some(task_json(&record).to_string()),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(task_json(&record))))
}

pub async fn list_tasks(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    visible_enrollment(&mut tx, &actor, id).await?;
    let tasks = tx.tasks_of(id).await?;
    tx.rollback().await?;
    Ok(Json(
        json!({"items": tasks.iter().map(task_json).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}
