//! The vocabulary of Roster: enums with their wire names, sources and rules.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// Defines a string-backed enum with its wire names, `as_str`, `FromStr` and
/// the list of accepted values (used in validation messages).
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        // Every wire name is its variant's name in snake_case (a test checks
        // that serde writes `$text`); the schema is written from `NAMES`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { value: text.to_string(), allowed: Self::NAMES }),
                }
            }
        }

        // Written by hand: the derive does not see the wire names through
        // the macro's `rename`, and would document the Rust names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::NAMES.iter().copied()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A string that is not one of an enum's wire names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {value:?}; expected one of {}", allowed.join(", "))]
pub struct UnknownValue {
    pub value: String,
    pub allowed: &'static [&'static str],
}

wire_enum!(
    /// What a user is: a person learning, an administrator, or a service account.
    Role { Admin => "admin", Learner => "learner", Integration => "integration" }
);

wire_enum!(
    /// The four kinds of learning activity.
    ActivityKind {
        OnlineCourse => "online_course",
        InstructorLed => "instructor_led",
        Curriculum => "curriculum",
        CourseBundle => "course_bundle",
    }
);

wire_enum!(
    /// Why the learner takes the activity.
    EnrollmentType { Elected => "elected", Recommended => "recommended", Required => "required" }
);

wire_enum!(
    /// Where an enrollment stands. `in_progress` is open; all others are closed.
    Status {
        InProgress => "in_progress",
        Passed => "passed",
        Failed => "failed",
        NoShow => "no_show",
        Incomplete => "incomplete",
        Dropped => "dropped",
    }
);

wire_enum!(
    /// The event of a post-enrollment rule (R31).
    Trigger { Enrolled => "enrolled", Completed => "completed", Failed => "failed" }
);

wire_enum!(
    /// When users created or changed by CSV import or SCIM are evaluated (R18).
    IntegrationEvaluation { Nightly => "nightly", Immediate => "immediate" }
);

impl Status {
    pub fn is_open(self) -> bool {
        self == Status::InProgress
    }

    /// `passed` and `failed` are complete: they carry a `completed_at` (R5).
    pub fn is_complete(self) -> bool {
        matches!(self, Status::Passed | Status::Failed)
    }
}

impl ActivityKind {
    /// Curricula and bundles hold courses in `item_ids`.
    pub fn has_items(self) -> bool {
        matches!(self, ActivityKind::Curriculum | ActivityKind::CourseBundle)
    }

    /// Post-enrollment rules may be added to every kind but bundles (R30).
    pub fn accepts_post_enrollments(self) -> bool {
        self != ActivityKind::CourseBundle
    }
}

/// Why an enrollment exists (R20).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Manual {
        by: i64,
    },
    #[serde(rename = "self")]
    SelfEnrolled,
    Url,
    AutoEnrollment {
        activity_id: i64,
        period: String,
    },
    PostEnrollment {
        rule_id: i64,
        from_enrollment_id: i64,
    },
    Curriculum {
        enrollment_id: i64,
    },
    Bundle {
        enrollment_id: i64,
    },
    Import,
}

impl Source {
    /// The `kind` tag, as stored in its own column for filtering.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Manual { .. } => "manual",
            Source::SelfEnrolled => "self",
            Source::Url => "url",
            Source::AutoEnrollment { .. } => "auto_enrollment",
            Source::PostEnrollment { .. } => "post_enrollment",
            Source::Curriculum { .. } => "curriculum",
            Source::Bundle { .. } => "bundle",
            Source::Import => "import",
        }
    }

    pub const KINDS: &'static [&'static str] = &[
        "manual",
        "self",
        "url",
        "auto_enrollment",
        "post_enrollment",
        "curriculum",
        "bundle",
        "import",
    ];
}

/// Who an auto-enrollment rule reaches (R10): `none` clears the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    None,
    Company,
    Groups,
}

/// When a one-time enrollment is due (R12): `{"within_days":N}` after the
/// enrollment, or `{"on_date":"YYYY-MM-DD"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OneTimeDue {
    WithinDays(u32),
    OnDate(#[serde(with = "crate::date::strict")] Date),
}

impl utoipa::PartialSchema for OneTimeDue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let within_days = ObjectBuilder::new()
            .property(
                "within_days",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(MAX_DUE_DAYS)),
            )
            .required("within_days");
        let on_date = ObjectBuilder::new()
            .property(
                "on_date",
                <crate::date::Day as utoipa::PartialSchema>::schema(),
            )
            .required("on_date");
        OneOfBuilder::new()
            .item(within_days)
            .item(on_date)
            .description(Some("Due N days after the enrollment, or on a date"))
            .into()
    }
}

impl utoipa::ToSchema for OneTimeDue {}

/// How often a rule enrolls (R12).
// It is read through `RecurrenceFields`, not as serde's internally tagged
// enum, which buffers the object and so loses the path of an error inside
// it (`recurrence.due_each_year_on`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recurrence {
    OneTime {
        #[serde(default)]
        due: Option<OneTimeDue>,
    },
    Annual {
        due_each_year_on: MonthDay,
    },
    EveryMonths {
        #[schema(minimum = 1, maximum = 120)]
        months: u32,
    },
}

/// The kinds of recurrence, as `kind` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RecurrenceKind {
    OneTime,
    Annual,
    EveryMonths,
}

/// Every field any kind of recurrence has; each kind then takes its own and
/// refuses the others' as unknown.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecurrenceFields {
    kind: RecurrenceKind,
    #[serde(default)]
    due: Option<OneTimeDue>,
    #[serde(default)]
    due_each_year_on: Option<MonthDay>,
    #[serde(default)]
    months: Option<u32>,
}

impl<'de> Deserialize<'de> for Recurrence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let fields = RecurrenceFields::deserialize(deserializer)?;
        let expected: &[&str] = match fields.kind {
            RecurrenceKind::OneTime => &["kind", "due"],
            RecurrenceKind::Annual => &["kind", "due_each_year_on"],
            RecurrenceKind::EveryMonths => &["kind", "months"],
        };
        let given = [
            ("due", fields.due.is_some()),
            ("due_each_year_on", fields.due_each_year_on.is_some()),
            ("months", fields.months.is_some()),
        ];
        if let Some((name, _)) = given
            .iter()
            .find(|(name, present)| *present && !expected.contains(name))
        {
            return Err(D::Error::unknown_field(name, expected));
        }
        match fields.kind {
            RecurrenceKind::OneTime => Ok(Recurrence::OneTime { due: fields.due }),
            RecurrenceKind::Annual => fields
                .due_each_year_on
                .map(|due_each_year_on| Recurrence::Annual { due_each_year_on })
                .ok_or_else(|| D::Error::missing_field("due_each_year_on")),
            RecurrenceKind::EveryMonths => fields
                .months
                .map(|months| Recurrence::EveryMonths { months })
                .ok_or_else(|| D::Error::missing_field("months")),
        }
    }
}

/// The bounds of a rule's numbers, checked by [`crate::validate`] and
/// written into the API document's schemas (a test keeps them equal).
pub const MAX_DUE_DAYS: u32 = 3650;
pub const MONTHS_RANGE: std::ops::RangeInclusive<u32> = 1..=120;
pub const MAX_DELAY_DAYS: u32 = 3650;

/// A month and day of the year, `MM-DD`; 02-29 is allowed (R12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonthDay {
    pub month: i8,
    pub day: i8,
}

impl MonthDay {
    pub fn parse(text: &str) -> Option<MonthDay> {
        let (month, day) = text.split_once('-')?;
        // Integer parsing alone would let "+1-01" through; only two digits each
        // spell a month and a day.
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(month) || !two_digits(day) {
            return None;
        }
        let month: i8 = month.parse().ok()?;
        let day: i8 = day.parse().ok()?;
        // A leap year accepts every real month-day, 02-29 included.
        Date::new(2024, month, day).ok()?;
        Some(MonthDay { month, day })
    }
}

impl fmt::Display for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

impl Serialize for MonthDay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MonthDay {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        MonthDay::parse(&text).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&text),
                &"a day of the year written MM-DD",
            )
        })
    }
}

impl utoipa::PartialSchema for MonthDay {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(
                "^((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-9])|(0[13-9]|1[0-2])-30|(0[13578]|1[02])-31)$",
            ))
            .description(Some("A day of the year, MM-DD (02-29 is allowed)"))
            .into()
    }
}

impl utoipa::ToSchema for MonthDay {}

/// A saved auto-enrollment rule (R10–R12); `None` scope is stored as no rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoRule {
    pub scope: Scope,
    #[serde(default)]
    pub group_ids: Vec<i64>,
    #[serde(default, with = "crate::date::strict_option")]
    #[schema(value_type = Option<crate::date::Day>, required = true)]
    pub hired_after: Option<Date>,
    pub recurrence: Recurrence,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3650, required = true)]
    pub initial_due_days: Option<u32>,
}

/// A post-enrollment rule (R31).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostRule {
    pub id: i64,
    pub activity_id: i64,
    pub when: Trigger,
    #[schema(minimum = 0, maximum = 3650)]
    pub delay_days: u32,
    pub target_ids: Vec<i64>,
    pub allow_consecutive: bool,
}

/// What a rule's period is called in the `period` column (R14).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Once,
    /// An annual period, named by its end date.
    Annual(Date),
    /// The N-th enrollment (1-based) of an every_months chain.
    Cycle(u32),
}

impl Period {
    /// Reads a period name; only the spelling `Display` writes is accepted, so
    /// that one period has exactly one name in the (rule, user, period) key (R14).
    pub fn parse(text: &str) -> Option<Period> {
        let period = if text == "once" {
            Period::Once
        } else if let Some(n) = text.strip_prefix("cycle-") {
            Period::Cycle(n.parse().ok().filter(|n| *n >= 1)?)
        } else {
            Period::Annual(text.parse::<Date>().ok()?)
        };
        // jiff also reads "20270630", "+002027-06-30" or "2027-06-30T10:00", and
        // integers read "01" or "+1": all would alias a canonical name.
        (period.to_string() == text).then_some(period)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Once => f.write_str("once"),
            Period::Annual(end) => write!(f, "{end}"),
            Period::Cycle(n) => write!(f, "cycle-{n}"),
        }
    }
}

/// Outcome of one target of a post-enrollment job (R36, R41, R21).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetOutcome {
    Create,
    AlreadyEnrolled,
    AlreadyCompleted,
    UserInactive,
    Exempt,
}

#[cfg(test)]
mod wire_names {
    use super::*;

    fn check<T: Serialize + Copy + fmt::Display>(all: &[T]) {
        for value in all {
            assert_eq!(
                serde_json::to_value(value).unwrap(),
                serde_json::Value::String(value.to_string())
            );
        }
    }

    #[test]
    fn serde_writes_every_enum_value_as_its_wire_name() {
        check(Role::ALL);
        check(ActivityKind::ALL);
        check(EnrollmentType::ALL);
        check(Status::ALL);
        check(Trigger::ALL);
        check(IntegrationEvaluation::ALL);
    }
}
