//! The sweep's pure decisions (R10, R13–R15, R21): which of a batch's
//! changed users a rule's scope may hold (`narrow`), and what a batch read
//! of their enrollments and exemptions decides for them (`decide`,
//! `rollover_may_close`). The shell reads the facts, in the store's text
//! forms, and applies the decisions.

use std::collections::HashMap;

use jiff::civil::Date;

use crate::calendar::current_period;
use crate::decide::{EnrollmentFacts, UserFacts, plan_sweep};
use crate::{AutoRule, Period, Recurrence, Role, Scope, Status};

/// The users a sweep pass covers: ids from `lo` up to, not including, `hi`.
/// One type, so that the two ends cannot be passed the wrong way round or
/// mixed up with another id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRange {
    pub lo: i64,
    pub hi: i64,
}

impl UserRange {
    /// Every user.
    pub const ALL: UserRange = UserRange {
        lo: 0,
        hi: i64::MAX,
    };

    /// The one user `user_id`.
    pub fn one(user_id: i64) -> UserRange {
        UserRange {
            lo: user_id,
            hi: user_id + 1,
        }
    }
}

/// What a rule's scope reads of a user, and where a skip is recorded for
/// them (`Tx::sweep_user_facts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepUser {
    pub id: i64,
    pub active: bool,
    /// A service account (role `integration`), which no rule enrolls (R10).
    pub integration: bool,
    pub hired_on: Option<String>,
    pub groups: Vec<i64>,
    /// The activities whose rule recorded a skip for the user.
    pub skipped_in: Vec<i64>,
}

/// An enrollment a rule creates, decided beforehand for a batch of
/// incremental passes (`Tx::sweep_create_many`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoEnrollment {
    pub activity_id: i64,
    pub user_id: i64,
    pub due_on: Option<String>,
    pub period: String,
    pub source_json: String,
}

/// What `narrow` keeps of some users: the candidates (in id order) and
/// whether any of the users has a skip recorded in the activity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrowing {
    pub candidates: Vec<i64>,
    pub skipped: bool,
}

/// The sweep of one activity's rule on one day, as `decide` reads it: the
/// period each user in scope needs, the day (`YYYY-MM-DD`), and the source
/// its new enrollments record (JSON).
#[derive(Clone, Copy, Debug)]
pub struct SweepOn<'a> {
    pub activity_id: i64,
    pub period: &'a str,
    pub today: &'a str,
    pub source_json: &'a str,
}

/// Of `users` (in id order), those the rule's scope may hold, as far as
/// `facts` tell (users they do not describe are kept), and whether any of
/// them has a skip recorded in the activity. A superset of the store's own
/// condition (`sweep_matching_users` checks each candidate again): active
/// people who are no service account (R10), hired after the rule's date,
/// in one of its groups — a group since deleted is still in the rule's
/// list, never the other way round.
pub fn narrow(activity_id: i64, rule: &AutoRule, users: &[i64], facts: &[SweepUser]) -> Narrowing {
    let hired_after = rule.hired_after.map(|date| date.to_string());
    let mut narrowed = Narrowing::default();
    for &id in users {
        let Ok(at) = facts.binary_search_by_key(&id, |user| user.id) else {
            narrowed.candidates.push(id);
            narrowed.skipped = true;
            continue;
        };
        let user = &facts[at];
        narrowed.skipped |= user.skipped_in.contains(&activity_id);
        let hired = match (&hired_after, &user.hired_on) {
            (None, _) => true,
            (Some(_), None) => false,
            // Compared as text, as the store does; a date the store could
            // order otherwise keeps the user.
            (Some(after), Some(hired)) => !is_iso_date(hired) || hired > after,
        };
        let grouped = rule.scope != Scope::Groups
            || user
                .groups
                .iter()
                .any(|group| rule.group_ids.contains(group));
        if user.active && !user.integration && hired && grouped {
            narrowed.candidates.push(id);
        }
    }
    narrowed
}

/// One activity's enrollments of some users, keyed by user: (id, status,
/// period, due_on) each, as `Tx::sweep_user_records` reads them.
pub type Held = HashMap<i64, Vec<(i64, String, Option<String>, Option<String>)>>;

/// One activity's exemptions of some users, keyed by user: their `until`.
pub type Exempted = HashMap<i64, Vec<Option<String>>>;

/// What `decide` answers: the (user, open, exempt) rows, and the
/// enrollments to create when they could be decided.
pub type Decided = (Vec<(i64, i32, bool)>, Option<Vec<AutoEnrollment>>);

/// What a batch read of the candidates' enrollments and exemptions in one
/// activity says (`Tx::sweep_user_records`, keyed by user): per candidate,
/// the (user, open, exempt) row `sweep_matching_users` would read, and the
/// enrollments the rule must create — the core's reference sweep
/// (`roster_core::decide::plan_sweep`) applied to each candidate known to be
/// in scope — or `None` when the pass must look for them itself: a
/// candidate the facts do not describe (or whose dates do not parse), or one
/// whose earlier period's enrollment the rollover closes first. `sweep` is
/// the activity's sweep of `rule` on the day; `facts` those `narrow` used.
pub fn decide(
    rule: &AutoRule,
    sweep: &SweepOn<'_>,
    candidates: &[i64],
    facts: &[SweepUser],
    enrollments: &Held,
    exemptions: &Exempted,
) -> Decided {
    let none = Vec::new();
    let mut rows = Vec::with_capacity(candidates.len());
    let mut creations = Vec::new();
    let mut settled = true;
    let today: Option<Date> = sweep.today.parse().ok();
    for &user in candidates {
        let held = enrollments.get(&user).unwrap_or(&none);
        let open = match held
            .iter()
            .find(|(_, status, _, _)| status == Status::InProgress.as_str())
        {
            None => 0,
            Some((_, _, None, _)) => 1,
            Some((_, _, Some(period), _)) if period == sweep.period => 2,
            Some(_) => 3,
        };
        let exempt = exemptions.get(&user);
        rows.push((user, open, exempt.is_some()));
        let (Some(today), Some(user_facts), Some(enrollment_facts)) = (
            today,
            user_facts(user, facts, exempt, sweep.today),
            enrollment_facts(user, held),
        ) else {
            settled = false;
            continue;
        };
        let plan = plan_sweep(rule, today, &[user_facts], &enrollment_facts);
        if !plan.close.is_empty() {
            settled = false;
            continue;
        }
        creations.extend(
            plan.create
                .into_iter()
                .map(|(user_id, period, due)| AutoEnrollment {
                    activity_id: sweep.activity_id,
                    user_id,
                    due_on: due.map(|due| due.to_string()),
                    period: period.to_string(),
                    source_json: sweep.source_json.to_string(),
                }),
        );
    }
    (rows, settled.then_some(creations))
}

/// A candidate as the core's reference sweep takes it, from the batch's
/// facts: `None` when the facts do not describe them or their hire date
/// does not parse.
fn user_facts(
    user: i64,
    facts: &[SweepUser],
    exempt: Option<&Vec<Option<String>>>,
    today: &str,
) -> Option<UserFacts> {
    let fact = &facts[facts.binary_search_by_key(&user, |fact| fact.id).ok()?];
    let hired_on = match &fact.hired_on {
        None => None,
        Some(hired) => Some(hired.parse().ok()?),
    };
    Some(UserFacts {
        id: user,
        active: fact.active,
        role: if fact.integration {
            Role::Integration
        } else {
            Role::Learner
        },
        hired_on,
        group_ids: fact.groups.iter().copied().collect(),
        // In force through its `until` day (R21), compared as the store does.
        exempt: exempt.is_some_and(|untils| {
            untils
                .iter()
                .any(|until| until.as_deref().is_none_or(|until| until >= today))
        }),
    })
}

/// A candidate's enrollments in the activity as the core's reference sweep
/// takes them; `None` when a status or period does not parse.
fn enrollment_facts(
    user: i64,
    held: &[(i64, String, Option<String>, Option<String>)],
) -> Option<Vec<EnrollmentFacts>> {
    held.iter()
        .map(|(id, status, period, due_on)| {
            Some(EnrollmentFacts {
                id: *id,
                user_id: user,
                status: status.parse().ok()?,
                period: match period {
                    None => None,
                    Some(period) => Some(Period::parse(period)?),
                },
                due_on: due_on.as_deref().and_then(|due| due.parse().ok()),
            })
        })
        .collect()
}

/// Whether an annual rule's rollover may close anything among `users` on
/// `today`: only if one of them holds an open enrollment of a period other
/// than the current one (`held`: the activity's enrollments of the users,
/// keyed by user, as `Tx::sweep_user_records` reads them), since the
/// current period's enrollments are never closed (R14). `None` for a rule
/// of another recurrence, which closes nothing.
pub fn rollover_may_close(
    recurrence: &Recurrence,
    today: Date,
    users: &[i64],
    held: Option<&Held>,
) -> Option<bool> {
    if !matches!(recurrence, Recurrence::Annual { .. }) {
        return None;
    }
    let current = current_period(recurrence, today).to_string();
    let Some(held) = held else {
        return Some(false);
    };
    Some(users.iter().any(|user| {
        held.get(user).is_some_and(|enrollments| {
            enrollments.iter().any(|(_, status, period, _)| {
                status == Status::InProgress.as_str()
                    && period.as_ref().is_some_and(|period| *period != current)
            })
        })
    }))
}

/// `YYYY-MM-DD`, digits and dashes where a date has them.
fn is_iso_date(text: &str) -> bool {
    text.len() == 10
        && text.bytes().enumerate().all(|(at, byte)| match at {
            4 | 7 => byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Source;

    fn user(id: i64, groups: &[i64], hired_on: Option<&str>) -> SweepUser {
        SweepUser {
            id,
            active: true,
            integration: false,
            hired_on: hired_on.map(str::to_string),
            groups: groups.to_vec(),
            skipped_in: Vec::new(),
        }
    }

    fn rule(json: serde_json::Value) -> AutoRule {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn r10_r13_narrowing_keeps_every_user_the_scope_may_hold() {
        let groups = rule(
            json!({"scope": "groups", "group_ids": [7, 9], "hired_after": "2030-06-30",
            "recurrence": {"kind": "one_time", "due": null}}),
        );
        let mut facts = vec![
            user(1, &[7], Some("2030-07-01")),
            user(2, &[8], Some("2030-07-01")),
            user(3, &[9, 8], Some("2030-06-30")),
            user(4, &[9], None),
            user(5, &[7], Some("July 2030")),
            user(6, &[7], Some("2031-01-01")),
            user(7, &[7], Some("2031-01-01")),
        ];
        facts[5].active = false;
        facts[6].integration = true;
        facts[1].skipped_in = vec![40];
        // User 8 was not read (deleted since): kept, and its skips may exist.
        let users = [1, 2, 3, 4, 5, 6, 7];
        let narrowed = narrow(40, &groups, &users, &facts);
        assert_eq!(narrowed.candidates, vec![1, 5]);
        assert!(narrowed.skipped, "user 2 has a skip in activity 40");
        assert!(!narrow(41, &groups, &users, &facts).skipped);
        let unknown = narrow(41, &groups, &[1, 8], &facts);
        assert_eq!(unknown.candidates, vec![1, 8]);
        assert!(unknown.skipped);

        let company =
            rule(json!({"scope": "company", "recurrence": {"kind": "one_time", "due": null}}));
        let narrowed = narrow(40, &company, &users, &facts);
        assert_eq!(narrowed.candidates, vec![1, 2, 3, 4, 5]);
        assert!(narrow(40, &company, &[], &facts).candidates.is_empty());
    }

    const TODAY: &str = "2030-07-10";

    /// The period and source of `rule`'s sweep of activity 40 on `TODAY`,
    /// as the shell computes them.
    struct Day {
        period: String,
        source_json: String,
    }

    impl Day {
        fn on(&self) -> SweepOn<'_> {
            SweepOn {
                activity_id: 40,
                period: &self.period,
                today: TODAY,
                source_json: &self.source_json,
            }
        }
    }

    fn sweep_of(rule: &AutoRule) -> Day {
        let today: Date = TODAY.parse().unwrap();
        let period = current_period(&rule.recurrence, today).to_string();
        let source = Source::AutoEnrollment {
            activity_id: 40,
            period: period.clone(),
        };
        Day {
            period,
            source_json: serde_json::to_string(&source).unwrap(),
        }
    }

    type Exempt = Exempted;

    /// (user, status, period) rows, with ids from 100 on.
    fn held(rows: &[(i64, &str, Option<&str>)]) -> Held {
        let mut held = Held::new();
        for (at, (user, status, period)) in rows.iter().enumerate() {
            held.entry(*user).or_default().push((
                100 + at as i64,
                status.to_string(),
                period.map(str::to_string),
                None,
            ));
        }
        held
    }

    fn created(decided: &Option<Vec<AutoEnrollment>>) -> Vec<(i64, Option<&str>, &str)> {
        decided
            .as_ref()
            .expect("decided")
            .iter()
            .map(|row| (row.user_id, row.due_on.as_deref(), row.period.as_str()))
            .collect()
    }

    #[test]
    fn r14_r21_a_batch_decides_creations_as_the_reference_sweep() {
        let facts: Vec<SweepUser> = (1..=7)
            .map(|id| user(id, &[], Some("2030-07-01")))
            .collect();
        let mut exempt = Exempt::new();
        exempt.insert(5, vec![Some("2030-07-09".to_string())]);
        exempt.insert(6, vec![Some("2030-07-10".to_string())]);
        exempt.insert(7, vec![None]);
        // One-time, due within 30 days: 1 passed it (met, R14), 2 holds it
        // open, 3 had another period only, 4 nothing, 5's exemption ended
        // yesterday, 6 and 7 are exempt through today or for good (R21).
        let once = rule(json!({"scope": "company",
            "recurrence": {"kind": "one_time", "due": {"within_days": 30}}}));
        let held_once = held(&[
            (1, "passed", None),
            (2, "in_progress", Some("once")),
            (3, "incomplete", Some("2029-12-31")),
        ]);
        let (rows, decided) = decide(
            &once,
            &sweep_of(&once).on(),
            &[1, 2, 3, 4, 5, 6, 7],
            &facts,
            &held_once,
            &exempt,
        );
        assert_eq!(
            rows,
            vec![
                (1, 0, false),
                (2, 2, false),
                (3, 0, false),
                (4, 0, false),
                (5, 0, true),
                (6, 0, true),
                (7, 0, true)
            ]
        );
        let due = Some("2030-08-09");
        assert_eq!(
            created(&decided),
            vec![(3, due, "once"), (4, due, "once"), (5, due, "once")]
        );
        // A user the facts do not describe is left to the statements.
        let (_, decided) = decide(
            &once,
            &sweep_of(&once).on(),
            &[4, 8],
            &facts,
            &held_once,
            &exempt,
        );
        assert!(decided.is_none());

        // Annual, 10 days for a first enrollment: the current period's
        // enrollment meets the need whatever its status; one who had an
        // earlier period gets the period's end; another period's open
        // enrollment is closed by the rollover first, so the pass decides.
        let annual = rule(json!({"scope": "company", "initial_due_days": 10,
            "recurrence": {"kind": "annual", "due_each_year_on": "12-31"}}));
        let held_annual = held(&[
            (1, "failed", Some("2030-12-31")),
            (2, "passed", Some("2029-12-31")),
        ]);
        let (_, decided) = decide(
            &annual,
            &sweep_of(&annual).on(),
            &[1, 2, 3],
            &facts,
            &held_annual,
            &Exempt::new(),
        );
        assert_eq!(
            created(&decided),
            vec![
                (2, Some("2030-12-31"), "2030-12-31"),
                (3, Some("2030-07-20"), "2030-12-31")
            ]
        );
        let rolling = held(&[(1, "in_progress", Some("2029-12-31"))]);
        let (rows, decided) = decide(
            &annual,
            &sweep_of(&annual).on(),
            &[1, 2],
            &facts,
            &rolling,
            &Exempt::new(),
        );
        assert_eq!(rows, vec![(1, 3, false), (2, 0, false)]);
        assert!(decided.is_none());

        // Every 6 months: any cycle meets the first one's need; an open
        // enrollment without a period is adopted by the pass, not created.
        let cycles_rule = rule(json!({"scope": "company",
            "recurrence": {"kind": "every_months", "months": 6}}));
        let cycles = held(&[(1, "passed", Some("cycle-3")), (2, "in_progress", None)]);
        let (rows, decided) = decide(
            &cycles_rule,
            &sweep_of(&cycles_rule).on(),
            &[1, 2, 3],
            &facts,
            &cycles,
            &Exempt::new(),
        );
        assert_eq!(rows, vec![(1, 0, false), (2, 1, false), (3, 0, false)]);
        assert_eq!(created(&decided).len(), 1);
        assert_eq!(created(&decided)[0].0, 3);

        // A hire date that does not parse: left to the statements.
        let mut odd = facts.clone();
        odd[3].hired_on = Some("July 2030".to_string());
        let hired = rule(json!({"scope": "company", "hired_after": "2030-06-30",
            "recurrence": {"kind": "one_time", "due": null}}));
        let (_, decided) = decide(
            &hired,
            &sweep_of(&hired).on(),
            &[4],
            &odd,
            &Held::new(),
            &Exempt::new(),
        );
        assert!(decided.is_none());
    }

    #[test]
    fn r14_the_rollover_closes_only_where_another_periods_enrollment_is_open() {
        let annual = rule(json!({"scope": "company",
            "recurrence": {"kind": "annual", "due_each_year_on": "12-31"}}))
        .recurrence;
        let today = jiff::civil::date(2030, 7, 10);
        let current = held(&[
            (1, "in_progress", Some("2030-12-31")),
            (2, "passed", Some("2029-12-31")),
            (3, "in_progress", None),
        ]);
        assert_eq!(
            rollover_may_close(&annual, today, &[1, 2, 3], Some(&current)),
            Some(false)
        );
        assert_eq!(rollover_may_close(&annual, today, &[1], None), Some(false));
        let earlier = held(&[(4, "in_progress", Some("2029-12-31"))]);
        assert_eq!(
            rollover_may_close(&annual, today, &[1, 4], Some(&earlier)),
            Some(true)
        );
        assert_eq!(
            rollover_may_close(&annual, today, &[1], Some(&earlier)),
            Some(false)
        );
        let once =
            rule(json!({"scope": "company", "recurrence": {"kind": "one_time", "due": null}}))
                .recurrence;
        assert_eq!(rollover_may_close(&once, today, &[4], Some(&earlier)), None);
    }
}
