//! The application as `roster bench` drives it: [`BenchHost`] implements
//! `roster_bench::Host` with the server's own state, engine and router, so
//! the bench measures the real code paths while its crate depends only on
//! the core and the store.

use std::net::SocketAddr;
use std::sync::Arc;

use jiff::Timestamp;
use roster_bench::{Host, HostError, RanJob};
use roster_core::Status;
use roster_store::Store;
use tokio::sync::Notify;

use crate::auth::hash_token;
use crate::clock::{Clock, ClockMode};
use crate::engine::enroll::{Change, change};
use crate::engine::jobs::{LEASE_SECONDS, run_due, run_next_jobs};
use crate::engine::sweep::start_sweep;
use crate::state::{App, AppState};

/// Runs `roster bench` on this application.
pub async fn run(args: roster_bench::BenchArgs) -> anyhow::Result<()> {
    Ok(roster_bench::run::<BenchHost>(args).await?)
}

/// The state of a `roster serve` process with a manual clock, without its
/// background workers and scheduler: the bench runs the workers itself.
#[derive(Clone)]
pub struct BenchHost(AppState);

impl Host for BenchHost {
    async fn open(store: Store) -> Result<BenchHost, HostError> {
        let clock = Clock::load(ClockMode::Manual, &store)
            .await
            .map_err(HostError::new)?;
        let data_dir = std::env::temp_dir().join(format!("roster-bench-{}", std::process::id()));
        Ok(BenchHost(AppState(Arc::new(App {
            store,
            clock,
            data_dir,
            worker_id: format!("bench-{}", std::process::id()),
            jobs_ready: Notify::new(),
            metrics: None,
            lease_seconds: LEASE_SECONDS,
            settings_cache: Default::default(),
            activity_cache: Default::default(),
        }))))
    }

    fn store(&self) -> &Store {
        &self.0.store
    }

    fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    async fn set_clock(&self, to: Timestamp) -> Result<(), HostError> {
        self.0
            .clock
            .set(&self.0.store, to)
            .await
            .map_err(HostError::new)
    }

    fn hash_token(&self, token: &str) -> String {
        hash_token(token)
    }

    async fn serve(&self) -> Result<SocketAddr, HostError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(HostError::new)?;
        let address = listener.local_addr().map_err(HostError::new)?;
        let router = crate::app::router(self.0.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(address)
    }

    async fn start_sweep(&self) -> Result<i64, HostError> {
        let state = &self.0;
        let mut tx = state.store.write().await.map_err(HostError::new)?;
        let ctx = state.ctx(&mut tx, None).await.map_err(HostError::new)?;
        let id = start_sweep(&mut tx, &ctx, "manual", ctx.today)
            .await
            .map_err(HostError::new)?;
        tx.commit().await.map_err(HostError::new)?;
        Ok(id)
    }

    async fn run_due(&self) -> Result<(), HostError> {
        run_due(&self.0).await.map_err(HostError::new)?;
        Ok(())
    }

    async fn run_next_jobs(&self) -> Result<Vec<RanJob>, HostError> {
        let ran = run_next_jobs(&self.0).await.map_err(HostError::new)?;
        Ok(ran
            .into_iter()
            .map(|ran| RanJob {
                payload: ran.job.payload,
                started: ran.started,
            })
            .collect())
    }

    async fn complete(
        &self,
        enrollment_id: i64,
        committing: impl FnOnce() + Send,
    ) -> Result<bool, HostError> {
        let state = &self.0;
        let mut tx = state.store.write().await.map_err(HostError::new)?;
        let before = tx
            .get_enrollment(enrollment_id)
            .await
            .map_err(HostError::new)?;
        let Some(before) = before.filter(|before| before.status == Status::InProgress.as_str())
        else {
            tx.rollback().await.map_err(HostError::new)?;
            return Ok(false);
        };
        let ctx = state.ctx(&mut tx, None).await.map_err(HostError::new)?;
        let passed = Change {
            status: Some(Status::Passed),
            ..Change::default()
        };
        change(&mut tx, &ctx, before, passed)
            .await
            .map_err(HostError::new)?;
        committing();
        tx.commit().await.map_err(HostError::new)?;
        state.jobs_ready.notify_waiters();
        Ok(true)
    }

    fn jobs_ready(&self) -> &Notify {
        &self.0.jobs_ready
    }
}
