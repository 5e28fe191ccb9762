//! Users, tokens, groups and membership. Creating a user or changing their
//! groups, `active` or `hired_on` evaluates them against every rule at once
//! when an administrator does it (R18).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use roster_core::{IntegrationEvaluation, Role};
use roster_store::{Tx, UserFilter, UserInsert, UserRecord};
use serde_json::{Value, json};

use crate::api::{page, user_json};
use crate::auth::{Actor, hash_token, new_token};
use crate::body::{Fields, JsonBody, QueryParams, path_id};
use crate::engine::sweep::evaluate_user;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Ctx};

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
    before: Option<Value>,
    after: Option<Value>,
) -> anyhow::Result<()> {
    crate::api::audit_change(tx, ctx, "user", action, id, before, after).await
}

/// Reads the user fields of a create or patch body onto `user`; returns the
/// group ids when given.
fn read_user_fields(
    fields: &mut Fields,
    user: &mut UserRecord,
    creating: bool,
) -> ApiResult<Option<Vec<i64>>> {
    if creating {
        user.username = fields.required_string("username")?;
    } else if let Some(username) = fields.string("username")? {
        if username.trim().is_empty() {
            fields.error("username", "must not be empty");
        }
        user.username = username;
    }
    if let Some(email) = fields.string("email")? {
        user.email = email;
    }
    if let Some(name) = fields.string("display_name")? {
        user.display_name = name;
    }
    if let Some(active) = fields.bool("active")? {
        user.active = active;
    }
    if let Some(hired) = fields.date("hired_on")? {
        user.hired_on = hired.map(|date| date.to_string());
    }
    if let Some(external) = fields.nullable_string("external_id")? {
        user.external_id = external.filter(|text| !text.is_empty());
    }
    if let Some(role) = fields.enumeration::<Role>("role")? {
        user.role = role.as_str().into();
    }
    fields.string("password")?;
    fields.ids("group_ids")
}

async fn check_groups(tx: &mut Tx, group_ids: &[i64]) -> ApiResult<()> {
    let missing = tx.missing_groups(group_ids).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "group_ids",
            format!("unknown groups {missing:?}"),
        ))
    }
}

async fn set_groups(tx: &mut Tx, user_id: i64, group_ids: &[i64]) -> anyhow::Result<bool> {
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

pub async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    actor.require_admin()?;
    let mut fields = body.fields();
    let mut user = UserRecord {
        id: 0,
        username: String::new(),
        email: String::new(),
        display_name: String::new(),
        active: true,
        hired_on: None,
        external_id: None,
        employee_number: None,
        role: "learner".into(),
        password_hash: None,
        created_at: 0,
    };
    let group_ids = read_user_fields(&mut fields, &mut user, true)?;
    fields.finish()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    if let Some(group_ids) = &group_ids {
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
    if let Some(group_ids) = &group_ids {
        set_groups(&mut tx, id, group_ids).await?;
    }
    if evaluates_now(&actor, &ctx) {
        evaluate_user(&mut tx, &ctx, id).await?;
    }
    let created = tx
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let view = user_json(&mut tx, &created).await?;
    audit_user(&mut tx, &ctx, "user.create", id, None, Some(view.clone())).await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let (limit, cursor) = query.page()?;
    let filter = UserFilter {
        q: query.text("q"),
        active: query.bool("active")?,
        group_id: query.int("group_id")?,
        after_id: cursor.unwrap_or(0),
        limit,
    };
    let mut tx = state.store.read().await?;
    let users = tx.list_users(&filter).await?;
    let mut items = Vec::with_capacity(users.len());
    for user in &users {
        items.push(user_json(&mut tx, user).await?);
    }
    tx.rollback().await?;
    Ok(Json(page(items, limit)))
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

pub async fn get_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "user")?;
    let mut tx = state.store.read().await?;
    let user = visible_user(&mut tx, &actor, id).await?;
    let view = user_json(&mut tx, &user).await?;
    tx.rollback().await?;
    Ok(Json(view))
}

pub async fn patch_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "user")?;
    let mut tx = state.store.write().await?;
    let before = visible_user(&mut tx, &actor, id).await?;
    actor.require_admin()?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let mut fields = body.fields();
    let mut user = before.clone();
    let group_ids = read_user_fields(&mut fields, &mut user, false)?;
    fields.finish()?;
    if let Some(group_ids) = &group_ids {
        check_groups(&mut tx, group_ids).await?;
    }
    let before_view = user_json(&mut tx, &before).await?;
    tx.update_user(&user, ctx.micros()).await?;
    let groups_changed = match &group_ids {
        Some(group_ids) => set_groups(&mut tx, id, group_ids).await?,
        None => false,
    };
    let relevant =
        groups_changed || user.active != before.active || user.hired_on != before.hired_on;
    if relevant && evaluates_now(&actor, &ctx) {
        evaluate_user(&mut tx, &ctx, id).await?;
    }
    let view = user_json(&mut tx, &user).await?;
    audit_user(
        &mut tx,
        &ctx,
        "user.update",
        id,
        Some(before_view),
        Some(view.clone()),
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(Json(view))
}

pub async fn issue_token(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
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
        Json(json!({"token": token, "user_id": id})),
    ))
}

fn group_json(group: &roster_store::GroupRecord) -> Value {
    json!({"id": group.id, "name": group.name, "member_count": group.member_count})
}

async fn audit_group(
    tx: &mut Tx,
    ctx: &Ctx,
    action: &str,
    id: i64,
    before: Option<Value>,
    after: Option<Value>,
) -> anyhow::Result<()> {
    crate::api::audit_change(tx, ctx, "group", action, id, before, after).await
}

pub async fn create_group(
    State(state): State<AppState>,
    actor: Actor,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    actor.require_admin()?;
    let mut fields = body.fields();
    let name = fields.required_string("name")?;
    fields.finish()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let id = tx.insert_group(name.trim(), ctx.micros()).await?;
    let group = tx
        .get_group(id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
    audit_group(
        &mut tx,
        &ctx,
        "group.create",
        id,
        None,
        Some(group_json(&group)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(group_json(&group))))
}

pub async fn list_groups(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let (limit, cursor) = query.page()?;
    let mut tx = state.store.read().await?;
    let groups = tx.list_groups(cursor.unwrap_or(0), limit).await?;
    tx.rollback().await?;
    Ok(Json(page(groups.iter().map(group_json).collect(), limit)))
}

pub async fn get_group(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "group")?;
    let mut tx = state.store.read().await?;
    let group = tx
        .get_group(id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
    tx.rollback().await?;
    Ok(Json(group_json(&group)))
}

pub async fn patch_group(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    actor.require_admin()?;
    let id = path_id(&id, "group")?;
    let mut fields = body.fields();
    let name = fields.string("name")?;
    if name.as_deref().is_some_and(|name| name.trim().is_empty()) {
        fields.error("name", "must not be empty");
    }
    fields.finish()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = tx
        .get_group(id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
    if let Some(name) = name {
        tx.rename_group(id, name.trim()).await?;
    }
    let after = tx
        .get_group(id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
    audit_group(
        &mut tx,
        &ctx,
        "group.update",
        id,
        Some(group_json(&before)),
        Some(group_json(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(group_json(&after)))
}

pub async fn delete_group(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    actor.require_admin()?;
    let id = path_id(&id, "group")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let before = tx
        .get_group(id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
    tx.delete_group(id).await?;
    audit_group(
        &mut tx,
        &ctx,
        "group.delete",
        id,
        Some(group_json(&before)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn membership(
    state: &AppState,
    actor: &Actor,
    group: &str,
    user: &str,
    add: bool,
) -> ApiResult<StatusCode> {
    actor.require_admin()?;
    let group_id = path_id(group, "group")?;
    let user_id = path_id(user, "user")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    tx.get_group(group_id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
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
        audit_group(
            &mut tx,
            &ctx,
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

pub async fn add_member(
    State(state): State<AppState>,
    actor: Actor,
    Path((group, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    membership(&state, &actor, &group, &user, true).await
}

pub async fn remove_member(
    State(state): State<AppState>,
    actor: Actor,
    Path((group, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    membership(&state, &actor, &group, &user, false).await
}
