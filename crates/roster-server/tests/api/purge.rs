//! R54: purge of the open enrollments of inactive users.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, as_json, assert_problem, id, items, spawn_app};

/// The enrollments the purge must and must not touch.
struct Fixture {
    target: i64,
    kept: Vec<i64>,
}

/// An inactive user with an open and a passed enrollment, and an active user
/// with an open one; only the inactive user's open enrollment is a target.
async fn fixture(app: &TestApp) -> Fixture {
    let first = app.create_activity("Purge one", "online_course").await;
    let second = app.create_activity("Purge two", "online_course").await;
    let leaver = app.create_user("leaver", &[]).await;
    let stayer = app.create_user("stayer", &[]).await;
    let target = id(&app.enroll_one(first, leaver, json!({})).await);
    let passed = id(&app
        .enroll_one(second, leaver, json!({"status": "passed"}))
        .await);
    let active_open = id(&app.enroll_one(first, stayer, json!({})).await);
    let (status, user) = app
        .patch(
            &format!("/users/{leaver}"),
            &app.admin,
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    Fixture {
        target,
        kept: vec![passed, active_open],
    }
}

#[tokio::test]
async fn r54_purge_dry_run_lists_the_targets_and_deletes_nothing() {
    let app = spawn_app().await;
    let fixture = fixture(&app).await;

    let (status, answer) = app
        .post(
            "/maintenance/purge-inactive",
            &app.admin,
            json!({"dry_run": true}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dry_run"], true);
    assert_eq!(answer["count"], 1);
    let listed: Vec<i64> = items(&answer).iter().map(id).collect();
    assert_eq!(listed, vec![fixture.target]);
    let (status, _) = app
        .get(&format!("/enrollments/{}", fixture.target), &app.admin)
        .await;
    assert_eq!(status, 200, "a dry run changes nothing");
}

#[tokio::test]
async fn r54_purge_with_confirmation_deletes_only_open_enrollments_of_inactive_users() {
    let app = spawn_app().await;
    let fixture = fixture(&app).await;

    let (status, answer) = app
        .post(
            "/maintenance/purge-inactive",
            &app.admin,
            json!({"confirm": true}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dry_run"], false);
    assert_eq!(answer["count"], 1);
    let exported = items(&answer);
    assert_eq!(
        exported.iter().map(id).collect::<Vec<_>>(),
        vec![fixture.target]
    );
    assert_eq!(
        exported[0]["status"], "in_progress",
        "the export holds the deleted record"
    );
    let gone = app
        .request(
            Method::GET,
            &format!("/enrollments/{}", fixture.target),
            &app.admin,
            json!(null),
        )
        .await;
    assert_problem(&gone, 404);
    for kept in fixture.kept {
        let (status, _) = app.get(&format!("/enrollments/{kept}"), &app.admin).await;
        assert_eq!(status, 200, "enrollment {kept} must survive the purge");
    }
}

#[tokio::test]
async fn r54_purge_is_recorded_in_the_audit_log() {
    let app = spawn_app().await;
    let fixture = fixture(&app).await;
    app.post(
        "/maintenance/purge-inactive",
        &app.admin,
        json!({"confirm": true}),
    )
    .await;

    let (status, audit) = app
        .get(
            &format!("/audit?entity=enrollment&id={}", fixture.target),
            &app.admin,
        )
        .await;

    assert_eq!(status, 200, "{audit}");
    let kept = items(&audit)
        .iter()
        .map(|entry| as_json(&entry["before"]))
        .any(|before| before["id"] == fixture.target && before["status"] == "in_progress");
    assert!(kept, "the audit log keeps the purged record: {audit}");
}

#[tokio::test]
async fn r54_purge_with_neither_dry_run_nor_confirm_is_422() {
    let app = spawn_app().await;
    let fixture = fixture(&app).await;

    let reply = app
        .request(
            Method::POST,
            "/maintenance/purge-inactive",
            &app.admin,
            json!({}),
        )
        .await;

    assert_problem(&reply, 422);
    let (status, _) = app
        .get(&format!("/enrollments/{}", fixture.target), &app.admin)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn r54_a_second_purge_finds_nothing() {
    let app = spawn_app().await;
    fixture(&app).await;
    app.post(
        "/maintenance/purge-inactive",
        &app.admin,
        json!({"confirm": true}),
    )
    .await;

    let (status, answer) = app
        .post(
            "/maintenance/purge-inactive",
            &app.admin,
            json!({"dry_run": true}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["count"], 0);
    assert_eq!(items(&answer).len(), 0);
}

#[tokio::test]
async fn r54_purge_with_dry_run_false_and_no_confirmation_is_422() {
    let app = spawn_app().await;
    let fixture = fixture(&app).await;

    let reply = app
        .request(
            Method::POST,
            "/maintenance/purge-inactive",
            &app.admin,
            json!({"dry_run": false}),
        )
        .await;

    assert_problem(&reply, 422);
    let (status, _) = app
        .get(&format!("/enrollments/{}", fixture.target), &app.admin)
        .await;
    assert_eq!(status, 200);
}
