//! R18: administrators' changes are evaluated at once; CSV imports wait for
//! the nightly sweep unless `integration_evaluation` is `immediate`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, id};
use crate::support::{
    app_at, course, groups_rule, in_activity, member, of, only, set_rule, user_ids,
};

async fn import(app: &TestApp, csv: &str) -> Vec<Value> {
    let reply = app
        .request_raw(Method::POST, "/imports/users", &app.admin, "text/csv", csv)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let results = reply.json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {}", reply.text()))
        .clone();
    for result in &results {
        assert_ne!(result["outcome"], "error", "{result}");
    }
    results
}

async fn user_named(app: &TestApp, username: &str) -> i64 {
    let (status, list) = app.get(&format!("/users?q={username}"), &app.admin).await;
    assert_eq!(status, 200, "{list}");
    crate::helpers::items(&list)
        .iter()
        .find(|user| user["username"] == username)
        .map(id)
        .unwrap_or_else(|| panic!("no user {username}: {list}"))
}

#[tokio::test]
async fn r18_creating_a_user_through_the_api_enrolls_them_in_the_same_request() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let activity = course(&app, "Onboarding").await;
    // Saved since the last sweep: no sweep has run with it.
    set_rule(
        &app,
        activity,
        groups_rule(
            &[staff],
            json!({"kind": "one_time", "due": {"within_days": 30}}),
        ),
    )
    .await;

    let newcomer = member(&app, "newcomer", &[staff], json!({})).await;

    let enrollment = only(&app, newcomer, activity).await;
    assert_eq!(enrollment["enrolled_at"], "2030-01-10T10:00:00Z");
    assert_eq!(enrollment["due_on"], "2030-02-09");
    assert_eq!(enrollment["period"], "once");
    assert_eq!(enrollment["type"], "required");
    let outsider = member(&app, "outsider", &[], json!({})).await;
    assert!(of(&app, outsider, activity).await.is_empty());
}

#[tokio::test]
async fn r18_adding_a_user_to_a_group_activating_them_or_changing_hired_on_enrolls_them_at_once() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let by_put = member(&app, "put", &[], json!({"hired_on": "2029-05-01"})).await;
    let by_patch = member(&app, "patch", &[], json!({"hired_on": "2029-05-01"})).await;
    let reactivated = member(
        &app,
        "back",
        &[staff],
        json!({"active": false, "hired_on": "2029-05-01"}),
    )
    .await;
    let rehired = member(&app, "rehired", &[staff], json!({"hired_on": "2020-01-01"})).await;
    let activity = course(&app, "Annual").await;
    set_rule(
        &app,
        activity,
        json!({"scope": "groups", "group_ids": [staff], "hired_after": "2029-01-01",
               "recurrence": {"kind": "annual", "due_each_year_on": "06-30"}}),
    )
    .await;
    assert!(in_activity(&app, activity).await.is_empty());

    let (status, body) = app
        .put(
            &format!("/groups/{staff}/members/{by_put}"),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(user_ids(&in_activity(&app, activity).await), vec![by_put]);

    let (status, body) = app
        .patch(
            &format!("/users/{by_patch}"),
            &app.admin,
            json!({"group_ids": [staff]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch(
            &format!("/users/{reactivated}"),
            &app.admin,
            json!({"active": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch(
            &format!("/users/{rehired}"),
            &app.admin,
            json!({"hired_on": "2029-09-01"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let enrollments = in_activity(&app, activity).await;
    assert_eq!(
        user_ids(&enrollments),
        vec![by_put, by_patch, reactivated, rehired]
    );
    for enrollment in &enrollments {
        assert_eq!(
            enrollment["enrolled_at"], "2030-01-10T10:00:00Z",
            "{enrollment}"
        );
        assert_eq!(enrollment["period"], "2030-06-30");
        assert_eq!(enrollment["due_on"], "2030-06-30");
    }
}

#[tokio::test]
async fn r18_csv_import_waits_for_the_nightly_sweep() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let sales = app.create_group("Sales").await;
    let existing = member(&app, "dave", &[], json!({})).await;
    let activity = course(&app, "Sales basics").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[sales], json!({"kind": "one_time", "due": null})),
    )
    .await;

    let results = import(
        &app,
        "username,email,display_name,active,hired_on,groups\n\
         carol,carol@example.com,Carol,true,2029-05-01,Sales\n\
         dave,dave@example.com,Dave,true,,Sales\n",
    )
    .await;
    assert_eq!(results.len(), 2, "{results:?}");
    let carol = user_named(&app, "carol").await;

    assert!(
        in_activity(&app, activity).await.is_empty(),
        "imported users wait for the nightly sweep"
    );
    app.set_clock("2030-01-11T01:59:00Z").await;
    assert!(in_activity(&app, activity).await.is_empty());

    app.set_clock("2030-01-11T02:00:00Z").await;
    let enrollments = in_activity(&app, activity).await;
    let mut expected = vec![carol, existing];
    expected.sort_unstable();
    assert_eq!(user_ids(&enrollments), expected);
    for enrollment in &enrollments {
        assert_eq!(enrollment["enrolled_at"], "2030-01-11T02:00:00Z");
    }
}

#[tokio::test]
async fn r18_csv_import_enrolls_at_once_when_integration_evaluation_is_immediate() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let sales = app.create_group("Sales").await;
    let existing = member(&app, "dave", &[], json!({})).await;
    let activity = course(&app, "Sales basics").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[sales], json!({"kind": "one_time", "due": null})),
    )
    .await;
    let (status, settings) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"integration_evaluation": "immediate"}),
        )
        .await;
    assert_eq!(status, 200, "{settings}");

    import(
        &app,
        "groups,username,email\nSales,carol,carol@example.com\nSales,dave,dave@example.com\n",
    )
    .await;
    let carol = user_named(&app, "carol").await;

    let enrollments = in_activity(&app, activity).await;
    let mut expected = vec![carol, existing];
    expected.sort_unstable();
    assert_eq!(user_ids(&enrollments), expected);
    for enrollment in &enrollments {
        assert_eq!(enrollment["enrolled_at"], "2030-01-10T10:00:00Z");
    }
}
