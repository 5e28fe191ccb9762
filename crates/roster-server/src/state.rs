//! The application's shared state and the per-request context the engine
//! works in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use roster_store::{ActivityBrief, Store, Tx};
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
    /// The settings as last read, for a second.
    pub settings_cache: SettingsCache,
    /// What learners' lists show of every activity, as last read, for a second.
    pub activity_cache: ActivityCache,
}

/// How long settings read from the database are used without reading them
/// again: a change made through this process is seen at once (it clears the
/// cache when it commits), one made through another process within this.
pub const SETTINGS_TTL: Duration = Duration::from_secs(1);

/// The settings every request and job reads, kept for `SETTINGS_TTL` so that
/// each one costs no round trip to the database.
#[derive(Default)]
pub struct SettingsCache {
    /// (generation, settings and when they were read); `clear` moves the
    /// generation so that a read begun before it is not kept.
    inner: Mutex<(u64, Option<(Settings, Instant)>)>,
}

impl SettingsCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Option<(Settings, Instant)>)> {
        self.inner.lock().unwrap_or_else(|error| error.into_inner())
    }

    /// The cached settings if read less than `SETTINGS_TTL` ago, else the
    /// generation to hand to `keep` after reading them.
    fn get(&self) -> Result<Settings, u64> {
        let guard = self.lock();
        match &guard.1 {
            Some((settings, read_at)) if read_at.elapsed() < SETTINGS_TTL => Ok(settings.clone()),
            _ => Err(guard.0),
        }
    }

    fn keep(&self, generation: u64, settings: &Settings, read_at: Instant) {
        let mut guard = self.lock();
        if guard.0 == generation {
            guard.1 = Some((settings.clone(), read_at));
        }
    }

    /// Forgets the settings: call after committing a change to them.
    pub fn clear(&self) {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.1 = None;
    }
}

/// How long the activities' titles, kinds and active flags read for the
/// learners' lists are used without reading them again. As with the
/// settings, a change made through this process is seen at once (it clears
/// the cache when it commits), one made through another process within this;
/// an activity the cache does not know yet is read at once whichever process
/// created it.
pub const ACTIVITIES_TTL: Duration = Duration::from_secs(1);

/// Every activity by id.
pub type Activities = Arc<HashMap<i64, ActivityBrief>>;

/// The activities a learner's History, Plan and home rows name, kept for
/// `ACTIVITIES_TTL`, so that reading a learner's enrollments needs no join
/// with every activity (on PostgreSQL a hash of the whole table per request,
/// about half of the database's work for a learner with 500 enrollments).
#[derive(Default)]
pub struct ActivityCache {
    /// (generation, activities and when they were read); `clear` moves the
    /// generation so that a read begun before it is not kept.
    inner: Mutex<(u64, Option<(Activities, Instant)>)>,
    /// Held while reading them, so that requests arriving meanwhile wait
    /// for that read instead of each making its own.
    loading: tokio::sync::Mutex<()>,
}

impl ActivityCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Option<(Activities, Instant)>)> {
        self.inner.lock().unwrap_or_else(|error| error.into_inner())
    }

    /// The kept activities if read less than `ACTIVITIES_TTL` ago and
    /// holding every one of `ids`, else the generation to keep a read under.
    fn fresh(&self, ids: &[i64]) -> Result<Activities, u64> {
        let guard = self.lock();
        match &guard.1 {
            Some((activities, read_at))
                if read_at.elapsed() < ACTIVITIES_TTL
                    && ids.iter().all(|id| activities.contains_key(id)) =>
            {
                Ok(activities.clone())
            }
            _ => Err(guard.0),
        }
    }

    /// Every activity, holding each of `ids` unless one does not exist:
    /// the kept ones when fresh and complete, else read again.
    pub async fn covering(&self, tx: &mut Tx, ids: &[i64]) -> anyhow::Result<Activities> {
        if let Ok(activities) = self.fresh(ids) {
            return Ok(activities);
        }
        let _loading = self.loading.lock().await;
        // Another request may have read them while this one waited.
        let generation = match self.fresh(ids) {
            Ok(activities) => return Ok(activities),
            Err(generation) => generation,
        };
        let read_at = Instant::now();
        let activities: Activities = Arc::new(
            tx.activity_briefs()
                .await?
                .into_iter()
                .map(|activity| (activity.id, activity))
                .collect(),
        );
        let mut guard = self.lock();
        if guard.0 == generation {
            guard.1 = Some((activities.clone(), read_at));
        }
        Ok(activities)
    }

    /// Forgets the activities: call after committing a change to one.
    pub fn clear(&self) {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.1 = None;
    }
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

    /// The context at the clock's time, with the settings read in `tx`
    /// (or within the last `SETTINGS_TTL`).
    pub async fn ctx(&self, tx: &mut Tx, actor: Option<i64>) -> anyhow::Result<Ctx> {
        let settings = match self.settings_cache.get() {
            Ok(settings) => settings,
            Err(generation) => {
                let read_at = Instant::now();
                let settings = Settings::load(tx).await?;
                self.settings_cache.keep(generation, &settings, read_at);
                settings
            }
        };
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
