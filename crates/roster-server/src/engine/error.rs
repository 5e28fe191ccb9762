//! The engine's outcomes other than success, as one error type: what the
//! API must tell apart (not found, conflict, invalid) and what it must not
//! show (store and internal failures). Only the API maps them to statuses.

use roster_core::payload::PayloadError;
use roster_core::validate::FieldErrors;
use roster_store::StoreError;

/// Why an engine operation did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A record the operation needs does not exist; the string names its kind.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The operation would break a uniqueness rule (R2, one sweep at a time).
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a rule, field by field.
    #[error("{}", describe(.0))]
    Invalid(FieldErrors),
    /// The store failed; a conflict it reports is a unique constraint.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else: a bug or an unreadable stored value.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;

impl EngineError {
    /// An internal failure described by `message`.
    pub fn internal(message: impl std::fmt::Display) -> EngineError {
        EngineError::Internal(anyhow::anyhow!("{message}"))
    }

    /// Whether the store refused the transaction only because another one
    /// ran at the same time, so that the same work may succeed at once.
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Store(error) if error.is_transient())
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(error: serde_json::Error) -> EngineError {
        EngineError::Internal(error.into())
    }
}

impl From<jiff::Error> for EngineError {
    fn from(error: jiff::Error) -> EngineError {
        EngineError::Internal(error.into())
    }
}

impl From<PayloadError> for EngineError {
    fn from(error: PayloadError) -> EngineError {
        EngineError::Internal(error.into())
    }
}

/// `field: message; field: message`.
fn describe(errors: &FieldErrors) -> String {
    errors
        .0
        .iter()
        .map(|error| format!("{}: {}", error.field, error.message))
        .collect::<Vec<_>>()
        .join("; ")
}
