//! The one clock every rule reads. `system` follows real time; `manual` starts
//! at the real time, moves only when told, and is kept in the database so a
//! restart resumes from it.
//!
//! Every time-dependent rule reads this clock through `Ctx` (`now`, and
//! `today` in the organisation's time zone). Nothing else reads the system
//! clock but the jobs' leases, which are real time whatever the clock says,
//! and the sweep's durations.

use std::sync::Mutex;

use jiff::Timestamp;
use roster_store::Store;

const CLOCK_KEY: &str = "clock.now";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClockMode {
    System,
    Manual,
}

impl ClockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockMode::System => "system",
            ClockMode::Manual => "manual",
        }
    }
}

#[derive(Debug)]
pub struct Clock {
    mode: ClockMode,
    manual: Mutex<Timestamp>,
}

impl Clock {
    /// Builds the clock; in manual mode it resumes from the stored time.
    pub async fn load(mode: ClockMode, store: &Store) -> anyhow::Result<Clock> {
        let mut start = Timestamp::now();
        if mode == ClockMode::Manual {
            let mut tx = store.read().await?;
            if let Some(stored) = tx.get_setting(CLOCK_KEY).await?
                && let Ok(stored) = stored.parse::<Timestamp>()
            {
                start = start.max(stored);
            }
            tx.rollback().await?;
        }
        Ok(Clock {
            mode,
            manual: Mutex::new(start),
        })
    }

    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    pub fn now(&self) -> Timestamp {
        match self.mode {
            ClockMode::System => Timestamp::now(),
            ClockMode::Manual => *self.manual.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock to `to` (never backwards) and stores it.
    pub async fn set(&self, store: &Store, to: Timestamp) -> anyhow::Result<()> {
        {
            let mut now = self.manual.lock().unwrap_or_else(|e| e.into_inner());
            if to > *now {
                *now = to;
            }
        }
        let mut tx = store.write().await?;
        tx.put_setting(CLOCK_KEY, &self.now().to_string()).await?;
        tx.commit().await?;
        Ok(())
    }
}
