//! Users and their API tokens. Creating a user or changing their groups,
//! `active` or `hired_on` evaluates them against every rule at once when an
//! administrator does it (R18).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use roster_core::date::Day;
use roster_core::{IntegrationEvaluation, Role};
use roster_store::{Tx, UserFilter, UserInsert, UserRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::views::{Page, User, page_bounds};
use crate::auth::{Actor, hash_token, new_token};
use crate::engine::sweep::evaluate_user;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::input::{Body, Query, nullable, path_id};
use crate::state::{AppState, Ctx};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, patch_user))
        .routes(routes!(issue_token))
}

/// The body of `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    #[schema(min_length = 1)]
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// Default `true`.
    pub active: Option<bool>,
    pub hired_on: Option<Day>,
    /// The identity system's id; unique when given.
    pub external_id: Option<String>,
    pub group_ids: Option<Vec<i64>>,
    /// Default `learner`.
    pub role: Option<Role>,
    /// Write-only; sign-in with it comes with the web pages.
    #[schema(write_only)]
    pub password: Option<String>,
}

/// The body of `PATCH /users/{id}`: only the fields given change; `null`
/// clears `hired_on` and `external_id`; `group_ids` replaces the groups.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChangeBody {
    #[schema(min_length = 1)]
    pub username: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Day>)]
    pub hired_on: Option<Option<Day>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    pub group_ids: Option<Vec<i64>>,
    pub role: Option<Role>,
    #[schema(write_only)]
    pub password: Option<String>,
}

/// A user's fields as validated: what the store writes.
#[derive(Debug)]
pub struct UserChange {
    pub username: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub active: Option<bool>,
    pub hired_on: Option<Option<Day>>,
    pub external_id: Option<Option<String>>,
    pub group_ids: Option<Vec<i64>>,
    pub role: Option<Role>,
}

impl TryFrom<UserChangeBody> for UserChange {
    type Error = FieldErrors;

    fn try_from(body: UserChangeBody) -> Result<UserChange, FieldErrors> {
        let mut errors = FieldErrors::new();
        if let Some(username) = &body.username {
            errors.check(!username.trim().is_empty(), "username", "must not be empty");
        }
        errors.finish(UserChange {
            username: body.username.map(|name| name.trim().to_string()),
            email: body.email,
            display_name: body.display_name,
            active: body.active,
            hired_on: body.hired_on,
            // An empty external id is no external id: it must not take the
            // unique slot of "".
            external_id: body.external_id.map(|id| id.filter(|id| !id.is_empty())),
            group_ids: body.group_ids,
            role: body.role,
        })
    }
}

impl TryFrom<NewUserBody> for UserChange {
    type Error = FieldErrors;

    fn try_from(body: NewUserBody) -> Result<UserChange, FieldErrors> {
        UserChange::try_from(UserChangeBody {
            username: Some(body.username),
            email: body.email,
            display_name: body.display_name,
            active: body.active,
            hired_on: body.hired_on.map(Some),
            external_id: body.external_id.map(Some),
            group_ids: body.group_ids,
            role: body.role,
            password: body.password,
        })
    }
}

impl UserChange {
    /// `user` with this change applied.
    fn apply(&self, user: &UserRecord) -> UserRecord {
        let mut user = user.clone();
        if let Some(username) = &self.username {
            user.username = username.clone();
        }
        if let Some(email) = &self.email {
            user.email = email.clone();
        }
        if let Some(name) = &self.display_name {
            user.display_name = name.clone();
        }
        if let Some(active) = self.active {
            user.active = active;
        }
        if let Some(hired_on) = &self.hired_on {
            user.hired_on = hired_on.map(|day| day.to_string());
        }
        if let Some(external_id) = &self.external_id {
            user.external_id = external_id.clone();
        }
        if let Some(role) = self.role {
            user.role = role.as_str().into();
        }
        user
    }
}

/// The query of `GET /users`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Part of the username, display name or email.
    pub q: Option<String>,
    /// Only active (`true`) or inactive (`false`) users; both when absent.
    pub active: Option<bool>,
    /// Only members of this group.
    pub group_id: Option<i64>,
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// A new API token, shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuedToken {
    pub token: String,
    pub user_id: i64,
}

/// R18: administrators' changes are evaluated at once; integration accounts'
/// only when the organisation asks for it.
pub fn evaluates_now(actor: &Actor, ctx: &Ctx) -> bool {
    actor.role == Role::Admin
        || ctx.settings.integration_evaluation == IntegrationEvaluation::Immediate
}

pub async fn audit_user(
    tx: &mut Tx,
    ctx: &Ctx,
    action: &str,
    id: i64,
    before: Option<&User>,
    after: Option<&User>,
) -> ApiResult<()> {
    crate::api::audit_change(
        tx,
        ctx,
        "user",
        action,
        id,
        before.map(User::audit_json),
        after.map(User::audit_json),
    )
    .await?;
    Ok(())
}

async fn check_groups(tx: &mut Tx, group_ids: &[i64]) -> ApiResult<()> {
    let missing = tx.missing_groups(group_ids).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unknown(
            "group_ids",
            format!("unknown groups {missing:?}"),
        ))
    }
}

/// Makes `user_id`'s groups exactly `group_ids`; whether any changed.
pub async fn set_groups(tx: &mut Tx, user_id: i64, group_ids: &[i64]) -> ApiResult<bool> {
    let current = tx.user_group_ids(user_id).await?;
    let mut changed = false;
    for group_id in &current {
        if !group_ids.contains(group_id) {
            changed |= tx.remove_member(*group_id, user_id).await?;
        }
    }
    for group_id in group_ids {
        changed |= tx.add_member(*group_id, user_id).await?;
    }
    Ok(changed)
}

fn blank_user() -> UserRecord {
    UserRecord {
        id: 0,
        username: String::new(),
        email: String::new(),
        display_name: String::new(),
        active: true,
        hired_on: None,
        external_id: None,
        employee_number: None,
        role: Role::Learner.as_str().into(),
        password_hash: None,
        created_at: 0,
    }
}

/// Create a user (R18: evaluated against every rule at once).
#[utoipa::path(
    post, path = "/users", tag = "users",
    request_body = NewUserBody,
    responses(
        (status = 201, description = "The new user", body = User),
        (status = 409, description = "The username or external_id is taken", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<NewUserBody>,
) -> ApiResult<(StatusCode, Json<User>)> {
    actor.require_admin()?;
    let change = UserChange::try_from(body)?;
    let user = change.apply(&blank_user());
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    if let Some(group_ids) = &change.group_ids {
        check_groups(&mut tx, group_ids).await?;
    }
    let id = tx
        .insert_user(
            &UserInsert {
                username: user.username.clone(),
                email: user.email.clone(),
                display_name: user.display_name.clone(),
                active: user.active,
                hired_on: user.hired_on.clone(),
                external_id: user.external_id.clone(),
                employee_number: None,
                role: user.role.clone(),
                password_hash: None,
            },
            ctx.micros(),
        )
        .await?;
    if let Some(group_ids) = &change.group_ids {
        set_groups(&mut tx, id, group_ids).await?;
    }
    if evaluates_now(&actor, &ctx) {
        evaluate_user(&mut tx, &ctx, id).await?;
    }
    let created = tx
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let view = User::read(&mut tx, &created).await?;
    audit_user(&mut tx, &ctx, "user.create", id, None, Some(&view)).await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok((StatusCode::CREATED, Json(view)))
}

/// Users, inactive ones included unless `active` filters.
#[utoipa::path(
    get, path = "/users", tag = "users",
    params(UserListQuery),
    responses((status = 200, description = "A page of users", body = Page<User>))
)]
pub async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<UserListQuery>,
) -> ApiResult<Json<Page<User>>> {
    actor.require_admin()?;
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let filter = UserFilter {
        q: query.q.filter(|q| !q.is_empty()),
        active: query.active,
        group_id: query.group_id,
        after_id: cursor.unwrap_or(0),
        limit,
    };
    let mut tx = state.store.read().await?;
    let users = tx.list_users(&filter).await?;
    let mut items = Vec::with_capacity(users.len());
    for user in &users {
        items.push(User::read(&mut tx, user).await?);
    }
    tx.rollback().await?;
    Ok(Json(Page::new(items, limit, |user| user.id)))
}

/// A user the actor may see; others' records are 404 to learners (R63).
pub async fn visible_user(tx: &mut Tx, actor: &Actor, id: i64) -> ApiResult<UserRecord> {
    if !actor.may_see_user(id) {
        return Err(ApiError::not_found("user"));
    }
    tx.get_user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

/// One user; a learner may read only their own record (R63).
#[utoipa::path(
    get, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    responses((status = 200, description = "The user", body = User))
)]
pub async fn get_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    let id = path_id(&id, "user")?;
    let mut tx = state.store.read().await?;
    let user = visible_user(&mut tx, &actor, id).await?;
    let view = User::read(&mut tx, &user).await?;
    tx.rollback().await?;
    Ok(Json(view))
}

/// Change a user (R18 when groups, `active` or `hired_on` change).
#[utoipa::path(
    patch, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    request_body = UserChangeBody,
    responses(
        (status = 200, description = "The user as changed", body = User),
        (status = 409, description = "The username or external_id is taken", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Body(body): Body<UserChangeBody>,
) -> ApiResult<Json<User>> {
    let id = path_id(&id, "user")?;
    let change = UserChange::try_from(body)?;
    let mut tx = state.store.write().await?;
    let before = visible_user(&mut tx, &actor, id).await?;
    actor.require_admin()?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let user = change.apply(&before);
    if let Some(group_ids) = &change.group_ids {
        check_groups(&mut tx, group_ids).await?;
    }
    let before_view = User::read(&mut tx, &before).await?;
    tx.update_user(&user, ctx.micros()).await?;
    let groups_changed = match &change.group_ids {
        Some(group_ids) => set_groups(&mut tx, id, group_ids).await?,
        None => false,
    };
    let relevant =
        groups_changed || user.active != before.active || user.hired_on != before.hired_on;
    if relevant && evaluates_now(&actor, &ctx) {
        evaluate_user(&mut tx, &ctx, id).await?;
    }
    let view = User::read(&mut tx, &user).await?;
    audit_user(
        &mut tx,
        &ctx,
        "user.update",
        id,
        Some(&before_view),
        Some(&view),
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(Json(view))
}

/// Issue an API token for a user; the token is shown only in this answer.
#[utoipa::path(
    post, path = "/users/{id}/tokens", tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    responses((status = 201, description = "The new token", body = IssuedToken))
)]
pub async fn issue_token(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    actor.require_admin()?;
    let id = path_id(&id, "user")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    tx.get_user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let token = new_token();
    tx.insert_token(id, &hash_token(&token), ctx.micros())
        .await?;
    audit_user(&mut tx, &ctx, "user.token", id, None, None).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken { token, user_id: id }),
    ))
}
