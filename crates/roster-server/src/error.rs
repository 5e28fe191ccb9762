//! The one HTTP error type: every failure becomes `application/problem+json`
//! (RFC 9457) with a status chosen in one place. 5xx bodies are opaque and the
//! cause is logged once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_store::StoreError;

use crate::engine::EngineError;

pub use roster_core::validate::{FieldError, FieldErrors};

/// A problem (RFC 9457): the body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    pub detail: String,
    /// The fields that failed validation (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The sweep that is queued or running (409 of `POST /sweeps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep_id: Option<i64>,
    /// The prerequisites not yet passed (R4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_prerequisite_ids: Option<Vec<i64>>,
    /// The same prerequisites with their titles (R4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_prerequisites: Option<Vec<NamedRecord>>,
}

/// A record named by its id and title.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedRecord {
    pub id: i64,
    pub title: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A body names records that do not exist: 409 with the fields (the
    /// request is valid by the document; the state it names is not there).
    #[error("{}", describe(.0))]
    UnknownReference(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    /// A sweep is queued or running: 409 naming it in `sweep_id`.
    #[error("{detail}")]
    SweepRunning { detail: String, sweep_id: i64 },
    #[error("{0}")]
    TooLarge(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{detail}")]
    Invalid {
        detail: String,
        errors: Vec<FieldError>,
        /// R4: the prerequisites a self-enrollment still lacks.
        missing_prerequisites: Vec<NamedRecord>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> ApiError {
        ApiError::invalid_many(errors.0)
    }
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::Invalid {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError {
                field: field.to_string(),
                message,
            }],
            missing_prerequisites: Vec::new(),
        }
    }

    /// A 409 for a body that names records that do not exist.
    pub fn unknown(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::UnknownReference(vec![FieldError::new(field, message)])
    }

    pub fn invalid_many(errors: Vec<FieldError>) -> ApiError {
        let detail = describe(&errors);
        ApiError::Invalid {
            detail,
            errors,
            missing_prerequisites: Vec::new(),
        }
    }

    pub fn rule(detail: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            detail: detail.into(),
            errors: Vec::new(),
            missing_prerequisites: Vec::new(),
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(what.to_string())
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_)
            | ApiError::SweepRunning { .. }
            | ApiError::UnknownReference(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `field: message; field: message`.
fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|error| format!("{}: {}", error.field, error.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Conflict(what) => ApiError::Conflict(conflict_message(&what)),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// The one place where the engine's outcomes become statuses: a record not
/// found is 404, a conflict (the store's unique constraints included) 409,
/// invalid input 422, anything else an opaque 500.
impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::NotFound(what) => ApiError::not_found(what),
            EngineError::Conflict(detail) => ApiError::Conflict(detail),
            EngineError::Invalid(errors) => errors.into(),
            EngineError::Store(error) => error.into(),
            EngineError::Internal(error) => ApiError::Internal(error),
        }
    }
}

/// Words for a unique constraint the store reported.
fn conflict_message(constraint: &str) -> String {
    if constraint.contains("username") {
        "a user with this username already exists".into()
    } else if constraint.contains("external_id") {
        "a user with this external_id already exists".into()
    } else if constraint.contains("user_groups") || constraint.contains("name") {
        "a group with this name already exists".into()
    } else if constraint.contains("one_open")
        || constraint.ends_with("enrollments.activity_id, enrollments.user_id")
    {
        "the user already has an open enrollment in this activity".into()
    } else if constraint.contains("sweeps") {
        "a sweep is already queued or running".into()
    } else {
        format!("conflict: {constraint}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let detail = match &self {
            ApiError::Internal(error) => {
                tracing::error!(error = ?error, "internal error");
                "internal error; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let mut problem = Problem {
            problem_type: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail,
            errors: None,
            sweep_id: None,
            missing_prerequisite_ids: None,
            missing_prerequisites: None,
        };
        match self {
            ApiError::SweepRunning { sweep_id, .. } => problem.sweep_id = Some(sweep_id),
            ApiError::UnknownReference(errors) => problem.errors = Some(errors),
            ApiError::Invalid {
                errors,
                missing_prerequisites,
                ..
            } => {
                problem.errors = Some(errors).filter(|errors| !errors.is_empty());
                if !missing_prerequisites.is_empty() {
                    problem.missing_prerequisite_ids = Some(
                        missing_prerequisites
                            .iter()
                            .map(|record| record.id)
                            .collect(),
                    );
                    problem.missing_prerequisites = Some(missing_prerequisites);
                }
            }
            _ => {}
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
