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
async fn an_unknown_prerequisite_is_409_naming_the_field() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::POST,
            "/activities",
            &app.admin,
            json!({"title": "Orphan", "kind": "online_course", "prerequisite_ids": [777777]}),
        )
        .await;

    // docs/decisions.md: a body naming a record that does not exist is 409.
    assert_problem(&reply, 409);
    assert_eq!(
        reply.json["errors"][0]["field"],
        "prerequisite_ids",
        "{}",
        reply.text()
    );
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

/// The fields a 422 names.
fn error_fields(reply: &crate::helpers::Reply) -> Vec<String> {
    assert_problem(reply, 422);
    reply.json["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| error["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_unknown_field_of_an_activity_is_422_naming_it_and_changes_nothing() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Kept", "online_course").await;

    let created = app
        .request(
            Method::POST,
            "/activities",
            &app.admin,
            json!({"title": "Typo", "kind": "online_course", "in_catalogue": false}),
        )
        .await;
    let patched = app
        .request(
            Method::PATCH,
            &format!("/activities/{activity_id}"),
            &app.admin,
            json!({"titel": "Lost"}),
        )
        .await;

    assert_eq!(
        error_fields(&created),
        ["in_catalogue"],
        "{}",
        created.text()
    );
    assert_eq!(error_fields(&patched), ["titel"], "{}", patched.text());
    let (_, list) = app.get("/activities", &app.admin).await;
    assert_eq!(item_ids(&list), vec![activity_id]);
    let (_, fetched) = app
        .get(&format!("/activities/{activity_id}"), &app.admin)
        .await;
    assert_eq!(fetched["title"], "Kept");
}

#[tokio::test]
async fn r12_an_unknown_field_of_a_rule_is_422_naming_it_and_saves_nothing() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Ruled", "online_course").await;
    let target = app.create_activity("Next", "online_course").await;
    let rule_path = format!("/activities/{activity_id}/auto-enrollment");

    let misspelt = app
        .request(
            Method::PUT,
            &rule_path,
            &app.admin,
            json!({"scope": "company", "recurence": {"kind": "one_time"}}),
        )
        .await;
    let other_kind = app
        .request(
            Method::PUT,
            &rule_path,
            &app.admin,
            json!({"scope": "company",
                   "recurrence": {"kind": "annual", "due_each_year_on": "06-30", "months": 3}}),
        )
        .await;
    let previewed = app
        .request(
            Method::POST,
            &format!("{rule_path}/preview"),
            &app.admin,
            json!({"scope": "company", "recurence": {"kind": "one_time"}}),
        )
        .await;
    let post_rule = app
        .request(
            Method::POST,
            &format!("/activities/{activity_id}/post-enrollments"),
            &app.admin,
            json!({"when": "completed", "target_ids": [target], "delay": 3}),
        )
        .await;

    assert_eq!(
        error_fields(&misspelt),
        ["recurence"],
        "{}",
        misspelt.text()
    );
    assert_eq!(
        error_fields(&other_kind),
        ["recurrence.months"],
        "{}",
        other_kind.text()
    );
    assert_eq!(
        error_fields(&previewed),
        ["recurence"],
        "{}",
        previewed.text()
    );
    assert_eq!(error_fields(&post_rule), ["delay"], "{}", post_rule.text());
    let (_, fetched) = app
        .get(&format!("/activities/{activity_id}"), &app.admin)
        .await;
    assert_eq!(fetched["auto_enrollment"], Value::Null, "{fetched}");
    assert_eq!(fetched["post_enrollments"], json!([]), "{fetched}");
}

#[tokio::test]
async fn r10_scope_none_clears_the_rule() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Cleared", "online_course").await;
    let rule_path = format!("/activities/{activity_id}/auto-enrollment");
    let (status, ruled) = app
        .put(
            &rule_path,
            &app.admin,
            json!({"scope": "company", "recurrence": {"kind": "every_months", "months": 6}}),
        )
        .await;
    assert_eq!(status, 200, "{ruled}");
    assert_eq!(ruled["auto_enrollment"]["recurrence"]["months"], 6);

    let (status, cleared) = app
        .put(&rule_path, &app.admin, json!({"scope": "none"}))
        .await;

    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["auto_enrollment"], Value::Null, "{cleared}");
    let (_, fetched) = app
        .get(&format!("/activities/{activity_id}"), &app.admin)
        .await;
    assert_eq!(fetched["auto_enrollment"], Value::Null, "{fetched}");
    // With no rule saved, the preview of the saved rule (no body, or null)
    // has nothing to do.
    let no_body = app
        .request(
            Method::POST,
            &format!("{rule_path}/preview"),
            &app.admin,
            Value::Null,
        )
        .await;
    let null_body = app
        .request_raw(
            Method::POST,
            &format!("{rule_path}/preview"),
            &app.admin,
            "application/json",
            "null",
        )
        .await;
    for reply in [no_body, null_body] {
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json["rule"], Value::Null, "{}", reply.text());
        assert_eq!(reply.json["enroll"], 0, "{}", reply.text());
    }
}
