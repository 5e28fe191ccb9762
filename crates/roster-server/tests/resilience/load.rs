//! The HTTP API under concurrent load on SQLite (SPEC §4 Storage: SQLite
//! with WAL; §5 Performance "learner Plan/History reads under concurrent
//! load"): administrators bulk-update due dates, statuses and types of many
//! enrollments while learners read their Plan in loops and the job workers
//! run the completions' post-enrollment jobs. For a bounded time: no 5xx, no
//! "database is locked" anywhere, and a bounded latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_TOKEN, Backend, ClockMode, Database, Node, assert_clean_logs, id, jitter, percentile,
    settled_jobs,
};

const USERS: usize = 300;
const COURSES: usize = 9;
const WRITERS: usize = 3;
const READERS: usize = 8;
const BATCH: usize = 100;
const RUN_FOR: Duration = Duration::from_secs(10);
/// A generous bound for a debug build on a small, shared machine.
const P99_BOUND: Duration = Duration::from_secs(2);

struct Sample {
    write: bool,
    status: u16,
    latency: Duration,
    body: String,
}

async fn timed(node: &Node, token: &str, method: Method, path: &str, body: &Value) -> Sample {
    let mut request = node
        .client
        .request(method.clone(), node.url(path))
        .bearer_auth(token);
    if !body.is_null() {
        request = request.json(body);
    }
    let started = Instant::now();
    let (status, text) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        // A connection the server dropped counts as a server failure.
        Err(error) => (599, format!("{method} {path}: {error}")),
    };
    Sample {
        write: method != Method::GET,
        status,
        latency: started.elapsed(),
        body: text,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers_never_fail_or_lock_sqlite() {
    let db = Database::create(Backend::Sqlite).await;
    let node = Arc::new(db.start(ClockMode::Manual).await);

    let mut csv = String::from("username,email,display_name\n");
    for i in 0..USERS {
        csv.push_str(&format!("l{i:05},l{i}@example.com,Learner {i}\n"));
    }
    let user_ids = node.import_users(&csv).await;
    let mut courses = Vec::new();
    for n in 0..COURSES {
        courses.push(node.create_activity(&format!("Course {n}")).await);
    }
    let certificate = node.create_activity("Certificate").await;
    // Completions of course 0 queue jobs the workers run during the load.
    node.post_rule(courses[0], "completed", &[certificate])
        .await;
    let mut enrollment_ids = Vec::new();
    for (n, course) in courses.iter().enumerate() {
        let due = format!("2031-{:02}-15", n + 1);
        let answer = node
            .enroll_all(*course, &user_ids, json!({"due_on": due}))
            .await;
        for result in answer["results"].as_array().expect("results") {
            enrollment_ids.push(id(&result["enrollment"]));
        }
    }
    let mut tokens = Vec::new();
    for user_id in user_ids.iter().take(READERS) {
        let answer = node
            .ok(
                Method::POST,
                &format!("/users/{user_id}/tokens"),
                json!({}),
                201,
            )
            .await;
        tokens.push(answer["token"].as_str().expect("a token").to_string());
    }
    let enrollment_ids = Arc::new(enrollment_ids);

    let deadline = Instant::now() + RUN_FOR;
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let node = Arc::clone(&node);
        let ids = Arc::clone(&enrollment_ids);
        tasks.spawn(async move {
            let mut samples = Vec::new();
            let mut round = writer;
            while Instant::now() < deadline {
                let start = jitter((ids.len() - BATCH) as u64) as usize;
                let batch = &ids[start..start + BATCH];
                let body = match round % 4 {
                    0 => json!({"ids": batch, "due_on": format!("2032-{:02}-{:02}", 1 + round % 12, 1 + round % 28)}),
                    1 => json!({"ids": batch, "status": "passed"}),
                    2 => json!({"ids": batch, "status": "in_progress", "due_on": null}),
                    _ => json!({"ids": batch, "type": if round % 8 == 3 { "required" } else { "recommended" }}),
                };
                samples.push(
                    timed(
                        &node,
                        ADMIN_TOKEN,
                        Method::POST,
                        "/enrollments/bulk-update",
                        &body,
                    )
                    .await,
                );
                round += 1;
            }
            samples
        });
    }
    for token in tokens {
        let node = Arc::clone(&node);
        tasks.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                samples.push(timed(&node, &token, Method::GET, "/me/plan", &Value::Null).await);
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.extend(done.expect("a load task"));
    }

    let failures: Vec<String> = samples
        .iter()
        .filter(|sample| sample.status >= 500)
        .map(|sample| format!("{}: {}", sample.status, sample.body))
        .collect();
    let locked: Vec<&str> = samples
        .iter()
        .filter(|sample| {
            sample
                .body
                .to_ascii_lowercase()
                .contains("database is locked")
        })
        .map(|sample| sample.body.as_str())
        .collect();
    let unexpected: Vec<String> = samples
        .iter()
        .filter(|sample| sample.status != 200)
        .map(|sample| format!("{}: {}", sample.status, sample.body))
        .collect();
    let mut report = String::new();
    for (label, write) in [
        ("reads (GET /me/plan)", false),
        ("writes (bulk-update of 100)", true),
    ] {
        let mut latencies: Vec<Duration> = samples
            .iter()
            .filter(|sample| sample.write == write)
            .map(|sample| sample.latency)
            .collect();
        latencies.sort();
        report.push_str(&format!(
            "{label}: {} requests, p50 {:?}, p90 {:?}, p99 {:?}, max {:?}, {} over 1 s\n",
            latencies.len(),
            percentile(&latencies, 50.0),
            percentile(&latencies, 90.0),
            percentile(&latencies, 99.0),
            latencies.last().copied().unwrap_or_default(),
            latencies
                .iter()
                .filter(|latency| latency.as_secs() >= 1)
                .count(),
        ));
    }
    eprintln!("load on SQLite for {RUN_FOR:?}:\n{report}");

    assert!(
        failures.is_empty(),
        "{} responses were 5xx, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        locked.is_empty(),
        "{} responses say the database is locked, e.g. {:?}",
        locked.len(),
        locked.first()
    );
    assert!(
        unexpected.is_empty(),
        "{} responses were not 200, e.g. {:?}",
        unexpected.len(),
        unexpected.first()
    );
    for write in [false, true] {
        let mut latencies: Vec<Duration> = samples
            .iter()
            .filter(|sample| sample.write == write)
            .map(|sample| sample.latency)
            .collect();
        assert!(latencies.len() >= 10, "too few requests ran:\n{report}");
        latencies.sort();
        let p99 = percentile(&latencies, 99.0);
        assert!(p99 < P99_BOUND, "p99 {p99:?} over {P99_BOUND:?}:\n{report}");
    }

    // The jobs the completions queued all ran; the file is sound.
    node.run_due().await;
    settled_jobs(&node).await;
    node.kill();
    assert_eq!(db.integrity_check().await, "ok");
    assert_clean_logs(&db);
}
