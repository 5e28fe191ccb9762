//! Actions on many enrollments at once: bulk update (R51), bulk delete
//! (R53) and the purge of inactive users' enrollments (R54). Deletions keep
//! the deleted records whole in the audit log.

use std::collections::HashSet;

use axum::extract::State;
use axum::response::Response;
use roster_core::date::Day;
use roster_core::{EnrollmentType, Status};
use roster_store::{AuditEntry, EnrollmentRecord, Tx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::attachments::{Attachment, Task};
use crate::api::enrollments::{AssignedType, check_not_elected};
use crate::api::{EnrollmentView, json_response};
use crate::auth::Actor;
use crate::engine::enroll::{AuditedEnrollment, Change, change, change_fields_of_many};
use crate::error::{ApiResult, FieldErrors};
use crate::input::{Body, nullable};
use crate::state::{AppState, Ctx};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bulk_update))
        .routes(routes!(bulk_delete))
        .routes(routes!(purge_inactive))
}

/// The body of `POST /enrollments/bulk-update` (R51): the fields given
/// change on every enrollment of `ids`; `"due_on": null` clears due dates.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUpdateBody {
    #[schema(min_items = 1)]
    pub ids: Vec<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Day>)]
    pub due_on: Option<Option<Day>>,
    pub status: Option<Status>,
    #[serde(rename = "type")]
    #[schema(value_type = Option<AssignedType>)]
    pub enrollment_type: Option<EnrollmentType>,
}

/// A bulk update as validated.
#[derive(Debug)]
pub struct BulkUpdate {
    pub ids: Vec<i64>,
    pub change: Change,
}

impl TryFrom<BulkUpdateBody> for BulkUpdate {
    type Error = FieldErrors;

    fn try_from(body: BulkUpdateBody) -> Result<BulkUpdate, FieldErrors> {
        let mut errors = FieldErrors::new();
        errors.check(!body.ids.is_empty(), "ids", "needs at least one enrollment");
        check_not_elected(&mut errors, body.enrollment_type);
        errors.finish(BulkUpdate {
            ids: body.ids,
            change: Change {
                enrollment_type: body.enrollment_type,
                status: body.status,
                due_on: body.due_on.map(|due| due.map(Day::date)),
                ..Change::default()
            },
        })
    }
}

/// What a bulk update did to one enrollment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    Updated,
    NotFound,
    /// Reopening it would make a second open enrollment (R2).
    Conflict,
}

/// One enrollment's result: `enrollment` with `updated`, `detail` with
/// `conflict`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResult<'a> {
    pub id: i64,
    pub outcome: UpdateOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EnrollmentView>)]
    pub enrollment: Option<EnrollmentView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

/// The answer of a bulk update: one result per id, in the request's order.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUpdateAnswer<'a> {
    #[schema(value_type = Vec<UpdateResult>)]
    pub results: Vec<UpdateResult<'a>>,
}

/// The body of `POST /enrollments/bulk-delete` (R53).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteBody {
    #[schema(min_items = 1)]
    pub ids: Vec<i64>,
    /// Deleting is permanent: must be `true`.
    #[schema(schema_with = only_true)]
    pub confirm: bool,
}

/// A boolean whose only accepted value is `true`.
fn only_true() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .build()
        .into()
}

/// The ids of a confirmed bulk delete.
#[derive(Debug)]
pub struct BulkDelete {
    pub ids: Vec<i64>,
}

impl TryFrom<BulkDeleteBody> for BulkDelete {
    type Error = FieldErrors;

    fn try_from(body: BulkDeleteBody) -> Result<BulkDelete, FieldErrors> {
        let mut errors = FieldErrors::new();
        errors.check(!body.ids.is_empty(), "ids", "needs at least one enrollment");
        errors.check(
            body.confirm,
            "confirm",
            "deleting enrollments is permanent: send \"confirm\": true",
        );
        errors.finish(BulkDelete { ids: body.ids })
    }
}

/// The answer of a bulk delete.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteAnswer {
    /// How many were deleted.
    pub deleted: usize,
    /// The ids deleted.
    pub ids: Vec<i64>,
    /// The ids that named no enrollment.
    pub not_found: Vec<i64>,
}

/// The body of `POST /maintenance/purge-inactive` (R54): `dry_run` to see
/// what would be deleted, then `confirm` to delete it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    pub dry_run: Option<bool>,
    pub confirm: Option<bool>,
}

// Written by hand so that the document says what the handler needs: one of
// the two fields is `true`.
impl utoipa::PartialSchema for PurgeBody {
    fn schema() -> RefOr<Schema> {
        let with_true = |name: &str, other: &str| {
            ObjectBuilder::new()
                .property(name, only_true())
                .required(name)
                .property(
                    other,
                    ObjectBuilder::new()
                        .schema_type(SchemaType::from_iter([Type::Boolean, Type::Null])),
                )
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        AnyOfBuilder::new()
            .description(Some(
                "`{\"dry_run\": true}` lists what would be deleted; `{\"confirm\": true}` deletes it",
            ))
            .item(with_true("dry_run", "confirm"))
            .item(with_true("confirm", "dry_run"))
            .into()
    }
}

impl ToSchema for PurgeBody {}

/// Whether a purge only shows what it would delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge {
    DryRun,
    Confirmed,
}

impl TryFrom<PurgeBody> for Purge {
    type Error = FieldErrors;

    fn try_from(body: PurgeBody) -> Result<Purge, FieldErrors> {
        let mut errors = FieldErrors::new();
        let dry_run = body.dry_run == Some(true);
        errors.check(
            dry_run || body.confirm == Some(true),
            "confirm",
            "send {\"dry_run\": true} to see what would be deleted, then {\"confirm\": true} to delete it",
        );
        errors.finish(if dry_run {
            Purge::DryRun
        } else {
            Purge::Confirmed
        })
    }
}

/// The answer of a purge: the enrollments deleted, or that would be.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeAnswer<'a> {
    pub dry_run: bool,
    pub count: usize,
    #[schema(value_type = Vec<EnrollmentView>)]
    pub items: Vec<EnrollmentView<'a>>,
}

const R2_CONFLICT: &str = "the user already has an open enrollment in this activity";

/// R51: bulk update of selected enrollments.
#[utoipa::path(
    post, path = "/enrollments/bulk-update", tag = "enrollments",
    request_body = BulkUpdateBody,
    responses(
        (status = 200, description = "One result per id", body = BulkUpdateAnswer),
        (status = 409, description = "A change met an open enrollment (R2)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn bulk_update(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<BulkUpdateBody>,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let BulkUpdate {
        ids,
        change: change_request,
    } = BulkUpdate::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let today = ctx.today.to_string();
    let distinct = ids.iter().collect::<HashSet<_>>().len() == ids.len();
    if change_request.status.is_none() && distinct {
        // Fields only: nothing is set off, and no enrollment's change
        // depends on another's. Read together, updated together.
        let mut found = tx.get_enrollments(&ids).await?;
        let befores = ids.iter().filter_map(|id| found.remove(id)).collect();
        let afters = change_fields_of_many(&mut tx, &ctx, befores, &change_request).await?;
        tx.commit().await?;
        let results = ids
            .iter()
            .map(|id| match afters.get(id) {
                Some(after) => updated(*id, EnrollmentView::of(after, &today)),
                None => unchanged(*id, UpdateOutcome::NotFound),
            })
            .collect();
        return Ok(json_response(&BulkUpdateAnswer { results }));
    }
    let outcomes = update_one_by_one(&mut tx, &ctx, &ids, &change_request).await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    let results = outcomes
        .iter()
        .map(|(id, outcome)| match outcome {
            Ok(after) => updated(*id, EnrollmentView::of(after, &today)),
            Err(outcome) => unchanged(*id, *outcome),
        })
        .collect();
    Ok(json_response(&BulkUpdateAnswer { results }))
}

fn updated(id: i64, view: EnrollmentView<'_>) -> UpdateResult<'_> {
    UpdateResult {
        id,
        outcome: UpdateOutcome::Updated,
        enrollment: Some(view),
        detail: None,
    }
}

fn unchanged(id: i64, outcome: UpdateOutcome) -> UpdateResult<'static> {
    UpdateResult {
        id,
        outcome,
        enrollment: None,
        detail: (outcome == UpdateOutcome::Conflict).then_some(R2_CONFLICT),
    }
}

/// Changes the enrollments of `ids` in turn: each one changed, or why not.
async fn update_one_by_one(
    tx: &mut Tx,
    ctx: &Ctx,
    ids: &[i64],
    change_request: &Change,
) -> ApiResult<Vec<(i64, Result<EnrollmentRecord, UpdateOutcome>)>> {
    // Read once for the whole request, unless a change may reach other
    // enrollments (a pass or a failure completes curricula and bundles,
    // R39, and opens next periods, R19): then each is read when its turn
    // comes, as the earlier changes left it.
    let cascades = change_request
        .status
        .is_some_and(|status| status.is_complete());
    let mut found = if cascades {
        Default::default()
    } else {
        tx.get_enrollments(ids).await?
    };
    let mut outcomes = Vec::with_capacity(ids.len());
    for &id in ids {
        // (An id given twice is read again the second time.)
        let before = match found.remove(&id) {
            Some(record) => Some(record),
            None => tx.get_enrollment(id).await?,
        };
        let Some(before) = before else {
            outcomes.push((id, Err(UpdateOutcome::NotFound)));
            continue;
        };
        // A conflict must not poison the transaction: check R2 first.
        if change_request.status == Some(Status::InProgress)
            && before.status != "in_progress"
            && tx
                .open_enrollment(before.user_id, before.activity_id)
                .await?
                .is_some()
        {
            outcomes.push((id, Err(UpdateOutcome::Conflict)));
            continue;
        }
        let after = change(tx, ctx, before, change_request.clone()).await?;
        outcomes.push((id, Ok(after)));
    }
    Ok(outcomes)
}

/// Deletes one enrollment with its attachments and tasks; the audit entry
/// keeps them whole.
async fn delete_one(
    state: &AppState,
    tx: &mut Tx,
    ctx: &Ctx,
    record: &EnrollmentRecord,
    action: &str,
) -> anyhow::Result<()> {
    let attachments = tx.attachments_of(record.id).await?;
    let tasks = tx.tasks_of(record.id).await?;
    let mut whole = serde_json::to_value(AuditedEnrollment::of(record))?;
    whole["attachments"] = json!(attachments.iter().map(Attachment::of).collect::<Vec<_>>());
    whole["tasks"] = json!(tasks.iter().map(Task::of).collect::<Vec<_>>());
    tx.delete_enrollment(record.id).await?;
    tx.audit(
        AuditEntry {
            actor_id: ctx.actor,
            action,
            entity: "enrollment",
            entity_id: Some(record.id),
            before: Some(whole.to_string()),
            after: None,
        },
        ctx.micros(),
    )
    .await?;
    for attachment in attachments {
        let path = state
            .data_dir
            .join("attachments")
            .join(&attachment.storage_name);
        let _ = tokio::fs::remove_file(path).await;
    }
    Ok(())
}

/// R53: permanent deletion after explicit confirmation; the audit log keeps
/// the deleted records whole.
#[utoipa::path(
    post, path = "/enrollments/bulk-delete", tag = "enrollments",
    request_body = BulkDeleteBody,
    responses((status = 200, description = "What was deleted", body = BulkDeleteAnswer))
)]
pub async fn bulk_delete(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<BulkDeleteBody>,
) -> ApiResult<axum::Json<BulkDeleteAnswer>> {
    actor.require_admin()?;
    let BulkDelete { ids } = BulkDelete::try_from(body)?;
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let mut deleted = Vec::new();
    let mut not_found = Vec::new();
    for id in ids {
        match tx.get_enrollment(id).await? {
            Some(record) => {
                delete_one(&state, &mut tx, &ctx, &record, "enrollment.delete").await?;
                deleted.push(id);
            }
            None => not_found.push(id),
        }
    }
    tx.commit().await?;
    Ok(axum::Json(BulkDeleteAnswer {
        deleted: deleted.len(),
        ids: deleted,
        not_found,
    }))
}

/// R54: delete every in-progress enrollment of inactive users, after a dry run.
#[utoipa::path(
    post, path = "/maintenance/purge-inactive", tag = "enrollments",
    request_body = PurgeBody,
    responses((status = 200, description = "The enrollments deleted, or that a dry run would delete", body = PurgeAnswer))
)]
pub async fn purge_inactive(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<PurgeBody>,
) -> ApiResult<Response> {
    actor.require_admin()?;
    let purge = Purge::try_from(body)?;
    let mut tx = match purge {
        Purge::DryRun => state.store.read().await?,
        Purge::Confirmed => state.store.write().await?,
    };
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let today = ctx.today.to_string();
    let candidates = tx.purge_candidates().await?;
    let items: Vec<EnrollmentView> = candidates
        .iter()
        .map(|record| EnrollmentView::of(record, &today))
        .collect();
    if purge == Purge::DryRun {
        tx.rollback().await?;
        return Ok(json_response(&PurgeAnswer {
            dry_run: true,
            count: items.len(),
            items,
        }));
    }
    for record in &candidates {
        delete_one(&state, &mut tx, &ctx, record, "enrollment.purge").await?;
    }
    tx.audit(
        AuditEntry {
            actor_id: ctx.actor,
            action: "maintenance.purge_inactive",
            entity: "maintenance",
            entity_id: None,
            before: Some(serde_json::to_string(&items).map_err(anyhow::Error::from)?),
            after: Some(json!({"deleted": items.len()}).to_string()),
        },
        ctx.micros(),
    )
    .await?;
    tx.commit().await?;
    Ok(json_response(&PurgeAnswer {
        dry_run: false,
        count: items.len(),
        items,
    }))
}
