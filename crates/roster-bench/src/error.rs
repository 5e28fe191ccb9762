//! What can stop `roster bench`: a run refused before it starts, the store,
//! the application under measurement, or an answer no workload expects.

use roster_store::StoreError;

use crate::host::HostError;

/// Why `roster bench` stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The run cannot tell anything as asked: a database that already holds
    /// users, an earlier run that cannot be compared with this one.
    #[error("{0}")]
    Refused(String),
    /// The application answered or behaved as no workload expects.
    #[error("{0}")]
    Unexpected(String),
    #[error("cannot open {url}: {error}")]
    Open { url: String, error: StoreError },
    #[error("cannot migrate {url}: {error}")]
    Migrate { url: String, error: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Time(#[from] jiff::Error),
    #[error("a workload's task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
