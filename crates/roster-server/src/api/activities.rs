//! Activities of the four kinds: their fields, prerequisites and items. Their
//! rules (auto-enrollment with its preview, post-enrollment) are in
//! [`crate::api::rules`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use roster_core::{ActivityKind, AutoRule, PostRule, Source};
use roster_store::{ActivityRecord, Tx};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::views::{Page, TimestampText, page_bounds};
use crate::auth::{Actor, new_token};
use crate::engine::enroll::{NewEnrollment, create};
use crate::engine::rules::{activity_from, post_rules};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::input::{Body, Query, path_id};
use crate::state::{AppState, Ctx};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_activity, list_activities))
        .routes(routes!(get_activity, patch_activity))
}

/// An activity as the API shows it, with its rules.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    pub id: i64,
    pub title: String,
    pub kind: ActivityKind,
    pub active: bool,
    pub in_catalog: bool,
    pub allow_failure: bool,
    pub prerequisite_ids: Vec<i64>,
    /// The courses of a curriculum or bundle, in order; empty otherwise.
    pub item_ids: Vec<i64>,
    /// The address of its self-enrollment (R1): `/api/v1/enroll/{token}`.
    pub enrollment_url: String,
    /// Its auto-enrollment rule, or null (R10–R12).
    #[schema(required = true)]
    pub auto_enrollment: Option<AutoRule>,
    /// Its post-enrollment rules (R30, R31).
    pub post_enrollments: Vec<PostRule>,
    pub created_at: TimestampText,
}

impl Activity {
    /// The view of `record`, with its links and post-enrollment rules read in `tx`.
    pub async fn read(tx: &mut Tx, record: ActivityRecord) -> ApiResult<Activity> {
        let prerequisite_ids = tx.prerequisite_ids(record.id).await?;
        let item_ids = tx.item_ids(record.id).await?;
        let post_enrollments = post_rules(tx, record.id).await?;
        let activity = activity_from(record);
        let record = activity.record;
        Ok(Activity {
            id: record.id,
            title: record.title,
            kind: activity.kind,
            active: record.active,
            in_catalog: record.in_catalog,
            allow_failure: record.allow_failure,
            prerequisite_ids,
            item_ids,
            enrollment_url: format!("/api/v1/enroll/{}", record.enrollment_token),
            auto_enrollment: activity.rule,
            post_enrollments,
            created_at: TimestampText(record.created_at),
        })
    }

    /// The activity `id` as it is now in `tx`.
    pub async fn find(tx: &mut Tx, id: i64) -> ApiResult<Activity> {
        let record = tx
            .get_activity(id)
            .await?
            .ok_or_else(|| ApiError::not_found("activity"))?;
        Activity::read(tx, record).await
    }

    /// The audit trail's JSON of this view.
    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The body of `POST /activities`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActivityBody {
    /// Spaces around it are dropped.
    #[schema(min_length = 1)]
    pub title: String,
    /// Fixed once the activity exists.
    pub kind: ActivityKind,
    /// Default `true`.
    pub active: Option<bool>,
    /// Default `true`.
    pub in_catalog: Option<bool>,
    /// Default `false`.
    pub allow_failure: Option<bool>,
    pub prerequisite_ids: Option<Vec<i64>>,
    /// Curricula and bundles only: their courses, in order.
    pub item_ids: Option<Vec<i64>>,
}

/// The body of `PATCH /activities/{id}`: only the fields given change;
/// `prerequisite_ids` and `item_ids` replace the lists. The kind cannot be
/// changed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityChangeBody {
    #[schema(min_length = 1)]
    pub title: Option<String>,
    pub active: Option<bool>,
    pub in_catalog: Option<bool>,
    pub allow_failure: Option<bool>,
    pub prerequisite_ids: Option<Vec<i64>>,
    /// Courses added to a bundle are given to its open enrollments (R40).
    pub item_ids: Option<Vec<i64>>,
}

/// An activity's fields as validated: what the store writes.
#[derive(Debug)]
pub struct ActivityChange {
    pub title: Option<String>,
    pub active: Option<bool>,
    pub in_catalog: Option<bool>,
    pub allow_failure: Option<bool>,
    pub prerequisite_ids: Option<Vec<i64>>,
    pub item_ids: Option<Vec<i64>>,
}

impl TryFrom<ActivityChangeBody> for ActivityChange {
    type Error = FieldErrors;

    fn try_from(body: ActivityChangeBody) -> Result<ActivityChange, FieldErrors> {
        let mut errors = FieldErrors::new();
        if let Some(title) = &body.title {
            errors.check(!title.trim().is_empty(), "title", "must not be empty");
        }
        errors.finish(ActivityChange {
            title: body.title.map(|title| title.trim().to_string()),
            active: body.active,
            in_catalog: body.in_catalog,
            allow_failure: body.allow_failure,
            prerequisite_ids: body.prerequisite_ids,
            item_ids: body.item_ids,
        })
    }
}

impl TryFrom<NewActivityBody> for ActivityChange {
    type Error = FieldErrors;

    fn try_from(body: NewActivityBody) -> Result<ActivityChange, FieldErrors> {
        ActivityChange::try_from(ActivityChangeBody {
            title: Some(body.title),
            active: body.active,
            in_catalog: body.in_catalog,
            allow_failure: body.allow_failure,
            prerequisite_ids: body.prerequisite_ids,
            item_ids: body.item_ids,
        })
    }
}

impl ActivityChange {
    /// `activity` with this change applied.
    fn apply(&self, activity: &ActivityRecord) -> ActivityRecord {
        let mut activity = activity.clone();
        if let Some(title) = &self.title {
            activity.title = title.clone();
        }
        activity.active = self.active.unwrap_or(activity.active);
        activity.in_catalog = self.in_catalog.unwrap_or(activity.in_catalog);
        activity.allow_failure = self.allow_failure.unwrap_or(activity.allow_failure);
        activity
    }
}

/// The query of `GET /activities`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityListQuery {
    /// Part of the title.
    pub q: Option<String>,
    /// Only activities of this kind.
    pub kind: Option<ActivityKind>,
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

async fn audit_activity(
    tx: &mut Tx,
    ctx: &Ctx,
    action: &str,
    id: i64,
    before: Option<&Activity>,
    after: Option<&Activity>,
) -> ApiResult<()> {
    crate::api::audit_change(
        tx,
        ctx,
        "activity",
        action,
        id,
        before.map(Activity::audit_json),
        after.map(Activity::audit_json),
    )
    .await?;
    Ok(())
}

/// Checks prerequisite and item ids against the store (422 field errors).
/// `id` is the activity's own, when it exists.
async fn check_links(
    tx: &mut Tx,
    id: Option<i64>,
    kind: ActivityKind,
    change: &ActivityChange,
) -> ApiResult<()> {
    let mut errors = FieldErrors::new();
    let mut unknown = FieldErrors::new();
    if let Some(prerequisites) = &change.prerequisite_ids {
        let missing = tx.missing_activities(prerequisites).await?;
        unknown.check(
            missing.is_empty(),
            "prerequisite_ids",
            format!("unknown activities {missing:?}"),
        );
        errors.check(
            !id.is_some_and(|id| prerequisites.contains(&id)),
            "prerequisite_ids",
            "an activity cannot be its own prerequisite",
        );
    }
    if let Some(items) = &change.item_ids {
        errors.check(
            kind.has_items() || items.is_empty(),
            "item_ids",
            "only curricula and bundles hold items",
        );
        for item in items {
            match tx.get_activity(*item).await? {
                None => unknown.add("item_ids", format!("unknown activity {item}")),
                Some(record) => {
                    let item_kind = activity_from(record).kind;
                    errors.check(
                        !item_kind.has_items() && Some(*item) != id,
                        "item_ids",
                        format!("activity {item} is not a course"),
                    );
                }
            }
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::UnknownReference(unknown.0));
    }
    errors.finish(())?;
    Ok(())
}

/// A new activity of `kind` with the documented defaults, before its change.
fn blank_activity(kind: ActivityKind, created_at: i64) -> ActivityRecord {
    ActivityRecord {
        id: 0,
        title: String::new(),
        kind: kind.as_str().into(),
        active: true,
        in_catalog: true,
        allow_failure: false,
        enrollment_token: new_token()[..32].to_string(),
        auto_rule: None,
        created_at,
    }
}

/// Create an activity.
#[utoipa::path(
    post, path = "/activities", tag = "activities",
    request_body = NewActivityBody,
    responses((status = 201, description = "The new activity", body = Activity))
)]
pub async fn create_activity(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<NewActivityBody>,
) -> ApiResult<(StatusCode, Json<Activity>)> {
    actor.require_admin()?;
    let kind = body.kind;
    let change = ActivityChange::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    check_links(&mut tx, None, kind, &change).await?;
    let record = change.apply(&blank_activity(kind, ctx.micros()));
    let id = tx.insert_activity(&record, ctx.micros()).await?;
    tx.set_prerequisites(id, change.prerequisite_ids.as_deref().unwrap_or_default())
        .await?;
    tx.set_items(id, change.item_ids.as_deref().unwrap_or_default())
        .await?;
    let view = Activity::find(&mut tx, id).await?;
    audit_activity(&mut tx, &ctx, "activity.create", id, None, Some(&view)).await?;
    tx.commit().await?;
    state.activity_cache.clear();
    Ok((StatusCode::CREATED, Json(view)))
}

/// Activities, by id, inactive ones and those out of the catalog included.
#[utoipa::path(
    get, path = "/activities", tag = "activities",
    params(ActivityListQuery),
    responses((status = 200, description = "A page of activities", body = Page<Activity>))
)]
pub async fn list_activities(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<ActivityListQuery>,
) -> ApiResult<Json<Page<Activity>>> {
    actor.require_admin()?;
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let mut tx = state.store.read().await?;
    let records = tx
        .list_activities(
            query.q.as_deref(),
            query.kind.map(ActivityKind::as_str),
            false,
            cursor.unwrap_or(0),
            limit,
        )
        .await?;
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        items.push(Activity::read(&mut tx, record).await?);
    }
    tx.rollback().await?;
    Ok(Json(Page::new(items, limit, |activity| activity.id)))
}

/// One activity, with its rules.
#[utoipa::path(
    get, path = "/activities/{id}", tag = "activities",
    params(("id" = i64, Path, description = "The activity's id")),
    responses((status = 200, description = "The activity", body = Activity))
)]
pub async fn get_activity(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Activity>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let mut tx = state.store.read().await?;
    let view = Activity::find(&mut tx, id).await?;
    tx.rollback().await?;
    Ok(Json(view))
}

/// Change an activity's title, flags, prerequisites or items (R40: courses
/// added to a bundle are given to its open enrollments).
#[utoipa::path(
    patch, path = "/activities/{id}", tag = "activities",
    params(("id" = i64, Path, description = "The activity's id")),
    request_body = ActivityChangeBody,
    responses((status = 200, description = "The activity as changed", body = Activity))
)]
pub async fn patch_activity(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Body(body): Body<ActivityChangeBody>,
) -> ApiResult<Json<Activity>> {
    actor.require_admin()?;
    let id = path_id(&id, "activity")?;
    let change = ActivityChange::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let record = tx
        .get_activity(id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let before = Activity::read(&mut tx, record.clone()).await?;
    check_links(&mut tx, Some(id), before.kind, &change).await?;
    tx.update_activity(&change.apply(&record), ctx.micros())
        .await?;
    if let Some(prerequisites) = &change.prerequisite_ids {
        tx.set_prerequisites(id, prerequisites).await?;
    }
    if let Some(items) = &change.item_ids {
        tx.set_items(id, items).await?;
        let added: Vec<i64> = items
            .iter()
            .copied()
            .filter(|item| !before.item_ids.contains(item))
            .collect();
        if before.kind == ActivityKind::CourseBundle {
            give_added_courses(&mut tx, &ctx, id, &added).await?;
        }
    }
    let after = Activity::find(&mut tx, id).await?;
    audit_activity(
        &mut tx,
        &ctx,
        "activity.update",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    state.activity_cache.clear();
    state.jobs_ready.notify_waiters();
    Ok(Json(after))
}

/// R40, the one retroactive case: the open enrollments of bundle
/// `bundle_id` get the courses `added` to it.
async fn give_added_courses(
    tx: &mut Tx,
    ctx: &Ctx,
    bundle_id: i64,
    added: &[i64],
) -> ApiResult<()> {
    if added.is_empty() {
        return Ok(());
    }
    for bundle_enrollment in tx.open_enrollments_in(bundle_id).await? {
        for item in added {
            let source = Source::Bundle {
                enrollment_id: bundle_enrollment.id,
            };
            create(
                tx,
                ctx,
                NewEnrollment::by_rule(bundle_enrollment.user_id, *item, source),
            )
            .await?;
        }
    }
    Ok(())
}
