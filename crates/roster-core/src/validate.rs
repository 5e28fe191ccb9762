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
