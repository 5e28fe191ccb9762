//! W4: the administrators' bulk operations over HTTP, one request each.

use std::time::Instant;

use serde_json::{Value, json};

use crate::Bench;
use crate::error::{BenchError, Result};
use crate::host::Host;
use crate::http::ApiClient;
use crate::plan::{ACTIVITIES, Rng};
use crate::report::Workload;

/// The activity W4 enrolls users into: no rule, no trigger, no parent.
const W4_ACTIVITY: usize = ACTIVITIES - 1;

/// Enrolls up to 10,000 users in one request, then updates 10,000 open
/// enrollments in one request.
pub(crate) async fn admin_bulk<H: Host>(bench: &Bench<H>, rng: &mut Rng) -> Result<[Workload; 2]> {
    let org = &bench.org;
    let client = ApiClient::new(bench.address)?;
    let count = org.user_ids.len().min(10_000);
    let users = rng.sample(&org.user_ids, count);
    let activity_id = org.activity_ids[W4_ACTIVITY];
    let body = json!({
        "user_ids": users,
        "type": "required",
        "due_on": "2040-09-30",
        "reason": "bench W4",
    });
    let started = Instant::now();
    let (status, answer) = client
        .post(
            &format!("/api/v1/activities/{activity_id}/enrollments"),
            &org.admin_token,
            &body,
        )
        .await?;
    let elapsed = started.elapsed();
    if status != 200 {
        return Err(BenchError::Unexpected(format!(
            "W4 enroll answered {status}: {}",
            String::from_utf8_lossy(&answer)
        )));
    }
    let created = outcomes(&answer, "created")?;
    let enroll = Workload::rows(
        "W4",
        "enroll users",
        elapsed,
        created,
        format!("POST /activities/{{id}}/enrollments with {count} users, one request"),
    );

    let mut tx = bench.host.store().read().await?;
    let open = tx.bench_open_enrollments(&[]).await?;
    tx.rollback().await?;
    let ids: Vec<i64> = rng
        .sample(&open, 10_000)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let body = json!({"ids": ids, "due_on": "2040-12-31", "type": "required"});
    let started = Instant::now();
    let (status, answer) = client
        .post("/api/v1/enrollments/bulk-update", &org.admin_token, &body)
        .await?;
    let elapsed = started.elapsed();
    if status != 200 {
        return Err(BenchError::Unexpected(format!(
            "W4 bulk update answered {status}: {}",
            String::from_utf8_lossy(&answer)
        )));
    }
    let updated = outcomes(&answer, "updated")?;
    let update = Workload::rows(
        "W4",
        "bulk update",
        elapsed,
        updated,
        format!(
            "POST /enrollments/bulk-update of {} enrollments (due date, type), one request",
            ids.len()
        ),
    );
    Ok([enroll, update])
}

/// How many of a bulk answer's results have the outcome.
fn outcomes(answer: &[u8], outcome: &str) -> Result<i64> {
    let value: Value = serde_json::from_slice(answer)?;
    Ok(value["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter(|result| result["outcome"] == outcome)
                .count() as i64
        })
        .unwrap_or(0))
}
