//! Shorthands for the rules suite on top of the API harness: a server whose
//! manual clock starts at a fixed date, rules, sweeps, jobs and enrollments.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, encode, id, items, spawn_app};

/// A fresh server whose manual clock has been moved to `now` (2030 or later),
/// before anything else exists.
pub async fn app_at(now: &str) -> TestApp {
    let app = spawn_app().await;
    app.set_clock(now).await;
    let (status, clock) = app.get("/clock", &app.admin).await;
    assert_eq!(status, 200, "{clock}");
    assert_eq!(clock["mode"], "manual", "{clock}");
    app
}

/// Creates a user from a full body (admin, so R18 evaluates at once).
pub async fn user(app: &TestApp, body: Value) -> i64 {
    let (status, user) = app.post("/users", &app.admin, body.clone()).await;
    assert_eq!(status, 201, "create user {body}: {user}");
    id(&user)
}

/// Creates a learner in the given groups with optional extra fields.
pub async fn member(app: &TestApp, username: &str, group_ids: &[i64], extra: Value) -> i64 {
    let mut body = json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "display_name": format!("{username} person"),
        "group_ids": group_ids,
    });
    if let Value::Object(fields) = extra {
        body.as_object_mut().expect("an object").extend(fields);
    }
    user(app, body).await
}

pub async fn course(app: &TestApp, title: &str) -> i64 {
    app.create_activity(title, "online_course").await
}

/// `PUT /activities/{id}/auto-enrollment`, asserting 200; returns the activity.
pub async fn set_rule(app: &TestApp, activity_id: i64, rule: Value) -> Value {
    let (status, activity) = app
        .put(
            &format!("/activities/{activity_id}/auto-enrollment"),
            &app.admin,
            rule.clone(),
        )
        .await;
    assert_eq!(status, 200, "set rule {rule}: {activity}");
    activity
}

/// The raw answer to a rule (for validation errors).
pub async fn put_rule_reply(app: &TestApp, activity_id: i64, rule: Value) -> Reply {
    app.request(
        Method::PUT,
        &format!("/activities/{activity_id}/auto-enrollment"),
        &app.admin,
        rule,
    )
    .await
}

/// A rule over some groups with the given recurrence.
pub fn groups_rule(group_ids: &[i64], recurrence: Value) -> Value {
    json!({"scope": "groups", "group_ids": group_ids, "hired_after": null, "recurrence": recurrence, "initial_due_days": null})
}

/// Starts a sweep by hand (`POST /sweeps`, 202), completes it with
/// `POST /jobs/run-due`, and returns its finished record.
pub async fn sweep(app: &TestApp) -> Value {
    let (status, started) = app
        .post("/sweeps", &app.admin, json!({"dry_run": false}))
        .await;
    assert_eq!(status, 202, "start a sweep: {started}");
    let sweep_id = id(&started);
    app.run_due_jobs().await;
    wait_sweep_done(app, sweep_id).await
}

/// Waits (a few seconds at most) until the sweep's record is `done`.
pub async fn wait_sweep_done(app: &TestApp, sweep_id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, record) = app.get(&format!("/sweeps/{sweep_id}"), &app.admin).await;
        assert_eq!(status, 200, "{record}");
        if record["state"] == "done" {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "sweep {sweep_id} not done: {record}"
        );
        app.run_due_jobs().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every enrollment of an activity, in id order.
pub async fn in_activity(app: &TestApp, activity_id: i64) -> Vec<Value> {
    let (status, list) = app
        .get(
            &format!("/activities/{activity_id}/enrollments?limit=1000"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    sorted(items(&list))
}

/// Every enrollment of a user in an activity, in id order.
pub async fn of(app: &TestApp, user_id: i64, activity_id: i64) -> Vec<Value> {
    let (status, list) = app
        .get(
            &format!("/enrollments?user_id={user_id}&activity_id={activity_id}&limit=1000"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    sorted(items(&list))
}

/// The one enrollment of a user in an activity.
pub async fn only(app: &TestApp, user_id: i64, activity_id: i64) -> Value {
    let list = of(app, user_id, activity_id).await;
    assert_eq!(
        list.len(),
        1,
        "user {user_id} should have exactly one enrollment in activity {activity_id}: {list:?}"
    );
    list[0].clone()
}

/// Every enrollment of a user, in id order.
pub async fn of_user(app: &TestApp, user_id: i64) -> Vec<Value> {
    let (status, list) = app
        .get(
            &format!("/users/{user_id}/enrollments?limit=1000"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    sorted(items(&list))
}

fn sorted(mut list: Vec<Value>) -> Vec<Value> {
    list.sort_by_key(id);
    list
}

/// The users holding enrollments in a list, sorted.
pub fn user_ids(enrollments: &[Value]) -> Vec<i64> {
    let mut ids: Vec<i64> = enrollments
        .iter()
        .map(|enrollment| enrollment["user_id"].as_i64().expect("user_id"))
        .collect();
    ids.sort_unstable();
    ids
}

/// One field of each enrollment, as text (null as "null").
pub fn field(enrollments: &[Value], name: &str) -> Vec<String> {
    enrollments
        .iter()
        .map(|enrollment| match &enrollment[name] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// `PATCH /enrollments/{id}` with a new status, asserting 200.
pub async fn set_status(app: &TestApp, enrollment_id: i64, status: &str) -> Value {
    let (code, enrollment) = app
        .patch(
            &format!("/enrollments/{enrollment_id}"),
            &app.admin,
            json!({"status": status}),
        )
        .await;
    assert_eq!(code, 200, "set status {status}: {enrollment}");
    assert_eq!(enrollment["status"], status, "{enrollment}");
    enrollment
}

/// Adds a post-enrollment rule, asserting 201.
pub async fn post_rule(app: &TestApp, activity_id: i64, rule: Value) -> Value {
    let (status, created) = app
        .post(
            &format!("/activities/{activity_id}/post-enrollments"),
            &app.admin,
            rule.clone(),
        )
        .await;
    assert_eq!(status, 201, "add post rule {rule}: {created}");
    created
}

pub async fn post_rule_reply(app: &TestApp, activity_id: i64, rule: Value) -> Reply {
    app.request(
        Method::POST,
        &format!("/activities/{activity_id}/post-enrollments"),
        &app.admin,
        rule,
    )
    .await
}

/// A post-enrollment rule body.
pub fn when(trigger: &str, delay_days: i64, targets: &[i64], allow_consecutive: bool) -> Value {
    json!({"when": trigger, "delay_days": delay_days, "target_ids": targets, "allow_consecutive": allow_consecutive})
}

/// Jobs matching a query string (e.g. `state=pending&kind=post_enrollment`),
/// in id order.
pub async fn jobs(app: &TestApp, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/jobs?{query}&limit=1000");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", encode(cursor)));
        }
        let (status, list) = app.get(&path, &app.admin).await;
        assert_eq!(status, 200, "{list}");
        all.extend(items(&list));
        match list["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return sorted(all),
        }
    }
}

/// Post-enrollment jobs fired by a rule, in id order.
pub async fn jobs_of_rule(app: &TestApp, rule_id: i64) -> Vec<Value> {
    jobs(app, "kind=post_enrollment")
        .await
        .into_iter()
        .filter(|job| job["rule_id"] == rule_id)
        .collect()
}

/// Runs due jobs until none is pending at the clock's time.
pub async fn settle(app: &TestApp) {
    app.run_due_jobs().await;
}

/// Manually enrolls one user (admin, `required` by default here) and returns
/// the created enrollment.
pub async fn enroll(app: &TestApp, activity_id: i64, user_id: i64, extra: Value) -> Value {
    app.enroll_one(activity_id, user_id, extra).await
}

/// `GET /explain?user_id=&activity_id=`.
pub async fn explain_pair(app: &TestApp, user_id: i64, activity_id: i64) -> Value {
    let (status, answer) = app
        .get(
            &format!("/explain?user_id={user_id}&activity_id={activity_id}"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The reason codes of an explain answer.
pub fn reason_codes(answer: &Value) -> Vec<String> {
    answer["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no reasons in {answer}"))
        .iter()
        .map(|reason| reason["code"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Audit entries for one entity, oldest first.
pub async fn audit(app: &TestApp, entity: &str, entity_id: i64) -> Vec<Value> {
    let (status, list) = app
        .get(
            &format!("/audit?entity={entity}&id={entity_id}&limit=1000"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let mut entries = items(&list);
    entries.sort_by_key(id);
    entries
}

/// The bootstrap admin's id.
pub async fn admin_id(app: &TestApp) -> i64 {
    id(&app.admin_user().await)
}
