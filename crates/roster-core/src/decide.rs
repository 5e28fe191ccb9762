//! The decisions of the rules engine as pure functions: who an auto-enrollment
//! rule matches (R10, R11, R21), what a sweep must do for one activity (R14–R16),
//! and what a post-enrollment job does for one target (R36, R41).
//!
//! The store runs the sweep as set-based SQL; `plan_sweep` is the reference
//! it is tested against.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;

use crate::calendar::{current_period, due_for_new};
use crate::model::{AutoRule, Period, Recurrence, Role, Scope, Status, TargetOutcome};

/// What the rules need to know of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFacts {
    pub id: i64,
    pub active: bool,
    pub role: Role,
    pub hired_on: Option<Date>,
    pub group_ids: BTreeSet<i64>,
    /// An exemption from this activity holds today (R21).
    pub exempt: bool,
}

/// Why a rule does not match a user, in the order explain reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    NoRule,
    ServiceAccount,
    Inactive,
    NotInGroups,
    NoHireDate,
    HiredTooEarly(Date),
    Exempt,
}

/// Whether `rule` reaches `user` (R10, R11, R21); the first reason it does not.
pub fn match_user(rule: &AutoRule, user: &UserFacts) -> Result<(), Mismatch> {
    if rule.scope == Scope::None {
        return Err(Mismatch::NoRule);
    }
    if user.role == Role::Integration {
        return Err(Mismatch::ServiceAccount);
    }
    if !user.active {
        return Err(Mismatch::Inactive);
    }
    if rule.scope == Scope::Groups && !rule.group_ids.iter().any(|g| user.group_ids.contains(g)) {
        return Err(Mismatch::NotInGroups);
    }
    if let Some(after) = rule.hired_after {
        match user.hired_on {
            None => return Err(Mismatch::NoHireDate),
            Some(hired) if hired <= after => return Err(Mismatch::HiredTooEarly(after)),
            Some(_) => {}
        }
    }
    if user.exempt {
        return Err(Mismatch::Exempt);
    }
    Ok(())
}

/// One existing enrollment of the activity being swept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentFacts {
    pub id: i64,
    pub user_id: i64,
    pub status: Status,
    pub period: Option<Period>,
    pub due_on: Option<Date>,
}

/// What a sweep of one activity on one day does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepPlan {
    /// Open enrollments of earlier annual periods, closed as `incomplete`.
    pub close: Vec<i64>,
    /// Open enrollments no period holds, adopted: (enrollment, period, due).
    pub adopt: Vec<(i64, Period, Option<Date>)>,
    /// New enrollments: (user, period, due).
    pub create: Vec<(i64, Period, Option<Date>)>,
    /// Matching users whose need is blocked by an open enrollment another
    /// period holds (R2), or who are exempt (R21).
    pub skip: Vec<i64>,
}

/// The reference sweep of one activity's rule on `today` (R14, R15, R16).
/// Users and enrollments may come in any order; the plan is sorted.
pub fn plan_sweep(
    rule: &AutoRule,
    today: Date,
    users: &[UserFacts],
    enrollments: &[EnrollmentFacts],
) -> SweepPlan {
    let mut plan = SweepPlan::default();
    let period = current_period(&rule.recurrence, today);

    let mut still_open: BTreeMap<i64, &EnrollmentFacts> = BTreeMap::new();
    for enrollment in enrollments {
        let closes = match (&rule.recurrence, &period, &enrollment.period) {
            (Recurrence::Annual { .. }, Period::Annual(current), Some(Period::Annual(held))) => {
                // A period that has ended closes. One from a former date of the
                // rule that has not ended moves to the current period (below),
                // unless the current period already has its enrollment.
                let has_current = enrollments
                    .iter()
                    .any(|e| e.user_id == enrollment.user_id && e.period.as_ref() == Some(&period));
                enrollment.status.is_open()
                    && (*held < today || (!same_month_day(*held, *current) && has_current))
            }
            _ => false,
        };
        if closes {
            plan.close.push(enrollment.id);
        } else if enrollment.status.is_open() {
            still_open.insert(enrollment.user_id, enrollment);
        }
    }

    for user in users {
        match match_user(rule, user) {
            Ok(()) => {}
            Err(Mismatch::Exempt) => {
                plan.skip.push(user.id);
                continue;
            }
            Err(_) => continue,
        }
        let mine = enrollments.iter().filter(|e| e.user_id == user.id);
        let satisfied = match &period {
            Period::Once => mine
                .clone()
                .any(|e| e.period == Some(Period::Once) || e.status == Status::Passed),
            Period::Annual(_) => mine.clone().any(|e| e.period.as_ref() == Some(&period)),
            Period::Cycle(_) => mine
                .clone()
                .any(|e| matches!(e.period, Some(Period::Cycle(_)))),
        };
        if satisfied {
            continue;
        }
        let first = !mine.clone().any(|e| e.period.is_some());
        let due = due_for_new(rule, &period, today, first);
        match still_open.get(&user.id) {
            Some(open) if open.period.is_none() => {
                plan.adopt
                    .push((open.id, period.clone(), open.due_on.or(due)));
            }
            // An open enrollment of a running annual period under the rule's
            // former date moves to the current period; a due date the rule
            // had set (the old period's end) moves with it.
            Some(open)
                if matches!((&period, &open.period), (Period::Annual(current), Some(Period::Annual(held)))
                    if *held >= today && !same_month_day(*held, *current)) =>
            {
                let held_end = match &open.period {
                    Some(Period::Annual(held)) => Some(*held),
                    _ => None,
                };
                let kept = open.due_on.filter(|due_on| Some(*due_on) != held_end);
                plan.adopt.push((open.id, period.clone(), kept.or(due)));
            }
            Some(_) => plan.skip.push(user.id),
            None => plan.create.push((user.id, period.clone(), due)),
        }
    }
    plan.close.sort();
    plan.adopt.sort();
    plan.create.sort();
    plan.skip.sort();
    plan
}

/// Whether two annual period ends fall on the same day of the year, 28 and
/// 29 February being the same (R12).
pub fn same_month_day(a: Date, b: Date) -> bool {
    let february_end = |date: Date| date.month() == 2 && date.day() >= 28;
    (a.month() == b.month() && a.day() == b.day()) || (february_end(a) && february_end(b))
}

/// What a post-enrollment job does for one target (R36, R41, R21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetFacts {
    pub user_active: bool,
    pub exempt: bool,
    pub has_open: bool,
    pub ever_passed: bool,
}

pub fn decide_target(facts: TargetFacts, allow_consecutive: bool) -> TargetOutcome {
    if !facts.user_active {
        TargetOutcome::UserInactive
    } else if facts.exempt {
        TargetOutcome::Exempt
    } else if facts.has_open {
        TargetOutcome::AlreadyEnrolled
    } else if !allow_consecutive && facts.ever_passed {
        TargetOutcome::AlreadyCompleted
    } else {
        TargetOutcome::Create
    }
}
