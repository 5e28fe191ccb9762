//! The demo organisation: a few hundred people in departments, a catalog of
//! every kind of activity with auto- and post-enrollment rules, and
//! enrollments in every status, so a newcomer sees something real.

use jiff::ToSpan;
use roster_core::{EnrollmentType, Source, Status};
use roster_store::{ActivityRecord, PostRuleRecord, Tx, UserInsert};

use crate::auth::{hash_token, new_token};
use crate::engine::enroll::{Change, NewEnrollment, change, create};
use crate::engine::sweep::evaluate_user;
use crate::state::{AppState, Ctx};

const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Engineering",
    "Support",
    "Marketing",
    "Finance",
    "Operations",
];
const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wei", "Xenia", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Adams", "Bauer", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka",
    "Novak",
];

/// A small deterministic generator, so every demo is the same organisation.
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

/// The demo's activities by title.
type Catalog = std::collections::BTreeMap<&'static str, i64>;

/// The groups the demo makes: the departments, then managers and new hires.
struct Groups {
    all: Vec<i64>,
    managers: i64,
    new_hires: i64,
}

/// Loads the demo organisation; answers with what it made and how to use it.
/// The steps run in this order so that the dice draw the same organisation
/// every time.
pub async fn load(state: &AppState, users: usize) -> anyhow::Result<String> {
    let mut dice = Dice(2026);
    let mut tx = state.store.write().await?;
    let mut ctx = state.ctx(&mut tx, None).await?;
    let now = ctx.micros();
    if tx.find_group_by_name("Sales").await?.is_some() {
        anyhow::bail!("the demo organisation is already loaded in this database");
    }
    let groups = make_groups(&mut tx, now).await?;
    let catalog = make_catalog(&mut tx, now).await?;
    make_rules(&mut tx, &catalog, &groups, now).await?;
    let user_ids = make_people(&mut tx, &mut dice, users, &groups, ctx.today, now).await?;
    let (demo_admin, admin_token) = make_demo_admin(&mut tx, now).await?;
    let learner = user_ids[0];
    let learner_token = new_token();
    tx.insert_token(learner, &hash_token(&learner_token), now)
        .await?;
    tx.commit().await?;

    // Rules enroll everyone who matches, as the nightly sweep would.
    ctx.actor = Some(demo_admin);
    for user_id in &user_ids {
        let mut tx = state.store.write().await?;
        evaluate_user(&mut tx, &ctx, *user_id).await?;
        tx.commit().await?;
    }
    let mut tx = state.store.write().await?;
    make_history(&mut tx, &ctx, &mut dice, &user_ids, &catalog, demo_admin).await?;
    tx.commit().await?;
    state.activity_cache.clear();
    crate::engine::jobs::run_due(state).await?;

    let mut tx = state.store.read().await?;
    let enrollments = tx
        .list_enrollments(&roster_store::EnrollmentFilter {
            today: ctx.today.to_string(),
            limit: i64::MAX,
            ..Default::default()
        })
        .await?
        .len();
    let learner_name = tx
        .get_user(learner)
        .await?
        .map(|user| user.username)
        .unwrap_or_default();
    tx.rollback().await?;
    Ok(format!(
        "demo organisation loaded: {} users in {} groups, {} activities, {} enrollments\n  \
         administrator demo.admin, token {admin_token}\n  learner {learner_name}, token {learner_token}",
        user_ids.len() + 1,
        groups.all.len(),
        catalog.len(),
        enrollments
    ))
}

async fn make_groups(tx: &mut Tx, now: i64) -> anyhow::Result<Groups> {
    let mut all = Vec::new();
    for name in DEPARTMENTS.iter().chain(["Managers", "New hires"].iter()) {
        all.push(tx.insert_group(name, now).await?);
    }
    Ok(Groups {
        managers: all[6],
        new_hires: all[7],
        all,
    })
}

/// The activities, their prerequisites and items; one retired.
async fn make_catalog(tx: &mut Tx, now: i64) -> anyhow::Result<Catalog> {
    let course = |title: &str, kind: &str, in_catalog: bool, allow_failure: bool| ActivityRecord {
        id: 0,
        title: title.into(),
        kind: kind.into(),
        active: true,
        in_catalog,
        allow_failure,
        enrollment_token: new_token()[..32].to_string(),
        auto_rule: None,
        created_at: now,
    };
    let mut ids = Catalog::new();
    for (title, kind, in_catalog, allow_failure) in [
        ("Code of Conduct", "online_course", true, false),
        ("Information Security Basics", "online_course", true, true),
        ("Security Refresher", "online_course", false, false),
        ("Welcome to the Company", "online_course", true, false),
        ("Tools and Systems Tour", "online_course", false, false),
        ("Meet Your Team", "instructor_led", false, false),
        ("Negotiation Skills", "instructor_led", true, false),
        ("Advanced Negotiation", "online_course", true, false),
        ("Leading People", "online_course", true, false),
        ("Giving Feedback", "online_course", true, false),
        ("Anti-Bribery Remediation", "online_course", false, false),
        ("Data Privacy (retired)", "online_course", true, false),
        ("Onboarding Path", "curriculum", true, false),
        ("Manager Essentials", "course_bundle", true, false),
    ] {
        let id = tx
            .insert_activity(&course(title, kind, in_catalog, allow_failure), now)
            .await?;
        ids.insert(title, id);
    }
    let id = |title: &str| ids[title];
    tx.set_prerequisites(id("Advanced Negotiation"), &[id("Negotiation Skills")])
        .await?;
    tx.set_items(
        id("Onboarding Path"),
        &[
            id("Welcome to the Company"),
            id("Tools and Systems Tour"),
            id("Meet Your Team"),
        ],
    )
    .await?;
    tx.set_items(
        id("Manager Essentials"),
        &[id("Leading People"), id("Giving Feedback")],
    )
    .await?;
    let mut retired = tx
        .get_activity(id("Data Privacy (retired)"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;
    retired.active = false;
    tx.update_activity(&retired, now).await?;
    Ok(ids)
}

/// The auto-enrollment rules and the post-enrollment chains.
async fn make_rules(tx: &mut Tx, ids: &Catalog, groups: &Groups, now: i64) -> anyhow::Result<()> {
    let id = |title: &str| ids[title];
    let (sales_two, managers, new_hires) = (
        [groups.all[1], groups.all[2]],
        groups.managers,
        groups.new_hires,
    );
    for (title, rule, group_ids) in [
        (
            "Code of Conduct",
            serde_json::json!({"scope":"company","group_ids":[],"hired_after":null,"recurrence":{"kind":"annual","due_each_year_on":"12-31"},"initial_due_days":30}),
            vec![],
        ),
        (
            "Information Security Basics",
            serde_json::json!({"scope":"groups","group_ids":sales_two,"hired_after":null,"recurrence":{"kind":"every_months","months":12},"initial_due_days":45}),
            sales_two.to_vec(),
        ),
        (
            "Onboarding Path",
            serde_json::json!({"scope":"groups","group_ids":[new_hires],"hired_after":null,"recurrence":{"kind":"one_time","due":{"within_days":30}},"initial_due_days":null}),
            vec![new_hires],
        ),
        (
            "Manager Essentials",
            serde_json::json!({"scope":"groups","group_ids":[managers],"hired_after":null,"recurrence":{"kind":"one_time","due":null},"initial_due_days":null}),
            vec![managers],
        ),
    ] {
        tx.set_auto_rule(id(title), Some(&rule.to_string()), &group_ids, now)
            .await?;
    }
    let chains: [(&str, &str, i64, &str, bool); 6] = [
        (
            "Onboarding Path",
            "enrolled",
            0,
            "Welcome to the Company",
            false,
        ),
        (
            "Welcome to the Company",
            "completed",
            2,
            "Tools and Systems Tour",
            false,
        ),
        (
            "Tools and Systems Tour",
            "completed",
            0,
            "Meet Your Team",
            false,
        ),
        (
            "Information Security Basics",
            "failed",
            0,
            "Anti-Bribery Remediation",
            false,
        ),
        (
            "Information Security Basics",
            "completed",
            180,
            "Security Refresher",
            true,
        ),
        (
            "Negotiation Skills",
            "completed",
            7,
            "Advanced Negotiation",
            false,
        ),
    ];
    for (activity, when, delay, target, consecutive) in chains {
        let record = PostRuleRecord {
            id: 0,
            activity_id: id(activity),
            trigger_on: when.into(),
            delay_days: delay,
            target_ids: serde_json::to_string(&[id(target)]).unwrap_or_default(),
            allow_consecutive: consecutive,
        };
        tx.insert_post_rule(&record, now).await?;
    }
    Ok(())
}

/// `users` learners in departments, some managers, the recently hired in
/// "New hires"; one in twenty inactive.
async fn make_people(
    tx: &mut Tx,
    dice: &mut Dice,
    users: usize,
    groups: &Groups,
    today: jiff::civil::Date,
    now: i64,
) -> anyhow::Result<Vec<i64>> {
    let mut user_ids = Vec::new();
    for index in 0..users {
        let first = FIRST[dice.next(FIRST.len() as u64) as usize];
        let last = LAST[dice.next(LAST.len() as u64) as usize];
        let username = format!(
            "{}.{}{}",
            first.to_lowercase(),
            last.to_lowercase(),
            index + 1
        );
        let hired_days = dice.next(2000) as i64;
        let hired_on = today.checked_sub(hired_days.days()).unwrap_or(today);
        let active = dice.next(20) != 0;
        let user_id = tx
            .insert_user(
                &UserInsert {
                    username: username.clone(),
                    email: format!("{username}@example.com"),
                    display_name: format!("{first} {last}"),
                    active,
                    hired_on: Some(hired_on.to_string()),
                    external_id: Some(format!("E{:05}", index + 1)),
                    role: "learner".into(),
                    ..UserInsert::default()
                },
                now,
            )
            .await?;
        tx.add_member(groups.all[index % DEPARTMENTS.len()], user_id)
            .await?;
        if dice.next(12) == 0 {
            tx.add_member(groups.managers, user_id).await?;
        }
        if hired_days < 60 {
            tx.add_member(groups.new_hires, user_id).await?;
        }
        user_ids.push(user_id);
    }
    Ok(user_ids)
}

/// The demo administrator to sign in as, and their token.
async fn make_demo_admin(tx: &mut Tx, now: i64) -> anyhow::Result<(i64, String)> {
    let admin_token = new_token();
    let demo_admin = tx
        .insert_user(
            &UserInsert {
                username: "demo.admin".into(),
                email: "demo.admin@example.com".into(),
                display_name: "Dana Admin".into(),
                active: true,
                role: "admin".into(),
                ..UserInsert::default()
            },
            now,
        )
        .await?;
    tx.insert_token(demo_admin, &hash_token(&admin_token), now)
        .await?;
    Ok((demo_admin, admin_token))
}

/// Administrators' work: recommendations, self-enrollments in the retired
/// course, completions, failures, no-shows.
async fn make_history(
    tx: &mut Tx,
    ctx: &Ctx,
    dice: &mut Dice,
    user_ids: &[i64],
    ids: &Catalog,
    demo_admin: i64,
) -> anyhow::Result<()> {
    let statuses = [
        Status::Passed,
        Status::Passed,
        Status::Failed,
        Status::NoShow,
        Status::Dropped,
        Status::InProgress,
    ];
    for (index, user_id) in user_ids.iter().enumerate() {
        if index % 3 == 0 {
            let due = ctx
                .today
                .checked_add((dice.next(120) as i64 - 30).days())
                .ok();
            let new = NewEnrollment {
                user_id: *user_id,
                activity_id: ids["Negotiation Skills"],
                enrollment_type: EnrollmentType::Recommended,
                status: statuses[dice.next(statuses.len() as u64) as usize],
                due_on: due,
                required_by: Some("Dana Admin".into()),
                reason: Some("Sales skills programme".into()),
                source: Source::Manual { by: demo_admin },
                period: None,
            };
            create(tx, ctx, new).await?;
        }
        if index % 5 == 0 {
            let new = NewEnrollment {
                user_id: *user_id,
                activity_id: ids["Data Privacy (retired)"],
                enrollment_type: EnrollmentType::Elected,
                status: Status::Passed,
                due_on: None,
                required_by: None,
                reason: None,
                source: Source::SelfEnrolled,
                period: None,
            };
            create(tx, ctx, new).await?;
        }
    }
    for record in tx.open_enrollments_in(ids["Code of Conduct"]).await? {
        if dice.next(2) == 0 {
            let passed = Change {
                status: Some(Status::Passed),
                ..Change::default()
            };
            change(tx, ctx, record, passed).await?;
        }
    }
    for record in tx
        .open_enrollments_in(ids["Information Security Basics"])
        .await?
    {
        let status = match dice.next(4) {
            0 => Some(Status::Passed),
            1 => Some(Status::Failed),
            _ => None,
        };
        if status.is_some() {
            let changed = Change {
                status,
                ..Change::default()
            };
            change(tx, ctx, record, changed).await?;
        }
    }
    Ok(())
}
