//! The application's shared state and the per-request context the engine
//! works in.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use roster_store::{Store, Tx};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::settings::Settings;

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

pub struct App {
    pub store: Store,
    pub clock: Clock,
    pub data_dir: PathBuf,
    /// Names this process as a job lease owner.
    pub worker_id: String,
    /// Wakes the job worker when a request enqueued work due now.
    pub jobs_ready: Notify,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Real seconds a claimed job stays leased without renewal.
    pub lease_seconds: i64,
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// What every rule evaluation needs to know: the time, the organisation's
/// today, who acts, and the settings in force.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub now: Timestamp,
    pub today: Date,
    pub actor: Option<i64>,
    pub settings: Settings,
}

impl Ctx {
    pub fn micros(&self) -> i64 {
        self.now.as_microsecond()
    }
}

impl App {
    /// The context of work whose day is given already (a sweep job carries
    /// its day), at the clock's time, without reading the settings: the
    /// sweep reads none, so they are left at their defaults.
    pub fn ctx_on(&self, today: Date) -> Ctx {
        Ctx {
            now: self.clock.now(),
            today,
            actor: None,
            settings: Settings::default(),
        }
    }

    /// The context at the clock's time, reading the settings in `tx`.
    pub async fn ctx(&self, tx: &mut Tx, actor: Option<i64>) -> anyhow::Result<Ctx> {
        let settings = Settings::load(tx).await?;
        let now = self.clock.now();
        Ok(Ctx {
            now,
            today: local_date(now, &settings.timezone),
            actor,
            settings,
        })
    }
}

/// The calendar date of `now` in the named zone (UTC when unknown).
pub fn local_date(now: Timestamp, zone: &str) -> Date {
    let tz = TimeZone::get(zone).unwrap_or(TimeZone::UTC);
    now.to_zoned(tz).date()
}
