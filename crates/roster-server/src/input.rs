//! Typed input, in two steps (STYLE 9): serde reads the shape of a body or a
//! query into a `#[derive(Deserialize)]` type that refuses unknown fields;
//! the handler then turns it into a domain input with `TryFrom`, which
//! collects every field error. This module is the one place that maps the
//! first step's failures to the spec's statuses: not JSON or a wrong JSON type
//! is 400; a missing or unknown field, an unknown enum value, an impossible
//! date or a number out of range is 422 naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use roster_core::validate::{FieldError, FieldErrors};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;

/// A JSON body read into `T`; a request without one is malformed (400).
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match body_bytes(request, state).await? {
            Some(bytes) => from_json(&bytes).map(Body),
            None => Err(ApiError::BadRequest(
                "this request needs a JSON body".into(),
            )),
        }
    }
}

/// A JSON body that may be left out (`None`), for an action whose body only
/// refines it, such as a preview of the saved rule.
pub struct OptionalBody<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match body_bytes(request, state).await? {
            Some(bytes) => from_json(&bytes).map(|value| OptionalBody(Some(value))),
            None => Ok(OptionalBody(None)),
        }
    }
}

/// The body's bytes; `None` when it is empty or only white space.
async fn body_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Option<Bytes>, ApiError> {
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection.status().as_u16() {
            413 => ApiError::TooLarge("the request body is too large".into()),
            _ => ApiError::BadRequest(format!("could not read the body: {rejection}")),
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(None)
    } else {
        Ok(Some(bytes))
    }
}

/// Reads `T` from JSON text with the statuses of this module. A number
/// with a zero fraction (`5.0`) is the integer it equals, as JSON Schema
/// counts it, so a client that writes ids as floats is understood.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| not_json(&error))?;
    if value.is_array() {
        // serde reads a struct from an array of its fields in order; a body
        // is an object, as the document says.
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    integral_floats_to_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        shape_error(&path, &error.into_inner().to_string())
    })
}

fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            if let Some(float) = number.as_f64()
                && float.fract() == 0.0
                && float.abs() < 9.0e15
            {
                *value = serde_json::Value::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

fn not_json(error: &serde_json::Error) -> ApiError {
    ApiError::BadRequest(format!("the body is not valid JSON: {error}"))
}

/// The query string read into `T`. An empty value is a value: `?limit=`
/// is refused as any other malformed integer would be.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        from_query(parts.uri.query().unwrap_or(""), false).map(Query)
    }
}

/// Reads `T` from a query string with the statuses of this module. A form
/// of filters sends its unset fields as empty values: with `drop_empty`
/// they count as absent.
pub fn from_query<T: DeserializeOwned>(query: &str, drop_empty: bool) -> Result<T, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(_, value)| !(drop_empty && value.is_empty()))
        .collect();
    let text = serde_urlencoded::to_string(&pairs)
        .map_err(|error| ApiError::BadRequest(format!("the query string is malformed: {error}")))?;
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(text.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        shape_error(&path, &error.into_inner().to_string())
    })
}

/// The status of a failure to read a shape: a value of the wrong JSON type
/// (or a query value that does not parse as its type) is malformed, 400;
/// everything else serde refuses is about the meaning of a field, 422.
fn shape_error(path: &str, message: &str) -> ApiError {
    const MEANING: [&str; 5] = [
        "unknown field",
        "unknown variant",
        "missing field",
        "invalid value",
        "duplicate field",
    ];
    if !MEANING.iter().any(|prefix| message.starts_with(prefix)) {
        return ApiError::BadRequest(match path {
            "." | "" => message.to_string(),
            path => format!("{path}: {message}"),
        });
    }
    let (field, message) = match named_field(message) {
        Some(name) if message.starts_with("unknown field") => (
            join(path, name),
            "is not a field of this request".to_string(),
        ),
        Some(name) if message.starts_with("missing field") => {
            (join(path, name), "is required".to_string())
        }
        Some(name) if message.starts_with("duplicate field") => {
            (join(path, name), "is given twice".to_string())
        }
        _ => (join(path, ""), message.replace('`', "\"")),
    };
    ApiError::from(FieldErrors::from(FieldError::new(&field, message)))
}

/// The name between the first pair of backticks of a serde message.
fn named_field(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(&message[start..end])
}

fn join(path: &str, name: &str) -> String {
    // The path already ends with an unknown field's name; a missing field's
    // path is its parent's.
    if !name.is_empty() && (path == name || path.ends_with(&format!(".{name}"))) {
        return path.to_string();
    }
    match (path, name) {
        ("." | "", "") => "body".to_string(),
        ("." | "", name) => name.to_string(),
        (path, "") => path.to_string(),
        (path, name) => format!("{path}.{name}"),
    }
}

/// For `#[serde(default, deserialize_with = "input::nullable")]` on an
/// `Option<Option<T>>` field of a change: absent is `None` (leave as it is),
/// `null` is `Some(None)` (clear), a value is `Some(Some(value))` (set).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// For `#[serde(default, deserialize_with = "input::present")]` on an
/// `Option<T>` field that may be left out but not be `null` (a change
/// whose field has no "clear"): absent is `None`, `null` is refused as a
/// value of the wrong type.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A numeric id from the path; anything else names nothing (404).
pub fn path_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
        count: Option<u32>,
        day: Option<roster_core::date::Day>,
        kind: Option<roster_core::Status>,
        #[serde(default, deserialize_with = "nullable")]
        note: Option<Option<String>>,
    }

    fn status(body: &str) -> (u16, String) {
        match from_json::<Shape>(body.as_bytes()) {
            Ok(_) => (200, String::new()),
            Err(error) => {
                let fields = match &error {
                    ApiError::Invalid { errors, .. } => errors
                        .iter()
                        .map(|error| error.field.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => String::new(),
                };
                (error.status_code().as_u16(), fields)
            }
        }
    }

    #[test]
    fn each_kind_of_bad_body_gets_the_status_of_the_spec() {
        assert_eq!(status(r#"{"name":"a"}"#), (200, "".into()));
        assert_eq!(status("{"), (400, "".into()));
        assert_eq!(status("[]"), (400, "".into()));
        assert_eq!(status(r#"{"name":5}"#), (400, "".into()));
        assert_eq!(status(r#"{"name":"a","count":"5"}"#), (400, "".into()));
        assert_eq!(status(r#"{"name":"a"} x"#), (400, "".into()));
        assert_eq!(status(r#"{"name":"a","count":5.0}"#), (200, "".into()));
        assert_eq!(status(r#"{"name":"a","count":5.5}"#), (400, "".into()));
        assert_eq!(status(r#"{}"#), (422, "name".into()));
        assert_eq!(
            status(r#"{"name":"a","hire_date":"2026-01-01"}"#),
            (422, "hire_date".into())
        );
        assert_eq!(status(r#"{"name":"a","count":-1}"#), (422, "count".into()));
        assert_eq!(
            status(r#"{"name":"a","day":"2030-02-30"}"#),
            (422, "day".into())
        );
        assert_eq!(
            status(r#"{"name":"a","kind":"finished"}"#),
            (422, "kind".into())
        );
    }

    #[test]
    fn a_nullable_field_tells_absent_from_null() {
        let absent: Shape = from_json(br#"{"name":"a"}"#).unwrap_or_else(|_| panic!());
        let null: Shape = from_json(br#"{"name":"a","note":null}"#).unwrap_or_else(|_| panic!());
        let set: Shape = from_json(br#"{"name":"a","note":"x"}"#).unwrap_or_else(|_| panic!());
        assert_eq!(absent.note, None);
        assert_eq!(null.note, Some(None));
        assert_eq!(set.note, Some(Some("x".into())));
    }

    #[test]
    fn a_form_query_drops_empty_values_and_every_query_refuses_unknown_names() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Filter {
            limit: Option<i64>,
            status: Option<roster_core::Status>,
            from: Option<roster_core::date::Day>,
        }
        let filter: Filter = from_query("limit=5&status=", true).unwrap_or_else(|_| panic!());
        assert_eq!((filter.limit, filter.status), (Some(5), None));
        assert!(from_query::<Filter>("limit=5&status=", false).is_err());
        let code = |query: &str| match from_query::<Filter>(query, false) {
            Ok(_) => 200,
            Err(error) => error.status_code().as_u16(),
        };
        assert_eq!(code("limit=abc"), 400);
        assert_eq!(code("colour=red"), 422);
        assert_eq!(code("status=finished"), 422);
        assert_eq!(code("from=2030-02-30"), 422);
    }
}
