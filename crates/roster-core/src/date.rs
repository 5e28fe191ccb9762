//! Calendar dates as they cross Roster's edges: one strict `YYYY-MM-DD`
//! parser for bodies, queries, CSV and job payloads alike.

use std::fmt;

use jiff::civil::Date;
use serde::de::{self, Unexpected};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A strict `YYYY-MM-DD` date that exists: `2030-02-30`, `20300228` and
/// `+002030-02-28` are all refused, so one day has one spelling.
pub fn parse_date(text: &str) -> Option<Date> {
    if text.len() != 10 || text.as_bytes()[4] != b'-' || text.as_bytes()[7] != b'-' {
        return None;
    }
    if !text
        .bytes()
        .enumerate()
        .all(|(index, byte)| index == 4 || index == 7 || byte.is_ascii_digit())
    {
        return None;
    }
    text.parse::<Date>().ok()
}

/// What a refused date is told it should have been.
pub const DATE_EXPECTED: &str = "a date that exists, written YYYY-MM-DD";

/// A calendar date read strictly with [`parse_date`] and written `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub Date);

impl Day {
    pub fn date(self) -> Date {
        self.0
    }
}

impl From<Date> for Day {
    fn from(date: Date) -> Day {
        Day(date)
    }
}

impl From<Day> for Date {
    fn from(day: Day) -> Date {
        day.0
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Day {
    type Err = InvalidDate;
    fn from_str(text: &str) -> Result<Day, InvalidDate> {
        parse_date(text)
            .map(Day)
            .ok_or_else(|| InvalidDate(text.to_string()))
    }
}

/// A text that is not a date [`parse_date`] accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not {DATE_EXPECTED}")]
pub struct InvalidDate(pub String);

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Day, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        parse_date(&text)
            .map(Day)
            .ok_or_else(|| de::Error::invalid_value(Unexpected::Str(&text), &DATE_EXPECTED))
    }
}

impl utoipa::PartialSchema for Day {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Date,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Day {}

/// `#[serde(with = "roster_core::date::strict")]` for a plain `Date` field.
pub mod strict {
    use super::*;

    pub fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
        Day(*date).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        Day::deserialize(deserializer).map(Day::date)
    }
}

/// `#[serde(default, with = "roster_core::date::strict_option")]` for an
/// `Option<Date>` field (null or absent is `None`).
pub mod strict_option {
    use super::*;

    pub fn serialize<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
        date.map(Day).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Date>, D::Error> {
        Ok(Option::<Day>::deserialize(deserializer)?.map(Day::date))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Option<&str>) {
        assert_eq!(
            parse_date(text).map(|date| date.to_string()).as_deref(),
            expect,
            "{text}"
        );
    }

    #[test]
    fn only_existing_dates_written_yyyy_mm_dd_are_read() {
        check("2030-02-28", Some("2030-02-28"));
        check("2028-02-29", Some("2028-02-29"));
        check("2030-02-30", None);
        check("2030-13-01", None);
        check("20300228", None);
        check("+002030-02-28", None);
        check("2030-2-28", None);
        check("2030-02-28T10:00", None);
        check("", None);
        check("2030-0a-01", None);
    }

    #[test]
    fn a_refused_day_is_an_invalid_value_naming_the_format() {
        let error = serde_json::from_str::<Day>("\"2030-02-30\"").unwrap_err();
        assert!(error.to_string().starts_with("invalid value"), "{error}");
        assert!(error.to_string().contains("YYYY-MM-DD"), "{error}");
        let day: Day = serde_json::from_str("\"2030-02-28\"").unwrap();
        assert_eq!(serde_json::to_string(&day).unwrap(), "\"2030-02-28\"");
    }
}
