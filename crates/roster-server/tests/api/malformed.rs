//! Malformed input of every kind gets a clear 4xx problem, never a 5xx (§3, §5).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    assert_client_error, assert_field_error, assert_problem, into_reply, spawn_app,
};

#[tokio::test]
async fn a_body_that_is_not_json_is_400() {
    let app = spawn_app().await;

    for body in ["{not json", "[1, 2", "username=x", r#"{"username": "x""#] {
        let reply = app
            .request_raw(Method::POST, "/users", &app.admin, "application/json", body)
            .await;
        assert_problem(&reply, 400);
    }
}

#[tokio::test]
async fn a_field_of_the_wrong_json_type_is_400() {
    let app = spawn_app().await;

    let attempts = [
        ("/users", json!({"username": 42})),
        ("/users", json!({"username": "typed", "active": "yes"})),
        ("/users", json!({"username": "typed", "group_ids": "1,2"})),
        (
            "/activities",
            json!({"title": ["not", "text"], "kind": "online_course"}),
        ),
        ("/groups", json!({"name": {"nested": true}})),
    ];
    for (path, body) in attempts {
        let reply = app
            .request(Method::POST, path, &app.admin, body.clone())
            .await;
        assert_eq!(reply.status, 400, "POST {path} {body}: {}", reply.text());
        assert_problem(&reply, 400);
    }
}

#[tokio::test]
async fn a_json_array_where_an_object_is_expected_is_400() {
    let app = spawn_app().await;

    let reply = app
        .request(Method::POST, "/users", &app.admin, json!(["username", "x"]))
        .await;

    assert_problem(&reply, 400);
}

#[tokio::test]
async fn an_unknown_enum_value_is_422_with_field_errors() {
    let app = spawn_app().await;
    let user_id = app.create_user("enum", &[]).await;
    let activity_id = app.create_activity("Enum", "online_course").await;

    let role = app
        .request(
            Method::POST,
            "/users",
            &app.admin,
            json!({"username": "boss", "role": "superuser"}),
        )
        .await;
    assert_field_error(&role, "role");
    let status = app
        .request(
            Method::POST,
            &format!("/activities/{activity_id}/enrollments"),
            &app.admin,
            json!({"user_ids": [user_id], "status": "finished"}),
        )
        .await;
    assert_field_error(&status, "status");
    let kind = app
        .request(
            Method::POST,
            &format!("/activities/{activity_id}/enrollments"),
            &app.admin,
            json!({"user_ids": [user_id], "type": "mandatory"}),
        )
        .await;
    assert_field_error(&kind, "type");
}

#[tokio::test]
async fn an_unknown_enum_value_in_a_query_filter_is_422() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::GET,
            "/enrollments?status=finished",
            &app.admin,
            Value::Null,
        )
        .await;

    assert_problem(&reply, 422);
}

#[tokio::test]
async fn an_impossible_date_is_422() {
    let app = spawn_app().await;
    let user_id = app.create_user("calendar", &[]).await;
    let activity_id = app.create_activity("Dates", "online_course").await;

    let due = app
        .request(
            Method::POST,
            &format!("/activities/{activity_id}/enrollments"),
            &app.admin,
            json!({"user_ids": [user_id], "due_on": "2030-02-30"}),
        )
        .await;
    assert_field_error(&due, "due_on");
    let hired = app
        .request(
            Method::POST,
            "/users",
            &app.admin,
            json!({"username": "hire", "hired_on": "2030-02-30"}),
        )
        .await;
    assert_field_error(&hired, "hired_on");
    let badly_spelled = app
        .request(
            Method::POST,
            "/users",
            &app.admin,
            json!({"username": "hire2", "hired_on": "30/01/2030"}),
        )
        .await;
    assert_field_error(&badly_spelled, "hired_on");
    let (_, list) = app
        .get(&format!("/users/{user_id}/enrollments"), &app.admin)
        .await;
    assert_eq!(list["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn an_impossible_timestamp_for_the_clock_is_422() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::POST,
            "/clock",
            &app.admin,
            json!({"now": "2030-02-30T09:00:00Z"}),
        )
        .await;

    assert_problem(&reply, 422);
}

#[tokio::test]
async fn a_missing_required_field_is_422() {
    let app = spawn_app().await;

    let no_username = app
        .request(
            Method::POST,
            "/users",
            &app.admin,
            json!({"email": "x@example.com"}),
        )
        .await;
    assert_field_error(&no_username, "username");
    let no_title = app
        .request(
            Method::POST,
            "/activities",
            &app.admin,
            json!({"kind": "online_course"}),
        )
        .await;
    assert_field_error(&no_title, "title");
    let no_kind = app
        .request(
            Method::POST,
            "/activities",
            &app.admin,
            json!({"title": "Kindless"}),
        )
        .await;
    assert_field_error(&no_kind, "kind");
    let no_name = app
        .request(Method::POST, "/groups", &app.admin, json!({}))
        .await;
    assert_field_error(&no_name, "name");
}

#[tokio::test]
async fn an_empty_username_is_422() {
    let app = spawn_app().await;

    let reply = app
        .request(Method::POST, "/users", &app.admin, json!({"username": ""}))
        .await;

    assert_field_error(&reply, "username");
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let app = spawn_app().await;

    for path in [
        "/users/424242",
        "/users/424242/enrollments",
        "/groups/424242",
        "/activities/424242",
        "/activities/424242/enrollments",
        "/enrollments/424242",
        "/enrollments/424242/attachments",
        "/enrollments/424242/tasks",
        "/enrollments/424242/explain",
    ] {
        let reply = app
            .request(Method::GET, path, &app.admin, Value::Null)
            .await;
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.text());
        assert_problem(&reply, 404);
    }
}

#[tokio::test]
async fn an_unknown_attachment_of_a_known_enrollment_is_404() {
    let app = spawn_app().await;
    let user_id = app.create_user("attached", &[]).await;
    let activity_id = app.create_activity("Attach", "online_course").await;
    let enrollment = app.enroll_one(activity_id, user_id, json!({})).await;

    let reply = app
        .request(
            Method::GET,
            &format!("/enrollments/{}/attachments/424242", enrollment["id"]),
            &app.admin,
            Value::Null,
        )
        .await;

    assert_problem(&reply, 404);
}

#[tokio::test]
async fn huge_negative_and_non_numeric_path_ids_are_4xx() {
    let app = spawn_app().await;

    for id in [
        "99999999999999999999999",
        "-1",
        "0",
        "abc",
        "1.5",
        "%00",
        "9223372036854775807",
    ] {
        for path in [
            format!("/users/{id}"),
            format!("/enrollments/{id}"),
            format!("/activities/{id}"),
        ] {
            let reply = app
                .request(Method::GET, &path, &app.admin, Value::Null)
                .await;
            assert!(
                (400..500).contains(&reply.status),
                "GET {path}: {} {}",
                reply.status,
                reply.text()
            );
            assert_client_error(&reply);
        }
    }
}

#[tokio::test]
async fn huge_and_negative_ids_in_bodies_are_4xx() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Ids", "online_course").await;

    let huge = app
        .request_raw(
            Method::POST,
            &format!("/activities/{activity_id}/enrollments"),
            &app.admin,
            "application/json",
            r#"{"user_ids": [99999999999999999999999]}"#,
        )
        .await;
    assert_client_error(&huge);
    let negative = app
        .request(
            Method::POST,
            "/me/enrollments",
            &app.admin,
            json!({"activity_id": -5}),
        )
        .await;
    assert_client_error(&negative);
}

#[tokio::test]
async fn a_limit_outside_the_allowed_range_is_4xx_or_capped() {
    let app = spawn_app().await;

    for limit in ["-1", "abc", "1000000"] {
        let reply = app
            .request(
                Method::GET,
                &format!("/users?limit={limit}"),
                &app.admin,
                Value::Null,
            )
            .await;
        assert!(
            reply.status == 200 || (400..500).contains(&reply.status),
            "limit={limit}: {}",
            reply.status
        );
        if reply.status != 200 {
            assert_client_error(&reply);
        }
    }
}

#[tokio::test]
async fn a_garbage_cursor_is_4xx() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::GET,
            "/users?cursor=%FF%FEnot-a-cursor",
            &app.admin,
            Value::Null,
        )
        .await;

    assert_client_error(&reply);
}

/// A server may refuse an oversized body as soon as it reads the
/// `Content-Length`, closing the connection while the client still writes; the
/// client then sees a broken pipe instead of the answer. Either way the answer
/// must not be a 5xx and the server must stay up.
#[tokio::test]
async fn an_oversized_json_body_is_413_or_refused_and_the_server_stays_up() {
    let app = spawn_app().await;
    let display_name = "x".repeat(8 * 1024 * 1024);

    let sent = app
        .client
        .post(app.url("/users"))
        .bearer_auth(&app.admin)
        .json(&json!({"username": "big", "display_name": display_name}))
        .send()
        .await;

    if let Ok(response) = sent {
        assert_problem(&into_reply(response).await, 413);
    }
    // A fresh client: the pooled one may still hold the connection the
    // server closed on the oversized request.
    let fresh = reqwest::Client::new();
    let health = fresh
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(health.status().as_u16(), 200);
    let users: Value = fresh
        .get(app.url("/users?q=big"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON list");
    assert_eq!(
        users["items"],
        json!([]),
        "the oversized user was not created"
    );
}

#[tokio::test]
async fn a_boolean_or_date_query_filter_that_does_not_parse_is_4xx() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("query").await;

    for (path, who) in [
        ("/users?active=maybe", app.admin.as_str()),
        ("/users?group_id=abc", app.admin.as_str()),
        ("/enrollments?overdue=sometimes", app.admin.as_str()),
        ("/enrollments?due_from=2030-02-30", app.admin.as_str()),
        ("/me/history?from=yesterday", token.as_str()),
    ] {
        let reply = app.request(Method::GET, path, who, Value::Null).await;
        assert_client_error(&reply);
    }
}

#[tokio::test]
async fn writes_to_unknown_ids_are_404() {
    let app = spawn_app().await;
    let user_id = app.create_user("real", &[]).await;

    let attempts = [
        (Method::DELETE, "/groups/424242".to_string(), Value::Null),
        (
            Method::PATCH,
            "/groups/424242".to_string(),
            json!({"name": "x"}),
        ),
        (
            Method::PUT,
            format!("/groups/424242/members/{user_id}"),
            Value::Null,
        ),
        (
            Method::PATCH,
            "/activities/424242".to_string(),
            json!({"title": "x"}),
        ),
        (
            Method::PATCH,
            "/enrollments/424242".to_string(),
            json!({"status": "dropped"}),
        ),
        (Method::POST, "/users/424242/tokens".to_string(), json!({})),
        (
            Method::POST,
            "/enrollments/424242/tasks".to_string(),
            json!({"title": "x"}),
        ),
        (
            Method::DELETE,
            "/enrollments/424242/attachments/1".to_string(),
            Value::Null,
        ),
    ];
    for (method, path, body) in attempts {
        let reply = app.request(method.clone(), &path, &app.admin, body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text());
        assert_problem(&reply, 404);
    }
}

#[tokio::test]
async fn an_unknown_route_and_an_unsupported_method_answer_problems() {
    let app = spawn_app().await;
    let user_id = app.create_user("routed", &[]).await;

    let unknown = app
        .request(Method::GET, "/no-such-thing", &app.admin, Value::Null)
        .await;
    assert_problem(&unknown, 404);
    let method = app
        .request(
            Method::DELETE,
            &format!("/users/{user_id}"),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_problem(&method, 405);
}

#[tokio::test]
async fn a_json_body_sent_without_a_json_content_type_is_4xx() {
    let app = spawn_app().await;

    let reply = app
        .request_raw(
            Method::POST,
            "/users",
            &app.admin,
            "text/plain",
            r#"{"username": "plain"}"#,
        )
        .await;

    assert!(
        reply.status == 201 || reply.status == 400 || reply.status == 415,
        "{}: {}",
        reply.status,
        reply.text()
    );
    if reply.status != 201 {
        assert_problem(&reply, reply.status);
    }
}

#[tokio::test]
async fn a_setting_of_the_wrong_json_type_is_400() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::PATCH,
            "/settings",
            &app.admin,
            json!({"attachment_max_bytes": "big"}),
        )
        .await;

    assert_problem(&reply, 400);
}
