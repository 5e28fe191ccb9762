//! The catalog and self-enrollment (R1, R3, R4).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, id, item_ids, items, spawn_app};

#[tokio::test]
async fn r3_the_catalog_lists_only_active_activities_in_the_catalog() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("browser").await;
    let listed = app.create_activity("Listed", "online_course").await;
    let hidden = app
        .create_activity_with(
            json!({"title": "Hidden", "kind": "online_course", "in_catalog": false}),
        )
        .await;
    let retired = app
        .create_activity_with(json!({"title": "Retired", "kind": "online_course", "active": false}))
        .await;
    let path = app.create_activity("Path", "curriculum").await;

    let (status, catalog) = app.get("/catalog", &token).await;

    assert_eq!(status, 200, "{catalog}");
    let mut ids = item_ids(&catalog);
    ids.sort();
    assert_eq!(ids, vec![listed, path]);
    assert!(!ids.contains(&id(&hidden)) && !ids.contains(&id(&retired)));
}

#[tokio::test]
async fn r3_an_activity_leaves_the_catalog_when_deactivated() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("watcher").await;
    let activity_id = app.create_activity("Fading", "online_course").await;
    app.patch(
        &format!("/activities/{activity_id}"),
        &app.admin,
        json!({"active": false}),
    )
    .await;

    let (status, catalog) = app.get("/catalog", &token).await;

    assert_eq!(status, 200, "{catalog}");
    assert!(!item_ids(&catalog).contains(&activity_id), "{catalog}");
}

#[tokio::test]
async fn r1_self_enrollment_from_the_catalog_is_elected_with_source_self() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("eager").await;
    let activity_id = app.create_activity("Optional", "online_course").await;

    let (status, answer) = app
        .post(
            "/me/enrollments",
            &token,
            json!({"activity_id": activity_id}),
        )
        .await;

    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["outcome"], "created");
    let enrollment = &answer["enrollment"];
    assert_eq!(enrollment["user_id"], user_id);
    assert_eq!(enrollment["activity_id"], activity_id);
    assert_eq!(enrollment["type"], "elected");
    assert_eq!(enrollment["status"], "in_progress");
    assert_eq!(enrollment["source"], json!({"kind": "self"}));
}

#[tokio::test]
async fn r2_self_enrolling_twice_reports_already_enrolled_with_the_open_enrollment() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("repeat").await;
    let activity_id = app.create_activity("Once", "online_course").await;
    let body = json!({"activity_id": activity_id});
    let (status, first) = app.post("/me/enrollments", &token, body.clone()).await;
    assert_eq!(status, 201, "{first}");

    let (status, again) = app.post("/me/enrollments", &token, body).await;

    assert_eq!(status, 200, "{again}");
    assert_eq!(again["outcome"], "already_enrolled");
    assert_eq!(again["enrollment"], first["enrollment"]);
    let (_, list) = app
        .get(&format!("/users/{user_id}/enrollments"), &app.admin)
        .await;
    assert_eq!(items(&list).len(), 1);
}

#[tokio::test]
async fn r3_self_enrollment_outside_the_catalog_is_422() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("curious").await;
    let hidden = app
        .create_activity_with(
            json!({"title": "Unlisted", "kind": "online_course", "in_catalog": false}),
        )
        .await;

    let reply = app
        .request(
            Method::POST,
            "/me/enrollments",
            &token,
            json!({"activity_id": id(&hidden)}),
        )
        .await;

    assert_problem(&reply, 422);
}

#[tokio::test]
async fn r3_self_enrollment_in_an_inactive_activity_is_422() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("late").await;
    let retired = app
        .create_activity_with(json!({"title": "Old", "kind": "online_course", "active": false}))
        .await;

    let reply = app
        .request(
            Method::POST,
            "/me/enrollments",
            &token,
            json!({"activity_id": id(&retired)}),
        )
        .await;

    assert_problem(&reply, 422);
}

#[tokio::test]
async fn r1_self_enrollment_in_an_unknown_activity_is_404() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("lost").await;

    let reply = app
        .request(
            Method::POST,
            "/me/enrollments",
            &token,
            json!({"activity_id": 464646}),
        )
        .await;

    assert_problem(&reply, 404);
}

#[tokio::test]
async fn r1_the_enrollment_url_enrolls_as_elected_with_source_url_even_outside_the_catalog() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("linked").await;
    let activity = app
        .create_activity_with(
            json!({"title": "By link", "kind": "online_course", "in_catalog": false}),
        )
        .await;
    let url = activity["enrollment_url"]
        .as_str()
        .expect("enrollment_url")
        .to_string();

    let (status, answer) = app.post(&url, &token, Value::Null).await;

    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["outcome"], "created");
    let enrollment = &answer["enrollment"];
    assert_eq!(enrollment["user_id"], user_id);
    assert_eq!(enrollment["activity_id"], id(&activity));
    assert_eq!(enrollment["type"], "elected");
    assert_eq!(enrollment["source"], json!({"kind": "url"}));
}

#[tokio::test]
async fn r3_the_enrollment_url_of_an_inactive_activity_is_refused() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("too-late").await;
    let activity = app
        .create_activity_with(json!({"title": "Closed", "kind": "online_course"}))
        .await;
    app.patch(
        &format!("/activities/{}", id(&activity)),
        &app.admin,
        json!({"active": false}),
    )
    .await;
    let url = activity["enrollment_url"]
        .as_str()
        .expect("enrollment_url")
        .to_string();

    let reply = app.request(Method::POST, &url, &token, Value::Null).await;

    assert_problem(&reply, 422);
}

#[tokio::test]
async fn r1_an_unknown_enrollment_token_is_404() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("guesser").await;

    let reply = app
        .request(Method::POST, "/enroll/not-a-token", &token, Value::Null)
        .await;

    assert_problem(&reply, 404);
}

#[tokio::test]
async fn r4_missing_prerequisites_refuse_self_enrollment_and_are_named() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("student").await;
    let done = app.create_activity("Intro done", "online_course").await;
    let missing = app
        .create_activity("Advanced welding", "online_course")
        .await;
    let target = app
        .create_activity_with(json!({
            "title": "Master class",
            "kind": "online_course",
            "prerequisite_ids": [done, missing],
        }))
        .await;
    app.enroll_one(done, user_id, json!({"status": "passed"}))
        .await;

    let reply = app
        .request(
            Method::POST,
            "/me/enrollments",
            &token,
            json!({"activity_id": id(&target)}),
        )
        .await;

    assert_problem(&reply, 422);
    assert_eq!(
        reply.json["missing_prerequisite_ids"],
        json!([missing]),
        "{}",
        reply.text()
    );
    let detail = reply.json["detail"].as_str().expect("a detail");
    assert!(detail.contains("Advanced welding"), "{detail}");
    assert!(!detail.contains("Intro done"), "{detail}");
}

#[tokio::test]
async fn r4_an_open_prerequisite_enrollment_does_not_count_as_passed() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("midway").await;
    let basics = app.create_activity("Basics", "online_course").await;
    let target = app
        .create_activity_with(
            json!({"title": "Next", "kind": "online_course", "prerequisite_ids": [basics]}),
        )
        .await;
    app.enroll_one(basics, user_id, json!({})).await;

    let reply = app
        .request(
            Method::POST,
            "/me/enrollments",
            &token,
            json!({"activity_id": id(&target)}),
        )
        .await;

    assert_problem(&reply, 422);
    assert_eq!(reply.json["missing_prerequisite_ids"], json!([basics]));
}

#[tokio::test]
async fn r4_self_enrollment_succeeds_once_every_prerequisite_is_passed() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("ready").await;
    let basics = app.create_activity("Basics", "online_course").await;
    let target = app
        .create_activity_with(
            json!({"title": "Next", "kind": "online_course", "prerequisite_ids": [basics]}),
        )
        .await;
    let basics_enrollment = app.enroll_one(basics, user_id, json!({})).await;
    app.patch(
        &format!("/enrollments/{}", id(&basics_enrollment)),
        &app.admin,
        json!({"status": "passed"}),
    )
    .await;

    let (status, answer) = app
        .post(
            "/me/enrollments",
            &token,
            json!({"activity_id": id(&target)}),
        )
        .await;

    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["enrollment"]["type"], "elected");
}

#[tokio::test]
async fn r4_prerequisites_gate_the_enrollment_url_too() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("linker").await;
    let basics = app.create_activity("Basics", "online_course").await;
    let target = app
        .create_activity_with(
            json!({"title": "Linked next", "kind": "online_course", "prerequisite_ids": [basics]}),
        )
        .await;
    let url = target["enrollment_url"]
        .as_str()
        .expect("enrollment_url")
        .to_string();

    let reply = app.request(Method::POST, &url, &token, Value::Null).await;

    assert_problem(&reply, 422);
    assert_eq!(reply.json["missing_prerequisite_ids"], json!([basics]));
}

#[tokio::test]
async fn r4_administrator_enrollment_bypasses_prerequisites() {
    let app = spawn_app().await;
    let user_id = app.create_user("fast-track", &[]).await;
    let basics = app.create_activity("Basics", "online_course").await;
    let target = app
        .create_activity_with(
            json!({"title": "Next", "kind": "online_course", "prerequisite_ids": [basics]}),
        )
        .await;

    let results = app
        .enroll(id(&target), &[user_id], json!({"type": "required"}))
        .await;

    assert_eq!(results[0]["outcome"], "created", "{results:?}");
    assert_eq!(results[0]["enrollment"]["type"], "required");
}

#[tokio::test]
async fn r2_the_enrollment_url_with_an_open_enrollment_already_there_reports_already_enrolled() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("twice-linked").await;
    let activity = app
        .create_activity_with(json!({"title": "Linked twice", "kind": "online_course"}))
        .await;
    let open = app.enroll_one(id(&activity), user_id, json!({})).await;
    let url = activity["enrollment_url"]
        .as_str()
        .expect("enrollment_url")
        .to_string();

    let (status, answer) = app.post(&url, &token, Value::Null).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "already_enrolled");
    assert_eq!(answer["enrollment"]["id"], open["id"]);
    assert_eq!(answer["enrollment"]["source"], open["source"]);
    let (_, list) = app
        .get(&format!("/users/{user_id}/enrollments"), &app.admin)
        .await;
    assert_eq!(items(&list).len(), 1);
}
