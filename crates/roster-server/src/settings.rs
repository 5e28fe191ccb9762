//! Organisation settings (`GET/PATCH /settings`), stored as key/value rows.

use std::ops::RangeInclusive;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use roster_core::IntegrationEvaluation;
use roster_store::Tx;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, SchemaFormat};

use crate::error::FieldErrors;

/// The sizes `attachment_max_bytes` may take: at least one byte, at most
/// 4 GiB (an attachment is a document or a certificate, not an archive).
pub const ATTACHMENT_MAX_BYTES: RangeInclusive<i64> = 1..=4 * 1024 * 1024 * 1024;

/// `HH:MM` on a 24-hour clock, as the schema declares it.
const HH_MM_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// The organisation's settings, as `GET /settings` answers them.
#[derive(Clone, Debug, Serialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// IANA time zone of the organisation; "today" is the clock's date there.
    pub timezone: String,
    /// Local time of the nightly sweep, `HH:MM`.
    #[schema(schema_with = hh_mm_schema)]
    pub nightly_sweep_at: String,
    /// `nightly` (default) or `immediate` evaluation of CSV and SCIM changes (R18).
    pub integration_evaluation: IntegrationEvaluation,
    /// Largest attachment accepted, in bytes (R52).
    #[schema(schema_with = attachment_max_bytes_schema)]
    pub attachment_max_bytes: i64,
}

/// The body of `PATCH /settings`: only the fields given change (none may
/// be `null`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    #[serde(default, deserialize_with = "crate::input::present")]
    #[schema(schema_with = timezone_schema)]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "crate::input::present")]
    #[schema(schema_with = hh_mm_schema)]
    pub nightly_sweep_at: Option<String>,
    #[serde(default, deserialize_with = "crate::input::present")]
    #[schema(value_type = IntegrationEvaluation)]
    pub integration_evaluation: Option<IntegrationEvaluation>,
    #[serde(default, deserialize_with = "crate::input::present")]
    #[schema(schema_with = attachment_max_bytes_schema)]
    pub attachment_max_bytes: Option<i64>,
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

    /// These settings with `change` applied; every field error at once.
    pub fn changed(&self, change: SettingsChange) -> Result<Settings, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut settings = self.clone();
        if let Some(zone) = change.timezone {
            match TimeZone::get(&zone) {
                // The database's own spelling: the lookup ignores case.
                Ok(found) => settings.timezone = found.iana_name().unwrap_or(&zone).to_string(),
                Err(_) => errors.add("timezone", format!("{zone:?} is not an IANA time zone")),
            }
        }
        if let Some(at) = change.nightly_sweep_at {
            errors.check(
                parse_hh_mm(&at).is_some(),
                "nightly_sweep_at",
                format!("{at:?} is not a time HH:MM"),
            );
            settings.nightly_sweep_at = at;
        }
        if let Some(mode) = change.integration_evaluation {
            settings.integration_evaluation = mode;
        }
        if let Some(bytes) = change.attachment_max_bytes {
            errors.check(
                ATTACHMENT_MAX_BYTES.contains(&bytes),
                "attachment_max_bytes",
                format!(
                    "must be from {} to {}",
                    ATTACHMENT_MAX_BYTES.start(),
                    ATTACHMENT_MAX_BYTES.end()
                ),
            );
            settings.attachment_max_bytes = bytes;
        }
        errors.finish(settings)
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

/// A strict `HH:MM` (what [`HH_MM_PATTERN`] matches).
pub fn parse_hh_mm(text: &str) -> Option<Time> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2
        || minutes.len() != 2
        || !(hours.bytes().chain(minutes.bytes())).all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    let hours: i8 = hours.parse().ok()?;
    let minutes: i8 = minutes.parse().ok()?;
    Time::new(hours, minutes, 0, 0).ok()
}

/// The schema of `nightly_sweep_at`, matching what [`parse_hh_mm`] accepts.
fn hh_mm_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(HH_MM_PATTERN))
        .description(Some("Local time of the nightly sweep, `HH:MM` (24-hour)"))
}

/// The schema of `attachment_max_bytes`, bounded by [`ATTACHMENT_MAX_BYTES`].
fn attachment_max_bytes_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(*ATTACHMENT_MAX_BYTES.start()))
        .maximum(Some(*ATTACHMENT_MAX_BYTES.end()))
        .description(Some("Largest attachment accepted, in bytes (R52)"))
}

/// The schema of a time zone to set: the names of the bundled IANA database.
fn timezone_schema() -> impl Into<RefOr<Schema>> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|name| name.as_str().to_string())
        .collect();
    names.sort();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some("An IANA time zone name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hh_mm_pattern_and_parser_agree() {
        for text in [
            "00:00", "02:00", "23:59", "24:00", "12:60", "2:00", "+1:00", "02:00:00", "ab:cd",
        ] {
            assert_eq!(
                parse_hh_mm(text).is_some(),
                matches_hh_mm_pattern(text),
                "{text}"
            );
        }
    }

    /// [`HH_MM_PATTERN`] by hand: two digits 00-23, a colon, two digits 00-59.
    fn matches_hh_mm_pattern(text: &str) -> bool {
        assert_eq!(
            HH_MM_PATTERN, "^([01][0-9]|2[0-3]):[0-5][0-9]$",
            "the pattern this mirrors"
        );
        let bytes = text.as_bytes();
        bytes.len() == 5
            && bytes[2] == b':'
            && matches!(
                (bytes[0], bytes[1]),
                (b'0' | b'1', b'0'..=b'9') | (b'2', b'0'..=b'3')
            )
            && matches!((bytes[3], bytes[4]), (b'0'..=b'5', b'0'..=b'9'))
    }

    #[test]
    fn every_time_zone_of_the_schema_is_one_the_change_accepts() {
        for name in jiff::tz::db().available() {
            let change = SettingsChange {
                timezone: Some(name.as_str().to_string()),
                ..SettingsChange::default()
            };
            assert!(
                Settings::default().changed(change).is_ok(),
                "{}",
                name.as_str()
            );
        }
    }
}
