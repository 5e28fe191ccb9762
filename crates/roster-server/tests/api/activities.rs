//! Activities of the four kinds, their fields and list filters.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_field_error, assert_problem, id, item_ids, spawn_app};

#[tokio::test]
async fn an_online_course_is_created_with_the_documented_defaults() {
    let app = spawn_app().await;

    let (status, activity) = app
        .post(
            "/activities",
            &app.admin,
            json!({"title": "Fire safety", "kind": "online_course"}),
        )
        .await;

    assert_eq!(status, 201, "{activity}");
    assert!(activity["id"].is_i64());
    assert_eq!(activity["title"], "Fire safety");
    assert_eq!(activity["kind"], "online_course");
    assert_eq!(activity["active"], true);
    assert_eq!(activity["in_catalog"], true);
    assert_eq!(activity["allow_failure"], false);
    assert_eq!(activity["prerequisite_ids"], json!([]));
    assert_eq!(activity["item_ids"], json!([]));
    assert_eq!(activity["auto_enrollment"], Value::Null);
    assert_eq!(activity["post_enrollments"], json!([]));
    let url = activity["enrollment_url"]
        .as_str()
        .expect("an enrollment_url");
    assert!(
        url.starts_with("/api/v1/enroll/") && url.len() > "/api/v1/enroll/".len(),
        "{url}"
    );
}

#[tokio::test]
async fn an_instructor_led_course_keeps_its_flags_and_prerequisites() {
    let app = spawn_app().await;
    let basics = app.create_activity("Basics", "online_course").await;

    let activity = app
        .create_activity_with(json!({
            "title": "Workshop",
            "kind": "instructor_led",
            "active": false,
            "in_catalog": false,
            "allow_failure": true,
            "prerequisite_ids": [basics],
        }))
        .await;

    assert_eq!(activity["kind"], "instructor_led");
    assert_eq!(activity["active"], false);
    assert_eq!(activity["in_catalog"], false);
    assert_eq!(activity["allow_failure"], true);
    assert_eq!(activity["prerequisite_ids"], json!([basics]));
}

#[tokio::test]
async fn a_curriculum_keeps_its_courses_in_order() {
    let app = spawn_app().await;
    let second = app.create_activity("Second", "online_course").await;
    let first = app.create_activity("First", "instructor_led").await;

    let curriculum = app
        .create_activity_with(
            json!({"title": "Path", "kind": "curriculum", "item_ids": [first, second]}),
        )
        .await;

    assert_eq!(curriculum["kind"], "curriculum");
    assert_eq!(curriculum["item_ids"], json!([first, second]));
    let (_, fetched) = app
        .get(&format!("/activities/{}", id(&curriculum)), &app.admin)
        .await;
    assert_eq!(fetched["item_ids"], json!([first, second]));
}

#[tokio::test]
async fn a_course_bundle_keeps_its_courses() {
    let app = spawn_app().await;
    let one = app.create_activity("One", "online_course").await;
    let two = app.create_activity("Two", "online_course").await;

    let bundle = app
        .create_activity_with(
            json!({"title": "Pack", "kind": "course_bundle", "item_ids": [one, two]}),
        )
        .await;

    assert_eq!(bundle["kind"], "course_bundle");
    assert_eq!(bundle["item_ids"], json!([one, two]));
}

#[tokio::test]
async fn item_ids_on_a_course_are_refused_with_422() {
    let app = spawn_app().await;
    let other = app.create_activity("Other", "online_course").await;

    let reply = app
        .request(
            Method::POST,
            "/activities",
            &app.admin,
            json!({"title": "Course", "kind": "online_course", "item_ids": [other]}),
        )
        .await;

    assert_problem(&reply, 422);
}

#[tokio::test]
async fn a_curriculum_item_that_is_not_a_course_is_refused_with_422() {
    let app = spawn_app().await;
    let inner = app.create_activity("Inner path", "curriculum").await;

    let reply = app
        .request(
            Method::POST,
            "/activities",
            &app.admin,
            json!({"title": "Outer path", "kind": "curriculum", "item_ids": [inner]}),
        )
        .await;

    assert_problem(&reply, 422);
}

#[tokio::test]
async fn an_unknown_prerequisite_is_refused() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::POST,
            "/activities",
            &app.admin,
            json!({"title": "Orphan", "kind": "online_course", "prerequisite_ids": [777777]}),
        )
        .await;

    assert!(
        reply.status == 404 || reply.status == 422,
        "{}",
        reply.text()
    );
    assert_problem(&reply, reply.status);
}

#[tokio::test]
async fn an_unknown_kind_is_422_naming_the_field() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::POST,
            "/activities",
            &app.admin,
            json!({"title": "Pod", "kind": "podcast"}),
        )
        .await;

    assert_field_error(&reply, "kind");
}

#[tokio::test]
async fn patching_an_activity_changes_its_flags_and_title() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Draft", "online_course").await;

    let (status, activity) = app
        .patch(
            &format!("/activities/{activity_id}"),
            &app.admin,
            json!({"title": "Final", "active": false, "in_catalog": false}),
        )
        .await;

    assert_eq!(status, 200, "{activity}");
    assert_eq!(activity["title"], "Final");
    assert_eq!(activity["active"], false);
    assert_eq!(activity["in_catalog"], false);
    assert_eq!(activity["kind"], "online_course");
}

#[tokio::test]
async fn listing_activities_filters_by_kind() {
    let app = spawn_app().await;
    let course = app.create_activity("A course", "online_course").await;
    let curriculum = app.create_activity("A curriculum", "curriculum").await;
    let bundle = app.create_activity("A bundle", "course_bundle").await;

    let (status, curricula) = app.get("/activities?kind=curriculum", &app.admin).await;
    let (_, bundles) = app.get("/activities?kind=course_bundle", &app.admin).await;
    let (_, courses) = app.get("/activities?kind=online_course", &app.admin).await;

    assert_eq!(status, 200, "{curricula}");
    assert_eq!(item_ids(&curricula), vec![curriculum]);
    assert_eq!(item_ids(&bundles), vec![bundle]);
    assert_eq!(item_ids(&courses), vec![course]);
}

#[tokio::test]
async fn listing_activities_filters_by_search_text() {
    let app = spawn_app().await;
    let forklift = app
        .create_activity("Forklift driving", "instructor_led")
        .await;
    app.create_activity("Data privacy", "online_course").await;

    let (status, list) = app.get("/activities?q=forklift", &app.admin).await;

    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![forklift]);
}

#[tokio::test]
async fn an_unknown_activity_is_404() {
    let app = spawn_app().await;

    let reply = app
        .request(Method::GET, "/activities/555555", &app.admin, Value::Null)
        .await;

    assert_problem(&reply, 404);
}
