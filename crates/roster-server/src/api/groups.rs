//! Groups and their members. A change of membership evaluates the member
//! against every rule at once when an administrator makes it (R18).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use roster_store::{GroupRecord, Tx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::users::evaluates_now;
use crate::api::views::{Page, page_bounds};
use crate::auth::Actor;
use crate::engine::sweep::evaluate_user;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::input::{Body, Query, path_id};
use crate::state::{AppState, Ctx};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_group, list_groups))
        .routes(routes!(get_group, patch_group, delete_group))
        .routes(routes!(add_member, remove_member))
}

/// A group as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub member_count: i64,
}

impl From<&GroupRecord> for Group {
    fn from(group: &GroupRecord) -> Group {
        Group {
            id: group.id,
            name: group.name.clone(),
            member_count: group.member_count,
        }
    }
}

/// The body of `POST /groups` and `PATCH /groups/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// Unique; spaces around it are dropped.
    #[schema(min_length = 1)]
    pub name: String,
}

/// A group's name as validated.
pub struct GroupName(pub String);

impl TryFrom<GroupBody> for GroupName {
    type Error = FieldErrors;

    fn try_from(body: GroupBody) -> Result<GroupName, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = body.name.trim().to_string();
        errors.check(!name.is_empty(), "name", "must not be empty");
        errors.finish(GroupName(name))
    }
}

/// The query of `GET /groups`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupListQuery {
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

async fn audit_group(
    tx: &mut Tx,
    ctx: &Ctx,
    action: &str,
    id: i64,
    before: Option<&Group>,
    after: Option<&Group>,
) -> ApiResult<()> {
    let json = |group: &Group| serde_json::to_value(group).unwrap_or_default();
    crate::api::audit_change(
        tx,
        ctx,
        "group",
        action,
        id,
        before.map(json),
        after.map(json),
    )
    .await?;
    Ok(())
}

async fn read_group(tx: &mut Tx, id: i64) -> ApiResult<Group> {
    tx.get_group(id)
        .await?
        .map(|group| Group::from(&group))
        .ok_or_else(|| ApiError::not_found("group"))
}

const CONFLICT: &str = "A group with this name exists";

/// Create a group.
#[utoipa::path(
    post, path = "/groups", tag = "groups",
    request_body = GroupBody,
    responses(
        (status = 201, description = "The new group", body = Group),
        (status = 409, description = CONFLICT, body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_group(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<GroupBody>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    actor.require_admin()?;
    let GroupName(name) = body.try_into()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let id = tx.insert_group(&name, ctx.micros()).await?;
    let group = read_group(&mut tx, id).await?;
    audit_group(&mut tx, &ctx, "group.create", id, None, Some(&group)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(group)))
}

/// Groups, by id.
#[utoipa::path(
    get, path = "/groups", tag = "groups",
    params(GroupListQuery),
    responses((status = 200, description = "A page of groups", body = Page<Group>))
)]
pub async fn list_groups(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<GroupListQuery>,
) -> ApiResult<Json<Page<Group>>> {
    actor.require_admin()?;
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let mut tx = state.store.read().await?;
    let groups = tx.list_groups(cursor.unwrap_or(0), limit).await?;
    tx.rollback().await?;
    let items = groups.iter().map(Group::from).collect();
    Ok(Json(Page::new(items, limit, |group| group.id)))
}

/// One group.
#[utoipa::path(
    get, path = "/groups/{id}", tag = "groups",
    params(("id" = i64, Path, description = "The group's id")),
    responses((status = 200, description = "The group", body = Group))
)]
pub async fn get_group(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Group>> {
    actor.require_admin()?;
    let id = path_id(&id, "group")?;
    let mut tx = state.store.read().await?;
    let group = read_group(&mut tx, id).await?;
    tx.rollback().await?;
    Ok(Json(group))
}

/// Rename a group.
#[utoipa::path(
    patch, path = "/groups/{id}", tag = "groups",
    params(("id" = i64, Path, description = "The group's id")),
    request_body = GroupBody,
    responses(
        (status = 200, description = "The group as renamed", body = Group),
        (status = 409, description = CONFLICT, body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_group(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Body(body): Body<GroupBody>,
) -> ApiResult<Json<Group>> {
    actor.require_admin()?;
    let id = path_id(&id, "group")?;
    let GroupName(name) = body.try_into()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = read_group(&mut tx, id).await?;
    tx.rename_group(id, &name).await?;
    let after = read_group(&mut tx, id).await?;
    audit_group(
        &mut tx,
        &ctx,
        "group.update",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// Delete a group (its members stay; rules that name it no longer reach them).
#[utoipa::path(
    delete, path = "/groups/{id}", tag = "groups",
    params(("id" = i64, Path, description = "The group's id")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_group(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    actor.require_admin()?;
    let id = path_id(&id, "group")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = read_group(&mut tx, id).await?;
    tx.delete_group(id).await?;
    audit_group(&mut tx, &ctx, "group.delete", id, Some(&before), None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn membership(
    state: &AppState,
    actor: &Actor,
    (group, user): (String, String),
    add: bool,
) -> ApiResult<StatusCode> {
    actor.require_admin()?;
    let group_id = path_id(&group, "group")?;
    let user_id = path_id(&user, "user")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    read_group(&mut tx, group_id).await?;
    tx.get_user(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let changed = if add {
        tx.add_member(group_id, user_id).await?
    } else {
        tx.remove_member(group_id, user_id).await?
    };
    if changed {
        if evaluates_now(actor, &ctx) {
            evaluate_user(&mut tx, &ctx, user_id).await?;
        }
        let action = if add {
            "group.member_add"
        } else {
            "group.member_remove"
        };
        crate::api::audit_change(
            &mut tx,
            &ctx,
            "group",
            action,
            group_id,
            None,
            Some(json!({"user_id": user_id})),
        )
        .await?;
    }
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

/// Add a member (R18); adding a member twice changes nothing.
#[utoipa::path(
    put, path = "/groups/{id}/members/{user_id}", tag = "groups",
    params(
        ("id" = i64, Path, description = "The group's id"),
        ("user_id" = i64, Path, description = "The user's id"),
    ),
    responses((status = 204, description = "The user is a member"))
)]
pub async fn add_member(
    State(state): State<AppState>,
    actor: Actor,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    membership(&state, &actor, ids, true).await
}

/// Remove a member (R18); removing a non-member changes nothing.
#[utoipa::path(
    delete, path = "/groups/{id}/members/{user_id}", tag = "groups",
    params(
        ("id" = i64, Path, description = "The group's id"),
        ("user_id" = i64, Path, description = "The user's id"),
    ),
    responses((status = 204, description = "The user is not a member"))
)]
pub async fn remove_member(
    State(state): State<AppState>,
    actor: Actor,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    membership(&state, &actor, ids, false).await
}
