//! Answer types shared by several endpoints: pages of a list, timestamps,
//! users. Each is a `Serialize` type whose schema the document derives.

use jiff::Timestamp;
use roster_core::Role;
use roster_core::date::Day;
use roster_store::{Tx, UserRecord};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiResult, FieldErrors};

/// A timestamp (microseconds) written RFC 3339 in UTC straight into the
/// serializer: lists of hundreds of enrollments allocate no text per date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampText(pub i64);

impl Serialize for TimestampText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer
            .collect_str(&Timestamp::from_microsecond(self.0).unwrap_or(Timestamp::UNIX_EPOCH))
    }
}

impl utoipa::PartialSchema for TimestampText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}

impl ToSchema for TimestampText {}

/// A page of a list: `{"items":[…],"next_cursor":…}`; the cursor is the
/// last item's id when the page is full, to pass back as `cursor`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, limit: i64, id_of: impl Fn(&T) -> i64) -> Self {
        let next_cursor = if items.len() as i64 >= limit {
            items.last().map(|item| id_of(item).to_string())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// The most items one page holds; a larger `limit` is read as this.
pub const MAX_LIMIT: i64 = 1000;
/// The items of a page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;

/// `limit` (default 100, at least 1, above 1000 read as 1000) and the
/// cursor (an id a previous page gave) of a list query.
pub fn page_bounds(limit: Option<i64>, cursor: Option<&str>) -> ApiResult<(i64, Option<i64>)> {
    let mut errors = FieldErrors::new();
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    errors.check(limit >= 1, "limit", "must be at least 1");
    let cursor = match cursor {
        None => None,
        Some(text) => {
            let id = text.parse::<i64>().ok();
            errors.check(id.is_some(), "cursor", "is not a cursor this server gave");
            id
        }
    };
    errors.finish(())?;
    Ok((limit.min(MAX_LIMIT), cursor))
}

/// RFC 3339 text of a stored timestamp (microseconds).
pub fn timestamp_text(micros: i64) -> String {
    Timestamp::from_microsecond(micros)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

/// A user as the API shows them; `password` is never shown.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    #[schema(value_type = Option<Day>, required = true)]
    pub hired_on: Option<String>,
    #[schema(required = true)]
    pub external_id: Option<String>,
    pub group_ids: Vec<i64>,
    #[schema(value_type = Role)]
    pub role: String,
    pub created_at: TimestampText,
}

impl User {
    /// The view of `user`, with their groups read in `tx`.
    pub async fn read(tx: &mut Tx, user: &UserRecord) -> ApiResult<User> {
        let group_ids = tx.user_group_ids(user.id).await?;
        Ok(User {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            active: user.active,
            hired_on: user.hired_on.clone(),
            external_id: user.external_id.clone(),
            group_ids,
            role: user.role.clone(),
            created_at: TimestampText(user.created_at),
        })
    }

    /// The audit trail's JSON of this view.
    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The schema of a free-form JSON object (a job's snapshot, a record as the
/// audit trail keeps it): any members, so the document stays true when
/// closed.
pub fn free_object_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(true),
        ))
        .build()
}

/// [`free_object_schema`] or `null`.
pub fn free_object_or_null_schema() -> utoipa::openapi::Object {
    let mut schema = free_object_schema();
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::schema::Type::Object,
        utoipa::openapi::schema::Type::Null,
    ]);
    schema
}
