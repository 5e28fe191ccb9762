//! The set-based sweep SQL against the core's reference plan (R10, R11, R14,
//! R15, R16, R21): random small organisations are written through the store,
//! swept exactly as the server sweeps one activity on one day, and the
//! enrollments that result are compared with `roster_core::decide::plan_sweep`
//! applied to the same facts. A rerun creates nothing, and cutting the users
//! into ranges (batches) changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use jiff::ToSpan;
use jiff::civil::{Date, date};
use roster_core::calendar::{annual_end_in_year, annual_period_end, current_period, due_for_new};
use roster_core::decide::{EnrollmentFacts, SweepPlan, UserFacts, plan_sweep};
use roster_core::{
    AutoRule, EnrollmentType, MonthDay, OneTimeDue, Period, Recurrence, Role, Scope, Status,
};
use roster_store::{
    ActivityRecord, ActivitySweep, AutoEnrollment, Changed, EnrollmentFilter, EnrollmentInsert,
    EnrollmentRecord, ExemptionRecord, MarksWrite, Store, SweepKind, Tx, UserIds, UserInsert,
};

use crate::support::{HOUR, NOW, Rng, activity};

/// Random organisations per backend; `ROSTER_SWEEP_CASES` changes it and
/// `ROSTER_SWEEP_SEED` replays one case.
const CASES: u64 = 200;
const FIRST_SEED: u64 = 0x5EED_0000;
/// The business time of the sweep.
const SWEEP_NOW: i64 = NOW + 1000 * HOUR;

const MONTH_DAYS: &[&str] = &["01-01", "02-28", "02-29", "03-31", "06-30", "12-31"];

#[derive(Clone, Debug)]
struct UserSpec {
    active: bool,
    role: Role,
    hired_on: Option<Date>,
    /// Indexes into the organisation's groups.
    groups: Vec<usize>,
    /// The `until` of each exemption from the swept activity.
    exemptions: Vec<Option<Date>>,
    exempt_from_decoy: bool,
}

#[derive(Clone, Debug)]
struct EnrollmentSpec {
    user: usize,
    /// In the decoy activity rather than the swept one.
    decoy: bool,
    enrollment_type: EnrollmentType,
    status: Status,
    period: Option<String>,
    due_on: Option<Date>,
}

#[derive(Clone, Debug)]
struct Org {
    seed: u64,
    today: Date,
    group_count: usize,
    users: Vec<UserSpec>,
    enrollments: Vec<EnrollmentSpec>,
    /// The rule, its `group_ids` as indexes into the groups.
    rule: AutoRule,
    /// The groups of the decoy activity's rule, as indexes.
    decoy_groups: Vec<usize>,
}

/// The organisation as written: database ids.
struct Written {
    activity_id: i64,
    decoy_id: i64,
    user_ids: Vec<i64>,
    /// The id of each group, by index.
    group_ids: Vec<i64>,
    /// The rule with database group ids.
    rule: AutoRule,
    /// Each enrollment spec of the swept activity with its id.
    enrollments: Vec<(i64, EnrollmentSpec)>,
}

/// (user, type, status, period, due_on) of one enrollment.
type Row = (i64, String, String, Option<String>, Option<String>);

/// The swept activity's enrollments: those that existed before, by id, and
/// the new ones as a sorted list.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    existing: BTreeMap<i64, Row>,
    created: Vec<Row>,
}

/// What the store's sweep steps returned, summed over batches.
#[derive(Debug, Default, PartialEq, Eq)]
struct Ran {
    closed: Vec<i64>,
    adopted: Vec<i64>,
    created_users: Vec<i64>,
    skipped: i64,
}

fn plus_days(day: Date, days: i64) -> Date {
    day.checked_add(days.days())
        .expect("test dates stay in range")
}

fn random_date(rng: &mut Rng, from: Date, span_days: u64) -> Date {
    plus_days(from, rng.below(span_days) as i64)
}

fn month_day(text: &str) -> MonthDay {
    MonthDay::parse(text).expect("valid month-day")
}

fn random_org(seed: u64) -> Org {
    let mut rng = Rng::new(seed);
    let recurrence = match rng.below(3) {
        0 => Recurrence::OneTime {
            due: match rng.below(3) {
                0 => None,
                1 => Some(OneTimeDue::WithinDays(rng.below(60) as u32)),
                _ => Some(OneTimeDue::OnDate(random_date(
                    &mut rng,
                    date(2026, 1, 1),
                    1500,
                ))),
            },
        },
        1 => Recurrence::Annual {
            due_each_year_on: month_day(rng.pick::<&str>(MONTH_DAYS)),
        },
        _ => Recurrence::EveryMonths {
            months: 1 + rng.below(24) as u32,
        },
    };
    let mut today = random_date(&mut rng, date(2026, 1, 1), 1096);
    if let Recurrence::Annual { due_each_year_on } = recurrence
        && rng.chance(40)
    {
        // Period boundaries: the last day of a period and the first of the next.
        let end = annual_period_end(today, due_each_year_on);
        today = if rng.chance(50) {
            end
        } else {
            plus_days(end, 1)
        };
    }

    let group_count = rng.below(4) as usize;
    let scope = if group_count > 0 && rng.chance(55) {
        Scope::Groups
    } else {
        Scope::Company
    };
    let mut group_ids = Vec::new();
    if scope == Scope::Groups {
        group_ids = (0..group_count as i64).filter(|_| rng.chance(50)).collect();
        if group_ids.is_empty() {
            group_ids.push(rng.below(group_count as u64) as i64);
        }
    }
    let decoy_groups = (0..group_count).collect();

    let mut users = Vec::new();
    for _ in 0..rng.below(13) {
        let role = match rng.below(100) {
            0..70 => Role::Learner,
            70..85 => Role::Admin,
            _ => Role::Integration,
        };
        let hired_on = rng
            .chance(75)
            .then(|| random_date(&mut rng, date(2019, 1, 1), 3650));
        let groups = (0..group_count).filter(|_| rng.chance(40)).collect();
        let mut exemptions = Vec::new();
        if rng.chance(25) {
            for _ in 0..1 + rng.below(2) {
                let until = match rng.below(5) {
                    0 => None,
                    1 => Some(plus_days(today, -1)),
                    2 => Some(today),
                    3 => Some(plus_days(today, 1)),
                    _ => Some(random_date(&mut rng, plus_days(today, -400), 800)),
                };
                exemptions.push(until);
            }
        }
        users.push(UserSpec {
            active: rng.chance(80),
            role,
            hired_on,
            groups,
            exemptions,
            exempt_from_decoy: rng.chance(10),
        });
    }

    let hired_after = if rng.chance(50) {
        let hired: Vec<Date> = users.iter().filter_map(|u| u.hired_on).collect();
        if !hired.is_empty() && rng.chance(30) {
            // Exactly a user's hire date: "strictly after" must leave them out.
            Some(*rng.pick(&hired))
        } else {
            Some(random_date(&mut rng, date(2019, 1, 1), 3650))
        }
    } else {
        None
    };
    let initial_due_days = match recurrence {
        Recurrence::OneTime { .. } => None,
        _ => rng.chance(40).then(|| rng.below(90) as u32),
    };
    let rule = AutoRule {
        scope,
        group_ids,
        hired_after,
        recurrence,
        initial_due_days,
    };

    let candidates = period_candidates(&rule, today);
    let mut enrollments = Vec::new();
    for user in 0..users.len() {
        let mut used = BTreeSet::new();
        let mut has_open = false;
        for _ in 0..rng.below(4) {
            let status = if !has_open && rng.chance(35) {
                Status::InProgress
            } else {
                *rng.pick(&Status::ALL[1..])
            };
            has_open |= status.is_open();
            let period = if rng.chance(50) {
                let period = rng.pick(&candidates).clone();
                used.insert(period.clone()).then_some(period)
            } else {
                None
            };
            enrollments.push(EnrollmentSpec {
                user,
                decoy: false,
                enrollment_type: *rng.pick(EnrollmentType::ALL),
                status,
                period,
                due_on: rng
                    .chance(50)
                    .then(|| random_date(&mut rng, plus_days(today, -200), 400)),
            });
        }
        if rng.chance(30) {
            enrollments.push(EnrollmentSpec {
                user,
                decoy: true,
                enrollment_type: EnrollmentType::Recommended,
                status: Status::InProgress,
                period: None,
                due_on: None,
            });
        }
    }

    Org {
        seed,
        today,
        group_count,
        users,
        enrollments,
        rule,
        decoy_groups,
    }
}

/// Period names an existing enrollment may hold: every kind, and annual
/// periods before, at and after today's (for the rule's day or another).
fn period_candidates(rule: &AutoRule, today: Date) -> Vec<String> {
    let month_day = match rule.recurrence {
        Recurrence::Annual { due_each_year_on } => due_each_year_on,
        _ => month_day("06-30"),
    };
    let current = annual_period_end(today, month_day);
    // Today's period is listed twice: it decides "satisfied", so it is drawn more often.
    vec![
        "once".to_string(),
        "cycle-1".to_string(),
        "cycle-2".to_string(),
        "2020-06-30".to_string(),
        annual_end_in_year(current.year() - 1, month_day).to_string(),
        current.to_string(),
        current.to_string(),
        annual_end_in_year(current.year() + 1, month_day).to_string(),
        annual_period_end(today, month_day_other(month_day)).to_string(),
    ]
}

fn month_day_other(month_day: MonthDay) -> MonthDay {
    if month_day == self::month_day("12-31") {
        self::month_day("03-31")
    } else {
        self::month_day("12-31")
    }
}

async fn write_org(store: &Store, org: &Org) -> Written {
    let mut tx = store.write().await.unwrap();
    let mut group_ids = Vec::new();
    for n in 0..org.group_count {
        group_ids.push(
            tx.insert_group(&format!("g{}_{n}", org.seed), NOW)
                .await
                .unwrap(),
        );
    }
    let mut user_ids = Vec::new();
    for (n, spec) in org.users.iter().enumerate() {
        let insert = UserInsert {
            username: format!("u{}_{n}", org.seed),
            active: spec.active,
            hired_on: spec.hired_on.map(|d| d.to_string()),
            role: spec.role.as_str().to_string(),
            ..UserInsert::default()
        };
        let id = tx.insert_user(&insert, NOW).await.unwrap();
        for group in &spec.groups {
            assert!(tx.add_member(group_ids[*group], id).await.unwrap());
        }
        user_ids.push(id);
    }
    let activity_id = tx
        .insert_activity(&activity(&format!("Swept {}", org.seed)), NOW)
        .await
        .unwrap();
    let decoy_id = tx
        .insert_activity(
            &ActivityRecord {
                kind: "instructor_led".into(),
                ..activity(&format!("Decoy {}", org.seed))
            },
            NOW,
        )
        .await
        .unwrap();

    let rule = AutoRule {
        group_ids: org
            .rule
            .group_ids
            .iter()
            .map(|g| group_ids[*g as usize])
            .collect(),
        ..org.rule.clone()
    };
    let rule_json = serde_json::to_string(&rule).unwrap();
    tx.set_auto_rule(activity_id, Some(&rule_json), &rule.group_ids, NOW)
        .await
        .unwrap();
    // The decoy's rule reaches every group: its groups must not leak into
    // the swept activity's scope.
    let decoy_group_ids: Vec<i64> = org.decoy_groups.iter().map(|g| group_ids[*g]).collect();
    let decoy_rule = AutoRule {
        scope: Scope::Groups,
        group_ids: decoy_group_ids.clone(),
        ..rule.clone()
    };
    tx.set_auto_rule(
        decoy_id,
        Some(&serde_json::to_string(&decoy_rule).unwrap()),
        &decoy_group_ids,
        NOW,
    )
    .await
    .unwrap();

    for (n, spec) in org.users.iter().enumerate() {
        let exempt = |activity_id: i64, until: Option<Date>| ExemptionRecord {
            id: 0,
            user_id: user_ids[n],
            activity_id,
            reason: "test".into(),
            until: until.map(|d| d.to_string()),
            created_by: None,
            created_at: NOW,
        };
        for until in &spec.exemptions {
            tx.insert_exemption(&exempt(activity_id, *until))
                .await
                .unwrap();
        }
        if spec.exempt_from_decoy {
            tx.insert_exemption(&exempt(decoy_id, None)).await.unwrap();
        }
    }

    let mut enrollments = Vec::new();
    for (n, spec) in org.enrollments.iter().enumerate() {
        let enrolled_at = NOW - (n as i64 + 1) * HOUR;
        let insert = EnrollmentInsert {
            user_id: user_ids[spec.user],
            activity_id: if spec.decoy { decoy_id } else { activity_id },
            enrollment_type: spec.enrollment_type.as_str().to_string(),
            status: spec.status.as_str().to_string(),
            due_on: spec.due_on.map(|d| d.to_string()),
            required_by: None,
            reason: None,
            enrolled_at,
            completed_at: spec.status.is_complete().then_some(enrolled_at + HOUR),
            source_kind: if spec.period.is_some() {
                "auto_enrollment".into()
            } else {
                "manual".into()
            },
            source: "{}".into(),
            period: spec.period.clone(),
        };
        let record = tx
            .insert_enrollment(&insert)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("seed {}: fixture {spec:?} was refused", org.seed));
        if !spec.decoy {
            enrollments.push((record.id, spec.clone()));
        }
    }
    tx.commit().await.unwrap();
    Written {
        activity_id,
        decoy_id,
        user_ids,
        group_ids,
        rule,
        enrollments,
    }
}

/// The sweep of the swept activity on `org.today` over users `lo..hi`.
fn sweep_of(org: &Org, written: &Written, lo: i64, hi: i64) -> ActivitySweep {
    sweep_for(written.activity_id, &written.rule, org.today, lo, hi)
}

/// The sweep of one activity's rule on `today` over users `lo..hi`, built as
/// the server builds it.
fn sweep_for(activity_id: i64, rule: &AutoRule, today: Date, lo: i64, hi: i64) -> ActivitySweep {
    let period = current_period(&rule.recurrence, today);
    ActivitySweep {
        activity_id,
        by_groups: rule.scope == Scope::Groups,
        hired_after: rule.hired_after.map(|d| d.to_string()),
        period: period.to_string(),
        kind: match rule.recurrence {
            Recurrence::OneTime { .. } => SweepKind::OneTime,
            Recurrence::Annual { .. } => SweepKind::Annual,
            Recurrence::EveryMonths { .. } => SweepKind::EveryMonths,
        },
        due_first: due_for_new(rule, &period, today, true).map(|d| d.to_string()),
        due_later: due_for_new(rule, &period, today, false).map(|d| d.to_string()),
        today: today.to_string(),
        now: SWEEP_NOW,
        source_json: format!(
            r#"{{"kind":"auto_enrollment","activity_id":{activity_id},"period":"{period}"}}"#
        ),
        user_lo: lo,
        user_hi: hi,
        since: None,
        matching: None,
        count_skips: true,
        narrowed: None,
        holds: None,
    }
}

impl Ran {
    /// The database returns rows in no promised order.
    fn sort(&mut self) {
        self.closed.sort();
        self.adopted.sort();
        self.created_users.sort();
    }
}

/// One pass of `rule` in `activity_id` over every user, on `today`.
async fn sweep_whole(tx: &mut Tx, activity_id: i64, rule: &AutoRule, today: Date) -> Ran {
    let mut ran = Ran::default();
    run_sweep(
        tx,
        &sweep_for(activity_id, rule, today, 0, i64::MAX),
        &mut ran,
    )
    .await;
    ran
}

/// One sweep of one user range, in the server's order: close earlier
/// periods, adopt, create; then the skipped count.
async fn run_sweep(tx: &mut Tx, sweep: &ActivitySweep, ran: &mut Ran) {
    let closed = tx.sweep_close_earlier(sweep).await.unwrap();
    ran.closed.extend(closed.iter().map(|(id, _)| *id));
    for (id, _user_id, _type, due_on, first) in tx.sweep_adopt_candidates(sweep).await.unwrap() {
        let due = due_on.or(if first {
            sweep.due_first.clone()
        } else {
            sweep.due_later.clone()
        });
        assert!(
            tx.sweep_adopt(id, &sweep.period, due.as_deref(), sweep.now)
                .await
                .unwrap()
        );
        ran.adopted.push(id);
    }
    let created = tx.sweep_create(sweep).await.unwrap();
    ran.created_users
        .extend(created.iter().map(|(_, user)| *user));
    ran.skipped += tx.sweep_record_skips(sweep).await.unwrap();
}

async fn enrollments_in(tx: &mut Tx, activity_id: i64) -> Vec<EnrollmentRecord> {
    let filter = EnrollmentFilter {
        activity_id: Some(activity_id),
        limit: 100_000,
        ..EnrollmentFilter::default()
    };
    tx.list_enrollments(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.enrollment)
        .collect()
}

fn row_of(record: &EnrollmentRecord) -> Row {
    (
        record.user_id,
        record.enrollment_type.clone(),
        record.status.clone(),
        record.period.clone(),
        record.due_on.clone(),
    )
}

/// Reads the swept activity's enrollments and checks what the sweep wrote
/// into the new ones besides the compared fields.
async fn outcome(tx: &mut Tx, written: &Written, sweep: &ActivitySweep) -> Outcome {
    let before: BTreeSet<i64> = written.enrollments.iter().map(|(id, _)| *id).collect();
    let mut result = Outcome {
        existing: BTreeMap::new(),
        created: Vec::new(),
    };
    for record in enrollments_in(tx, written.activity_id).await {
        if before.contains(&record.id) {
            result.existing.insert(record.id, row_of(&record));
        } else {
            assert_eq!(record.source_kind, "auto_enrollment");
            assert_eq!(record.source, sweep.source_json);
            assert_eq!(record.enrolled_at, SWEEP_NOW);
            assert_eq!(record.completed_at, None);
            assert_eq!(
                (record.required_by.as_ref(), record.reason.as_ref()),
                (None, None)
            );
            result.created.push(row_of(&record));
        }
    }
    result.created.sort();
    result
}

/// The plan of the core on the same facts, and the outcome it implies.
fn expected(org: &Org, written: &Written) -> (SweepPlan, Outcome) {
    let today = org.today;
    let users: Vec<UserFacts> = org
        .users
        .iter()
        .zip(&written.user_ids)
        .map(|(spec, id)| UserFacts {
            id: *id,
            active: spec.active,
            role: spec.role,
            hired_on: spec.hired_on,
            group_ids: spec.groups.iter().map(|g| written.group_ids[*g]).collect(),
            exempt: spec
                .exemptions
                .iter()
                .any(|until| until.is_none_or(|d| d >= today)),
        })
        .collect();
    let facts: Vec<EnrollmentFacts> = written
        .enrollments
        .iter()
        .map(|(id, spec)| EnrollmentFacts {
            id: *id,
            user_id: written.user_ids[spec.user],
            status: spec.status,
            period: spec
                .period
                .as_deref()
                .map(|p| Period::parse(p).expect("canonical period")),
            due_on: spec.due_on,
        })
        .collect();
    let plan = plan_sweep(&written.rule, today, &users, &facts);

    let mut existing: BTreeMap<i64, Row> = written
        .enrollments
        .iter()
        .map(|(id, spec)| {
            let row = (
                written.user_ids[spec.user],
                spec.enrollment_type.as_str().to_string(),
                spec.status.as_str().to_string(),
                spec.period.clone(),
                spec.due_on.map(|d| d.to_string()),
            );
            (*id, row)
        })
        .collect();
    for id in &plan.close {
        existing.get_mut(id).unwrap().2 = "incomplete".into();
    }
    for (id, period, due) in &plan.adopt {
        let row = existing.get_mut(id).unwrap();
        row.1 = "required".into();
        row.3 = Some(period.to_string());
        row.4 = due.map(|d| d.to_string());
    }
    let mut created: Vec<Row> = plan
        .create
        .iter()
        .map(|(user, period, due)| {
            (
                *user,
                "required".to_string(),
                "in_progress".to_string(),
                Some(period.to_string()),
                due.map(|d| d.to_string()),
            )
        })
        .collect();
    created.sort();
    (plan, Outcome { existing, created })
}

/// Runs the cases of `seeds` on `store`, wiping the organisation between them.
async fn check_cases(store: &Store, seeds: impl Iterator<Item = u64>) {
    let mut coverage = SweepPlan::default();
    for seed in seeds {
        let org = random_org(seed);
        let written = write_org(store, &org).await;
        let (plan, expect) = expected(&org, &written);
        let context = format!("seed {seed:#x}: {org:#?}\nplan: {plan:?}");
        let full = sweep_of(&org, &written, 0, i64::MAX);

        // One sweep over every user.
        let mut tx = store.write().await.unwrap();
        let decoy_before = enrollments_in(&mut tx, written.decoy_id).await;
        let mut ran = Ran::default();
        run_sweep(&mut tx, &full, &mut ran).await;
        let got = outcome(&mut tx, &written, &full).await;
        assert_eq!(got, expect, "{context}");
        ran.sort();
        let adopted: Vec<i64> = plan.adopt.iter().map(|(id, _, _)| *id).collect();
        let created_users: Vec<i64> = plan.create.iter().map(|(user, _, _)| *user).collect();
        assert_eq!(ran.closed, plan.close, "{context}");
        assert_eq!(ran.adopted, adopted, "{context}");
        assert_eq!(ran.created_users, created_users, "{context}");
        assert_eq!(ran.skipped, plan.skip.len() as i64, "skipped: {context}");
        assert_eq!(
            enrollments_in(&mut tx, written.decoy_id).await,
            decoy_before,
            "another activity is untouched: {context}"
        );

        // R14: a second sweep the same day finds nothing to do.
        let mut again = Ran::default();
        run_sweep(&mut tx, &full, &mut again).await;
        assert_eq!(
            (again.closed, again.adopted, again.created_users),
            (vec![], vec![], vec![]),
            "rerun: {context}"
        );
        assert_eq!(again.skipped, ran.skipped, "rerun skipped: {context}");
        assert_eq!(outcome(&mut tx, &written, &full).await, expect, "{context}");
        tx.rollback().await.unwrap();

        // The same sweep cut into user ranges gives the same result.
        let mut rng = Rng::new(seed ^ 0x0BA7_C4E5);
        let first_id = written.user_ids.first().copied().unwrap_or(1);
        let last_id = written.user_ids.last().copied().unwrap_or(1);
        let mut cuts: BTreeSet<i64> = (0..1 + rng.below(4))
            .map(|_| first_id + rng.below((last_id - first_id + 2) as u64) as i64)
            .collect();
        cuts.insert(0);
        let mut bounds: Vec<i64> = cuts.into_iter().collect();
        bounds.push(i64::MAX);
        let mut tx = store.write().await.unwrap();
        let mut batched = Ran::default();
        for range in bounds.windows(2) {
            run_sweep(
                &mut tx,
                &sweep_of(&org, &written, range[0], range[1]),
                &mut batched,
            )
            .await;
        }
        assert_eq!(
            outcome(&mut tx, &written, &full).await,
            expect,
            "batches {bounds:?}: {context}"
        );
        batched.sort();
        assert_eq!(batched, ran, "batches {bounds:?}: {context}");
        tx.rollback().await.unwrap();

        wipe(store).await;
        coverage.close.extend(plan.close);
        coverage.adopt.extend(plan.adopt);
        coverage.create.extend(plan.create);
        coverage.skip.extend(plan.skip);
    }
    if std::env::var("ROSTER_SWEEP_SEED").is_err() {
        // The cases must exercise every branch, or the comparison proves little.
        assert!(
            !coverage.close.is_empty()
                && !coverage.adopt.is_empty()
                && !coverage.create.is_empty()
                && !coverage.skip.is_empty(),
            "the random cases miss a branch: {coverage:?}"
        );
    }
}

/// Deletes every row the cases write, so that the next case's company scope
/// sees only its own users.
async fn wipe(store: &Store) {
    const STATEMENTS: &[&str] = &[
        "DELETE FROM exemptions",
        "DELETE FROM enrollments",
        "DELETE FROM group_members",
        "DELETE FROM auto_rule_groups",
        "DELETE FROM activities",
        "DELETE FROM user_groups",
        "DELETE FROM users",
    ];
    for statement in STATEMENTS {
        match store {
            Store::Sqlite(pools) => sqlx::query(*statement)
                .execute(&pools.write)
                .await
                .unwrap()
                .rows_affected(),
            Store::Postgres(pools) => sqlx::query(*statement)
                .execute(&pools.pool)
                .await
                .unwrap()
                .rows_affected(),
        };
    }
}

fn seeds() -> Box<dyn Iterator<Item = u64> + Send> {
    if let Ok(seed) = std::env::var("ROSTER_SWEEP_SEED") {
        let seed = seed
            .strip_prefix("0x")
            .map(|hex| u64::from_str_radix(hex, 16))
            .unwrap_or_else(|| seed.parse())
            .expect("ROSTER_SWEEP_SEED is a number");
        return Box::new(std::iter::once(seed));
    }
    let cases = std::env::var("ROSTER_SWEEP_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    Box::new(FIRST_SEED..FIRST_SEED + cases)
}

pub async fn r10_r16_r21_sweep_sql_matches_the_core_plan_once_twice_and_in_batches(store: Store) {
    check_cases(&store, seeds()).await;
}

/// Writes a user with the given role, active flag and hire date.
/// Exempts the user from the activity through `until` (R21).
/// A one-time rule for the whole company, with no due date.
fn company_once() -> AutoRule {
    AutoRule {
        scope: Scope::Company,
        group_ids: vec![],
        hired_after: None,
        recurrence: Recurrence::OneTime { due: None },
        initial_due_days: None,
    }
}

async fn exempt_until(tx: &mut Tx, user_id: i64, activity_id: i64, until: &str) {
    let exemption = ExemptionRecord {
        id: 0,
        user_id,
        activity_id,
        reason: "on leave".into(),
        until: Some(until.into()),
        created_by: None,
        created_at: NOW,
    };
    tx.insert_exemption(&exemption).await.unwrap();
}

/// Ann, Ben and Ivy: active learners with no hire date, in this order.
async fn three_learners(tx: &mut Tx) -> [i64; 3] {
    [
        person(tx, "ann", Role::Learner, true, None).await,
        person(tx, "ben", Role::Learner, true, None).await,
        person(tx, "ivy", Role::Learner, true, None).await,
    ]
}

async fn person(tx: &mut Tx, name: &str, role: Role, active: bool, hired_on: Option<&str>) -> i64 {
    let insert = UserInsert {
        username: name.into(),
        active,
        role: role.as_str().into(),
        hired_on: hired_on.map(str::to_string),
        ..UserInsert::default()
    };
    tx.insert_user(&insert, NOW).await.unwrap()
}

/// Writes an enrollment of `user_id` in `activity_id` and returns its id.
async fn enroll(
    tx: &mut Tx,
    user_id: i64,
    activity_id: i64,
    status: Status,
    period: Option<&str>,
    due_on: Option<&str>,
) -> i64 {
    let insert = EnrollmentInsert {
        status: status.as_str().into(),
        period: period.map(str::to_string),
        due_on: due_on.map(str::to_string),
        ..crate::support::enrollment(user_id, activity_id)
    };
    tx.insert_enrollment(&insert).await.unwrap().unwrap().id
}

async fn due_and_period(tx: &mut Tx, id: i64) -> (String, String, Option<String>, Option<String>) {
    let record = tx.get_enrollment(id).await.unwrap().unwrap();
    (
        record.enrollment_type,
        record.status,
        record.period,
        record.due_on,
    )
}

pub async fn r10_r11_r15_r16_r21_one_time_sweep_on_a_small_company(store: Store) {
    let today = date(2027, 3, 10);
    let mut tx = store.write().await.unwrap();
    let course = tx.insert_activity(&activity("Ethics"), NOW).await.unwrap();
    let ann = person(&mut tx, "ann", Role::Learner, true, Some("2026-05-01")).await;
    let _ben = person(&mut tx, "ben", Role::Learner, true, Some("2026-01-01")).await;
    let _cat = person(&mut tx, "cat", Role::Admin, true, None).await;
    let _dan = person(&mut tx, "dan", Role::Integration, true, Some("2026-06-01")).await;
    let _eve = person(&mut tx, "eve", Role::Learner, false, Some("2026-06-01")).await;
    let fay = person(&mut tx, "fay", Role::Admin, true, Some("2026-02-01")).await;
    let gus = person(&mut tx, "gus", Role::Learner, true, Some("2026-02-01")).await;
    let hal = person(&mut tx, "hal", Role::Learner, true, Some("2026-02-01")).await;
    let ivy = person(&mut tx, "ivy", Role::Learner, true, Some("2026-02-01")).await;
    let fay_passed = enroll(&mut tx, fay, course, Status::Passed, None, None).await;
    let gus_open = enroll(
        &mut tx,
        gus,
        course,
        Status::InProgress,
        None,
        Some("2027-05-01"),
    )
    .await;
    let hal_open = enroll(&mut tx, hal, course, Status::InProgress, None, None).await;
    exempt_until(&mut tx, ivy, course, "2027-03-10").await;
    let rule = AutoRule {
        scope: Scope::Company,
        group_ids: vec![],
        hired_after: Some(date(2026, 1, 1)),
        recurrence: Recurrence::OneTime {
            due: Some(OneTimeDue::WithinDays(30)),
        },
        initial_due_days: None,
    };
    let sweep = sweep_for(course, &rule, today, 0, i64::MAX);
    let mut ran = Ran::default();
    run_sweep(&mut tx, &sweep, &mut ran).await;
    ran.sort();

    // Ben is hired on the date, not after; Cat has no hire date; Dan is a
    // service account; Eve is inactive; Fay passed before (R16); Ivy is
    // exempt through today (R21).
    assert!(ran.closed.is_empty());
    assert_eq!(ran.adopted, vec![gus_open, hal_open]);
    assert_eq!(ran.created_users, vec![ann]);
    assert_eq!(ran.skipped, 1);
    let required = |due: &str| {
        (
            "required".to_string(),
            "in_progress".to_string(),
            Some("once".to_string()),
            Some(due.to_string()),
        )
    };
    // Adoption keeps a due date the enrollment had (R15).
    assert_eq!(
        due_and_period(&mut tx, gus_open).await,
        required("2027-05-01")
    );
    assert_eq!(
        due_and_period(&mut tx, hal_open).await,
        required("2027-04-09")
    );
    let created = tx.open_enrollment(ann, course).await.unwrap().unwrap();
    assert_eq!(
        due_and_period(&mut tx, created.id).await,
        required("2027-04-09")
    );
    assert_eq!(
        due_and_period(&mut tx, fay_passed).await.1,
        "passed".to_string()
    );
    let listed = enrollments_in(&mut tx, course).await;
    assert_eq!(listed.len(), 4);

    // The day after the exemption ends, Ivy is enrolled.
    let tomorrow = sweep_for(course, &rule, plus_days(today, 1), 0, i64::MAX);
    let mut later = Ran::default();
    run_sweep(&mut tx, &tomorrow, &mut later).await;
    assert_eq!(later.created_users, vec![ivy]);
    assert_eq!(later.skipped, 0);
    tx.commit().await.unwrap();
}

pub async fn r12_r14_annual_rollover_closes_earlier_periods_and_opens_the_new_one(store: Store) {
    let today = date(2027, 7, 1);
    let mut tx = store.write().await.unwrap();
    let course = tx.insert_activity(&activity("Safety"), NOW).await.unwrap();
    let sales = tx.insert_group("Sales", NOW).await.unwrap();
    let ann = person(&mut tx, "ann", Role::Learner, true, None).await;
    let ben = person(&mut tx, "ben", Role::Learner, true, None).await;
    let cat = person(&mut tx, "cat", Role::Learner, true, None).await;
    let dan = person(&mut tx, "dan", Role::Learner, true, None).await;
    // Eve left the scope: her open enrollment of the old period still closes.
    let eve = person(&mut tx, "eve", Role::Learner, true, None).await;
    for user in [ann, ben, cat, dan] {
        tx.add_member(sales, user).await.unwrap();
    }
    let ann_old = enroll(
        &mut tx,
        ann,
        course,
        Status::InProgress,
        Some("2027-06-30"),
        None,
    )
    .await;
    let cat_old = enroll(
        &mut tx,
        cat,
        course,
        Status::Passed,
        Some("2027-06-30"),
        None,
    )
    .await;
    let cat_new = enroll(
        &mut tx,
        cat,
        course,
        Status::InProgress,
        Some("2028-06-30"),
        None,
    )
    .await;
    enroll(
        &mut tx,
        dan,
        course,
        Status::Failed,
        Some("2026-06-30"),
        None,
    )
    .await;
    let dan_manual = enroll(&mut tx, dan, course, Status::InProgress, None, None).await;
    let eve_old = enroll(
        &mut tx,
        eve,
        course,
        Status::InProgress,
        Some("2027-06-30"),
        None,
    )
    .await;
    let rule = AutoRule {
        scope: Scope::Groups,
        group_ids: vec![sales],
        hired_after: None,
        recurrence: Recurrence::Annual {
            due_each_year_on: month_day("06-30"),
        },
        initial_due_days: Some(14),
    };
    tx.set_auto_rule(
        course,
        Some(&serde_json::to_string(&rule).unwrap()),
        &[sales],
        NOW,
    )
    .await
    .unwrap();
    let sweep = sweep_for(course, &rule, today, 0, i64::MAX);
    assert_eq!(sweep.period, "2028-06-30");
    let mut ran = Ran::default();
    run_sweep(&mut tx, &sweep, &mut ran).await;
    ran.sort();

    assert_eq!(ran.closed, vec![ann_old, eve_old]);
    assert_eq!(ran.adopted, vec![dan_manual]);
    assert_eq!(ran.created_users, vec![ann, ben]);
    assert_eq!(due_and_period(&mut tx, ann_old).await.1, "incomplete");
    assert_eq!(due_and_period(&mut tx, eve_old).await.1, "incomplete");
    assert_eq!(due_and_period(&mut tx, cat_old).await.1, "passed");
    assert_eq!(due_and_period(&mut tx, cat_new).await.1, "in_progress");
    let period = |due: &str| {
        (
            "required".to_string(),
            "in_progress".to_string(),
            Some("2028-06-30".to_string()),
            Some(due.to_string()),
        )
    };
    // Dan had an enrollment from the rule before: the period's end, not
    // initial_due_days.
    assert_eq!(
        due_and_period(&mut tx, dan_manual).await,
        period("2028-06-30")
    );
    let ann_new = tx.open_enrollment(ann, course).await.unwrap().unwrap();
    assert_eq!(
        due_and_period(&mut tx, ann_new.id).await,
        period("2028-06-30")
    );
    // Ben's first enrollment from the rule is due initial_due_days after today.
    let ben_new = tx.open_enrollment(ben, course).await.unwrap().unwrap();
    assert_eq!(
        due_and_period(&mut tx, ben_new.id).await,
        period("2027-07-15")
    );
    assert_eq!(tx.open_enrollment(eve, course).await.unwrap(), None);
    tx.commit().await.unwrap();
}

pub async fn r14_changed_users_are_read_since_a_mark_and_marks_count_each_ranges_skips(
    store: Store,
) {
    let today = date(2027, 3, 10);
    let mut tx = store.write().await.unwrap();
    let course = tx.insert_activity(&activity("Ethics"), NOW).await.unwrap();
    let [ann, ben, ivy] = three_learners(&mut tx).await;
    exempt_until(&mut tx, ivy, course, "2027-03-10").await;
    let rule = company_once();
    let ran = sweep_whole(&mut tx, course, &rule, today).await;
    assert_eq!(ran.skipped, 1, "Ivy is exempt through today (R21)");
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    // A mark later than every stamp so far. (On PostgreSQL the sweep's own
    // stamp is the oldest transaction still running anywhere on the server,
    // which other tests' transactions can hold back: a mark may be earlier
    // than needed, never later.)
    let now = tx.sweep_stamp_now().await.unwrap();
    let stamp = tx
        .sweep_stamped_users(i64::MIN, 100)
        .await
        .unwrap()
        .iter()
        .map(|(_, stamp)| stamp + 1)
        .fold(now, i64::max);
    // Two ranges split at Ivy: her skip is counted in the second.
    let ranges = [(0, ivy), (ivy, i64::MAX)];
    let skipped = tx
        .put_sweep_marks(course, &ranges, "first", stamp, "2027-03-10")
        .await
        .unwrap();
    assert_eq!(skipped, 1, "the marks answer the skips of all their ranges");
    let marks = tx.sweep_marks(course).await.unwrap();
    let seen: Vec<(i64, i64, &str, i64, i64)> = marks
        .iter()
        .map(|m| {
            (
                m.user_lo,
                m.user_hi,
                m.fingerprint.as_str(),
                m.stamp,
                m.skipped,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, ivy, "first", stamp, 0),
            (ivy, i64::MAX, "first", stamp, 1)
        ]
    );
    // Written again, the marks are replaced, not added.
    tx.put_sweep_marks(course, &ranges, "second", stamp, "2027-03-10")
        .await
        .unwrap();
    let marks = tx.sweep_marks(course).await.unwrap();
    assert_eq!(marks.len(), 2);
    assert!(marks.iter().all(|m| m.fingerprint == "second"));

    // Nobody changed since the mark on its own day.
    assert_eq!(tx.sweep_stamped_users(stamp, 10).await.unwrap(), vec![]);
    assert_eq!(
        tx.sweep_exemptions_ended("2027-03-10", "2027-03-10")
            .await
            .unwrap(),
        vec![]
    );
    // Ben and Ann change; the next day Ivy's exemption has run out.
    tx.stamp_user(ben).await.unwrap();
    tx.stamp_user(ann).await.unwrap();
    let stamped = tx.sweep_stamped_users(stamp, 10).await.unwrap();
    let ids: Vec<i64> = stamped.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![ann, ben]);
    assert!(stamped.iter().all(|(_, at)| *at >= stamp));
    let first = tx.sweep_stamped_users(stamp, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, ann);
    assert_eq!(
        tx.sweep_exemptions_ended("2027-03-10", "2027-03-11")
            .await
            .unwrap(),
        vec![(course, ivy)]
    );

    // What the scopes read of them, in id order: the groups of each, and
    // where a skip is recorded (Ivy's, from the first sweep); an unknown id
    // is left out.
    let sales = tx.insert_group("Sales", NOW).await.unwrap();
    let field = tx.insert_group("Field", NOW).await.unwrap();
    tx.add_member(sales, ben).await.unwrap();
    tx.add_member(field, ben).await.unwrap();
    let facts = tx
        .sweep_user_facts(&UserIds(vec![ivy, ben, ann, ivy + 1000]))
        .await
        .unwrap();
    // (id, active, service account, groups, activities skipped in)
    type Seen = (i64, bool, bool, Vec<i64>, Vec<i64>);
    let seen: Vec<Seen> = facts
        .iter()
        .map(|u| {
            let mut groups = u.groups.clone();
            groups.sort_unstable();
            (u.id, u.active, u.integration, groups, u.skipped_in.clone())
        })
        .collect();
    let mut bens = vec![sales, field];
    bens.sort_unstable();
    assert_eq!(
        seen,
        vec![
            (ann, true, false, vec![], vec![]),
            (ben, true, false, bens, vec![]),
            (ivy, true, false, vec![], vec![course]),
        ]
    );
    tx.commit().await.unwrap();
}

pub async fn r14_r21_a_batch_reads_its_users_enrollments_and_creates_in_one_statement(
    store: Store,
) {
    let mut tx = store.write().await.unwrap();
    let ethics = tx.insert_activity(&activity("Ethics"), NOW).await.unwrap();
    let safety = tx.insert_activity(&activity("Safety"), NOW).await.unwrap();
    let other = tx.insert_activity(&activity("Other"), NOW).await.unwrap();
    let [ann, ben, ivy] = three_learners(&mut tx).await;
    enroll(&mut tx, ann, ethics, Status::Passed, Some("once"), None).await;
    enroll(&mut tx, ben, safety, Status::InProgress, None, None).await;
    enroll(&mut tx, ben, other, Status::InProgress, None, None).await;
    exempt_until(&mut tx, ivy, ethics, "2027-03-20").await;
    exempt_until(&mut tx, ivy, other, "2027-03-20").await;

    // Only the asked users in the asked activities.
    let users = UserIds(vec![ann, ben, ivy]);
    let activities = UserIds(vec![ethics, safety]);
    let records = tx.sweep_user_records(&users, &activities).await.unwrap();
    let mut held: Vec<_> = records
        .enrollments
        .into_iter()
        .map(|(user, activity, id, status, period, due_on)| {
            assert!(id > 0);
            (user, activity, status, period, due_on)
        })
        .collect();
    held.sort();
    assert_eq!(
        held,
        vec![
            (
                ann,
                ethics,
                "passed".to_string(),
                Some("once".to_string()),
                None
            ),
            (ben, safety, "in_progress".to_string(), None, None),
        ]
    );
    assert_eq!(
        records.exemptions,
        vec![(ivy, ethics, Some("2027-03-20".to_string()))]
    );

    let auto = |activity_id: i64, user_id: i64, due_on: Option<&str>| AutoEnrollment {
        activity_id,
        user_id,
        due_on: due_on.map(str::to_string),
        period: "once".to_string(),
        source_json: format!(
            r#"{{"kind":"auto_enrollment","activity_id":{activity_id},"period":"once"}}"#
        ),
    };
    let rows = vec![
        auto(safety, ann, Some("2027-04-09")),
        // Ben holds an open enrollment in Safety (R2): left out.
        auto(safety, ben, None),
        // Ivy is exempt from Ethics through 2027-03-20 (R21): left out.
        auto(ethics, ivy, None),
        auto(ethics, ben, None),
    ];
    let created = tx
        .sweep_create_many(&rows, "2027-03-10", SWEEP_NOW)
        .await
        .unwrap();
    let seen: Vec<(i64, i64)> = created
        .iter()
        .map(|(_, user, activity)| (*activity, *user))
        .collect();
    let mut expected = vec![(ethics, ben), (safety, ann)];
    expected.sort();
    assert_eq!(seen, expected, "activity and user order");
    for (id, _, _) in &created {
        let record = tx.get_enrollment(*id).await.unwrap().unwrap();
        assert_eq!(record.enrollment_type, "required");
        assert_eq!(record.status, "in_progress");
        assert_eq!(record.period.as_deref(), Some("once"));
        assert_eq!(record.source_kind, "auto_enrollment");
        assert_eq!(record.enrolled_at, SWEEP_NOW);
        let due = if record.user_id == ann {
            Some("2027-04-09")
        } else {
            None
        };
        assert_eq!(record.due_on.as_deref(), due);
    }
    // Once the exemption has ended Ivy is created; the others exist now.
    let again = tx
        .sweep_create_many(&rows, "2027-03-21", SWEEP_NOW)
        .await
        .unwrap();
    let seen: Vec<(i64, i64)> = again
        .iter()
        .map(|(_, user, activity)| (*activity, *user))
        .collect();
    assert_eq!(seen, vec![(ethics, ivy)]);
    assert_eq!(
        tx.sweep_create_many(&[], "2027-03-21", SWEEP_NOW)
            .await
            .unwrap(),
        vec![]
    );
    tx.commit().await.unwrap();
}

/// A batch of sweep jobs writes the marks of all its passes at once
/// (`Tx::put_sweep_marks_many`): each write answers the skips of its own
/// ranges, a range written twice takes the later write, and more ranges
/// than one statement holds are all written.
pub async fn r14_marks_of_many_activities_are_written_at_once(store: Store) {
    let today = date(2027, 3, 10);
    let mut tx = store.write().await.unwrap();
    let first = tx.insert_activity(&activity("Ethics"), NOW).await.unwrap();
    let second = tx.insert_activity(&activity("Safety"), NOW).await.unwrap();
    let [ann, ben, ivy] = three_learners(&mut tx).await;
    // Skips: Ivy in the first activity, Ann and Ben in the second.
    exempt_until(&mut tx, ivy, first, "2027-12-31").await;
    exempt_until(&mut tx, ann, second, "2027-12-31").await;
    exempt_until(&mut tx, ben, second, "2027-12-31").await;
    let rule = company_once();
    for course in [first, second] {
        sweep_whole(&mut tx, course, &rule, today).await;
    }
    let stamp = tx.sweep_stamp_now().await.unwrap();
    let split = [(0, ivy), (ivy, i64::MAX)];
    let whole = [(0, i64::MAX)];
    // 600 narrow ranges of a third activity: more than one statement holds.
    let third = tx.insert_activity(&activity("Privacy"), NOW).await.unwrap();
    let narrow: Vec<(i64, i64)> = (0..600).map(|lo| (lo * 10, lo * 10 + 10)).collect();
    let writes = [
        MarksWrite {
            activity_id: first,
            ranges: &split,
            fingerprint: "first-a",
            stamp,
            day: "2027-03-10",
        },
        MarksWrite {
            activity_id: second,
            ranges: &whole,
            fingerprint: "second",
            stamp,
            day: "2027-03-10",
        },
        MarksWrite {
            activity_id: third,
            ranges: &narrow,
            fingerprint: "third",
            stamp,
            day: "2027-03-10",
        },
        // The first activity's first range again: the later write stands.
        MarksWrite {
            activity_id: first,
            ranges: &split[..1],
            fingerprint: "first-b",
            stamp: stamp + 1,
            day: "2027-03-11",
        },
    ];
    let skipped = tx.put_sweep_marks_many(&writes).await.unwrap();
    assert_eq!(skipped, vec![1, 2, 0, 0], "each write's own ranges' skips");
    let marks = tx.sweep_marks(first).await.unwrap();
    let seen: Vec<(i64, i64, &str, i64, &str, i64)> = marks
        .iter()
        .map(|m| {
            (
                m.user_lo,
                m.user_hi,
                m.fingerprint.as_str(),
                m.stamp,
                m.day.as_str(),
                m.skipped,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, ivy, "first-b", stamp + 1, "2027-03-11", 0),
            (ivy, i64::MAX, "first-a", stamp, "2027-03-10", 1)
        ]
    );
    let marks = tx.sweep_marks(second).await.unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!(
        (marks[0].fingerprint.as_str(), marks[0].skipped),
        ("second", 2)
    );
    let marks = tx.sweep_marks(third).await.unwrap();
    assert_eq!(marks.len(), 600);
    assert!(
        marks
            .iter()
            .all(|m| m.fingerprint == "third" && m.skipped == 0)
    );
    // Nothing to write, nothing written.
    assert_eq!(
        tx.put_sweep_marks_many(&[]).await.unwrap(),
        Vec::<i64>::new()
    );
    tx.rollback().await.unwrap();
}

/// A count PostgreSQL answers about `tx`'s connection for `text`; `None` on
/// SQLite.
async fn pg_count(tx: &mut Tx, sql: &'static str, text: &str) -> Option<i64> {
    match tx {
        Tx::Sqlite(_) => None,
        Tx::Postgres(transaction) => Some(
            sqlx::query_scalar(sql)
                .bind(text)
                .fetch_one(&mut ***transaction)
                .await
                .unwrap(),
        ),
    }
}

/// The statements of `tx`'s connection that PostgreSQL keeps prepared and
/// whose text holds `text`; `None` on SQLite, which has no such list.
async fn prepared_holding(tx: &mut Tx, text: &str) -> Option<i64> {
    pg_count(
        tx,
        "SELECT COUNT(*) FROM pg_prepared_statements WHERE strpos(statement, $1) > 0",
        text,
    )
    .await
}

/// Parts of the texts of a whole range's statements.
const RANGE_CHECK: &str = "FROM enrollments e WHERE e.activity_id = $1 AND e.user_id >= $2";
const CREATION: &str = "SELECT u.id, $1, 'required', 'in_progress'";
const SKIPS: &str = "INSERT INTO sweep_skips (activity_id, user_id) SELECT $1, u.id";

/// A course where Ann holds an open enrollment of her own (returned) and Ivy
/// an exemption until the end of 2027; Ben holds nothing.
async fn ethics_for_three(tx: &mut Tx) -> (i64, [i64; 3], i64) {
    let course = tx.insert_activity(&activity("Ethics"), NOW).await.unwrap();
    let [ann, ben, ivy] = three_learners(tx).await;
    let anns = enroll(tx, ann, course, Status::InProgress, None, None).await;
    exempt_until(tx, ivy, course, "2027-12-31").await;
    (course, [ann, ben, ivy], anns)
}

/// R14, R15: outside a sweep's transaction (an activity swept alone, a dry
/// run) a pass over a whole range is planned for the table as it is each
/// time on PostgreSQL — none of its statements stays prepared on the
/// connection with a plan made while the activity's enrollments were few —
/// while an incremental pass, which names a few users, and one user's
/// evaluation (R18) keep their plans. Both sweep the same on either
/// backend.
pub async fn r14_passes_over_whole_ranges_are_planned_for_the_table_as_it_is(store: Store) {
    const ADOPTION: &str = "FROM enrollments e JOIN users u ON u.id = e.user_id";
    let today = date(2027, 3, 10);
    let mut tx = store.write().await.unwrap();
    // Ann's own enrollment is adopted, Ben's is created, Ivy is exempt.
    let (course, [_, ben, ivy], anns) = ethics_for_three(&mut tx).await;
    let rule = company_once();
    for _ in 0..3 {
        sweep_whole(&mut tx, course, &rule, today).await;
    }
    for text in [RANGE_CHECK, ADOPTION, CREATION, SKIPS] {
        assert!(
            matches!(prepared_holding(&mut tx, text).await, None | Some(0)),
            "a whole range's statement stayed prepared: {text}"
        );
    }
    let held = enrollments_in(&mut tx, course).await;
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held.iter()
            .any(|e| e.id == anns && e.period.as_deref() == Some("once"))
    );
    assert!(held.iter().any(|e| e.user_id == ben));

    // An incremental pass over Ben and Ivy keeps its statements prepared.
    let mut sweep = sweep_for(course, &rule, today, 0, i64::MAX);
    sweep.since = Some(Changed::Users(UserIds(vec![ben, ivy])));
    sweep.matching = Some(tx.sweep_matching_users(&sweep).await.unwrap());
    let mut ran = Ran::default();
    run_sweep(&mut tx, &sweep, &mut ran).await;
    assert!(
        ran.created_users.is_empty() && ran.adopted.is_empty(),
        "{ran:?}"
    );
    if let Some(kept) = prepared_holding(&mut tx, SKIPS).await {
        assert!(kept >= 1, "the incremental pass's skips statement is kept");
    }
    // One user's evaluation (R18, a range of one id) keeps its plans too.
    let mut ran = Ran::default();
    run_sweep(
        &mut tx,
        &sweep_for(course, &rule, today, ben, ben + 1),
        &mut ran,
    )
    .await;
    assert!(
        ran.created_users.is_empty() && ran.adopted.is_empty(),
        "{ran:?}"
    );
    if let Some(kept) = prepared_holding(&mut tx, RANGE_CHECK).await {
        assert!(kept >= 1, "one user's range check is kept");
    }
    tx.rollback().await.unwrap();
}

/// The sequential scans of `table` counted by `tx`'s connection and not yet
/// reported to the statistics (those of this transaction, and maybe of one
/// before it on the connection: compare two readings); `None` on SQLite.
async fn sequential_scans(tx: &mut Tx, table: &str) -> Option<i64> {
    pg_count(
        tx,
        "SELECT COALESCE(SUM(seq_scan), 0)::bigint FROM pg_stat_xact_user_tables \
         WHERE relname = $1",
        table,
    )
    .await
}

/// R14: in a sweep's transaction (`Store::write_sweep`) a pass over a whole
/// range keeps its statements prepared on PostgreSQL, and every plan they
/// get — the generic one too, made while the activity's enrollments are a
/// handful — reads by index, so it stays fit when the table has grown; its
/// commit does not wait for the log's flush until `Tx::make_commit_durable`,
/// and an ordinary transaction keeps the database's settings. The sweep's
/// outcome is the same as in an ordinary transaction, on both backends.
pub async fn r14_a_sweeps_passes_over_whole_ranges_keep_plans_that_read_by_index(store: Store) {
    let today = date(2027, 3, 10);
    let mut tx = store.write().await.unwrap();
    let (course, [_, ben, _], _) = ethics_for_three(&mut tx).await;
    tx.commit().await.unwrap();
    let rule = company_once();
    // Statistics that say the tables are tiny, as in a new organisation.
    if let Tx::Postgres(transaction) = &mut store.write().await.unwrap() {
        sqlx::query("ANALYZE users, enrollments, exemptions")
            .execute(&mut ***transaction)
            .await
            .unwrap();
    }

    // The count of sequential scans sees a plan that scans the table (here
    // forced, with index scans off): the check below can fail.
    let mut tx = store.write().await.unwrap();
    let scans_before = sequential_scans(&mut tx, "enrollments").await;
    if let Tx::Postgres(transaction) = &mut tx {
        for setting in ["enable_indexscan", "enable_bitmapscan"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL {setting} = off")))
                .execute(&mut ***transaction)
                .await
                .unwrap();
        }
    }
    let before = sweep_whole(&mut tx, course, &rule, today).await;
    let elsewhere = enrollments_in(&mut tx, course).await;
    let scans = sequential_scans(&mut tx, "enrollments").await;
    assert!(scans >= scans_before);
    assert!(
        scans.is_none() || scans > scans_before,
        "the table scans are counted"
    );
    tx.rollback().await.unwrap();

    let mut tx = store.write_sweep().await.unwrap();
    let mut scans_before = Vec::new();
    for table in ["enrollments", "exemptions"] {
        scans_before.push(sequential_scans(&mut tx, table).await);
    }
    let mut ran = sweep_whole(&mut tx, course, &rule, today).await;
    ran.sort();
    let mut expected = before;
    expected.sort();
    assert_eq!(format!("{ran:?}"), format!("{expected:?}"));
    assert_eq!(ran.created_users, vec![ben]);
    let held = enrollments_in(&mut tx, course).await;
    assert_eq!(held.len(), elsewhere.len());
    // Past PostgreSQL's five custom plans, to its generic one.
    for _ in 0..8 {
        let again = sweep_whole(&mut tx, course, &rule, today).await;
        assert!(
            again.created_users.is_empty() && again.adopted.is_empty(),
            "{again:?}"
        );
    }
    for text in [RANGE_CHECK, CREATION, SKIPS] {
        if let Some(kept) = prepared_holding(&mut tx, text).await {
            assert!(kept >= 1, "a sweep's whole-range statement is kept: {text}");
        }
    }
    if let Some(kept) = prepared_holding(&mut tx, "/* range */").await {
        assert!(kept >= 3, "{kept} whole-range statements kept");
    }
    for (table, before) in ["enrollments", "exemptions"].into_iter().zip(scans_before) {
        assert_eq!(
            sequential_scans(&mut tx, table).await,
            before,
            "sequential scans of {table} in a sweep's transaction"
        );
    }
    // Its commit does not wait for the log's flush until it is made durable.
    expect_setting(&mut tx, "synchronous_commit", "off").await;
    tx.make_commit_durable().await.unwrap();
    expect_setting(&mut tx, "synchronous_commit", "on").await;
    expect_setting(&mut tx, "enable_seqscan", "off").await;
    tx.rollback().await.unwrap();
    // An ordinary transaction keeps the database's settings.
    let mut tx = store.write().await.unwrap();
    expect_setting(&mut tx, "enable_seqscan", "on").await;
    expect_setting(&mut tx, "synchronous_commit", "on").await;
    tx.rollback().await.unwrap();
}

/// Checks a setting of `tx`'s PostgreSQL session as it is now; nothing on
/// SQLite.
async fn expect_setting(tx: &mut Tx, name: &str, expected: &str) {
    if let Tx::Postgres(transaction) = tx {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&mut ***transaction)
            .await
            .unwrap();
        assert_eq!(value, expected, "{name}");
    }
}
