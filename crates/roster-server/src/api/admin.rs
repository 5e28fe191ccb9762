//! Administration: the audit trail, the organisation's settings and
//! exemptions from automation (R21).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use roster_core::date::Day;
use roster_store::{AuditEntry, AuditRecord, ExemptionRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::views::{Page, TimestampText, page_bounds};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::input::{Body, Query, path_id};
use crate::settings::{Settings, SettingsChange};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(get_settings, patch_settings))
        .routes(routes!(create_exemption, list_exemptions))
        .routes(routes!(delete_exemption))
}

/// One entry of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditView {
    pub id: i64,
    pub at: TimestampText,
    /// Who made the change; `null` for the engine and the command line.
    #[schema(required = true)]
    pub actor_id: Option<i64>,
    /// What was done, `entity.verb` (`user.create`, `enrollment.update`, …).
    pub action: String,
    /// The kind of record changed (`user`, `group`, `activity`, …).
    pub entity: String,
    #[schema(required = true)]
    pub entity_id: Option<i64>,
    /// The record before the change, as the API showed it.
    #[schema(schema_with = crate::api::views::free_object_or_null_schema, required = true)]
    pub before: Option<serde_json::Value>,
    /// The record after the change.
    #[schema(schema_with = crate::api::views::free_object_or_null_schema, required = true)]
    pub after: Option<serde_json::Value>,
}

impl AuditView {
    fn of(entry: &AuditRecord) -> ApiResult<AuditView> {
        let json = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text).map_err(|error| {
                anyhow::anyhow!("audit entry {} holds malformed JSON: {error}", entry.id)
            })
        };
        Ok(AuditView {
            id: entry.id,
            at: TimestampText(entry.at),
            actor_id: entry.actor_id,
            action: entry.action.clone(),
            entity: entry.entity.clone(),
            entity_id: entry.entity_id,
            before: entry.before.as_deref().map(json).transpose()?,
            after: entry.after.as_deref().map(json).transpose()?,
        })
    }
}

/// The query of `GET /audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditListQuery {
    /// Only entries about this kind of record (`user`, `group`, `activity`,
    /// `enrollment`, `job`, `exemption`, `settings`, …); empty is all.
    pub entity: Option<String>,
    /// Only entries about the record with this id.
    pub id: Option<i64>,
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// An exemption of a user from an activity's automation (R21).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    pub id: i64,
    pub user_id: i64,
    pub activity_id: i64,
    pub reason: String,
    /// The last day it holds; `null` for ever.
    #[schema(value_type = Option<Day>, required = true)]
    pub until: Option<String>,
    /// The administrator who granted it.
    #[schema(required = true)]
    pub created_by: Option<i64>,
    pub created_at: TimestampText,
}

impl From<&ExemptionRecord> for Exemption {
    fn from(record: &ExemptionRecord) -> Exemption {
        Exemption {
            id: record.id,
            user_id: record.user_id,
            activity_id: record.activity_id,
            reason: record.reason.clone(),
            until: record.until.clone(),
            created_by: record.created_by,
            created_at: TimestampText(record.created_at),
        }
    }
}

/// The body of `POST /exemptions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExemptionBody {
    pub user_id: i64,
    pub activity_id: i64,
    /// Why the user is exempt; not blank.
    #[schema(pattern = "\\S")]
    pub reason: String,
    /// The last day it holds; absent or `null` for ever.
    pub until: Option<Day>,
}

/// An exemption as validated; the user and activity are checked to exist
/// by the handler.
pub struct NewExemption {
    pub user_id: i64,
    pub activity_id: i64,
    pub reason: String,
    pub until: Option<Day>,
}

impl TryFrom<NewExemptionBody> for NewExemption {
    type Error = FieldErrors;

    fn try_from(body: NewExemptionBody) -> Result<NewExemption, FieldErrors> {
        let mut errors = FieldErrors::new();
        errors.check(
            !body.reason.trim().is_empty(),
            "reason",
            "must not be empty",
        );
        errors.finish(NewExemption {
            user_id: body.user_id,
            activity_id: body.activity_id,
            reason: body.reason,
            until: body.until,
        })
    }
}

/// The query of `GET /exemptions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExemptionListQuery {
    /// Only the exemptions of this user.
    pub user_id: Option<i64>,
    /// Only the exemptions from this activity.
    pub activity_id: Option<i64>,
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// The audit trail, oldest first.
#[utoipa::path(
    get, path = "/audit", tag = "admin",
    params(AuditListQuery),
    responses((status = 200, description = "A page of audit entries", body = Page<AuditView>))
)]
pub async fn list_audit(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<AuditListQuery>,
) -> ApiResult<Json<Page<AuditView>>> {
    actor.require_admin()?;
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let entity = query.entity.filter(|entity| !entity.is_empty());
    let mut tx = state.store.read().await?;
    let entries = tx
        .list_audit(entity.as_deref(), query.id, cursor.unwrap_or(0), limit)
        .await?;
    tx.rollback().await?;
    let items = entries
        .iter()
        .map(AuditView::of)
        .collect::<ApiResult<Vec<AuditView>>>()?;
    Ok(Json(Page::new(items, limit, |entry| entry.id)))
}

/// The organisation's settings.
#[utoipa::path(
    get, path = "/settings", tag = "admin",
    responses((status = 200, description = "The settings", body = Settings))
)]
pub async fn get_settings(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Settings>> {
    actor.require_admin()?;
    let mut tx = state.store.read().await?;
    let settings = Settings::load(&mut tx).await?;
    tx.rollback().await?;
    Ok(Json(settings))
}

/// Change the organisation's settings; only the fields given change.
#[utoipa::path(
    patch, path = "/settings", tag = "admin",
    request_body = SettingsChange,
    responses((status = 200, description = "The settings as changed", body = Settings))
)]
pub async fn patch_settings(
    State(state): State<AppState>,
    actor: Actor,
    Body(change): Body<SettingsChange>,
) -> ApiResult<Json<Settings>> {
    actor.require_admin()?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    // The settings as committed, not as cached: the change is made to them.
    let before = Settings::load(&mut tx).await?;
    let settings = before.changed(change)?;
    settings.save(&mut tx).await?;
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "settings.update",
            entity: "settings",
            entity_id: None,
            before: Some(to_json_text(&before)?),
            after: Some(to_json_text(&settings)?),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    state.settings_cache.clear();
    Ok(Json(settings))
}

fn to_json_text<T: Serialize>(value: &T) -> ApiResult<String> {
    Ok(serde_json::to_string(value).map_err(anyhow::Error::from)?)
}

/// Exempt a user from an activity's automation (R21).
#[utoipa::path(
    post, path = "/exemptions", tag = "admin",
    request_body = NewExemptionBody,
    responses((status = 201, description = "The new exemption", body = Exemption))
)]
pub async fn create_exemption(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<NewExemptionBody>,
) -> ApiResult<(StatusCode, Json<Exemption>)> {
    actor.require_admin()?;
    let exemption = NewExemption::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let user = tx.get_user(exemption.user_id).await?;
    let activity = tx.get_activity(exemption.activity_id).await?;
    let mut unknown = Vec::new();
    if user.is_none() {
        unknown.push(crate::error::FieldError::new("user_id", "unknown user"));
    }
    if activity.is_none() {
        unknown.push(crate::error::FieldError::new(
            "activity_id",
            "unknown activity",
        ));
    }
    if !unknown.is_empty() {
        return Err(ApiError::UnknownReference(unknown));
    }
    let mut record = ExemptionRecord {
        id: 0,
        user_id: exemption.user_id,
        activity_id: exemption.activity_id,
        reason: exemption.reason,
        until: exemption.until.map(|day| day.to_string()),
        created_by: Some(actor.id()),
        created_at: ctx.micros(),
    };
    record.id = tx.insert_exemption(&record).await?;
    let view = Exemption::from(&record);
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "exemption.create",
            entity: "exemption",
            entity_id: Some(record.id),
            before: None,
            after: Some(to_json_text(&view)?),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Exemptions, by id (R21).
#[utoipa::path(
    get, path = "/exemptions", tag = "admin",
    params(ExemptionListQuery),
    responses((status = 200, description = "A page of exemptions", body = Page<Exemption>))
)]
pub async fn list_exemptions(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<ExemptionListQuery>,
) -> ApiResult<Json<Page<Exemption>>> {
    actor.require_admin()?;
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let mut tx = state.store.read().await?;
    let records = tx
        .list_exemptions(query.user_id, query.activity_id, cursor.unwrap_or(0), limit)
        .await?;
    tx.rollback().await?;
    let items = records.iter().map(Exemption::from).collect();
    Ok(Json(Page::new(items, limit, |exemption| exemption.id)))
}

/// Delete an exemption: the next sweep may enroll the user again (R21).
#[utoipa::path(
    delete, path = "/exemptions/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The exemption's id")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_exemption(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    actor.require_admin()?;
    let id = path_id(&id, "exemption")?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let record = tx
        .get_exemption(id)
        .await?
        .ok_or_else(|| ApiError::not_found("exemption"))?;
    tx.delete_exemption(id).await?;
    tx.audit(
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "exemption.delete",
            entity: "exemption",
            entity_id: Some(id),
            before: Some(to_json_text(&Exemption::from(&record))?),
            after: None,
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
