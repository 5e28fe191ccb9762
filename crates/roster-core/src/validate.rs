//! Validation of rules as they arrive from outside, with field-level errors.

use crate::model::{AutoRule, OneTimeDue, Recurrence, Scope};

/// A field that failed validation, named by its JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
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
                && *days > 3650
            {
                errors.push(FieldError::new(
                    "recurrence.due.within_days",
                    "must be between 0 and 3650",
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
            if !(1..=120).contains(months) {
                errors.push(FieldError::new(
                    "recurrence.months",
                    "must be between 1 and 120",
                ));
            }
        }
    }
    if let Some(days) = rule.initial_due_days
        && days > 3650
    {
        errors.push(FieldError::new(
            "initial_due_days",
            "must be between 0 and 3650",
        ));
    }
    errors
}
