//! The REST API under `/api/v1`: routes, shared views of records, pagination
//! and CSV output.

pub mod activities;
pub mod admin;
pub mod enrollments;
pub mod forecast;
pub mod groups;
pub mod imports;
pub mod learner;
pub mod operations;
pub mod users;
pub mod views;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use jiff::Timestamp;
use roster_store::{ActivityBrief, EnrollmentRecord, EnrollmentRow, Tx};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;

use crate::engine::rules::{activity_from, post_rule_from};
use crate::state::AppState;

/// Every route of the API, relative to `/api/v1`, with its operations for
/// the document.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(users::routes())
        .merge(groups::routes())
        .route(
            "/users/{id}/enrollments",
            get(enrollments::list_user_enrollments),
        )
        .route(
            "/activities",
            post(activities::create_activity).get(activities::list_activities),
        )
        .route(
            "/activities/{id}",
            get(activities::get_activity).patch(activities::patch_activity),
        )
        .route(
            "/activities/{id}/auto-enrollment",
            put(activities::put_auto_enrollment),
        )
        .route(
            "/activities/{id}/auto-enrollment/preview",
            post(activities::preview_auto_enrollment),
        )
        .route(
            "/activities/{id}/post-enrollments",
            get(activities::list_post_rules).post(activities::create_post_rule),
        )
        .route(
            "/activities/{id}/post-enrollments/{rule_id}",
            axum::routing::patch(activities::patch_post_rule).delete(activities::delete_post_rule),
        )
        .route(
            "/activities/{id}/enrollments",
            post(enrollments::enroll_users).get(enrollments::list_activity_enrollments),
        )
        .route("/enrollments", get(enrollments::list_enrollments))
        .route("/enrollments/bulk-update", post(enrollments::bulk_update))
        .route("/enrollments/bulk-delete", post(enrollments::bulk_delete))
        .route(
            "/enrollments/{id}",
            get(enrollments::get_enrollment).patch(enrollments::patch_enrollment),
        )
        .route(
            "/enrollments/{id}/explain",
            get(enrollments::explain_enrollment),
        )
        .route(
            "/enrollments/{id}/attachments",
            post(enrollments::upload_attachment)
                .layer(DefaultBodyLimit::disable())
                .get(enrollments::list_attachments),
        )
        .route(
            "/enrollments/{id}/attachments/{aid}",
            get(enrollments::download_attachment).delete(enrollments::delete_attachment),
        )
        .route(
            "/enrollments/{id}/tasks",
            post(enrollments::create_task).get(enrollments::list_tasks),
        )
        .route("/explain", get(enrollments::explain_pair))
        .route(
            "/maintenance/purge-inactive",
            post(enrollments::purge_inactive),
        )
        .route("/catalog", get(learner::catalog))
        .route("/me/enrollments", post(learner::self_enroll))
        .route("/enroll/{token}", post(learner::enroll_by_url))
        .route("/me/history", get(learner::history))
        .route("/me/plan", get(learner::plan))
        .route("/me/plan.ics", get(learner::plan_ics))
        .route("/me/home", get(learner::home))
        .merge(operations::routes())
        .merge(admin::routes())
        .merge(forecast::routes())
        .merge(imports::routes())
}

/// Records a change of one entity in the audit trail, by the context's actor.
pub async fn audit_change(
    tx: &mut Tx,
    ctx: &crate::state::Ctx,
    entity: &str,
    action: &str,
    id: i64,
    before: Option<Value>,
    after: Option<Value>,
) -> anyhow::Result<()> {
    tx.audit(
        roster_store::AuditEntry {
            actor_id: ctx.actor,
            action,
            entity,
            entity_id: Some(id),
            before: before.map(|value| value.to_string()),
            after: after.map(|value| value.to_string()),
        },
        ctx.micros(),
    )
    .await?;
    Ok(())
}

/// RFC 3339 text of a stored timestamp (microseconds).
pub fn timestamp_text(micros: i64) -> String {
    Timestamp::from_microsecond(micros)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

/// A timestamp (microseconds) written as `timestamp_text` writes it,
/// straight into the serializer: lists of hundreds of enrollments allocate
/// no text per date.
pub struct TimestampText(pub i64);

impl serde::Serialize for TimestampText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer
            .collect_str(&Timestamp::from_microsecond(self.0).unwrap_or(Timestamp::UNIX_EPOCH))
    }
}

/// `{"items":[…],"next_cursor":…}`; the cursor is the last item's id when
/// the page is full.
pub fn page(items: Vec<Value>, limit: i64) -> Value {
    let next_cursor = if items.len() as i64 >= limit {
        items
            .last()
            .and_then(|item| item["id"].as_i64())
            .map(|id| id.to_string())
    } else {
        None
    };
    json!({"items": items, "next_cursor": next_cursor})
}

pub async fn activity_json(
    tx: &mut Tx,
    record: roster_store::ActivityRecord,
) -> anyhow::Result<Value> {
    let prerequisite_ids = tx.prerequisite_ids(record.id).await?;
    let item_ids = tx.item_ids(record.id).await?;
    let post = tx.post_rules(record.id).await?;
    let activity = activity_from(record);
    let record = &activity.record;
    Ok(json!({
        "id": record.id,
        "title": record.title,
        "kind": record.kind,
        "active": record.active,
        "in_catalog": record.in_catalog,
        "allow_failure": record.allow_failure,
        "prerequisite_ids": prerequisite_ids,
        "item_ids": item_ids,
        "enrollment_url": format!("/api/v1/enroll/{}", record.enrollment_token),
        "auto_enrollment": activity.rule,
        "post_enrollments": post.iter().map(|rule| post_rule_json(&post_rule_from(rule))).collect::<Vec<_>>(),
        "created_at": timestamp_text(record.created_at),
    }))
}

pub fn post_rule_json(rule: &roster_core::PostRule) -> Value {
    json!({
        "id": rule.id,
        "activity_id": rule.activity_id,
        "when": rule.when,
        "delay_days": rule.delay_days,
        "target_ids": rule.target_ids,
        "allow_consecutive": rule.allow_consecutive,
    })
}

/// The API view of an enrollment; `overdue` is derived from `today` (R61).
/// Serialized straight from the record (the stored `source` JSON is written
/// through as it is), so lists of hundreds of enrollments cost no tree of
/// values.
#[derive(serde::Serialize)]
pub struct EnrollmentView<'a> {
    pub id: i64,
    pub user_id: i64,
    pub activity_id: i64,
    #[serde(rename = "type")]
    pub enrollment_type: &'a str,
    pub status: &'a str,
    pub due_on: Option<&'a str>,
    pub required_by: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub enrolled_at: TimestampText,
    pub completed_at: Option<TimestampText>,
    pub source: Option<&'a serde_json::value::RawValue>,
    pub period: Option<&'a str>,
    pub overdue: bool,
    /// With a row: the activity's title and kind and the learner's username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
}

impl<'a> EnrollmentView<'a> {
    pub fn of(record: &'a EnrollmentRecord, today: &str) -> Self {
        EnrollmentView {
            id: record.id,
            user_id: record.user_id,
            activity_id: record.activity_id,
            enrollment_type: &record.enrollment_type,
            status: &record.status,
            due_on: record.due_on.as_deref(),
            required_by: record.required_by.as_deref(),
            reason: record.reason.as_deref(),
            enrolled_at: TimestampText(record.enrolled_at),
            completed_at: record.completed_at.map(TimestampText),
            source: serde_json::from_str(&record.source).ok(),
            period: record.period.as_deref(),
            overdue: record.status == "in_progress"
                && record.due_on.as_deref().is_some_and(|due| due < today),
            activity_title: None,
            activity_kind: None,
            username: None,
        }
    }

    /// With the activity's title and kind as the learner's lists show
    /// them, and the learner's username.
    pub fn of_own(
        record: &'a EnrollmentRecord,
        activity: &'a ActivityBrief,
        username: &'a str,
        today: &str,
    ) -> Self {
        EnrollmentView {
            activity_title: Some(&activity.title),
            activity_kind: Some(&activity.kind),
            username: Some(username),
            ..EnrollmentView::of(record, today)
        }
    }

    pub fn of_row(row: &'a EnrollmentRow, today: &str) -> Self {
        EnrollmentView {
            activity_title: Some(&row.activity_title),
            activity_kind: Some(&row.activity_kind),
            username: Some(&row.username),
            ..EnrollmentView::of(&row.enrollment, today)
        }
    }
}

pub fn enrollment_view(record: &EnrollmentRecord, today: &str) -> Value {
    serde_json::to_value(EnrollmentView::of(record, today)).unwrap_or(Value::Null)
}

/// A page of typed items: `{"items":[…],"next_cursor":…}` as [`page`] writes it.
#[derive(serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, limit: i64, id_of: impl Fn(&T) -> i64) -> Self {
        let next_cursor = if items.len() as i64 >= limit {
            items.last().map(|item| id_of(item).to_string())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// A JSON response serialized into one growing buffer: a learner's long
/// list in fewer, larger copies than through `axum::Json`'s small writes.
pub fn json_response<T: serde::Serialize>(value: &T) -> Response {
    let mut body = Vec::with_capacity(16 * 1024);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(error) => crate::error::ApiError::from(anyhow::Error::from(error)).into_response(),
    }
}

/// Whether the client asked for CSV.
pub fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"))
}

/// A cell safe from formula injection in spreadsheets.
pub fn csv_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// Enrollment rows as CSV with a header row.
pub fn enrollments_csv(
    rows: &[EnrollmentRow],
    today: &str,
    filename: &str,
) -> anyhow::Result<Response> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "id",
        "user_id",
        "username",
        "activity_id",
        "activity_title",
        "type",
        "status",
        "due_on",
        "overdue",
        "required_by",
        "reason",
        "enrolled_at",
        "completed_at",
        "source",
        "period",
    ])?;
    for row in rows {
        let record = &row.enrollment;
        let overdue = record.status == "in_progress"
            && record.due_on.as_deref().is_some_and(|due| due < today);
        writer.write_record([
            record.id.to_string(),
            record.user_id.to_string(),
            csv_cell(&row.username),
            record.activity_id.to_string(),
            csv_cell(&row.activity_title),
            record.enrollment_type.clone(),
            record.status.clone(),
            record.due_on.clone().unwrap_or_default(),
            overdue.to_string(),
            csv_cell(record.required_by.as_deref().unwrap_or("")),
            csv_cell(record.reason.as_deref().unwrap_or("")),
            timestamp_text(record.enrolled_at),
            record.completed_at.map(timestamp_text).unwrap_or_default(),
            record.source_kind.clone(),
            record.period.clone().unwrap_or_default(),
        ])?;
    }
    let bytes = writer.into_inner()?;
    let mut response = bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
