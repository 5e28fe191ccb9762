//! Rows as the store returns them. Dates stay `YYYY-MM-DD` text and
//! timestamps microseconds; the server turns them into the API's shapes.

use sqlx::FromRow;

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    pub hired_on: Option<String>,
    pub external_id: Option<String>,
    pub employee_number: Option<String>,
    pub role: String,
    pub password_hash: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct GroupRecord {
    pub id: i64,
    pub name: String,
    pub member_count: i64,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct ActivityRecord {
    pub id: i64,
    pub title: String,
    pub kind: String,
    pub active: bool,
    pub in_catalog: bool,
    pub allow_failure: bool,
    pub enrollment_token: String,
    pub auto_rule: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct PostRuleRecord {
    pub id: i64,
    pub activity_id: i64,
    pub trigger_on: String,
    pub delay_days: i64,
    pub target_ids: String,
    pub allow_consecutive: bool,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct EnrollmentRecord {
    pub id: i64,
    pub user_id: i64,
    pub activity_id: i64,
    #[sqlx(rename = "type")]
    pub enrollment_type: String,
    pub status: String,
    pub due_on: Option<String>,
    pub required_by: Option<String>,
    pub reason: Option<String>,
    pub enrolled_at: i64,
    pub completed_at: Option<i64>,
    pub source_kind: String,
    pub source: String,
    pub period: Option<String>,
}

/// What a learner's lists show of an activity (`Tx::activity_briefs`).
#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct ActivityBrief {
    pub id: i64,
    pub title: String,
    pub kind: String,
    pub active: bool,
}

/// An enrollment with its activity's title, kind and active flag, for lists.
#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct EnrollmentRow {
    #[sqlx(flatten)]
    pub enrollment: EnrollmentRecord,
    pub activity_title: String,
    pub activity_kind: String,
    pub activity_active: bool,
    pub username: String,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct ExemptionRecord {
    pub id: i64,
    pub user_id: i64,
    pub activity_id: i64,
    pub reason: String,
    pub until: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct AttachmentRecord {
    pub id: i64,
    pub enrollment_id: i64,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub storage_name: String,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct TaskRecord {
    pub id: i64,
    pub enrollment_id: i64,
    pub title: String,
    pub completed_on: Option<String>,
    pub note: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i64>,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub run_at: i64,
    pub dedupe_key: Option<String>,
    pub payload: String,
    pub rule_id: Option<i64>,
    pub sweep_id: Option<i64>,
    pub user_id: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub outcome: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct SweepRecord {
    pub id: i64,
    pub state: String,
    pub dry_run: bool,
    pub trigger_by: String,
    pub day: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub created: i64,
    pub adopted: i64,
    pub closed: i64,
    pub skipped: i64,
    pub jobs_total: i64,
    pub jobs_done: i64,
    /// Real time the sweep took, once finished.
    pub duration_ms: Option<i64>,
}
