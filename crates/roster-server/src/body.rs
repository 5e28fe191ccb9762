//! Request input read by hand, so that each kind of bad input gets its own
//! status: not JSON or a wrong JSON type is 400; a missing field, an unknown
//! enum value or an impossible date is 422 with field errors.

use std::collections::HashMap;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use jiff::civil::Date;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, FieldError};

/// A JSON object body, read field by field; an empty body is an empty object.
pub struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status().as_u16() {
                    413 => ApiError::TooLarge("the request body is too large".into()),
                    _ => ApiError::BadRequest(format!("could not read the body: {rejection}")),
                })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonBody(map)),
            Ok(_) => Err(ApiError::BadRequest(
                "the body must be a JSON object".into(),
            )),
            Err(error) => Err(ApiError::BadRequest(format!(
                "the body is not valid JSON: {error}"
            ))),
        }
    }
}

impl JsonBody {
    pub fn fields(self) -> Fields {
        Fields {
            map: self.0,
            errors: Vec::new(),
        }
    }
}

/// Reads typed fields from a JSON object, collecting 422 field errors.
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

fn wrong_type(name: &str, expected: &str) -> ApiError {
    ApiError::BadRequest(format!("field {name} must be {expected}"))
}

impl Fields {
    pub fn from_map(map: Map<String, Value>) -> Fields {
        Fields {
            map,
            errors: Vec::new(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: name.to_string(),
            message: message.into(),
        });
    }

    /// Absent → `None`; `null` → `Some(None)`; a string → `Some(Some)`.
    pub fn nullable_string(&mut self, name: &str) -> ApiResult<Option<Option<String>>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(text)) => Ok(Some(Some(text.clone()))),
            Some(_) => Err(wrong_type(name, "a string")),
        }
    }

    /// A string, absent or null being `None`.
    pub fn string(&mut self, name: &str) -> ApiResult<Option<String>> {
        Ok(self.nullable_string(name)?.flatten())
    }

    /// A required non-empty string; records a 422 error when missing.
    pub fn required_string(&mut self, name: &str) -> ApiResult<String> {
        match self.string(name)? {
            Some(text) if !text.trim().is_empty() => Ok(text),
            Some(_) => {
                self.error(name, "must not be empty");
                Ok(String::new())
            }
            None => {
                self.error(name, "is required");
                Ok(String::new())
            }
        }
    }

    pub fn bool(&mut self, name: &str) -> ApiResult<Option<bool>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(wrong_type(name, "true or false")),
        }
    }

    pub fn int(&mut self, name: &str) -> ApiResult<Option<i64>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => match number.as_i64() {
                Some(value) => Ok(Some(value)),
                None => Err(wrong_type(name, "an integer")),
            },
            Some(_) => Err(wrong_type(name, "an integer")),
        }
    }

    pub fn ids(&mut self, name: &str) -> ApiResult<Option<Vec<i64>>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => {
                let mut ids = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_i64() {
                        Some(id) => ids.push(id),
                        None => return Err(wrong_type(name, "an array of integer ids")),
                    }
                }
                Ok(Some(ids))
            }
            Some(_) => Err(wrong_type(name, "an array of integer ids")),
        }
    }

    /// A nullable date: absent → `None`, null → `Some(None)`; an impossible
    /// date is a 422 field error.
    pub fn date(&mut self, name: &str) -> ApiResult<Option<Option<Date>>> {
        match self.nullable_string(name)? {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(text)) => match parse_date(&text) {
                Some(date) => Ok(Some(Some(date))),
                None => {
                    self.error(name, format!("{text:?} is not a valid date (YYYY-MM-DD)"));
                    Ok(None)
                }
            },
        }
    }

    /// An enum by its wire name; unknown values are 422 field errors.
    pub fn enumeration<T>(&mut self, name: &str) -> ApiResult<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.string(name)? {
            None => Ok(None),
            Some(text) => match text.parse::<T>() {
                Ok(value) => Ok(Some(value)),
                Err(error) => {
                    self.error(name, error.to_string());
                    Ok(None)
                }
            },
        }
    }

    /// Ends reading: 422 with every collected field error, if any.
    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_many(self.errors))
        }
    }
}

/// A strict `YYYY-MM-DD` date that exists.
pub fn parse_date(text: &str) -> Option<Date> {
    if text.len() != 10 {
        return None;
    }
    text.parse::<Date>().ok()
}

/// Query-string parameters, read with the same statuses as bodies.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = form_urlencoded_pairs(query);
        Ok(QueryParams(
            pairs
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .collect(),
        ))
    }
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}").parse().unwrap_or_default(),
    )
    .map(|axum::extract::Query(pairs)| pairs)
    .unwrap_or_default()
}

impl QueryParams {
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                ApiError::BadRequest(format!("query parameter {name} must be an integer"))
            }),
        }
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.0.get(name).map(String::as_str) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::BadRequest(format!(
                "query parameter {name} must be true or false"
            ))),
        }
    }

    pub fn date(&self, name: &str) -> ApiResult<Option<Date>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(text) => parse_date(text).map(Some).ok_or_else(|| {
                ApiError::invalid(name, format!("{text:?} is not a valid date (YYYY-MM-DD)"))
            }),
        }
    }

    pub fn enumeration<T>(&self, name: &str) -> ApiResult<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.0.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse::<T>()
                .map(Some)
                .map_err(|error| ApiError::invalid(name, error.to_string())),
        }
    }

    /// `limit` (default 100, capped at 1000) and the cursor (an id).
    pub fn page(&self) -> ApiResult<(i64, Option<i64>)> {
        // A limit above the maximum is capped, as documented; zero or less is invalid.
        let limit = self.int("limit")?.unwrap_or(100);
        if limit < 1 {
            return Err(ApiError::invalid("limit", "must be at least 1"));
        }
        let limit = limit.min(1000);
        let cursor = match self.0.get("cursor") {
            None => None,
            Some(text) => Some(
                text.parse::<i64>()
                    .map_err(|_| ApiError::invalid("cursor", "is not a cursor this server gave"))?,
            ),
        };
        Ok((limit, cursor))
    }
}

/// A numeric id from the path; anything else names nothing (404).
pub fn path_id(text: &str, what: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(what))
}
