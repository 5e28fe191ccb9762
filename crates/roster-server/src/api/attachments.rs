//! An enrollment's attachments and tasks (R52): files uploaded as
//! `multipart/form-data`, size-limited by `attachment_max_bytes`, served
//! back only with safe content types; tasks are dated notes of work done.

use axum::Json;
use axum::body::Body as ResponseBody;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use roster_core::date::Day;
use roster_store::{AttachmentRecord, AuditEntry, TaskRecord};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::enrollments::visible_enrollment;
use crate::api::views::{Page, TimestampText};
use crate::auth::{Actor, new_token};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::input::{Body, path_id};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(
            OpenApiRouter::new()
                .routes(routes!(upload_attachment, list_attachments))
                .layer(DefaultBodyLimit::disable()),
        )
        .routes(routes!(download_attachment, delete_attachment))
        .routes(routes!(create_task, list_tasks))
}

/// An attachment as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub id: i64,
    pub enrollment_id: i64,
    pub filename: String,
    /// As uploaded; downloads of types not known to be safe are served as
    /// `application/octet-stream`.
    pub content_type: String,
    pub size_bytes: i64,
    #[schema(required = true)]
    pub created_by: Option<i64>,
    pub created_at: TimestampText,
    pub download_url: String,
}

impl Attachment {
    pub fn of(record: &AttachmentRecord) -> Attachment {
        Attachment {
            id: record.id,
            enrollment_id: record.enrollment_id,
            filename: record.filename.clone(),
            content_type: record.content_type.clone(),
            size_bytes: record.size_bytes,
            created_by: record.created_by,
            created_at: TimestampText(record.created_at),
            download_url: format!(
                "/api/v1/enrollments/{}/attachments/{}",
                record.enrollment_id, record.id
            ),
        }
    }

    fn audit_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A task as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub id: i64,
    pub enrollment_id: i64,
    pub title: String,
    #[schema(value_type = Option<Day>, required = true)]
    pub completed_on: Option<String>,
    #[schema(required = true)]
    pub note: Option<String>,
    #[schema(required = true)]
    pub created_by: Option<i64>,
    pub created_at: TimestampText,
}

impl Task {
    pub fn of(record: &TaskRecord) -> Task {
        Task {
            id: record.id,
            enrollment_id: record.enrollment_id,
            title: record.title.clone(),
            completed_on: record.completed_on.clone(),
            note: record.note.clone(),
            created_by: record.created_by,
            created_at: TimestampText(record.created_at),
        }
    }
}

/// The body of an attachment upload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its name and content type are kept.
    #[schema(format = Binary, value_type = String)]
    file: Vec<u8>,
}

/// The body of `POST /enrollments/{id}/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTaskBody {
    #[schema(min_length = 1)]
    pub title: String,
    pub completed_on: Option<Day>,
    pub note: Option<String>,
}

/// A task as validated.
#[derive(Debug)]
pub struct NewTask {
    pub title: String,
    pub completed_on: Option<Day>,
    pub note: Option<String>,
}

impl TryFrom<NewTaskBody> for NewTask {
    type Error = FieldErrors;

    fn try_from(body: NewTaskBody) -> Result<NewTask, FieldErrors> {
        let mut errors = FieldErrors::new();
        errors.check(!body.title.trim().is_empty(), "title", "must not be empty");
        errors.finish(NewTask {
            title: body.title,
            completed_on: body.completed_on,
            note: body.note,
        })
    }
}

/// The content types a download is served with: a safe stored type, or
/// bytes.
const SAFE_CONTENT_TYPES: [&str; 8] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/zip",
];

/// A stored file: its name under the attachments directory, and its size.
struct Stored {
    storage_name: String,
    size: i64,
}

fn too_large(limit: i64) -> ApiError {
    ApiError::TooLarge(format!("attachments are limited to {limit} bytes"))
}

fn malformed(error: axum::extract::multipart::MultipartError, limit: i64) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(limit);
    }
    ApiError::BadRequest(format!("malformed multipart body: {error}"))
}

/// Writes `field` under `directory`, at most `limit` bytes; nothing is left
/// behind when it fails.
async fn store_field(
    mut field: Field<'_>,
    directory: &std::path::Path,
    limit: i64,
) -> ApiResult<Stored> {
    let storage_name = new_token();
    let path = directory.join(&storage_name);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(anyhow::Error::from)?;
    let mut size: i64 = 0;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(malformed(error, limit));
            }
        };
        size += chunk.len() as i64;
        if size > limit {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(too_large(limit));
        }
        file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
    }
    file.sync_all().await.map_err(anyhow::Error::from)?;
    Ok(Stored { storage_name, size })
}

/// R52: upload a `file` field, size-limited by `attachment_max_bytes`.
#[utoipa::path(
    post, path = "/enrollments/{id}/attachments", tag = "attachments",
    params(("id" = i64, Path, description = "The enrollment's id")),
    request_body(content_type = "multipart/form-data", content = UploadForm),
    responses(
        (status = 201, description = "The new attachment", body = Attachment),
        (status = 413, description = "The file is larger than `attachment_max_bytes`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn upload_attachment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Attachment>)> {
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
    let field = loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => break field,
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(ApiError::invalid(
                    "file",
                    "is required: send the file in a multipart field named file",
                ));
            }
            Err(error) => return Err(malformed(error, limit)),
        }
    };
    let filename = field
        .file_name()
        .map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name).to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "attachment".into());
    let content_type = field
        .content_type()
        .unwrap_or("application/octet-stream")
        .to_string();
    let stored = store_field(field, &directory, limit).await?;
    let mut tx = state.store.write().await?;
    let mut record = AttachmentRecord {
        id: 0,
        enrollment_id: id,
        filename,
        content_type,
        size_bytes: stored.size,
        storage_name: stored.storage_name,
        created_by: Some(actor.id()),
        created_at: ctx.micros(),
    };
    record.id = tx.insert_attachment(&record).await?;
    let attachment = Attachment::of(&record);
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "attachment.create",
            entity: "enrollment",
            entity_id: Some(id),
            before: None,
            after: Some(attachment.audit_text()),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

/// An enrollment's attachments; a learner may list their own (R63).
#[utoipa::path(
    get, path = "/enrollments/{id}/attachments", tag = "attachments",
    params(("id" = i64, Path, description = "The enrollment's id")),
    responses((status = 200, description = "Every attachment, on one page", body = Page<Attachment>))
)]
pub async fn list_attachments(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Page<Attachment>>> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    visible_enrollment(&mut tx, &actor, id).await?;
    let attachments = tx.attachments_of(id).await?;
    tx.rollback().await?;
    Ok(Json(Page {
        items: attachments.iter().map(Attachment::of).collect(),
        next_cursor: None,
    }))
}

/// Content types served as they are; anything else (HTML, SVG, scripts…) is
/// served as bytes.
fn safe_content_type(stored: &str) -> &str {
    let lower = stored.to_ascii_lowercase();
    if SAFE_CONTENT_TYPES
        .iter()
        .any(|safe| lower.starts_with(safe))
    {
        stored
    } else {
        "application/octet-stream"
    }
}

/// Download an attachment; a learner may download their own (R63).
#[utoipa::path(
    get, path = "/enrollments/{id}/attachments/{aid}", tag = "attachments",
    params(
        ("id" = i64, Path, description = "The enrollment's id"),
        ("aid" = i64, Path, description = "The attachment's id"),
    ),
    responses((status = 200, description = "The file, with a safe content type or as bytes", content(
        (String = "application/octet-stream"),
        (String = "image/png"),
        (String = "image/jpeg"),
        (String = "image/gif"),
        (String = "image/webp"),
        (String = "application/pdf"),
        (String = "text/plain"),
        (String = "text/csv"),
        (String = "application/zip"),
    )))
)]
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
    let mut response = Response::new(ResponseBody::from(bytes));
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

/// Delete an attachment and its file.
#[utoipa::path(
    delete, path = "/enrollments/{id}/attachments/{aid}", tag = "attachments",
    params(
        ("id" = i64, Path, description = "The enrollment's id"),
        ("aid" = i64, Path, description = "The attachment's id"),
    ),
    responses((status = 204, description = "Deleted"))
)]
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
            before: Some(Attachment::of(&record).audit_text()),
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

/// Add a task to an enrollment.
#[utoipa::path(
    post, path = "/enrollments/{id}/tasks", tag = "attachments",
    params(("id" = i64, Path, description = "The enrollment's id")),
    request_body = NewTaskBody,
    responses((status = 201, description = "The new task", body = Task))
)]
pub async fn create_task(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Body(body): Body<NewTaskBody>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    actor.require_admin()?;
    let id = path_id(&id, "enrollment")?;
    let task = NewTask::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    tx.get_enrollment(id)
        .await?
        .ok_or_else(|| ApiError::not_found("enrollment"))?;
    let mut record = TaskRecord {
        id: 0,
        enrollment_id: id,
        title: task.title,
        completed_on: task.completed_on.map(|day| day.to_string()),
        note: task.note,
        created_by: Some(actor.id()),
        created_at: ctx.micros(),
    };
    record.id = tx.insert_task(&record).await?;
    let task = Task::of(&record);
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "task.create",
            entity: "enrollment",
            entity_id: Some(id),
            before: None,
            after: Some(serde_json::to_string(&task).map_err(anyhow::Error::from)?),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(task)))
}

/// An enrollment's tasks; a learner may list their own (R63).
#[utoipa::path(
    get, path = "/enrollments/{id}/tasks", tag = "attachments",
    params(("id" = i64, Path, description = "The enrollment's id")),
    responses((status = 200, description = "Every task, on one page", body = Page<Task>))
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Page<Task>>> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    visible_enrollment(&mut tx, &actor, id).await?;
    let tasks = tx.tasks_of(id).await?;
    tx.rollback().await?;
    Ok(Json(Page {
        items: tasks.iter().map(Task::of).collect(),
        next_cursor: None,
    }))
}
