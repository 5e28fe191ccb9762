//! Organisation settings (`GET/PATCH /settings`), stored as key/value rows.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use roster_core::IntegrationEvaluation;
use roster_store::Tx;
use serde::Serialize;

use crate::body::Fields;
use crate::error::ApiResult;

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Settings {
    /// IANA time zone of the organisation; "today" is the clock's date there.
    pub timezone: String,
    /// Local time of the nightly sweep, `HH:MM`.
    pub nightly_sweep_at: String,
    /// `nightly` (default) or `immediate` evaluation of CSV and SCIM changes (R18).
    #[schema(value_type = String)]
    pub integration_evaluation: IntegrationEvaluation,
    /// Largest attachment accepted, in bytes (R52).
    pub attachment_max_bytes: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timezone: "UTC".into(),
            nightly_sweep_at: "02:00".into(),
            integration_evaluation: IntegrationEvaluation::Nightly,
            attachment_max_bytes: 25 * 1024 * 1024,
        }
    }
}

impl Settings {
    pub async fn load(tx: &mut Tx) -> anyhow::Result<Settings> {
        let mut settings = Settings::default();
        // One statement: the settings are read by every request and job.
        for (key, value) in tx.all_settings().await? {
            match key.as_str() {
                "timezone" => settings.timezone = value,
                "nightly_sweep_at" => settings.nightly_sweep_at = value,
                "integration_evaluation" => {
                    if let Ok(parsed) = value.parse() {
                        settings.integration_evaluation = parsed;
                    }
                }
                "attachment_max_bytes" => {
                    if let Ok(parsed) = value.parse() {
                        settings.attachment_max_bytes = parsed;
                    }
                }
                _ => {}
            }
        }
        Ok(settings)
    }

    /// The nightly sweep's local time of day.
    pub fn sweep_time(&self) -> Time {
        parse_hh_mm(&self.nightly_sweep_at).unwrap_or(Time::constant(2, 0, 0, 0))
    }

    pub fn time_zone(&self) -> TimeZone {
        TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC)
    }

    /// Applies a PATCH body; field errors are 422.
    pub fn patch(&mut self, mut fields: Fields) -> ApiResult<()> {
        if let Some(zone) = fields.string("timezone")? {
            if TimeZone::get(&zone).is_ok() {
                self.timezone = zone;
            } else {
                fields.error("timezone", format!("{zone:?} is not an IANA time zone"));
            }
        }
        if let Some(at) = fields.string("nightly_sweep_at")? {
            if parse_hh_mm(&at).is_some() {
                self.nightly_sweep_at = at;
            } else {
                fields.error("nightly_sweep_at", format!("{at:?} is not a time HH:MM"));
            }
        }
        if let Some(mode) = fields.enumeration::<IntegrationEvaluation>("integration_evaluation")? {
            self.integration_evaluation = mode;
        }
        if let Some(bytes) = fields.int("attachment_max_bytes")? {
            if bytes >= 1 {
                self.attachment_max_bytes = bytes;
            } else {
                fields.error("attachment_max_bytes", "must be at least 1");
            }
        }
        fields.finish()
    }

    pub async fn save(&self, tx: &mut Tx) -> anyhow::Result<()> {
        tx.put_setting("timezone", &self.timezone).await?;
        tx.put_setting("nightly_sweep_at", &self.nightly_sweep_at)
            .await?;
        tx.put_setting(
            "integration_evaluation",
            self.integration_evaluation.as_str(),
        )
        .await?;
        tx.put_setting(
            "attachment_max_bytes",
            &self.attachment_max_bytes.to_string(),
        )
        .await?;
        Ok(())
    }
}

/// A strict `HH:MM`.
pub fn parse_hh_mm(text: &str) -> Option<Time> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: i8 = hours.parse().ok()?;
    let minutes: i8 = minutes.parse().ok()?;
    Time::new(hours, minutes, 0, 0).ok()
}
