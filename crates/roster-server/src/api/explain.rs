//! R20: why an enrollment exists, and why a user has (or has no)
//! enrollment in an activity. The engine finds the reasons; this module
//! answers them.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::enrollments::visible_enrollment;
use crate::api::views::TimestampText;
use crate::api::{EnrollmentView, json_response};
use crate::auth::Actor;
use crate::engine::explain::{
    self, Explanation, MissingPrerequisite, PairExplanation, PendingJob, Reason,
};
use crate::error::{ApiError, ApiResult};
use crate::input::{Query, path_id};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(explain_enrollment))
        .routes(routes!(explain_pair))
}

/// The query of `GET /explain`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    pub user_id: i64,
    pub activity_id: i64,
}

/// A pending post-enrollment job that will enroll the user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingJobView {
    pub job_id: i64,
    pub run_at: TimestampText,
    #[schema(required = true)]
    pub rule_id: Option<i64>,
}

impl From<&PendingJob> for PendingJobView {
    fn from(job: &PendingJob) -> PendingJobView {
        PendingJobView {
            job_id: job.job_id,
            run_at: TimestampText(job.run_at),
            rule_id: job.rule_id,
        }
    }
}

/// Why a user has, or has no, enrollment in an activity.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairAnswer<'a> {
    pub user_id: i64,
    pub activity_id: i64,
    /// Whether the user has an open enrollment in the activity.
    pub enrolled: bool,
    #[schema(value_type = Option<EnrollmentView>, required = true)]
    pub open_enrollment: Option<EnrollmentView<'a>>,
    /// Enrollments in the activity, open or closed.
    pub enrollment_count: usize,
    /// Why the open enrollment exists.
    #[schema(value_type = Option<Explanation>, required = true)]
    pub explanation: Option<&'a Explanation>,
    #[schema(value_type = Vec<Reason>)]
    pub reasons: &'a [Reason],
    #[schema(value_type = Vec<MissingPrerequisite>)]
    pub missing_prerequisites: &'a [MissingPrerequisite],
    pub pending_jobs: Vec<PendingJobView>,
}

/// Why this enrollment exists: its chain of sources up to a person or a
/// rule (R20). A learner may ask about their own.
#[utoipa::path(
    get, path = "/enrollments/{id}/explain", tag = "enrollments",
    params(("id" = i64, Path, description = "The enrollment's id")),
    responses((status = 200, description = "The enrollment's chain of sources", body = Explanation))
)]
pub async fn explain_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Explanation>> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    let record = visible_enrollment(&mut tx, &actor, id).await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let answer = explain::explain_enrollment(&mut tx, &ctx, &record).await?;
    tx.rollback().await?;
    Ok(Json(answer))
}

/// Why a user has, or has no, enrollment in an activity (R20).
#[utoipa::path(
    get, path = "/explain", tag = "enrollments",
    params(ExplainQuery),
    responses((status = 200, description = "The reasons", body = PairAnswer))
)]
pub async fn explain_pair(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<ExplainQuery>,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let user = tx
        .get_user(query.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let activity = tx
        .get_activity(query.activity_id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let found: PairExplanation = explain::explain_pair(&mut tx, &ctx, &user, activity).await?;
    tx.rollback().await?;
    let today = ctx.today.to_string();
    Ok(json_response(&PairAnswer {
        user_id: found.user_id,
        activity_id: found.activity_id,
        enrolled: found.open_enrollment.is_some(),
        open_enrollment: found
            .open_enrollment
            .as_ref()
            .map(|record| EnrollmentView::of(record, &today)),
        enrollment_count: found.enrollment_count,
        explanation: found.explanation.as_ref(),
        reasons: &found.reasons,
        missing_prerequisites: &found.missing_prerequisites,
        pending_jobs: found
            .pending_jobs
            .iter()
            .map(PendingJobView::from)
            .collect(),
    }))
}
