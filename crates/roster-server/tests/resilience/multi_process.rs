//! Several `roster serve` processes on one PostgreSQL database (SPEC §3
//! "Several serve processes may share one PostgreSQL database", §4 Jobs and
//! Nightly sweep, §5 "Two processes on one PostgreSQL: every job runs once").
//!
//! The processes run `--clock system`: each manual clock is its own, and two
//! of them would not agree on which jobs are due. Set-up happens first on a
//! `--clock manual` process (which has no nightly scheduler), which also moves
//! the nightly sweep hours away — or, for the nightly test, a minute into
//! the past — by choosing the organisation's time zone.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, ClockMode, Database, Node, assert_clean_logs, id, settled_jobs};

/// A fixed-offset IANA zone in which it is now between 06:00 and 07:00, so
/// that neither a local midnight nor a chosen nightly time is crossed while
/// a test runs, whatever the real time of day.
fn morning_zone() -> (String, jiff::Zoned) {
    let utc_hour = i32::from(Timestamp::now().to_zoned(TimeZone::UTC).hour());
    let mut offset = 6 - utc_hour;
    if offset < -12 {
        offset += 24;
    }
    let name = match offset {
        0 => "UTC".to_string(),
        positive if positive > 0 => format!("Etc/GMT-{positive}"),
        negative => format!("Etc/GMT+{}", -negative),
    };
    let zone = TimeZone::get(&name).expect("a fixed-offset zone");
    let local = Timestamp::now().to_zoned(zone);
    assert_eq!(local.hour(), 6, "{name}: {local}");
    (name, local)
}

/// Settings under which no nightly sweep starts during the test.
async fn quiet_nightly(node: &Node) {
    let (zone, _) = morning_zone();
    node.ok(
        Method::PATCH,
        "/settings",
        json!({"timezone": zone, "nightly_sweep_at": "23:30"}),
        200,
    )
    .await;
}

fn learners_csv(prefix: &str, count: usize) -> String {
    let mut csv = String::from("username,email,display_name\n");
    for i in 0..count {
        csv.push_str(&format!(
            "{prefix}{i:05},{prefix}{i}@example.com,Person {i}\n"
        ));
    }
    csv
}

async fn count(db: &Database, sql: &'static str) -> i64 {
    db.rows(sql).await[0][0].parse().expect("a count")
}

#[tokio::test]
async fn several_processes_start_at_once_on_a_fresh_database_postgres() {
    let db = Database::create(Backend::Postgres).await;
    // Three processes race through migrations and the bootstrap admin.
    let nodes = db.start_many(3, ClockMode::Manual).await;
    for node in &nodes {
        let (status, users) = node.get("/users?q=admin").await;
        assert_eq!(status, 200, "{}: {users}", node.name);
    }
    let admins = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM users WHERE username = 'admin'",
    )
    .await;
    assert_eq!(admins, 1);
    drop(nodes);
    assert_clean_logs(&db);
}

#[tokio::test]
async fn two_processes_run_every_post_enrollment_job_once_postgres() {
    const USERS: usize = 400;
    let began = Instant::now();
    let db = Database::create(Backend::Postgres).await;
    let setup = db.start(ClockMode::Manual).await;
    quiet_nightly(&setup).await;
    let user_ids = setup.import_users(&learners_csv("p", USERS)).await;
    let source = setup.create_activity("Source").await;
    let target = setup.create_activity("Target").await;
    setup.post_rule(source, "enrolled", &[target]).await;
    drop(setup);

    let nodes = db.start_many(2, ClockMode::System).await;
    let (one, two) = (&nodes[0], &nodes[1]);
    // Half the learners enrolled through each process at the same time:
    // both processes' workers are woken, and both drain the one queue.
    let (first, second) = user_ids.split_at(USERS / 2);
    let extra = json!({"type": "required"});
    tokio::join!(
        one.enroll_all(source, first, extra.clone()),
        two.enroll_all(source, second, extra.clone())
    );
    tokio::join!(one.run_due(), two.run_due());

    let jobs = settled_jobs(one).await;
    assert_eq!(jobs.len(), USERS, "one job per enrollment in Source");
    let mut created = BTreeSet::new();
    for job in &jobs {
        assert_eq!(job["attempts"], 1, "a job claimed more than once: {job}");
        let outcome = job["outcome"].as_array().expect("outcomes");
        assert_eq!(outcome.len(), 1, "{job}");
        assert_eq!(outcome[0]["outcome"], "created", "{job}");
        assert!(
            created.insert(outcome[0]["enrollment_id"].as_i64().expect("an id")),
            "two jobs report the same enrollment: {job}"
        );
    }
    assert_eq!(created.len(), USERS);

    let by_one = one
        .counter("roster_jobs_done_total", "post_enrollment")
        .await;
    let by_two = two
        .counter("roster_jobs_done_total", "post_enrollment")
        .await;
    eprintln!("jobs run: {by_one} by one process, {by_two} by the other");
    assert_eq!(by_one + by_two, USERS as f64, "every job ran exactly once");
    assert!(
        by_one > 0.0 && by_two > 0.0,
        "both processes must have worked the queue ({by_one} + {by_two})"
    );

    let rows = db
        .rows(
            "SELECT u.username FROM enrollments e JOIN users u ON u.id = e.user_id \
             JOIN activities a ON a.id = e.activity_id WHERE a.title = 'Target'",
        )
        .await;
    let distinct: BTreeSet<&String> = rows.iter().map(|row| &row[0]).collect();
    assert_eq!(rows.len(), USERS, "one Target enrollment per learner");
    assert_eq!(distinct.len(), USERS, "no learner twice in Target");
    drop(nodes);
    assert_clean_logs(&db);
    eprintln!("two processes, {USERS} jobs: {:?}", began.elapsed());
}

#[tokio::test]
async fn a_sweep_started_on_one_process_is_shared_by_both_postgres() {
    // A claimant keeps up to 16 sweep jobs with whole ranges to write at once
    // (`JOB_BATCH`, on PostgreSQL) and writes them range by range. The
    // process that starts the sweep has three claimants at once (its two
    // workers and the `run-due` request below), so it can hold 48 jobs in
    // its first batches, and more if the other request is slow: six
    // batches' worth leaves the other process a part whichever `run-due`
    // request arrives first.
    const USERS: usize = 400;
    const ACTIVITIES: usize = 96;
    let began = Instant::now();
    let db = Database::create(Backend::Postgres).await;
    let setup = db.start(ClockMode::Manual).await;
    quiet_nightly(&setup).await;
    setup.import_users(&learners_csv("w", USERS)).await;
    for n in 0..ACTIVITIES {
        let activity = setup.create_activity(&format!("Course {n}")).await;
        setup
            .set_rule(
                activity,
                json!({"scope": "company", "recurrence": {"kind": "one_time", "due": {"within_days": 60}}}),
            )
            .await;
    }
    drop(setup);

    let nodes = db.start_many(2, ClockMode::System).await;
    let (one, two) = (&nodes[0], &nodes[1]);
    let started = one
        .ok(Method::POST, "/sweeps", json!({"dry_run": false}), 202)
        .await;
    let sweep_id = id(&started);
    // The other process knows about it: a second sweep is refused (§4).
    let (status, refused) = two.post("/sweeps", json!({"dry_run": false})).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains(&format!("sweep {sweep_id}"))),
        "the 409 names the running sweep: {refused}"
    );
    let (_, _, record) = tokio::join!(
        one.run_due(),
        two.run_due(),
        one.wait_sweep_done(sweep_id, Duration::from_secs(120))
    );

    assert_eq!(record["jobs_total"], ACTIVITIES, "{record}");
    assert_eq!(record["jobs_done"], ACTIVITIES, "finished once: {record}");
    let jobs = settled_jobs(one).await;
    assert_eq!(jobs.len(), ACTIVITIES);
    for job in &jobs {
        assert_eq!(job["kind"], "sweep_activity");
        assert_eq!(job["sweep_id"], sweep_id);
        assert_eq!(job["attempts"], 1, "a sweep job claimed twice: {job}");
    }
    let by_one = one
        .counter("roster_jobs_done_total", "sweep_activity")
        .await;
    let by_two = two
        .counter("roster_jobs_done_total", "sweep_activity")
        .await;
    eprintln!("sweep jobs: {by_one} by one process, {by_two} by the other; record {record}");
    assert_eq!(by_one + by_two, ACTIVITIES as f64);
    assert!(
        by_one > 0.0 && by_two > 0.0,
        "both processes must have taken a part of the sweep ({by_one} + {by_two})"
    );

    let sweeps = one.all("/sweeps").await;
    assert_eq!(sweeps.len(), 1, "{sweeps:?}");
    let learners = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM users WHERE active AND role <> 'integration'",
    )
    .await;
    let enrollments = count(&db, "SELECT CAST(COUNT(*) AS TEXT) FROM enrollments").await;
    let distinct = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM (SELECT DISTINCT user_id, activity_id FROM enrollments) pairs",
    )
    .await;
    assert_eq!(enrollments, learners * ACTIVITIES as i64);
    assert_eq!(distinct, enrollments, "no duplicate enrollment");
    assert_eq!(record["created"], enrollments, "{record}");
    drop(nodes);
    assert_clean_logs(&db);
    eprintln!("sweep shared by two processes: {:?}", began.elapsed());
}

#[tokio::test]
async fn the_nightly_sweep_starts_once_whichever_process_sees_the_time_first_postgres() {
    const USERS: usize = 500;
    let began = Instant::now();
    let db = Database::create(Backend::Postgres).await;
    let setup = db.start(ClockMode::Manual).await;
    // The nightly time is a minute ago, local time: every process that
    // starts sees it has passed and no nightly sweep exists for today.
    let (zone, local) = morning_zone();
    let a_minute_ago = local.checked_sub(1.minute()).expect("a minute ago");
    let nightly_at = format!("{:02}:{:02}", a_minute_ago.hour(), a_minute_ago.minute());
    setup
        .ok(
            Method::PATCH,
            "/settings",
            json!({"timezone": zone, "nightly_sweep_at": nightly_at}),
            200,
        )
        .await;
    setup.import_users(&learners_csv("n", USERS)).await;
    let once = setup.create_activity("Code of conduct").await;
    setup
        .set_rule(
            once,
            json!({"scope": "company", "recurrence": {"kind": "one_time", "due": null}}),
        )
        .await;
    let annual = setup.create_activity("Data protection").await;
    setup
        .set_rule(
            annual,
            json!({"scope": "company", "recurrence": {"kind": "annual", "due_each_year_on": "12-31"}}),
        )
        .await;
    drop(setup);

    let nodes = db.start_many(3, ClockMode::System).await;
    let today = local.date().to_string();
    for node in &nodes {
        let (_, clock) = node.get("/clock").await;
        assert_eq!(clock["today"], today.as_str(), "{}: {clock}", node.name);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let nightly: Value = loop {
        let sweeps = nodes[0].all("/sweeps").await;
        if let Some(found) = sweeps.iter().find(|sweep| sweep["trigger"] == "nightly") {
            break found.clone();
        }
        assert!(Instant::now() < deadline, "no nightly sweep within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let record = nodes[1]
        .wait_sweep_done(id(&nightly), Duration::from_secs(120))
        .await;
    // Every scheduler looks again (it ticks every 5 s): still one.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let sweeps = nodes[2].all("/sweeps").await;
    assert_eq!(
        sweeps.len(),
        1,
        "exactly one sweep record, the nightly of {today}: {sweeps:?}"
    );
    assert_eq!(sweeps[0]["trigger"], "nightly");
    assert_eq!(sweeps[0]["day"], today.as_str());
    assert_eq!(record["jobs_done"], 2, "{record}");
    let starts = nodes[0].all("/audit?entity=sweep").await;
    let starts: Vec<&Value> = starts
        .iter()
        .filter(|entry| entry["action"] == "sweep.start")
        .collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    for node in &nodes {
        node.run_due().await;
    }

    let learners = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM users WHERE active AND role <> 'integration'",
    )
    .await;
    let enrollments = count(&db, "SELECT CAST(COUNT(*) AS TEXT) FROM enrollments").await;
    let distinct = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM (SELECT DISTINCT user_id, activity_id FROM enrollments) pairs",
    )
    .await;
    assert_eq!(enrollments, 2 * learners);
    assert_eq!(distinct, enrollments, "no duplicate enrollment");
    assert_eq!(record["created"], enrollments, "{record}");
    let jobs = settled_jobs(&nodes[0]).await;
    assert_eq!(jobs.len(), 2);
    drop(nodes);
    assert_clean_logs(&db);
    eprintln!(
        "nightly sweep raced by three processes: {:?}",
        began.elapsed()
    );
}
