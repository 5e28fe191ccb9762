//! The CSV user import (R18): `POST /imports/users` (a `text/csv` body or a
//! `multipart/form-data` upload with a `file` field) and `roster import users`.
//! Upserts by username, one transaction per row; a bad row is reported with
//! its line number and does not stop the others.

use axum::Json;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use roster_core::Role;
use roster_core::date::parse_date;
use roster_store::{UserInsert, UserRecord};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Actor;
use crate::engine::sweep::evaluate_user;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The largest upload an import reads.
pub const MAX_IMPORT_BYTES: usize = 512 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_users))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES))
}

/// Separates the group names of the `groups` column (SPEC §3): a comma would
/// be read as the CSV's own separator by spreadsheets that do not quote.
pub const GROUP_SEPARATOR: char = ';';

/// The `multipart/form-data` form of an import: the CSV in a `file` field
/// (other fields are ignored).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportForm {
    /// The CSV file, UTF-8, header row first.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// The answer of an import: per-row results and their totals.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// The groups the import created (named in `groups` and missing), in the
    /// order they were first named.
    pub groups_created: Vec<String>,
    pub results: Vec<RowResult>,
}

/// One data row's result; `line` counts the header row as line 1.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowResult {
    pub line: usize,
    /// Left out when the row has no readable username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub outcome: RowOutcome,
    /// The user created, updated or unchanged; left out on an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// What is wrong with the row; only on an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an import did with one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    Created,
    Updated,
    /// The user exists and the row would change nothing: nothing is written.
    Unchanged,
    Error,
}

/// Import users from CSV (R18: integration timing). Upserts by `username`;
/// a bad row is reported with its line number and does not stop the others.
/// Header row required, columns in any order: `username` (required),
/// `email`, `display_name`, `active` (`true`/`false`), `hired_on`
/// (`YYYY-MM-DD`), `groups` (group names separated by `;`, created if
/// missing; the user's groups become exactly those), `external_id`.
#[utoipa::path(
    post, path = "/imports/users", tag = "users",
    request_body(
        description = "The CSV as the body (`text/csv`), or a `multipart/form-data` upload with the CSV in a `file` field. Empty, not UTF-8, without a `username` column or without rows: 422",
        content((String = "text/csv"), (ImportForm = "multipart/form-data")),
    ),
    responses(
        (status = 200, description = "Per-row results and their totals", body = ImportReport),
        (status = 413, description = "The upload is larger than 512 MiB", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn import_users(
    State(state): State<AppState>,
    actor: Actor,
    request: Request,
) -> ApiResult<Json<ImportReport>> {
    actor.require_admin()?;
    let body = read_upload(request).await?;
    Ok(Json(import_csv(&state, Some(actor.id()), &body).await?))
}

/// The CSV of the request: the `file` field of a multipart form (what an HTML
/// form uploads), or else the body itself.
async fn read_upload(request: Request) -> ApiResult<Bytes> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("multipart/form-data"));
    if !multipart {
        return Bytes::from_request(request, &())
            .await
            .map_err(|rejection| too_large_or_bad(rejection.status(), rejection.body_text()));
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|rejection| too_large_or_bad(rejection.status(), rejection.body_text()))?;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                return field
                    .bytes()
                    .await
                    .map_err(|error| too_large_or_bad(error.status(), error.body_text()));
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(ApiError::invalid(
                    "file",
                    "is required: send the CSV in a multipart field named file",
                ));
            }
            Err(error) => return Err(too_large_or_bad(error.status(), error.body_text())),
        }
    }
}

fn too_large_or_bad(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(text)
    } else {
        ApiError::BadRequest(format!("unreadable upload: {text}"))
    }
}

/// An upload that cannot be imported at all is refused as a whole (422), so
/// that a wrong file is never answered with an empty success.
fn unreadable(message: impl Into<String>) -> ApiError {
    ApiError::invalid("file", message)
}

/// The positions of the known columns in the header row.
struct Columns {
    username: usize,
    email: Option<usize>,
    display_name: Option<usize>,
    active: Option<usize>,
    hired_on: Option<usize>,
    groups: Option<usize>,
    external_id: Option<usize>,
}

impl Columns {
    fn of(headers: &csv::StringRecord) -> ApiResult<Columns> {
        let column = |name: &str| {
            headers
                .iter()
                .position(|header| header.eq_ignore_ascii_case(name))
        };
        let Some(username) = column("username") else {
            let found = headers
                .iter()
                .map(|header| format!("{header:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(unreadable(format!(
                "has no username column in its header row (found {found})"
            )));
        };
        Ok(Columns {
            username,
            email: column("email"),
            display_name: column("display_name"),
            active: column("active"),
            hired_on: column("hired_on"),
            groups: column("groups"),
            external_id: column("external_id"),
        })
    }
}

/// One row read and checked; `None` leaves a field of an existing user as it is.
struct RowInput {
    username: String,
    email: Option<String>,
    display_name: Option<String>,
    active: Option<bool>,
    hired_on: Option<String>,
    groups: Option<Vec<String>>,
    external_id: Option<String>,
}

fn read_row(row: &csv::StringRecord, columns: &Columns) -> Result<RowInput, String> {
    let get = |position: Option<usize>| position.and_then(|p| row.get(p)).map(str::to_string);
    let username = get(Some(columns.username)).unwrap_or_default();
    if username.is_empty() {
        return Err("username is empty".into());
    }
    let active = match get(columns.active).as_deref() {
        None | Some("") => None,
        Some("true" | "TRUE" | "True") => Some(true),
        Some("false" | "FALSE" | "False") => Some(false),
        Some(other) => return Err(format!("active must be true or false, not {other:?}")),
    };
    let hired_on = match get(columns.hired_on).as_deref() {
        None | Some("") => None,
        Some(text) => match parse_date(text) {
            Some(date) => Some(date.to_string()),
            None => return Err(format!("hired_on {text:?} is not a date YYYY-MM-DD")),
        },
    };
    let groups = get(columns.groups).map(|text| {
        text.split(GROUP_SEPARATOR)
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect()
    });
    Ok(RowInput {
        username,
        email: get(columns.email),
        display_name: get(columns.display_name),
        active,
        hired_on,
        groups,
        external_id: get(columns.external_id).filter(|text| !text.is_empty()),
    })
}

/// Imports a CSV file; `actor_id` is `None` from the command line.
pub async fn import_csv(
    state: &AppState,
    actor_id: Option<i64>,
    body: &[u8],
) -> ApiResult<ImportReport> {
    let text = std::str::from_utf8(body).map_err(|error| {
        unreadable(format!(
            "is not UTF-8 text (an invalid byte follows byte {}); save the CSV as UTF-8",
            error.valid_up_to()
        ))
    })?;
    // Spreadsheets often start a UTF-8 CSV with a byte order mark, which
    // would otherwise become part of the first column's name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(unreadable(
            "is empty: send a CSV file whose header row names the columns, e.g. username,email,groups",
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| unreadable(format!("has no readable header row: {error}")))?
        .clone();
    let columns = Columns::of(&headers)?;
    let mut report = ImportReport::default();
    for (index, row) in reader.records().enumerate() {
        let line = index + 2;
        let input = match row {
            Ok(row) => {
                read_row(&row, &columns).map_err(|error| (row_username(&row, &columns), error))
            }
            Err(error) => Err((None, format!("unreadable row: {error}"))),
        };
        let result = match input {
            Ok(input) => {
                let username = input.username.clone();
                match import_row(state, actor_id, input).await {
                    Ok((outcome, user_id, groups_created)) => {
                        for name in groups_created {
                            if !report.groups_created.contains(&name) {
                                report.groups_created.push(name);
                            }
                        }
                        RowResult {
                            line,
                            username: Some(username),
                            outcome,
                            user_id: Some(user_id),
                            error: None,
                        }
                    }
                    Err(error) => failed_row(line, Some(username), error.to_string()),
                }
            }
            Err((username, error)) => failed_row(line, username, error),
        };
        match result.outcome {
            RowOutcome::Created => report.created += 1,
            RowOutcome::Updated => report.updated += 1,
            RowOutcome::Unchanged => report.unchanged += 1,
            RowOutcome::Error => report.failed += 1,
        }
        report.results.push(result);
    }
    if report.results.is_empty() {
        return Err(unreadable("has a header row but no rows to import"));
    }
    state.jobs_ready.notify_waiters();
    Ok(report)
}

fn row_username(row: &csv::StringRecord, columns: &Columns) -> Option<String> {
    row.get(columns.username)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

fn failed_row(line: usize, username: Option<String>, error: String) -> RowResult {
    RowResult {
        line,
        username,
        outcome: RowOutcome::Error,
        user_id: None,
        error: Some(error),
    }
}

/// Upserts one row in its own transaction; answers the outcome, the user's id
/// and the groups it created. A row that changes nothing is rolled back, so
/// it leaves no audit entry and does not mark the user as changed for the
/// incremental sweep.
async fn import_row(
    state: &AppState,
    actor_id: Option<i64>,
    input: RowInput,
) -> ApiResult<(RowOutcome, i64, Vec<String>)> {
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, actor_id).await?;
    let (outcome, user_id, before) = match tx.find_user_by_username(&input.username).await? {
        Some(user) => {
            let before = crate::api::views::User::read(&mut tx, &user).await?;
            let changed = with_row(user.clone(), &input);
            if changed != user {
                tx.update_user(&changed, ctx.micros()).await?;
            }
            (RowOutcome::Updated, user.id, Some(before))
        }
        None => {
            let insert = UserInsert {
                username: input.username.clone(),
                email: input.email.clone().unwrap_or_default(),
                display_name: input.display_name.clone().unwrap_or_default(),
                active: input.active.unwrap_or(true),
                hired_on: input.hired_on.clone(),
                external_id: input.external_id.clone(),
                employee_number: None,
                role: Role::Learner.as_str().into(),
                password_hash: None,
            };
            let id = tx.insert_user(&insert, ctx.micros()).await?;
            (RowOutcome::Created, id, None)
        }
    };
    let mut groups_created = Vec::new();
    if let Some(names) = &input.groups {
        let mut wanted = Vec::new();
        for name in names {
            let id = match tx.find_group_by_name(name).await? {
                Some(id) => id,
                None => {
                    groups_created.push(name.clone());
                    tx.insert_group(name, ctx.micros()).await?
                }
            };
            wanted.push(id);
        }
        for current in tx.user_group_ids(user_id).await? {
            if !wanted.contains(&current) {
                tx.remove_member(current, user_id).await?;
            }
        }
        for id in wanted {
            tx.add_member(id, user_id).await?;
        }
    }
    let user = tx
        .get_user(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let after = crate::api::views::User::read(&mut tx, &user).await?;
    if before.as_ref() == Some(&after) {
        tx.rollback().await?;
        return Ok((RowOutcome::Unchanged, user_id, Vec::new()));
    }
    if ctx.settings.integration_evaluation == roster_core::IntegrationEvaluation::Immediate {
        evaluate_user(&mut tx, &ctx, user_id).await?;
    }
    crate::api::users::audit_user(
        &mut tx,
        &ctx,
        "user.import",
        user_id,
        before.as_ref(),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((outcome, user_id, groups_created))
}

/// The user as the row leaves them: a column the file does not have keeps
/// the field (so does an empty `hired_on` or `external_id`).
fn with_row(mut user: UserRecord, input: &RowInput) -> UserRecord {
    if let Some(email) = &input.email {
        user.email = email.clone();
    }
    if let Some(name) = &input.display_name {
        user.display_name = name.clone();
    }
    if let Some(active) = input.active {
        user.active = active;
    }
    if input.hired_on.is_some() {
        user.hired_on = input.hired_on.clone();
    }
    if input.external_id.is_some() {
        user.external_id = input.external_id.clone();
    }
    user
}
