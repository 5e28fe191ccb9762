//! Enrollments for administrators: manual enrollment (R50), lists and CSV
//! (R55), details and changes. Learners reach their own enrollments by id
//! (R63). Bulk actions and the purge are in `enrollment_bulk`, attachments
//! and tasks in `attachments`, explanations in `explain`.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use roster_core::date::Day;
use roster_core::{EnrollmentType, Source, Status};
use roster_store::{EnrollmentFilter, EnrollmentRecord, Tx};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::views::{Page, User, page_bounds};
use crate::api::{EnrollmentView, enrollments_csv, json_response, wants_csv};
use crate::auth::Actor;
use crate::engine::enroll::{Change, Created, NewEnrollment, change, create_many_in};
use crate::engine::rules::load_activity;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::input::{Body, Query, nullable, path_id};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enroll_users, list_activity_enrollments))
        .routes(routes!(list_user_enrollments))
        .routes(routes!(list_enrollments))
        .routes(routes!(get_enrollment, patch_enrollment))
}

/// The types an administrator may give an enrollment: `elected` is the
/// learner's own choice. (The document's names; the body reads
/// [`EnrollmentType`] so that `elected` is refused with a reason.)
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AssignedType {
    Recommended,
    Required,
}

/// The body of `POST /activities/{id}/enrollments` (R50).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// The users to enroll; the answer has one result for each, in order.
    #[schema(min_items = 1)]
    pub user_ids: Vec<i64>,
    pub due_on: Option<Day>,
    /// Default `in_progress`; a closed status records a completion.
    pub status: Option<Status>,
    /// Default `recommended`.
    #[serde(rename = "type")]
    #[schema(value_type = Option<AssignedType>)]
    pub enrollment_type: Option<EnrollmentType>,
    /// Default: the administrator's name; `null` records nobody.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub required_by: Option<Option<String>>,
    pub reason: Option<String>,
}

/// A manual enrollment as validated (R50).
#[derive(Debug)]
pub struct ManualEnrollment {
    pub user_ids: Vec<i64>,
    pub enrollment_type: EnrollmentType,
    pub status: Status,
    pub due_on: Option<Day>,
    /// `None`: the administrator's name.
    pub required_by: Option<Option<String>>,
    pub reason: Option<String>,
}

impl TryFrom<EnrollBody> for ManualEnrollment {
    type Error = FieldErrors;

    fn try_from(body: EnrollBody) -> Result<ManualEnrollment, FieldErrors> {
        let mut errors = FieldErrors::new();
        errors.check(
            !body.user_ids.is_empty(),
            "user_ids",
            "needs at least one user",
        );
        errors.check(
            body.enrollment_type != Some(EnrollmentType::Elected),
            "type",
            "elected enrollments are the learner's own choice; use recommended or required",
        );
        errors.finish(ManualEnrollment {
            user_ids: body.user_ids,
            enrollment_type: body.enrollment_type.unwrap_or(EnrollmentType::Recommended),
            status: body.status.unwrap_or(Status::InProgress),
            due_on: body.due_on,
            required_by: body.required_by,
            reason: body.reason,
        })
    }
}

/// What a manual enrollment did for one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollOutcome {
    Created,
    /// The user has an open enrollment in the activity (R2).
    AlreadyEnrolled,
    UserNotFound,
}

/// One user's result; `enrollment` comes with `created`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollResult<'a> {
    pub user_id: i64,
    pub outcome: EnrollOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EnrollmentView>)]
    pub enrollment: Option<EnrollmentView<'a>>,
}

/// The answer of a manual enrollment: one result per user, in the order
/// of the request (a repeated user once).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollAnswer<'a> {
    #[schema(value_type = Vec<EnrollResult>)]
    pub results: Vec<EnrollResult<'a>>,
}

/// The body of `PATCH /enrollments/{id}`: only the fields given change;
/// `null` clears `due_on`, `required_by` and `reason`. A learner may only
/// set the status of their own enrollment to `dropped` or `in_progress`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentChangeBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Day>)]
    pub due_on: Option<Option<Day>>,
    pub status: Option<Status>,
    #[serde(rename = "type")]
    #[schema(value_type = Option<AssignedType>)]
    pub enrollment_type: Option<EnrollmentType>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub required_by: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Option<String>>,
}

impl TryFrom<EnrollmentChangeBody> for Change {
    type Error = FieldErrors;

    fn try_from(body: EnrollmentChangeBody) -> Result<Change, FieldErrors> {
        let mut errors = FieldErrors::new();
        check_not_elected(&mut errors, body.enrollment_type);
        errors.finish(Change {
            enrollment_type: body.enrollment_type,
            status: body.status,
            due_on: body.due_on.map(|due| due.map(Day::date)),
            required_by: body.required_by,
            reason: body.reason,
        })
    }
}

/// An administrator cannot make an enrollment elected.
pub fn check_not_elected(errors: &mut FieldErrors, enrollment_type: Option<EnrollmentType>) {
    errors.check(
        enrollment_type != Some(EnrollmentType::Elected),
        "type",
        "an administrator cannot make an enrollment elected",
    );
}

/// The kinds of source an enrollment list filters by (R55): the `kind` of
/// [`Source`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Manual,
    #[serde(rename = "self")]
    SelfEnrolled,
    Url,
    AutoEnrollment,
    PostEnrollment,
    Curriculum,
    Bundle,
    Import,
}

impl SourceKind {
    pub const ALL: [SourceKind; 8] = [
        SourceKind::Manual,
        SourceKind::SelfEnrolled,
        SourceKind::Url,
        SourceKind::AutoEnrollment,
        SourceKind::PostEnrollment,
        SourceKind::Curriculum,
        SourceKind::Bundle,
        SourceKind::Import,
    ];

    /// The stored kind, one of [`Source::KINDS`].
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Manual => "manual",
            SourceKind::SelfEnrolled => "self",
            SourceKind::Url => "url",
            SourceKind::AutoEnrollment => "auto_enrollment",
            SourceKind::PostEnrollment => "post_enrollment",
            SourceKind::Curriculum => "curriculum",
            SourceKind::Bundle => "bundle",
            SourceKind::Import => "import",
        }
    }
}

/// The query of the three enrollment lists (R55). The lists answer CSV
/// with one row per enrollment to `Accept: text/csv`, every match when no
/// `cursor` is given.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentListQuery {
    /// Only this user's enrollments (the user's own list ignores it).
    pub user_id: Option<i64>,
    /// Only this activity's enrollments (the activity's own list ignores it).
    pub activity_id: Option<i64>,
    #[param(inline)]
    pub status: Option<Status>,
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub enrollment_type: Option<EnrollmentType>,
    /// The kind of source.
    #[param(inline)]
    pub source: Option<SourceKind>,
    /// `true`: in progress and due before today; `false`: the others (R61).
    pub overdue: Option<bool>,
    /// Due on or after this day.
    #[param(inline)]
    pub due_from: Option<Day>,
    /// Due on or before this day.
    #[param(inline)]
    pub due_to: Option<Day>,
    /// Part of the activity's title.
    pub q: Option<String>,
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

impl EnrollmentListQuery {
    /// The store's filter of this query, overdue counted from `today`.
    fn filter(self, today: String) -> ApiResult<EnrollmentFilter> {
        let (limit, cursor) = page_bounds(self.limit, self.cursor.as_deref())?;
        Ok(EnrollmentFilter {
            user_id: self.user_id,
            activity_id: self.activity_id,
            status: self.status.map(|status| status.as_str().into()),
            enrollment_type: self.enrollment_type.map(|kind| kind.as_str().into()),
            source_kind: self.source.map(|kind| kind.as_str().into()),
            overdue: self.overdue,
            today,
            due_from: self.due_from.map(|day| day.to_string()),
            due_to: self.due_to.map(|day| day.to_string()),
            title_q: self.q,
            cursor,
            limit,
            ..EnrollmentFilter::default()
        })
    }
}

/// R50: an administrator enrolls users into an activity.
#[utoipa::path(
    post, path = "/activities/{id}/enrollments", tag = "enrollments",
    params(("id" = i64, Path, description = "The activity's id")),
    request_body = EnrollBody,
    responses((status = 200, description = "One result per user", body = EnrollAnswer))
)]
pub async fn enroll_users(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Body(body): Body<EnrollBody>,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let activity_id = path_id(&id, "activity")?;
    let request = ManualEnrollment::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    // Read once for the whole request: the activity with its post rules,
    // and which users exist.
    let activity = load_activity(&mut tx, activity_id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?
        .with_post_rules(&mut tx)
        .await?;
    let existing = tx.existing_user_ids(&request.user_ids).await?;
    // The users' enrollments are inserted together, then each one's effects
    // run; the answer keeps the request's order (a repeated user once).
    let user_ids = distinct(&request.user_ids);
    let news: Vec<NewEnrollment> = user_ids
        .iter()
        .filter(|user_id| existing.contains(user_id))
        .map(|&user_id| new_enrollment(&actor, &request, user_id, activity_id))
        .collect();
    let mut created = create_many_in(&mut tx, &ctx, &news, &activity)
        .await?
        .into_iter();
    let outcomes: Vec<(i64, Option<Created>)> = user_ids
        .iter()
        .map(|&user_id| match existing.contains(&user_id) {
            true => (user_id, created.next()),
            false => (user_id, None),
        })
        .collect();
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    let today = ctx.today.to_string();
    let results = outcomes
        .iter()
        .map(|(user_id, outcome)| {
            let (outcome, enrollment) = match outcome {
                _ if !existing.contains(user_id) => (EnrollOutcome::UserNotFound, None),
                Some(Created::Created(record)) => (
                    EnrollOutcome::Created,
                    Some(EnrollmentView::of(record, &today)),
                ),
                Some(Created::AlreadyEnrolled | Created::PeriodHeld) | None => {
                    (EnrollOutcome::AlreadyEnrolled, None)
                }
            };
            EnrollResult {
                user_id: *user_id,
                outcome,
                enrollment,
            }
        })
        .collect();
    Ok(json_response(&EnrollAnswer { results }))
}

/// `ids` without repeats, in their first order.
pub fn distinct(ids: &[i64]) -> Vec<i64> {
    let mut seen = HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

fn new_enrollment(
    actor: &Actor,
    request: &ManualEnrollment,
    user_id: i64,
    activity_id: i64,
) -> NewEnrollment {
    let default_by = if actor.user.display_name.is_empty() {
        actor.user.username.clone()
    } else {
        actor.user.display_name.clone()
    };
    NewEnrollment {
        user_id,
        activity_id,
        enrollment_type: request.enrollment_type,
        status: request.status,
        due_on: request.due_on.map(Day::date),
        required_by: match &request.required_by {
            None => Some(default_by),
            Some(value) => value.clone(),
        },
        reason: request.reason.clone(),
        source: Source::Manual { by: actor.id() },
        period: None,
    }
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
    Ok(json_response(&Page::new(
        items,
        limit,
        |view: &EnrollmentView| view.id,
    )))
}

async fn today_text(state: &AppState) -> ApiResult<String> {
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    tx.rollback().await?;
    Ok(ctx.today.to_string())
}

/// Every enrollment, filtered (R55); CSV with `Accept: text/csv`.
#[utoipa::path(
    get, path = "/enrollments", tag = "enrollments",
    params(EnrollmentListQuery),
    responses((status = 200, description = "A page of enrollments, or CSV", content(
        (Page<EnrollmentView> = "application/json"),
        (String = "text/csv"),
    )))
)]
pub async fn list_enrollments(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Query(query): Query<EnrollmentListQuery>,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let filter = query.filter(today_text(&state).await?)?;
    list_response(&state, &headers, filter, "enrollments.csv").await
}

/// An activity's enrollments, filtered (R55); CSV with `Accept: text/csv`.
#[utoipa::path(
    get, path = "/activities/{id}/enrollments", tag = "enrollments",
    params(("id" = i64, Path, description = "The activity's id"), EnrollmentListQuery),
    responses((status = 200, description = "A page of enrollments, or CSV", content(
        (Page<EnrollmentView> = "application/json"),
        (String = "text/csv"),
    )))
)]
pub async fn list_activity_enrollments(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<EnrollmentListQuery>,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let mut tx = state.store.read().await?;
    tx.get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    tx.rollback().await?;
    let mut filter = query.filter(today_text(&state).await?)?;
    filter.activity_id = Some(id);
    let filename = format!("activity-{id}-enrollments.csv");
    list_response(&state, &headers, filter, &filename).await
}

/// A user's enrollments, filtered (R55); a learner may list only their own
/// (R63). CSV with `Accept: text/csv`.
#[utoipa::path(
    get, path = "/users/{id}/enrollments", tag = "enrollments",
    params(("id" = i64, Path, description = "The user's id"), EnrollmentListQuery),
    responses((status = 200, description = "A page of enrollments, or CSV", content(
        (Page<EnrollmentView> = "application/json"),
        (String = "text/csv"),
    )))
)]
pub async fn list_user_enrollments(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<EnrollmentListQuery>,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut tx = state.store.read().await?;
    crate::api::users::visible_user(&mut tx, &actor, id).await?;
    tx.rollback().await?;
    let mut filter = query.filter(today_text(&state).await?)?;
    filter.user_id = Some(id);
    let filename = format!("user-{id}-enrollments.csv");
    list_response(&state, &headers, filter, &filename).await
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

/// One enrollment with its activity's title and its learner; a learner may
/// read only their own (R63).
#[utoipa::path(
    get, path = "/enrollments/{id}", tag = "enrollments",
    params(("id" = i64, Path, description = "The enrollment's id")),
    responses((status = 200, description = "The enrollment", body = EnrollmentView))
)]
pub async fn get_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let record = visible_enrollment(&mut tx, &actor, id).await?;
    let activity = tx.get_activity(record.activity_id).await?;
    let user = match tx.get_user(record.user_id).await? {
        Some(user) => Some(User::read(&mut tx, &user).await?),
        None => None,
    };
    tx.rollback().await?;
    let today = ctx.today.to_string();
    let view = EnrollmentView {
        activity_title: activity.as_ref().map(|activity| activity.title.as_str()),
        user: user.as_ref(),
        ..EnrollmentView::of(&record, &today)
    };
    Ok(json_response(&view))
}

/// Change an enrollment (R5 on a completion, R2 on a reopening); a learner
/// may only drop or resume their own (R63).
#[utoipa::path(
    patch, path = "/enrollments/{id}", tag = "enrollments",
    params(("id" = i64, Path, description = "The enrollment's id")),
    request_body = EnrollmentChangeBody,
    responses(
        (status = 200, description = "The enrollment as changed", body = EnrollmentView),
        (status = 409, description = "The user already has an open enrollment in this activity (R2)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_enrollment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Body(body): Body<EnrollmentChangeBody>,
) -> ApiResult<Response> {
    let id = path_id(&id, "enrollment")?;
    let mut tx = state.store.write().await?;
    let before = visible_enrollment(&mut tx, &actor, id).await?;
    let change_request = Change::try_from(body)?;
    if !actor.is_admin() {
        check_learner_change(&change_request)?;
    }
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let after = change(&mut tx, &ctx, before, change_request).await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(json_response(&EnrollmentView::of(
        &after,
        &ctx.today.to_string(),
    )))
}

/// R63: learners may drop or resume their own enrollments, nothing else.
fn check_learner_change(change_request: &Change) -> ApiResult<()> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_filter_takes_exactly_the_kinds_of_source() {
        let names: Vec<&str> = SourceKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names, Source::KINDS);
        for kind in SourceKind::ALL {
            let read: SourceKind =
                serde_json::from_value(serde_json::Value::String(kind.as_str().into()))
                    .unwrap_or(SourceKind::Import);
            assert_eq!(read, kind);
        }
    }
}
