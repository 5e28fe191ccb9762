//! Crash safety (SPEC §4 Storage, Jobs, Nightly sweep; §5 Reliability; R14,
//! R33, R36): a server SIGKILLed during a sweep, during a burst of
//! post-enrollment jobs and during a bulk enrollment, restarted on the same
//! database, ends with exactly the enrollments of an uninterrupted run of the
//! same scenario — nothing lost, nothing duplicated — on SQLite and on
//! PostgreSQL. A killed process's running jobs are taken again once their
//! 30-second lease expires, so the sweep and burst scenarios each wait once.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    Backend, ClockMode, Database, Node, assert_clean_logs, assert_same_rows, id, jitter,
    settled_jobs,
};

// ---------------------------------------------------------------------------
// A sweep killed mid-run (R14, §4 Nightly sweep)

/// More than one range of `BATCH_USERS` (5,000) user ids, so that an
/// activity's sweep commits in several transactions and a kill can fall
/// between them.
const SWEEP_USERS: usize = 6000;

/// Users in four regions (some inactive, hired over twelve years, a pilot
/// group across them); five rules — one-time with adoption (R15), annual
/// over two groups, one-time by hire date, every-12-months over the pilot
/// with an `enrolled` chain (R38), annual company-wide — and open manual
/// enrollments the sweep adopts. More activity jobs than a process has
/// workers, so a restarted process has work of its own to be killed in.
async fn sweep_setup(node: &Node) {
    for group in ["north", "south", "east", "west", "pilot"] {
        node.ok(Method::POST, "/groups", json!({"name": group}), 201)
            .await;
    }
    let rows: Vec<String> = (0..SWEEP_USERS)
        .map(|i| {
            let mut groups = ["north", "south", "east", "west"][i % 4].to_string();
            if i % 20 == 3 {
                groups.push_str(";pilot");
            }
            let active = i % 41 != 0;
            let hired = 2012 + i % 12;
            format!("s{i:05},s{i}@example.com,Sweep {i},{active},{hired}-03-15,{groups}")
        })
        .collect();
    let user_ids = node
        .import_users_parallel("username,email,display_name,active,hired_on,groups", &rows)
        .await;
    let north = node.group_id("north").await;
    let south = node.group_id("south").await;
    let pilot = node.group_id("pilot").await;

    let safety = node.create_activity("Safety basics").await;
    let annual = node.create_activity("Annual compliance").await;
    let orientation = node.create_activity("New hire orientation").await;
    let refresher = node.create_activity("Refresher").await;
    let quiz = node.create_activity("Refresher quiz").await;
    let ethics = node.create_activity("Ethics").await;

    // Open manual enrollments the sweep adopts for its period (R15).
    let adopted: Vec<i64> = user_ids.iter().step_by(7).copied().collect();
    node.enroll_all(safety, &adopted, json!({"type": "recommended"}))
        .await;

    node.set_rule(
        safety,
        json!({"scope": "company", "recurrence": {"kind": "one_time", "due": {"within_days": 30}}}),
    )
    .await;
    node.set_rule(
        annual,
        json!({"scope": "groups", "group_ids": [north, south],
               "recurrence": {"kind": "annual", "due_each_year_on": "06-30"}, "initial_due_days": 14}),
    )
    .await;
    node.set_rule(
        orientation,
        json!({"scope": "company", "hired_after": "2018-12-31",
               "recurrence": {"kind": "one_time", "due": null}}),
    )
    .await;
    node.set_rule(
        refresher,
        json!({"scope": "groups", "group_ids": [pilot],
               "recurrence": {"kind": "every_months", "months": 12}}),
    )
    .await;
    node.post_rule(refresher, "enrolled", &[quiz]).await;
    node.set_rule(
        ethics,
        json!({"scope": "company", "recurrence": {"kind": "annual", "due_each_year_on": "03-31"}}),
    )
    .await;
}

async fn start_sweep(node: &Node) -> i64 {
    let started = node
        .ok(Method::POST, "/sweeps", json!({"dry_run": false}), 202)
        .await;
    id(&started)
}

/// What a run of the sweep scenario left: the enrollments, the sweep record.
struct SweepRun {
    enrollments: Vec<Vec<String>>,
    record: Value,
    took: Duration,
}

async fn uninterrupted_sweep(db: &Database, node: Node) -> SweepRun {
    let started = Instant::now();
    let sweep_id = start_sweep(&node).await;
    node.wait_sweep_done(sweep_id, Duration::from_secs(120))
        .await;
    let took = started.elapsed();
    node.run_due().await;
    settled_jobs(&node).await;
    let record = node.sweep(sweep_id).await;
    drop(node);
    let enrollments = db.enrollment_fingerprint().await;
    eprintln!(
        "[{}] reference: sweep {took:?}, {} enrollments, record {record}",
        db.backend.name(),
        enrollments.len()
    );
    assert_clean_logs(db);
    SweepRun {
        enrollments,
        record,
        took,
    }
}

async fn sweep_killed_mid_run(backend: Backend) {
    let began = Instant::now();
    // Both databases are set up at once; the reference sweep runs first,
    // uninterrupted, and times the kills of the other.
    let reference_db = Database::create(backend).await;
    let db = Database::create(backend).await;
    let reference_node = reference_db.start(ClockMode::Manual).await;
    let mut node = db.start(ClockMode::Manual).await;
    tokio::join!(sweep_setup(&reference_node), sweep_setup(&node));
    eprintln!(
        "[{}] set-up of both databases: {:?}",
        backend.name(),
        began.elapsed()
    );
    let reference = uninterrupted_sweep(&reference_db, reference_node).await;
    drop(reference_db);

    let sweep_id = start_sweep(&node).await;
    // Three kills: early in the sweep, then twice into the activity jobs
    // the restarted process took over.
    let mut leased_at_restart = 0;
    for fraction in [0.15, 0.3, 0.3] {
        let base = reference.took.as_secs_f64() * fraction;
        let delay = Duration::from_secs_f64(base.max(0.02))
            + Duration::from_millis(jitter((base * 200.0) as u64 + 5));
        tokio::time::sleep(delay).await;
        node.kill();
        node = db.start(ClockMode::Manual).await;
        let record = node.sweep(sweep_id).await;
        let running = node.all("/jobs?state=running").await;
        let pending = node.all("/jobs?state=pending").await;
        eprintln!(
            "[{}] killed after {delay:?}: sweep {} ({}/{} activity jobs done, {} created so far); \
             jobs running: {} (some leased by the dead process), pending: {}",
            backend.name(),
            record["state"],
            record["jobs_done"],
            record["jobs_total"],
            record["created"],
            running.len(),
            pending.len()
        );
        if running.iter().any(|job| job["kind"] == "sweep_activity") {
            leased_at_restart += 1;
        }
    }
    eprintln!(
        "[{}] {leased_at_restart} of 3 restarts found a sweep job running",
        backend.name()
    );

    // The dead processes' jobs come back after their lease; run-due waits.
    let drain = Instant::now();
    node.run_due().await;
    let record = node
        .wait_sweep_done(sweep_id, Duration::from_secs(120))
        .await;
    node.run_due().await;
    eprintln!(
        "[{}] drained in {:?} after the last restart; record {record}",
        backend.name(),
        drain.elapsed()
    );

    // The record is finished once, and its counts are those of the
    // uninterrupted run (each range's counts commit with the range).
    assert_eq!(record["state"], "done");
    assert_eq!(record["jobs_done"], record["jobs_total"], "{record}");
    for count in ["created", "adopted", "closed", "skipped"] {
        assert_eq!(
            record[count], reference.record[count],
            "sweep count {count} after kills vs uninterrupted: {record} vs {}",
            reference.record
        );
    }
    let jobs = settled_jobs(&node).await;
    let sweep_jobs: Vec<&Value> = jobs
        .iter()
        .filter(|job| job["kind"] == "sweep_activity")
        .collect();
    assert_eq!(
        sweep_jobs.len() as i64,
        record["jobs_total"].as_i64().unwrap()
    );
    let resumed = sweep_jobs
        .iter()
        .filter(|job| job["attempts"].as_i64().unwrap_or(0) > 1)
        .count();
    eprintln!(
        "[{}] {resumed} of {} sweep jobs were taken over after a kill",
        backend.name(),
        sweep_jobs.len()
    );
    assert!(
        resumed >= 1,
        "no sweep job was taken over after a kill: {sweep_jobs:?}"
    );
    // A resumed job reports only what its own run did (ranges committed
    // before the kill were counted then), so the jobs' sum never exceeds
    // the record's count.
    let created_by_jobs: i64 = sweep_jobs
        .iter()
        .map(|job| job["outcome"]["created"].as_i64().unwrap_or(0))
        .sum();
    assert!(
        created_by_jobs <= record["created"].as_i64().unwrap(),
        "jobs report {created_by_jobs} created, the record {record}"
    );

    // One chain job per Refresher enrollment, no more, no fewer (R33),
    // each having created its quiz enrollment (R36).
    let chain_jobs: Vec<&Value> = jobs
        .iter()
        .filter(|job| job["kind"] == "post_enrollment")
        .collect();
    for job in &chain_jobs {
        assert_eq!(job["outcome"][0]["outcome"], "created", "{job}");
    }
    let chain_jobs = chain_jobs.len();
    node.kill();
    let enrollments = db.enrollment_fingerprint().await;
    let refreshers = enrollments
        .iter()
        .filter(|row| row[1] == "Refresher")
        .count();
    assert_eq!(
        chain_jobs, refreshers,
        "one enrolled-trigger job per Refresher enrollment"
    );

    assert_same_rows(
        "enrollments after a sweep killed three times vs an uninterrupted sweep",
        &reference.enrollments,
        &enrollments,
    );
    if backend == Backend::Sqlite {
        assert_eq!(db.integrity_check().await, "ok");
    }
    assert_clean_logs(&db);
    eprintln!(
        "[{}] sweep crash scenario: {:?} (reference sweep {:?})",
        backend.name(),
        began.elapsed(),
        reference.took
    );
}

#[tokio::test]
async fn sweep_killed_mid_run_resumes_without_loss_or_duplicates_sqlite() {
    sweep_killed_mid_run(Backend::Sqlite).await;
}

#[tokio::test]
async fn sweep_killed_mid_run_resumes_without_loss_or_duplicates_postgres() {
    sweep_killed_mid_run(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------
// A burst of post-enrollment jobs killed in flight (R32, R33, R36, R38)

const BURST_USERS: usize = 1000;
const BURST_CHUNK: usize = 250;

/// Course A (`completed` → B and C), course B (`enrolled` → D): every user
/// enrolled in A; returns A's enrollment ids, to be passed in chunks.
async fn burst_scenario(node: &Node) -> Vec<i64> {
    let mut csv = String::from("username,email,display_name\n");
    for i in 0..BURST_USERS {
        csv.push_str(&format!("b{i:05},b{i}@example.com,Burst {i}\n"));
    }
    let user_ids = node.import_users(&csv).await;
    let a = node.create_activity("Course A").await;
    let b = node.create_activity("Course B").await;
    let c = node.create_activity("Course C").await;
    let d = node.create_activity("Course D").await;
    node.post_rule(a, "completed", &[b, c]).await;
    node.post_rule(b, "enrolled", &[d]).await;
    let answer = node
        .enroll_all(a, &user_ids, json!({"type": "required"}))
        .await;
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| id(&result["enrollment"]))
        .collect()
}

/// Passes the chunks of A's enrollments not yet acknowledged, in order;
/// returns those still unacknowledged (the server died under them).
async fn pass_chunks(node: &Node, chunks: Vec<Vec<i64>>) -> Vec<Vec<i64>> {
    let mut left = Vec::new();
    let mut dead = false;
    for chunk in chunks {
        if dead {
            left.push(chunk);
            continue;
        }
        let body = json!({"ids": chunk, "status": "passed"});
        match node
            .try_request(Method::POST, "/enrollments/bulk-update", &body)
            .await
        {
            Ok((200, answer)) => {
                for result in answer["results"].as_array().expect("results") {
                    assert_eq!(result["outcome"], "updated", "{result}");
                }
            }
            Ok((status, answer)) => panic!("bulk update answered {status}: {answer}"),
            Err(_) => {
                dead = true;
                left.push(chunk);
            }
        }
    }
    left
}

async fn burst_killed_in_flight(backend: Backend) {
    let began = Instant::now();
    // The uninterrupted run, timed from the first completion to the drain.
    let reference_db = Database::create(backend).await;
    let node = reference_db.start(ClockMode::Manual).await;
    let ids = burst_scenario(&node).await;
    let started = Instant::now();
    let left = pass_chunks(
        &node,
        ids.chunks(BURST_CHUNK).map(<[i64]>::to_vec).collect(),
    )
    .await;
    assert!(left.is_empty());
    node.run_due().await;
    let took = started.elapsed();
    settled_jobs(&node).await;
    drop(node);
    let reference = reference_db.enrollment_fingerprint().await;
    assert_clean_logs(&reference_db);
    drop(reference_db);
    eprintln!(
        "[{}] reference burst: {took:?} for {} jobs",
        backend.name(),
        2 * BURST_USERS
    );

    let db = Database::create(backend).await;
    let mut node = db.start(ClockMode::Manual).await;
    let ids = burst_scenario(&node).await;
    let mut chunks: Vec<Vec<i64>> = ids.chunks(BURST_CHUNK).map(<[i64]>::to_vec).collect();
    let mut unfinished_at_restart = 0;
    for fraction in [0.3, 0.5] {
        let delay = Duration::from_secs_f64(took.as_secs_f64() * fraction)
            + Duration::from_millis(jitter(100));
        // The administrator's completions and the kill race each other.
        let round = Instant::now();
        chunks = {
            let sender = pass_chunks(&node, chunks);
            tokio::pin!(sender);
            tokio::select! {
                left = &mut sender => {
                    tokio::time::sleep(delay.saturating_sub(round.elapsed())).await;
                    node.kill();
                    left
                }
                _ = tokio::time::sleep(delay) => {
                    node.kill();
                    sender.await
                }
            }
        };
        node = db.start(ClockMode::Manual).await;
        let unsettled = node.all("/jobs?state=running").await.len()
            + node.all("/jobs?state=pending").await.len();
        eprintln!(
            "[{}] killed after {delay:?}: {} chunk(s) of completions unacknowledged, \
             {unsettled} jobs unfinished",
            backend.name(),
            chunks.len()
        );
        if unsettled > 0 {
            unfinished_at_restart += 1;
        }
    }
    assert!(
        unfinished_at_restart >= 1,
        "no kill landed during the burst; the test proved nothing"
    );
    // The administrator sends again what was never acknowledged (passing
    // a passed enrollment changes nothing and fires nothing).
    let left = pass_chunks(&node, chunks).await;
    assert!(left.is_empty());
    let drain = Instant::now();
    node.run_due().await;
    eprintln!(
        "[{}] drained in {:?} after the last restart",
        backend.name(),
        drain.elapsed()
    );

    // Every trigger captured once, every job ran once to completion.
    let jobs = settled_jobs(&node).await;
    assert_eq!(
        jobs.len(),
        2 * BURST_USERS,
        "one job per completion of A and one per enrollment in B"
    );
    let mut created = 0;
    for job in &jobs {
        for target in job["outcome"].as_array().expect("an outcome per target") {
            assert_eq!(target["outcome"], "created", "{job}");
            created += 1;
        }
    }
    assert_eq!(created, 3 * BURST_USERS, "B, C and D once per user");
    let taken_over = jobs
        .iter()
        .filter(|job| job["attempts"].as_i64().unwrap_or(0) > 1)
        .count();
    eprintln!(
        "[{}] {taken_over} jobs were taken over after a kill (attempts > 1)",
        backend.name()
    );
    node.kill();
    let enrollments = db.enrollment_fingerprint().await;
    assert_same_rows(
        "enrollments after a job burst killed twice vs an uninterrupted burst",
        &reference,
        &enrollments,
    );
    if backend == Backend::Sqlite {
        assert_eq!(db.integrity_check().await, "ok");
    }
    assert_clean_logs(&db);
    eprintln!(
        "[{}] burst crash scenario: {:?}",
        backend.name(),
        began.elapsed()
    );
}

#[tokio::test]
async fn post_enrollment_burst_killed_in_flight_runs_every_job_once_sqlite() {
    burst_killed_in_flight(Backend::Sqlite).await;
}

#[tokio::test]
async fn post_enrollment_burst_killed_in_flight_runs_every_job_once_postgres() {
    burst_killed_in_flight(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------
// A bulk enrollment killed mid-request (R50, R33: one transaction)

const BULK_USERS: usize = 3000;

async fn count(db: &Database, sql: &'static str) -> i64 {
    db.rows(sql).await[0][0].parse().expect("a count")
}

async fn mandatory_counts(db: &Database) -> (i64, i64) {
    let enrollments = count(
        db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM enrollments e \
         JOIN activities a ON a.id = e.activity_id WHERE a.title = 'Mandatory'",
    )
    .await;
    let jobs = count(
        db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM jobs j JOIN post_rules r ON r.id = j.rule_id \
         JOIN activities a ON a.id = r.activity_id WHERE a.title = 'Mandatory'",
    )
    .await;
    (enrollments, jobs)
}

async fn bulk_enrollment_killed(backend: Backend) {
    let began = Instant::now();
    let db = Database::create(backend).await;
    let mut node = db.start(ClockMode::Manual).await;
    let mut csv = String::from("username,email,display_name\n");
    for i in 0..BULK_USERS {
        csv.push_str(&format!("m{i:05},m{i}@example.com,Bulk {i}\n"));
    }
    let user_ids = node.import_users(&csv).await;
    let warm_up = node.create_activity("Warm-up").await;
    let mandatory = node.create_activity("Mandatory").await;
    let follow_up = node.create_activity("Follow-up").await;
    // Delayed a day of business time, so the jobs stay pending and countable:
    // they are part of the all-or-nothing (R33, same transaction).
    for activity in [warm_up, mandatory] {
        node.ok(
            Method::POST,
            &format!("/activities/{activity}/post-enrollments"),
            json!({"when": "enrolled", "delay_days": 1, "target_ids": [follow_up], "allow_consecutive": false}),
            201,
        )
        .await;
    }
    let body = json!({"user_ids": user_ids, "type": "required", "due_on": "2040-06-30", "reason": "audit"});

    // The uninterrupted request, on the other activity, to time it.
    let started = Instant::now();
    node.enroll_all(warm_up, &user_ids, body.clone()).await;
    let took = started.elapsed();
    eprintln!(
        "[{}] an uninterrupted bulk enrollment of {BULK_USERS} users took {took:?}",
        backend.name()
    );

    let path = format!("/activities/{mandatory}/enrollments");
    let all = BULK_USERS as i64;
    let (mut unacknowledged, mut rolled_back) = (0, 0);
    // Early kills first: the first lands before the commit (a rollback), later
    // ones may land after it; every outcome must be all-or-nothing.
    for fraction in [0.05, 0.2, 0.5] {
        let delay = Duration::from_secs_f64(took.as_secs_f64() * fraction)
            + Duration::from_millis(jitter(50));
        let answer = {
            let request = node.try_request(Method::POST, &path, &body);
            tokio::pin!(request);
            tokio::select! {
                result = &mut request => {
                    node.kill();
                    result
                }
                _ = tokio::time::sleep(delay) => {
                    node.kill();
                    request.await
                }
            }
        };
        let acknowledged = match answer {
            Ok((200, _)) => true,
            Ok((status, answer)) => panic!("bulk enrollment answered {status}: {answer}"),
            Err(_) => false,
        };
        node = db.start(ClockMode::Manual).await;
        let (enrollments, jobs) = mandatory_counts(&db).await;
        eprintln!(
            "[{}] killed after {delay:?}: acknowledged {acknowledged}; \
             {enrollments} enrollments and {jobs} jobs after restart",
            backend.name()
        );
        assert!(
            (enrollments, jobs) == (0, 0) || (enrollments, jobs) == (all, all),
            "a bulk enrollment killed mid-request left {enrollments} of {all} enrollments \
             and {jobs} of {all} jobs: not all-or-nothing"
        );
        if acknowledged {
            assert_eq!(enrollments, all, "an acknowledged bulk enrollment was lost");
            break;
        }
        unacknowledged += 1;
        if enrollments == 0 {
            rolled_back += 1;
        } else {
            break;
        }
    }
    assert!(
        unacknowledged >= 1 && rolled_back >= 1,
        "no kill landed while the bulk enrollment was in flight; the test proved nothing"
    );

    // The administrator sends it again: all created, none already enrolled
    // (a partial earlier commit would show here).
    let (enrollments, _) = mandatory_counts(&db).await;
    if enrollments == 0 {
        node.enroll_all(mandatory, &user_ids, body.clone()).await;
    }
    let jobs = node.all("/jobs?state=pending").await;
    assert_eq!(jobs.len(), 2 * BULK_USERS, "one pending job per enrollment");
    node.kill();

    // Mandatory holds exactly what the uninterrupted Warm-up request made.
    let rows = db.enrollment_fingerprint().await;
    let of = |title: &str| -> Vec<Vec<String>> {
        rows.iter()
            .filter(|row| row[1] == title)
            .map(|row| {
                let mut row = row.clone();
                row[1] = String::new();
                row
            })
            .collect()
    };
    assert_eq!(of("Warm-up").len(), BULK_USERS);
    assert_same_rows(
        "Mandatory (killed, then sent again) vs Warm-up (uninterrupted)",
        &of("Warm-up"),
        &of("Mandatory"),
    );
    if backend == Backend::Sqlite {
        assert_eq!(db.integrity_check().await, "ok");
    }
    assert_clean_logs(&db);
    eprintln!(
        "[{}] bulk enrollment crash scenario: {:?}",
        backend.name(),
        began.elapsed()
    );
}

#[tokio::test]
async fn bulk_enrollment_killed_mid_request_is_all_or_nothing_sqlite() {
    bulk_enrollment_killed(Backend::Sqlite).await;
}

#[tokio::test]
async fn bulk_enrollment_killed_mid_request_is_all_or_nothing_postgres() {
    bulk_enrollment_killed(Backend::Postgres).await;
}
