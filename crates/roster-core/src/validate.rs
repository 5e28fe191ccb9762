//! Validation of rules as they arrive from outside, with field-level errors.

use jiff::civil::Date;
use serde::Deserialize;

use crate::model::{AutoRule, MAX_DUE_DAYS, MONTHS_RANGE, OneTimeDue, Recurrence, Scope};

/// A field that failed validation, named by its JSON path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// The field errors of one input, collected so that a client hears of every
/// mistake at once (the API answers them as one 422).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> FieldErrors {
        FieldErrors::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records `message` for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }

    pub fn extend(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.0.extend(errors);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `value` when no error was recorded, else every error.
    pub fn finish<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<FieldError> for FieldErrors {
    fn from(error: FieldError) -> FieldErrors {
        FieldErrors(vec![error])
    }
}

/// Checks an auto-enrollment rule's own consistency (R10, R12). Whether its
/// groups exist is the caller's question.
pub fn check_auto_rule(rule: &AutoRule) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match rule.scope {
        Scope::Groups if rule.group_ids.is_empty() => {
            errors.push(FieldError::new(
                "group_ids",
                "scope groups needs at least one group",
            ));
        }
        Scope::Company | Scope::None if !rule.group_ids.is_empty() => {
            errors.push(FieldError::new(
                "group_ids",
                "group_ids is only for scope groups",
            ));
        }
        _ => {}
    }
    match &rule.recurrence {
        Recurrence::OneTime { due } => {
            if let Some(OneTimeDue::WithinDays(days)) = due
                && *days > MAX_DUE_DAYS
            {
                errors.push(FieldError::new(
                    "recurrence.due.within_days",
                    format!("must be between 0 and {MAX_DUE_DAYS}"),
                ));
            }
            if rule.initial_due_days.is_some() {
                errors.push(FieldError::new(
                    "initial_due_days",
                    "initial_due_days applies to annual and every_months rules only",
                ));
            }
        }
        Recurrence::Annual { .. } => {}
        Recurrence::EveryMonths { months } => {
            if !MONTHS_RANGE.contains(months) {
                errors.push(FieldError::new(
                    "recurrence.months",
                    format!(
                        "must be between {} and {}",
                        MONTHS_RANGE.start(),
                        MONTHS_RANGE.end()
                    ),
                ));
            }
        }
    }
    if let Some(days) = rule.initial_due_days
        && days > MAX_DUE_DAYS
    {
        errors.push(FieldError::new(
            "initial_due_days",
            format!("must be between 0 and {MAX_DUE_DAYS}"),
        ));
    }
    errors
}

/// The body that sets an activity's auto-enrollment rule (R10–R12), or
/// clears it with `{"scope":"none"}`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoRuleInput {
    pub scope: Scope,
    /// The groups of scope `groups`.
    #[serde(default)]
    pub group_ids: Vec<i64>,
    /// Only people hired after this day.
    #[serde(default, with = "crate::date::strict_option")]
    #[schema(value_type = Option<crate::date::Day>)]
    pub hired_after: Option<Date>,
    /// Required unless the scope is `none`.
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
    /// Annual and every_months rules: days a newcomer has before the first due date.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3650)]
    pub initial_due_days: Option<u32>,
}

/// The rule to save, or `None` to clear the activity's rule.
impl TryFrom<AutoRuleInput> for Option<AutoRule> {
    type Error = FieldErrors;

    fn try_from(input: AutoRuleInput) -> Result<Option<AutoRule>, FieldErrors> {
        if input.scope == Scope::None {
            return Ok(None);
        }
        let Some(recurrence) = input.recurrence else {
            let mut errors = FieldErrors::new();
            errors.add("recurrence", "is required");
            return Err(errors);
        };
        let rule = AutoRule {
            scope: input.scope,
            group_ids: input.group_ids,
            hired_after: input.hired_after,
            recurrence,
            initial_due_days: input.initial_due_days,
        };
        let mut errors = FieldErrors::new();
        errors.extend(check_auto_rule(&rule));
        errors.finish(Some(rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MonthDay;

    fn read(json: &str) -> Result<Option<AutoRule>, String> {
        let input: AutoRuleInput = serde_json::from_str(json).map_err(|error| error.to_string())?;
        Option::<AutoRule>::try_from(input).map_err(|errors| format!("{errors:?}"))
    }

    #[test]
    fn r10_scope_none_clears_the_rule_without_a_recurrence() {
        assert_eq!(read(r#"{"scope":"none"}"#), Ok(None));
    }

    #[test]
    fn r12_a_recurrence_refuses_the_fields_of_another_kind_and_needs_its_own() {
        let other = read(
            r#"{"scope":"company","recurrence":{"kind":"annual","due_each_year_on":"06-30","months":3}}"#,
        );
        assert!(other.is_err_and(|error| error.starts_with("unknown field `months`")));
        let missing = read(r#"{"scope":"company","recurrence":{"kind":"every_months"}}"#);
        assert!(missing.is_err_and(|error| error.starts_with("missing field `months`")));
        let misspelt = read(r#"{"scope":"company","recurence":{"kind":"one_time"}}"#);
        assert!(misspelt.is_err_and(|error| error.starts_with("unknown field `recurence`")));
    }

    #[test]
    fn a_saved_rule_reads_back_as_it_was_written() {
        for recurrence in [
            Recurrence::OneTime { due: None },
            Recurrence::OneTime {
                due: Some(OneTimeDue::WithinDays(30)),
            },
            Recurrence::Annual {
                due_each_year_on: MonthDay { month: 2, day: 29 },
            },
            Recurrence::EveryMonths { months: 6 },
        ] {
            let rule = AutoRule {
                scope: Scope::Company,
                group_ids: Vec::new(),
                hired_after: None,
                recurrence,
                initial_due_days: None,
            };
            let text = serde_json::to_string(&rule).unwrap_or_default();
            assert_eq!(serde_json::from_str::<AutoRule>(&text).ok(), Some(rule));
        }
    }

    /// The maximum the document gives `name` somewhere in `schema`.
    fn maximum_of(schema: &serde_json::Value, name: &str) -> Option<u64> {
        match schema {
            serde_json::Value::Object(map) => map
                .get("properties")
                .and_then(|properties| properties.get(name))
                .and_then(|property| property.get("maximum"))
                .and_then(serde_json::Value::as_u64)
                .or_else(|| map.values().find_map(|value| maximum_of(value, name))),
            serde_json::Value::Array(values) => {
                values.iter().find_map(|value| maximum_of(value, name))
            }
            _ => None,
        }
    }

    #[test]
    fn the_documented_bounds_are_the_checked_ones() {
        use utoipa::PartialSchema;
        let input = serde_json::to_value(AutoRuleInput::schema()).unwrap_or_default();
        let recurrence = serde_json::to_value(Recurrence::schema()).unwrap_or_default();
        assert_eq!(
            maximum_of(&input, "initial_due_days"),
            Some(u64::from(MAX_DUE_DAYS))
        );
        assert_eq!(
            maximum_of(&recurrence, "months"),
            Some(u64::from(*MONTHS_RANGE.end()))
        );
        let post_rule = serde_json::to_value(crate::model::PostRule::schema()).unwrap_or_default();
        assert_eq!(
            maximum_of(&post_rule, "delay_days"),
            Some(u64::from(crate::model::MAX_DELAY_DAYS))
        );
    }
}
