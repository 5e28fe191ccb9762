//! The REST API under `/api/v1`: routes, shared views of records, pagination
//! and CSV output.

pub mod activities;
pub mod admin;
pub mod attachments;
pub mod enrollment_bulk;
pub mod enrollments;
pub mod explain;
pub mod forecast;
pub mod groups;
pub mod imports;
pub mod learner;
pub mod operations;
pub mod rules;
pub mod users;
pub mod views;

pub use views::{TimestampText, timestamp_text};

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use roster_store::{ActivityBrief, EnrollmentRecord, EnrollmentRow, Tx};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every route of the API, relative to `/api/v1`, with its operations for
/// the document.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(users::routes())
        .merge(groups::routes())
        .merge(learner::routes())
        .merge(enrollments::routes())
        .merge(enrollment_bulk::routes())
        .merge(attachments::routes())
        .merge(explain::routes())
        .merge(activities::routes())
        .merge(rules::routes())
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

/// The API view of an enrollment; `overdue` is derived from `today` (R61).
/// Serialized straight from the record (the stored `source` JSON is written
/// through as it is), so lists of hundreds of enrollments cost no tree of
/// values.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Enrollment)]
pub struct EnrollmentView<'a> {
    pub id: i64,
    pub user_id: i64,
    pub activity_id: i64,
    #[serde(rename = "type")]
    #[schema(value_type = roster_core::EnrollmentType)]
    pub enrollment_type: &'a str,
    #[schema(value_type = roster_core::Status)]
    pub status: &'a str,
    #[schema(value_type = Option<roster_core::date::Day>, required = true)]
    pub due_on: Option<&'a str>,
    #[schema(value_type = Option<String>, required = true)]
    pub required_by: Option<&'a str>,
    #[schema(value_type = Option<String>, required = true)]
    pub reason: Option<&'a str>,
    pub enrolled_at: views::TimestampText,
    /// Set when the status is `passed` or `failed` (R5).
    #[schema(value_type = Option<views::TimestampText>, required = true)]
    pub completed_at: Option<views::TimestampText>,
    #[schema(value_type = roster_core::Source, required = true)]
    pub source: Option<&'a serde_json::value::RawValue>,
    /// The auto-enrollment period the enrollment holds (R14).
    #[schema(value_type = Option<String>, required = true)]
    pub period: Option<&'a str>,
    /// In progress and due before today (R61).
    pub overdue: bool,
    /// With a row: the activity's title and kind and the learner's username.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub activity_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<roster_core::ActivityKind>)]
    pub activity_kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub username: Option<&'a str>,
    /// In the answer of `GET /enrollments/{id}`: the learner.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<views::User>)]
    pub user: Option<&'a views::User>,
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
            enrolled_at: views::TimestampText(record.enrolled_at),
            completed_at: record.completed_at.map(views::TimestampText),
            source: serde_json::from_str(&record.source).ok(),
            period: record.period.as_deref(),
            overdue: record_overdue(record, today),
            activity_title: None,
            activity_kind: None,
            username: None,
            user: None,
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
        let overdue = record_overdue(record, today);
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

/// R61's overdue, as the core defines it, of a stored enrollment.
fn record_overdue(record: &EnrollmentRecord, today: &str) -> bool {
    record
        .status
        .parse::<roster_core::Status>()
        .is_ok_and(|status| roster_core::is_overdue(status, record.due_on.as_deref(), today))
}
