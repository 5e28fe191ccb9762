//! Writes the planned organisation into the database with bulk inserts (the
//! path under measurement is the sweep, not user creation), with the tokens
//! of the administrator and the learners the HTTP workloads act as.

use std::collections::{HashMap, HashSet};

use jiff::{Timestamp, ToSpan};
use roster_core::{AutoRule, Recurrence, Scope};
use roster_store::bench::BenchUser;
use roster_store::{ActivityRecord, EnrollmentInsert, PostRuleRecord, Store, Tx, UserInsert};
use serde_json::json;

use crate::error::{BenchError, Result};
use crate::host::Host;
use crate::plan::{GROUPS, Plan, Rng};
use crate::progress::Progress;
use crate::today;

/// Learners whose tokens the read workloads use.
const READERS: usize = 256;
/// Enrollments of the heavy learner of W6.
const HEAVY_ENROLLMENTS: usize = 500;

/// What the loaded organisation is called in the database.
pub(crate) struct Org {
    pub(crate) prefix: String,
    pub(crate) user_ids: Vec<i64>,
    pub(crate) group_ids: Vec<i64>,
    pub(crate) activity_ids: Vec<i64>,
    pub(crate) rule_activities: Vec<i64>,
    /// Activities whose `completed` rules fire at once, and a day later.
    pub(crate) completed_now: Vec<i64>,
    pub(crate) completed_later: Vec<i64>,
    /// Post rules on `completed` per activity id (jobs per completion).
    pub(crate) completed_rules: HashMap<i64, i64>,
    pub(crate) rollover_rules: usize,
    pub(crate) admin_token: String,
    /// The learners who read in W6 and W7 (never deactivated by W3).
    pub(crate) readers: HashSet<i64>,
    pub(crate) reader_tokens: Vec<String>,
    pub(crate) heavy_token: String,
}

/// The activities as written, with what the workloads need to know of their
/// rules.
struct Activities {
    ids: Vec<i64>,
    with_rules: Vec<i64>,
    completed_now: Vec<i64>,
    completed_later: Vec<i64>,
    completed_rules: HashMap<i64, i64>,
    rollover_rules: usize,
}

/// The accounts the HTTP workloads act as.
struct People {
    admin_token: String,
    readers: HashSet<i64>,
    reader_tokens: Vec<String>,
    heavy_token: String,
}

pub(crate) async fn load<H: Host>(
    host: &H,
    plan: &Plan,
    rng: &mut Rng,
    existing: i64,
    progress: &Progress,
) -> Result<Org> {
    let store = host.store();
    let now = host.now().as_microsecond();
    let prefix = if existing == 0 {
        "bench-".to_string()
    } else {
        format!("bench{}-", Timestamp::now().as_second())
    };
    let (group_ids, user_ids) = load_users(store, plan, &prefix, now, progress).await?;

    let mut tx = store.write().await?;
    let members: Vec<(i64, i64)> = plan
        .users
        .iter()
        .zip(&user_ids)
        .flat_map(|(user, id)| user.groups.iter().map(|group| (group_ids[*group], *id)))
        .collect();
    tx.bench_insert_members(&members).await?;
    let activities = load_activities(host, &mut tx, plan, &group_ids, rng, &prefix).await?;
    let people = load_people(
        host,
        &mut tx,
        plan,
        &user_ids,
        &activities.ids,
        rng,
        &prefix,
    )
    .await?;
    tx.commit().await?;

    Ok(Org {
        prefix,
        user_ids,
        group_ids,
        activity_ids: activities.ids,
        rule_activities: activities.with_rules,
        completed_now: activities.completed_now,
        completed_later: activities.completed_later,
        completed_rules: activities.completed_rules,
        rollover_rules: activities.rollover_rules,
        admin_token: people.admin_token,
        readers: people.readers,
        reader_tokens: people.reader_tokens,
        heavy_token: people.heavy_token,
    })
}

/// The groups and the users, ten thousand users a transaction; answers their
/// ids in the plan's order.
async fn load_users(
    store: &Store,
    plan: &Plan,
    prefix: &str,
    now: i64,
    progress: &Progress,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut tx = store.write().await?;
    let mut group_ids = Vec::with_capacity(GROUPS);
    for index in 0..GROUPS {
        group_ids.push(
            tx.insert_group(&format!("{prefix}group-{index:03}"), now)
                .await?,
        );
    }
    tx.commit().await?;

    let username = |index: usize| format!("{prefix}{index:07}");
    for (chunk_index, chunk) in plan.users.chunks(10_000).enumerate() {
        let users: Vec<BenchUser> = chunk
            .iter()
            .enumerate()
            .map(|(offset, user)| BenchUser {
                username: username(chunk_index * 10_000 + offset),
                active: user.active,
                hired_on: user.hired_on.map(|date| date.to_string()),
                role: user.role,
            })
            .collect();
        let mut tx = store.write().await?;
        tx.bench_insert_users(&users, now).await?;
        tx.commit().await?;
        progress.advance(chunk.len() as u64);
    }
    let mut tx = store.read().await?;
    let ids: HashMap<String, i64> = tx.bench_user_ids(prefix).await?.into_iter().collect();
    tx.rollback().await?;
    let user_ids = (0..plan.users.len())
        .map(|index| {
            ids.get(&username(index))
                .copied()
                .ok_or_else(|| BenchError::Unexpected(format!("user {index} was not loaded")))
        })
        .collect::<Result<_>>()?;
    Ok((group_ids, user_ids))
}

/// The activities with their items, auto-enrollment rules and
/// post-enrollment rules.
async fn load_activities<H: Host>(
    host: &H,
    tx: &mut Tx,
    plan: &Plan,
    group_ids: &[i64],
    rng: &mut Rng,
    prefix: &str,
) -> Result<Activities> {
    let now = host.now().as_microsecond();
    let mut ids = Vec::with_capacity(plan.activities.len());
    for (index, activity) in plan.activities.iter().enumerate() {
        let record = ActivityRecord {
            id: 0,
            title: format!("{} {index:04}", title_of(activity.kind)),
            kind: activity.kind.into(),
            active: true,
            in_catalog: index % 4 != 0,
            allow_failure: false,
            enrollment_token: format!("{prefix}{index:04}-{}", rng.next_u64()),
            auto_rule: None,
            created_at: now,
        };
        ids.push(tx.insert_activity(&record, now).await?);
    }
    let mut activities = Activities {
        ids,
        with_rules: Vec::new(),
        completed_now: Vec::new(),
        completed_later: Vec::new(),
        completed_rules: HashMap::new(),
        rollover_rules: 0,
    };
    let cross = today(host.now()).tomorrow().ok();
    for (index, activity) in plan.activities.iter().enumerate() {
        let id = activities.ids[index];
        if !activity.items.is_empty() {
            let items: Vec<i64> = activity
                .items
                .iter()
                .map(|item| activities.ids[*item])
                .collect();
            tx.set_items(id, &items).await?;
        }
        if let Some(rule) = &activity.rule {
            let group_ids_of_rule: Vec<i64> = rule
                .groups
                .iter()
                .flatten()
                .map(|group| group_ids[*group])
                .collect();
            if let (Recurrence::Annual { due_each_year_on }, Some(cross)) =
                (&rule.recurrence, cross)
                && due_each_year_on.month == cross.month()
                && due_each_year_on.day == cross.day()
            {
                activities.rollover_rules += 1;
            }
            let saved = AutoRule {
                scope: if rule.groups.is_some() {
                    Scope::Groups
                } else {
                    Scope::Company
                },
                group_ids: group_ids_of_rule.clone(),
                hired_after: rule.hired_after,
                recurrence: rule.recurrence.clone(),
                initial_due_days: rule.initial_due_days,
            };
            tx.set_auto_rule(
                id,
                Some(&serde_json::to_string(&saved)?),
                &group_ids_of_rule,
                now,
            )
            .await?;
            activities.with_rules.push(id);
        }
        for post in &activity.posts {
            let targets: Vec<i64> = post
                .targets
                .iter()
                .map(|target| activities.ids[*target])
                .collect();
            tx.insert_post_rule(
                &PostRuleRecord {
                    id: 0,
                    activity_id: id,
                    trigger_on: post.when.into(),
                    delay_days: post.delay_days,
                    target_ids: serde_json::to_string(&targets)?,
                    allow_consecutive: post.allow_consecutive,
                },
                now,
            )
            .await?;
            if post.when == "completed" {
                *activities.completed_rules.entry(id).or_insert(0) += 1;
                if post.delay_days == 0 {
                    activities.completed_now.push(id);
                } else {
                    activities.completed_later.push(id);
                }
            }
        }
    }
    Ok(activities)
}

/// The administrator of W4, the learners of W6 and W7 and the heavy learner,
/// with their tokens.
async fn load_people<H: Host>(
    host: &H,
    tx: &mut Tx,
    plan: &Plan,
    user_ids: &[i64],
    activity_ids: &[i64],
    rng: &mut Rng,
    prefix: &str,
) -> Result<People> {
    let now = host.now().as_microsecond();
    let admin_token = format!("{prefix}admin-{:016x}", rng.next_u64());
    let admin_id = tx
        .insert_user(
            &UserInsert {
                username: format!("{prefix}admin"),
                email: "admin@bench.example".into(),
                display_name: "Bench Administrator".into(),
                active: true,
                role: "admin".into(),
                ..Default::default()
            },
            now,
        )
        .await?;
    tx.insert_token(admin_id, &host.hash_token(&admin_token), now)
        .await?;

    let learners: Vec<i64> = plan
        .users
        .iter()
        .zip(user_ids)
        .filter(|(user, _)| user.active && user.role == "learner")
        .map(|(_, id)| *id)
        .collect();
    let mut reader_tokens = Vec::new();
    let mut readers = HashSet::new();
    for (index, user_id) in rng.sample(&learners, READERS).into_iter().enumerate() {
        let token = format!("{prefix}reader-{index}-{:016x}", rng.next_u64());
        tx.insert_token(user_id, &host.hash_token(&token), now)
            .await?;
        reader_tokens.push(token);
        readers.insert(user_id);
    }

    let heavy_id = tx
        .insert_user(
            &UserInsert {
                username: format!("{prefix}heavy"),
                email: "heavy@bench.example".into(),
                display_name: "Heavy Learner".into(),
                active: true,
                role: "learner".into(),
                ..Default::default()
            },
            now,
        )
        .await?;
    let heavy_token = format!("{prefix}heavy-{:016x}", rng.next_u64());
    tx.insert_token(heavy_id, &host.hash_token(&heavy_token), now)
        .await?;
    let rows = heavy_history(host, heavy_id, admin_id, activity_ids);
    tx.bench_insert_enrollments(&rows).await?;
    Ok(People {
        admin_token,
        readers,
        reader_tokens,
        heavy_token,
    })
}

/// The heavy learner's 500 enrollments of every status, type and due date,
/// as years of history would leave them.
fn heavy_history<H: Host>(
    host: &H,
    heavy_id: i64,
    admin_id: i64,
    activity_ids: &[i64],
) -> Vec<EnrollmentInsert> {
    let now = host.now().as_microsecond();
    let day0 = today(host.now());
    (0..HEAVY_ENROLLMENTS)
        .map(|index| {
            let status = match index % 10 {
                0..=5 => "in_progress",
                6..=8 => "passed",
                _ => "dropped",
            };
            let enrolled_at = now - (index as i64 + 1) * 86_400_000_000 / 3;
            EnrollmentInsert {
                user_id: heavy_id,
                activity_id: activity_ids[400 + index],
                enrollment_type: ["required", "recommended", "elected"][index % 3].into(),
                status: status.into(),
                due_on: (index % 7 != 0).then(|| {
                    day0.checked_add(((index % 120) as i64 - 30).days())
                        .unwrap_or(day0)
                        .to_string()
                }),
                required_by: (index % 3 != 2).then(|| "Bench Administrator".to_string()),
                reason: None,
                enrolled_at,
                completed_at: (status == "passed").then_some(enrolled_at + 3_600_000_000),
                source_kind: if index % 3 == 2 { "self" } else { "manual" }.into(),
                source: if index % 3 == 2 {
                    json!({"kind": "self"}).to_string()
                } else {
                    json!({"kind": "manual", "by": admin_id}).to_string()
                },
                period: None,
            }
        })
        .collect()
}

fn title_of(kind: &str) -> &'static str {
    match kind {
        "curriculum" => "Curriculum",
        "course_bundle" => "Bundle",
        "instructor_led" => "Workshop",
        _ => "Course",
    }
}

pub(crate) async fn count_enrollments(store: &Store) -> Result<i64> {
    let mut tx = store.read().await?;
    let count = tx.bench_count_enrollments().await?;
    tx.rollback().await?;
    Ok(count)
}

pub(crate) async fn count_jobs(store: &Store, state_name: &str) -> Result<i64> {
    let mut tx = store.read().await?;
    let count = tx.bench_count_jobs("post_enrollment", state_name).await?;
    tx.rollback().await?;
    Ok(count)
}
