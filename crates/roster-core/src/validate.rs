//! Validation of rules as they arrive from outside, with field-level errors.

use serde::Deserialize;

use crate::date::Day;
use crate::model::{AutoRule, MAX_DUE_DAYS, MONTHS_RANGE, MonthDay, OneTimeDue, Recurrence, Scope};

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

/// The bounds of a recurrence's numbers (R12).
pub fn check_recurrence(recurrence: &Recurrence) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match recurrence {
        Recurrence::OneTime {
            due: Some(OneTimeDue::WithinDays(days)),
        } if *days > MAX_DUE_DAYS => errors.push(FieldError::new(
            "recurrence.due.within_days",
            format!("must be between 0 and {MAX_DUE_DAYS}"),
        )),
        Recurrence::EveryMonths { months } if !MONTHS_RANGE.contains(months) => {
            errors.push(FieldError::new(
                "recurrence.months",
                format!(
                    "must be between {} and {}",
                    MONTHS_RANGE.start(),
                    MONTHS_RANGE.end()
                ),
            ))
        }
        _ => {}
    }
    errors
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
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRuleInput {
    pub scope: Scope,
    /// The groups of scope `groups`; none for `company`.
    #[serde(default, deserialize_with = "present")]
    pub group_ids: Option<Vec<i64>>,
    /// Only people hired after this day (`null` or absent: everyone).
    #[serde(default, deserialize_with = "given")]
    pub hired_after: Option<Option<Day>>,
    /// Required unless the scope is `none`.
    #[serde(default, deserialize_with = "present")]
    pub recurrence: Option<Recurrence>,
    /// Annual and every_months rules: days a newcomer has before the first
    /// due date (`null` or absent: none).
    #[serde(default, deserialize_with = "given")]
    pub initial_due_days: Option<Option<u32>>,
}

/// The three kinds of recurrence as closed schemas, for the rule input's
/// branches.
fn recurrence_branches() -> (
    utoipa::openapi::schema::Object,
    utoipa::openapi::schema::Object,
    utoipa::openapi::schema::Object,
) {
    use utoipa::openapi::schema::{
        AdditionalProperties, Object, ObjectBuilder, OneOfBuilder, Type,
    };
    let null = || ObjectBuilder::new().schema_type(Type::Null);
    let word = |text: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([text.to_string()]))
    };
    let closed = |builder: ObjectBuilder| {
        builder.additional_properties(Some(AdditionalProperties::FreeForm(false)))
    };
    let one_of = |items: Vec<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>| {
        let mut builder = OneOfBuilder::new();
        for item in items {
            builder = builder.item(item);
        }
        builder
    };
    let one_time: Object = closed(
        ObjectBuilder::new()
            .property("kind", word("one_time"))
            .property(
                "due",
                one_of(vec![
                    <OneTimeDue as utoipa::PartialSchema>::schema(),
                    null().into(),
                ]),
            )
            .required("kind"),
    )
    .build();
    let annual: Object = closed(
        ObjectBuilder::new()
            .property("kind", word("annual"))
            .property(
                "due_each_year_on",
                <MonthDay as utoipa::PartialSchema>::schema(),
            )
            .required("kind")
            .required("due_each_year_on"),
    )
    .build();
    let every_months: Object = closed(
        ObjectBuilder::new()
            .property("kind", word("every_months"))
            .property(
                "months",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(*MONTHS_RANGE.start()))
                    .maximum(Some(*MONTHS_RANGE.end())),
            )
            .required("kind")
            .required("months"),
    )
    .build();
    (one_time, annual, every_months)
}

/// The document's schema says what the checks below check, so that a body
/// the document calls valid is one the server takes: `none` clears; a
/// `company` rule names no groups; a `groups` rule names at least one; a
/// one-time rule has no `initial_due_days`.
impl utoipa::PartialSchema for AutoRuleInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
        };
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let one_of = |items: Vec<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>| {
            let mut builder = OneOfBuilder::new();
            for item in items {
                builder = builder.item(item);
            }
            builder
        };
        let word = |text: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([text.to_string()]))
        };
        let closed = |builder: ObjectBuilder| {
            builder.additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let days = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(MAX_DUE_DAYS))
        };
        let ids = || {
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Integer).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64),
            )))
        };
        let (one_time, annual, every_months) = recurrence_branches();
        let hired_after = || {
            one_of(vec![
                <Day as utoipa::PartialSchema>::schema(),
                null().into(),
            ])
        };
        let rule = |scope: &str, group_ids: ArrayBuilder, periodic: bool| {
            let (recurrence, initial_due_days) = if periodic {
                (
                    one_of(vec![annual.clone().into(), every_months.clone().into()]),
                    one_of(vec![days().into(), null().into()]),
                )
            } else {
                (
                    one_of(vec![one_time.clone().into()]),
                    one_of(vec![null().into()]),
                )
            };
            let builder = ObjectBuilder::new()
                .property("scope", word(scope))
                .property("group_ids", group_ids);
            let builder = if scope == "groups" {
                builder.required("group_ids")
            } else {
                builder
            };
            closed(
                builder
                    .property("hired_after", hired_after())
                    .property("recurrence", recurrence)
                    .property("initial_due_days", initial_due_days)
                    .required("scope")
                    .required("recurrence"),
            )
        };
        // Clearing takes the scope alone, so that a body is valid by one
        // branch only.
        let none = closed(
            ObjectBuilder::new()
                .property("scope", word("none"))
                .required("scope"),
        );
        one_of(vec![
            none.into(),
            rule("company", ids().max_items(Some(0)), false).into(),
            rule("company", ids().max_items(Some(0)), true).into(),
            rule("groups", ids().min_items(Some(1)), false).into(),
            rule("groups", ids().min_items(Some(1)), true).into(),
        ])
        .description(Some(
            "An auto-enrollment rule (R10-R12), or `{\"scope\":\"none\"}` to clear it: \
             a `company` rule names no groups, a `groups` rule at least one, and \
             `initial_due_days` is for annual and every_months rules only",
        ))
        .into()
    }
}

impl utoipa::ToSchema for AutoRuleInput {}

/// A field that may be `null`: absent is `None`, given (even as `null`) is
/// `Some`, so that `{"scope":"none"}` can refuse every other field.
fn given<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A field that may be left out but, when given, is not `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The rule to save, or `None` to clear the activity's rule.
impl TryFrom<AutoRuleInput> for Option<AutoRule> {
    type Error = FieldErrors;

    fn try_from(input: AutoRuleInput) -> Result<Option<AutoRule>, FieldErrors> {
        if input.scope == Scope::None {
            // `{"scope":"none"}` clears the rule; anything else beside it
            // would be silently dropped, so it is refused.
            let mut errors = FieldErrors::new();
            let only_scope = "is not read when the scope is none: send {\"scope\":\"none\"} alone";
            errors.check(input.group_ids.is_none(), "group_ids", only_scope);
            errors.check(input.hired_after.is_none(), "hired_after", only_scope);
            errors.check(input.recurrence.is_none(), "recurrence", only_scope);
            errors.check(
                input.initial_due_days.is_none(),
                "initial_due_days",
                only_scope,
            );
            return errors.finish(None);
        }
        let Some(recurrence) = input.recurrence else {
            let mut errors = FieldErrors::new();
            errors.add("recurrence", "is required");
            return Err(errors);
        };
        let rule = AutoRule {
            scope: input.scope,
            group_ids: input.group_ids.unwrap_or_default(),
            hired_after: input.hired_after.flatten().map(Day::date),
            recurrence,
            initial_due_days: input.initial_due_days.flatten(),
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
    /// The `maximum` of a property's schema, or of a branch of it.
    fn first_maximum(schema: &serde_json::Value) -> Option<u64> {
        match schema {
            serde_json::Value::Object(map) => map
                .get("maximum")
                .and_then(serde_json::Value::as_u64)
                .or_else(|| map.values().find_map(first_maximum)),
            serde_json::Value::Array(values) => values.iter().find_map(first_maximum),
            _ => None,
        }
    }

    fn maximum_of(schema: &serde_json::Value, name: &str) -> Option<u64> {
        match schema {
            serde_json::Value::Object(map) => map
                .get("properties")
                .and_then(|properties| properties.get(name))
                .and_then(first_maximum)
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
