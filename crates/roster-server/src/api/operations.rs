//! Running the engine by hand: sweeps (R13), the job queue (R35) and the
//! clock (`--clock manual` plays the time in between when it moves).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use roster_core::date::Day;
use roster_store::{AuditEntry, JobFilter, JobRecord, StoreError, SweepRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::views::{Page, TimestampText, page_bounds};
use crate::auth::Actor;
use crate::clock::ClockMode;
use crate::engine::jobs::{advance_clock, dry_run_counts, run_due};
use crate::engine::sweep::start_sweep as begin_sweep;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::input::{Body, OptionalBody, Query, path_id};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_sweep, list_sweeps))
        .routes(routes!(get_sweep))
        .routes(routes!(list_jobs))
        .routes(routes!(run_due_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(get_clock, set_clock))
}

/// Where a sweep is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SweepState {
    Queued,
    Running,
    Done,
    Failed,
}

/// What started a sweep: an administrator (or `roster sweep`), or the
/// nightly schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SweepTrigger {
    Manual,
    Nightly,
}

/// A sweep and its counts so far.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    pub id: i64,
    #[schema(value_type = SweepState)]
    pub state: String,
    /// A dry run counts what a sweep would do and changes nothing.
    pub dry_run: bool,
    #[schema(value_type = SweepTrigger)]
    pub trigger: String,
    /// The day the sweep takes as today.
    #[schema(value_type = Day)]
    pub day: String,
    pub started_at: TimestampText,
    #[schema(required = true)]
    pub finished_at: Option<TimestampText>,
    /// Real time the sweep took, once finished.
    #[schema(required = true)]
    pub duration_ms: Option<i64>,
    pub created: i64,
    pub adopted: i64,
    pub closed: i64,
    pub skipped: i64,
    /// The sweep's jobs (one per activity with a rule) and how many are done.
    pub jobs_total: i64,
    pub jobs_done: i64,
}

impl From<&SweepRecord> for Sweep {
    fn from(record: &SweepRecord) -> Sweep {
        Sweep {
            id: record.id,
            state: record.state.clone(),
            dry_run: record.dry_run,
            trigger: record.trigger_by.clone(),
            day: record.day.clone(),
            started_at: TimestampText(record.started_at),
            finished_at: record.finished_at.map(TimestampText),
            duration_ms: record.duration_ms,
            created: record.created,
            adopted: record.adopted,
            closed: record.closed,
            skipped: record.skipped,
            jobs_total: record.jobs_total,
            jobs_done: record.jobs_done,
        }
    }
}

/// The body of `POST /sweeps`; it may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepBody {
    /// Count what a sweep today would do without changing anything; default
    /// `false`.
    pub dry_run: Option<bool>,
}

/// The query of `GET /sweeps` (newest first).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SweepListQuery {
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// Where a job is (R35).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// What a job does: run a post-enrollment rule for one enrollment, or sweep
/// one activity for a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    PostEnrollment,
    SweepActivity,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::PostEnrollment => "post_enrollment",
            JobKind::SweepActivity => "sweep_activity",
        }
    }
}

/// A job of the queue (R35).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub id: i64,
    #[schema(value_type = JobKind)]
    pub kind: String,
    #[schema(value_type = JobState)]
    pub state: String,
    pub run_at: TimestampText,
    pub attempts: i64,
    /// The post-enrollment rule the job runs.
    #[schema(required = true)]
    pub rule_id: Option<i64>,
    /// The sweep the job is part of.
    #[schema(required = true)]
    pub sweep_id: Option<i64>,
    /// The learner the job acts for.
    #[schema(required = true)]
    pub user_id: Option<i64>,
    /// The snapshot the job runs from, taken when it was queued: editing
    /// the rule afterwards does not change it (R35).
    #[schema(schema_with = crate::api::views::free_object_schema)]
    pub payload: serde_json::Value,
    /// Once done: for a post-enrollment job, per target activity its
    /// `outcome` (`created` with the `enrollment_id`, `already_enrolled`,
    /// `already_completed`, `user_inactive`, `exempt`, …); for a sweep job,
    /// its counts.
    #[schema(value_type = Value, required = true)]
    pub outcome: Option<serde_json::Value>,
    /// Why the last attempt failed.
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub created_at: TimestampText,
    #[schema(required = true)]
    pub finished_at: Option<TimestampText>,
}

impl Job {
    /// The view of `record`; its stored JSON is read back as JSON.
    pub fn of(record: &JobRecord) -> ApiResult<Job> {
        let json = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|error| anyhow::anyhow!("job {} holds malformed JSON: {error}", record.id))
        };
        Ok(Job {
            id: record.id,
            kind: record.kind.clone(),
            state: record.state.clone(),
            run_at: TimestampText(record.run_at),
            attempts: record.attempts,
            rule_id: record.rule_id,
            sweep_id: record.sweep_id,
            user_id: record.user_id,
            payload: json(&record.payload)?,
            outcome: record.outcome.as_deref().map(json).transpose()?,
            last_error: record.last_error.clone(),
            created_at: TimestampText(record.created_at),
            finished_at: record.finished_at.map(TimestampText),
        })
    }
}

/// The query of `GET /jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    pub state: Option<JobState>,
    pub kind: Option<JobKind>,
    /// Only the jobs of this post-enrollment rule.
    pub rule_id: Option<i64>,
    /// Only the jobs acting for this learner.
    pub user_id: Option<i64>,
    /// Only the jobs of this activity (the one a post-enrollment rule
    /// belongs to, one of its targets, or the activity a sweep job sweeps).
    pub activity_id: Option<i64>,
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// The answer of `POST /jobs/run-due`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RanJobs {
    /// How many jobs ran.
    pub ran: u64,
}

/// How the clock runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockModeView {
    System,
    Manual,
}

/// The clock every rule reads.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockView {
    #[schema(value_type = String, format = DateTime)]
    pub now: String,
    #[schema(value_type = ClockModeView)]
    pub mode: &'static str,
    /// The clock's date in the organisation's time zone.
    pub today: Day,
    /// The organisation's IANA time zone.
    pub timezone: String,
}

/// The body of `POST /clock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockBody {
    /// The new time, RFC 3339; never before the clock's time.
    #[schema(format = DateTime)]
    pub now: String,
}

/// The time `POST /clock` moves to, as read.
pub struct ClockTarget(pub Timestamp);

impl TryFrom<ClockBody> for ClockTarget {
    type Error = FieldErrors;

    fn try_from(body: ClockBody) -> Result<ClockTarget, FieldErrors> {
        let mut errors = FieldErrors::new();
        let target = body.now.parse::<Timestamp>().ok();
        errors.check(
            target.is_some(),
            "now",
            format!("{:?} is not an RFC 3339 timestamp", body.now),
        );
        errors.finish(ClockTarget(target.unwrap_or(Timestamp::UNIX_EPOCH)))
    }
}

const SWEEP_RUNNING: &str = "A sweep is queued or running (`sweep_id` names it), or a dry run is";

/// Start a sweep now (R13), or count what one would do (`dry_run`).
#[utoipa::path(
    post, path = "/sweeps", tag = "operations",
    request_body(content = Option<SweepBody>, description = "`{\"dry_run\":true}` to count only; no body starts a sweep"),
    responses(
        (status = 202, description = "The sweep: queued, or a dry run done", body = Sweep),
        (status = 409, description = SWEEP_RUNNING, body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start_sweep(
    State(state): State<AppState>,
    actor: Actor,
    OptionalBody(body): OptionalBody<Option<SweepBody>>,
) -> ApiResult<(StatusCode, Json<Sweep>)> {
    actor.require_admin()?;
    let body = body.flatten().unwrap_or_default();
    let record = if body.dry_run.unwrap_or(false) {
        dry_run_sweep(&state, &actor).await?
    } else {
        queue_sweep(&state, &actor).await?
    };
    Ok((StatusCode::ACCEPTED, Json(Sweep::from(&record))))
}

/// The 409 of a sweep asked for while `running` is queued or running.
fn sweep_running(running: &SweepRecord) -> ApiError {
    ApiError::SweepRunning {
        detail: format!(
            "sweep {} is {}; wait for it to finish",
            running.id, running.state
        ),
        sweep_id: running.id,
    }
}

async fn queue_sweep(state: &AppState, actor: &Actor) -> ApiResult<SweepRecord> {
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    if let Some(running) = tx.running_sweep().await? {
        return Err(sweep_running(&running));
    }
    let id = match begin_sweep(&mut tx, &ctx, "manual", ctx.today).await {
        Ok(id) => id,
        Err(crate::engine::EngineError::Conflict(_)) => {
            // Another process queued one since: name it when it is still there.
            tx.rollback().await?;
            let mut tx = state.store.read().await?;
            let running = tx.running_sweep().await?;
            tx.rollback().await?;
            return Err(match running {
                Some(running) => sweep_running(&running),
                None => ApiError::Conflict("another sweep is queued or running".into()),
            });
        }
        Err(error) => return Err(error.into()),
    };
    let record = tx
        .get_sweep(id)
        .await?
        .ok_or_else(|| ApiError::not_found("sweep"))?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(record)
}

/// Counts what a sweep today would do, recorded as a finished dry-run sweep.
async fn dry_run_sweep(state: &AppState, actor: &Actor) -> ApiResult<SweepRecord> {
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let day = ctx.today.to_string();
    let id = match tx
        .insert_sweep(true, "manual", &day, ctx.micros(), Some(actor.id()))
        .await
    {
        Ok(id) => id,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict("another dry run is in progress".into()));
        }
        Err(error) => return Err(error.into()),
    };
    tx.commit().await?;
    let counts = dry_run_counts(state, Some(actor.id())).await;
    let mut tx = state.store.write().await?;
    let counts = match counts {
        Ok(counts) => counts,
        Err(error) => {
            tx.finish_sweep(id, "failed", ctx.micros()).await?;
            tx.commit().await?;
            return Err(error.into());
        }
    };
    tx.add_sweep_counts(
        id,
        counts.created,
        counts.adopted,
        counts.closed,
        counts.skipped,
    )
    .await?;
    tx.finish_sweep(id, "done", ctx.micros()).await?;
    let record = tx
        .get_sweep(id)
        .await?
        .ok_or_else(|| ApiError::not_found("sweep"))?;
    tx.commit().await?;
    Ok(record)
}

/// Sweeps, newest first.
#[utoipa::path(
    get, path = "/sweeps", tag = "operations",
    params(SweepListQuery),
    responses((status = 200, description = "A page of sweeps", body = Page<Sweep>))
)]
pub async fn list_sweeps(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<SweepListQuery>,
) -> ApiResult<Json<Page<Sweep>>> {
    actor.require_admin()?;
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let mut tx = state.store.read().await?;
    let sweeps = tx.list_sweeps(cursor, limit).await?;
    tx.rollback().await?;
    let items = sweeps.iter().map(Sweep::from).collect();
    Ok(Json(Page::new(items, limit, |sweep| sweep.id)))
}

/// One sweep, with its counts so far.
#[utoipa::path(
    get, path = "/sweeps/{id}", tag = "operations",
    params(("id" = i64, Path, description = "The sweep's id")),
    responses((status = 200, description = "The sweep", body = Sweep))
)]
pub async fn get_sweep(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Sweep>> {
    actor.require_admin()?;
    let id = path_id(&id, "sweep")?;
    let mut tx = state.store.read().await?;
    let record = tx
        .get_sweep(id)
        .await?
        .ok_or_else(|| ApiError::not_found("sweep"))?;
    tx.rollback().await?;
    Ok(Json(Sweep::from(&record)))
}

/// Jobs, by id, filtered (R35).
#[utoipa::path(
    get, path = "/jobs", tag = "operations",
    params(JobListQuery),
    responses((status = 200, description = "A page of jobs", body = Page<Job>))
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<JobListQuery>,
) -> ApiResult<Json<Page<Job>>> {
    actor.require_admin()?;
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let filter = JobFilter {
        state: query.state.map(|state| state.as_str().to_string()),
        kind: query.kind.map(|kind| kind.as_str().to_string()),
        rule_id: query.rule_id,
        user_id: query.user_id,
        activity_id: query.activity_id,
        after_id: cursor.unwrap_or(0),
        limit,
    };
    let mut tx = state.store.read().await?;
    let jobs = tx.list_jobs(&filter).await?;
    tx.rollback().await?;
    let items = jobs.iter().map(Job::of).collect::<ApiResult<Vec<Job>>>()?;
    Ok(Json(Page::new(items, limit, |job| job.id)))
}

/// One job (R35).
#[utoipa::path(
    get, path = "/jobs/{id}", tag = "operations",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = Job))
)]
pub async fn get_job(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    actor.require_admin()?;
    let id = path_id(&id, "job")?;
    let mut tx = state.store.read().await?;
    let record = tx
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    tx.rollback().await?;
    Ok(Json(Job::of(&record)?))
}

/// Cancel one pending job deliberately (R35).
#[utoipa::path(
    post, path = "/jobs/{id}/cancel", tag = "operations",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job, cancelled", body = Job),
        (status = 409, description = "The job is not pending", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
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
    let before = Job::of(&before)?;
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "job.cancel",
            entity: "job",
            entity_id: Some(id),
            before: Some(serde_json::to_string(&before).map_err(anyhow::Error::from)?),
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
    Ok(Json(Job::of(&after)?))
}

/// Run every job due at the clock's time; answers when they are done.
#[utoipa::path(
    post, path = "/jobs/run-due", tag = "operations",
    responses((status = 200, description = "How many jobs ran", body = RanJobs))
)]
pub async fn run_due_jobs(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<RanJobs>> {
    actor.require_admin()?;
    let ran = run_due(&state).await?;
    Ok(Json(RanJobs { ran }))
}

async fn clock_view(state: &AppState) -> ApiResult<ClockView> {
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    tx.rollback().await?;
    Ok(ClockView {
        now: ctx.now.to_string(),
        mode: state.clock.mode().as_str(),
        today: Day(ctx.today),
        timezone: ctx.settings.timezone.clone(),
    })
}

/// The clock: its time, mode, today and the organisation's time zone.
#[utoipa::path(
    get, path = "/clock", tag = "operations",
    responses((status = 200, description = "The clock", body = ClockView))
)]
pub async fn get_clock(State(state): State<AppState>, _actor: Actor) -> ApiResult<Json<ClockView>> {
    Ok(Json(clock_view(&state).await?))
}

/// Move a manual clock forward (only with `--clock manual`, 403 otherwise;
/// backwards is 422), playing the time in between before answering: each
/// nightly sweep at its time and each job at its `run_at`.
#[utoipa::path(
    post, path = "/clock", tag = "operations",
    request_body = ClockBody,
    responses((status = 200, description = "The clock at its new time", body = ClockView))
)]
pub async fn set_clock(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<ClockBody>,
) -> ApiResult<Json<ClockView>> {
    actor.require_admin()?;
    if state.clock.mode() != ClockMode::Manual {
        return Err(ApiError::Forbidden(
            "the clock can be set only when the server runs with --clock manual".into(),
        ));
    }
    let ClockTarget(target) = body.try_into()?;
    let current = state.clock.now();
    if target < current {
        return Err(ApiError::invalid(
            "now",
            format!("the clock only moves forward; it is {current}"),
        ));
    }
    advance_clock(&state, target).await?;
    Ok(Json(clock_view(&state).await?))
}
