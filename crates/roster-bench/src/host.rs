//! What `roster bench` needs of the application it measures. The bench
//! drives the real code paths — the sweep as the job workers run it, a
//! completion through the engine, the HTTP API — but this crate depends only
//! on the core and the store: the application implements [`Host`] and passes
//! it to [`crate::run`], so the dependency points from the server to the
//! bench and never back.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use jiff::Timestamp;
use roster_store::Store;
use tokio::sync::Notify;

/// The application under measurement: the state of a `roster serve` process
/// with a manual clock and without its own workers or scheduler (the bench
/// runs the workers itself, to time them).
pub trait Host: Clone + Send + Sync + 'static {
    /// Builds the application over a migrated store.
    fn open(store: Store) -> impl Future<Output = Result<Self, HostError>> + Send;

    fn store(&self) -> &Store;

    /// The business time of the application's clock.
    fn now(&self) -> Timestamp;

    /// Moves the manual clock to `to`, as `POST /clock` does.
    fn set_clock(&self, to: Timestamp) -> impl Future<Output = Result<(), HostError>> + Send;

    /// What the store keeps of an API token.
    fn hash_token(&self, token: &str) -> String;

    /// Serves the HTTP API on a free port of 127.0.0.1 in the background and
    /// answers its address.
    fn serve(&self) -> impl Future<Output = Result<SocketAddr, HostError>> + Send;

    /// Starts a sweep of the clock's day as `POST /sweeps` does, without
    /// waiting for it; answers its id.
    fn start_sweep(&self) -> impl Future<Output = Result<i64, HostError>> + Send;

    /// Runs due jobs until none is left, as one job worker of `roster serve`.
    fn run_due(&self) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Claims and runs the earliest due jobs, as one step of a worker;
    /// answers those that ran, none when none is due.
    fn run_next_jobs(&self) -> impl Future<Output = Result<Vec<RanJob>, HostError>> + Send;

    /// Marks an enrollment passed as `PATCH /enrollments/{id}` does, in one
    /// transaction with its effects, and wakes the workers. Calls
    /// `committing` just before the commit, so that a job the completion
    /// enqueues cannot start before the bench has noted when it was
    /// committed. Answers false, changing nothing, when the enrollment is
    /// missing or no longer in progress.
    fn complete(
        &self,
        enrollment_id: i64,
        committing: impl FnOnce() + Send,
    ) -> impl Future<Output = Result<bool, HostError>> + Send;

    /// Notified when a request enqueued work due now (the workers wait on it).
    fn jobs_ready(&self) -> &Notify;
}

/// A job a worker step ran.
#[derive(Clone, Debug)]
pub struct RanJob {
    /// The job's payload as stored (JSON).
    pub payload: String,
    /// When the worker started it.
    pub started: Instant,
}

/// An error of the application, whatever its type, with its causes.
#[derive(Debug)]
pub struct HostError(Box<dyn Error + Send + Sync>);

impl HostError {
    pub fn new(error: impl Into<Box<dyn Error + Send + Sync>>) -> HostError {
        HostError(error.into())
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

// The wrapped error is not a cause of its own: this is the error itself, so
// its causes are the wrapped error's.
impl Error for HostError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}
