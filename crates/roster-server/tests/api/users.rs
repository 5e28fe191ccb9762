//! Users: create, update, list with filters and paging; API tokens.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, encode, id, item_ids, items, spawn_app};

#[tokio::test]
async fn creating_a_user_answers_201_with_every_field() {
    let app = spawn_app().await;
    let group_id = app.create_group("Sales").await;

    let (status, user) = app
        .post(
            "/users",
            &app.admin,
            json!({
                "username": "ada",
                "email": "ada@example.com",
                "display_name": "Ada Lovelace",
                "active": true,
                "hired_on": "2029-04-01",
                "external_id": "EXT-1",
                "group_ids": [group_id],
                "role": "learner",
            }),
        )
        .await;

    assert_eq!(status, 201, "{user}");
    assert!(user["id"].is_i64(), "{user}");
    assert_eq!(user["username"], "ada");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["display_name"], "Ada Lovelace");
    assert_eq!(user["active"], true);
    assert_eq!(user["hired_on"], "2029-04-01");
    assert_eq!(user["external_id"], "EXT-1");
    assert_eq!(user["group_ids"], json!([group_id]));
    assert_eq!(user["role"], "learner");
    let created_at = user["created_at"].as_str().expect("created_at is a string");
    created_at
        .parse::<jiff::Timestamp>()
        .expect("created_at is RFC 3339");

    let (status, fetched) = app.get(&format!("/users/{}", id(&user)), &app.admin).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, user);
}

#[tokio::test]
async fn a_user_created_with_only_a_username_gets_the_documented_defaults() {
    let app = spawn_app().await;

    let (status, user) = app
        .post("/users", &app.admin, json!({"username": "bare"}))
        .await;

    assert_eq!(status, 201, "{user}");
    assert_eq!(user["active"], true);
    assert_eq!(user["role"], "learner");
    assert_eq!(user["hired_on"], Value::Null);
    assert_eq!(user["external_id"], Value::Null);
    assert_eq!(user["group_ids"], json!([]));
}

#[tokio::test]
async fn a_duplicate_username_is_a_409_conflict() {
    let app = spawn_app().await;
    app.create_user("grace", &[]).await;

    let reply = app
        .request(
            Method::POST,
            "/users",
            &app.admin,
            json!({"username": "grace"}),
        )
        .await;

    assert_problem(&reply, 409);
}

#[tokio::test]
async fn a_duplicate_external_id_is_a_409_conflict() {
    let app = spawn_app().await;
    let body = json!({"username": "one", "external_id": "E-7"});
    assert_eq!(app.post("/users", &app.admin, body).await.0, 201);

    let reply = app
        .request(
            Method::POST,
            "/users",
            &app.admin,
            json!({"username": "two", "external_id": "E-7"}),
        )
        .await;

    assert_problem(&reply, 409);
}

#[tokio::test]
async fn patching_a_user_changes_only_the_given_fields() {
    let app = spawn_app().await;
    let user_id = app.create_user("linus", &[]).await;

    let (status, user) = app
        .patch(
            &format!("/users/{user_id}"),
            &app.admin,
            json!({"display_name": "Linus T.", "active": false, "hired_on": "2030-01-15"}),
        )
        .await;

    assert_eq!(status, 200, "{user}");
    assert_eq!(user["display_name"], "Linus T.");
    assert_eq!(user["active"], false);
    assert_eq!(user["hired_on"], "2030-01-15");
    assert_eq!(user["email"], "linus@example.com");
    assert_eq!(user["username"], "linus");
    let (_, fetched) = app.get(&format!("/users/{user_id}"), &app.admin).await;
    assert_eq!(fetched["display_name"], "Linus T.");
    assert_eq!(fetched["active"], false);
}

#[tokio::test]
async fn patching_group_ids_replaces_the_memberships() {
    let app = spawn_app().await;
    let first = app.create_group("First").await;
    let second = app.create_group("Second").await;
    let user_id = app.create_user("member", &[first]).await;

    let (status, user) = app
        .patch(
            &format!("/users/{user_id}"),
            &app.admin,
            json!({"group_ids": [second]}),
        )
        .await;

    assert_eq!(status, 200, "{user}");
    assert_eq!(user["group_ids"], json!([second]));
}

#[tokio::test]
async fn patching_an_unknown_user_is_404() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::PATCH,
            "/users/987654",
            &app.admin,
            json!({"display_name": "x"}),
        )
        .await;

    assert_problem(&reply, 404);
}

#[tokio::test]
async fn listing_users_filters_by_search_text() {
    let app = spawn_app().await;
    let zelda = app.create_user("zelda", &[]).await;
    app.create_user("mario", &[]).await;

    let (status, list) = app.get("/users?q=zeld", &app.admin).await;

    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![zelda]);
}

#[tokio::test]
async fn listing_users_includes_inactive_ones_unless_active_filters() {
    let app = spawn_app().await;
    let awake = app.create_user("filter-awake", &[]).await;
    let asleep = app.create_user("filter-asleep", &[]).await;
    app.patch(
        &format!("/users/{asleep}"),
        &app.admin,
        json!({"active": false}),
    )
    .await;

    let (_, all) = app.get("/users?q=filter-", &app.admin).await;
    let (_, active) = app.get("/users?q=filter-&active=true", &app.admin).await;
    let (_, inactive) = app.get("/users?q=filter-&active=false", &app.admin).await;

    let mut all_ids = item_ids(&all);
    all_ids.sort();
    assert_eq!(all_ids, vec![awake, asleep]);
    assert_eq!(item_ids(&active), vec![awake]);
    assert_eq!(item_ids(&inactive), vec![asleep]);
}

#[tokio::test]
async fn listing_users_filters_by_group() {
    let app = spawn_app().await;
    let group_id = app.create_group("Engineering").await;
    let inside = app.create_user("inside", &[group_id]).await;
    app.create_user("outside", &[]).await;

    let (status, list) = app
        .get(&format!("/users?group_id={group_id}"), &app.admin)
        .await;

    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![inside]);
}

#[tokio::test]
async fn listing_users_pages_with_limit_and_cursor() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for name in ["pager-a", "pager-b", "pager-c"] {
        created.push(app.create_user(name, &[]).await);
    }

    let (status, first) = app.get("/users?q=pager&limit=2", &app.admin).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(items(&first).len(), 2);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a cursor after a full page");
    let (status, second) = app
        .get(
            &format!("/users?q=pager&limit=2&cursor={}", encode(cursor)),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(items(&second).len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);

    let mut seen = item_ids(&first);
    seen.extend(item_ids(&second));
    seen.sort();
    assert_eq!(seen, created);
}

#[tokio::test]
async fn a_learner_token_authenticates_the_learner() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("learner").await;

    let (status, user) = app.get(&format!("/users/{user_id}"), &token).await;

    assert_eq!(status, 200, "{user}");
    assert_eq!(user["username"], "learner");
}

#[tokio::test]
async fn issuing_a_token_answers_201_with_the_token() {
    let app = spawn_app().await;
    let user_id = app.create_user("tokened", &[]).await;

    let (status, body) = app
        .post(&format!("/users/{user_id}/tokens"), &app.admin, json!({}))
        .await;

    assert_eq!(status, 201, "{body}");
    assert!(
        body["token"]
            .as_str()
            .is_some_and(|token| token.len() >= 16),
        "{body}"
    );
}

#[tokio::test]
async fn a_request_without_a_token_is_401() {
    let app = spawn_app().await;

    let reply = app.request(Method::GET, "/users", "", Value::Null).await;

    assert_problem(&reply, 401);
}

#[tokio::test]
async fn a_request_with_an_unknown_token_is_401() {
    let app = spawn_app().await;

    let reply = app
        .request(Method::GET, "/users", "not-a-real-token", Value::Null)
        .await;

    assert_problem(&reply, 401);
}

#[tokio::test]
async fn renaming_a_user_to_a_taken_username_is_a_409_conflict() {
    let app = spawn_app().await;
    app.create_user("taken", &[]).await;
    let user_id = app.create_user("renamer", &[]).await;

    let reply = app
        .request(
            Method::PATCH,
            &format!("/users/{user_id}"),
            &app.admin,
            json!({"username": "taken"}),
        )
        .await;

    assert_problem(&reply, 409);
    let (_, user) = app.get(&format!("/users/{user_id}"), &app.admin).await;
    assert_eq!(user["username"], "renamer");
}
