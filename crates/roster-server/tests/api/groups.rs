//! Groups and membership.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, id, item_ids, spawn_app};

#[tokio::test]
async fn creating_a_group_answers_201_with_no_members() {
    let app = spawn_app().await;

    let (status, group) = app
        .post("/groups", &app.admin, json!({"name": "Nurses"}))
        .await;

    assert_eq!(status, 201, "{group}");
    assert!(group["id"].is_i64());
    assert_eq!(group["name"], "Nurses");
    assert_eq!(group["member_count"], 0);
}

#[tokio::test]
async fn a_duplicate_group_name_is_a_409_conflict() {
    let app = spawn_app().await;
    app.create_group("Drivers").await;

    let reply = app
        .request(
            Method::POST,
            "/groups",
            &app.admin,
            json!({"name": "Drivers"}),
        )
        .await;

    assert_problem(&reply, 409);
}

#[tokio::test]
async fn adding_and_removing_a_member_updates_member_count_and_group_ids() {
    let app = spawn_app().await;
    let group_id = app.create_group("Pilots").await;
    let user_id = app.create_user("amelia", &[]).await;

    let (status, _) = app
        .put(
            &format!("/groups/{group_id}/members/{user_id}"),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (_, group) = app.get(&format!("/groups/{group_id}"), &app.admin).await;
    assert_eq!(group["member_count"], 1, "{group}");
    let (_, user) = app.get(&format!("/users/{user_id}"), &app.admin).await;
    assert_eq!(user["group_ids"], json!([group_id]));

    let (status, _) = app
        .delete(&format!("/groups/{group_id}/members/{user_id}"), &app.admin)
        .await;
    assert_eq!(status, 204);
    let (_, group) = app.get(&format!("/groups/{group_id}"), &app.admin).await;
    assert_eq!(group["member_count"], 0, "{group}");
    let (_, user) = app.get(&format!("/users/{user_id}"), &app.admin).await;
    assert_eq!(user["group_ids"], json!([]));
}

#[tokio::test]
async fn adding_a_member_twice_keeps_one_membership() {
    let app = spawn_app().await;
    let group_id = app.create_group("Twice").await;
    let user_id = app.create_user("twice", &[]).await;
    let path = format!("/groups/{group_id}/members/{user_id}");

    assert_eq!(app.put(&path, &app.admin, Value::Null).await.0, 204);
    assert_eq!(app.put(&path, &app.admin, Value::Null).await.0, 204);

    let (_, group) = app.get(&format!("/groups/{group_id}"), &app.admin).await;
    assert_eq!(group["member_count"], 1, "{group}");
}

#[tokio::test]
async fn member_count_counts_users_created_with_the_group() {
    let app = spawn_app().await;
    let group_id = app.create_group("Counted").await;
    app.create_user("counted-1", &[group_id]).await;
    app.create_user("counted-2", &[group_id]).await;

    let (status, list) = app.get("/groups", &app.admin).await;

    assert_eq!(status, 200, "{list}");
    let group = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|group| group["id"] == group_id)
        .cloned()
        .expect("the group is listed");
    assert_eq!(group["member_count"], 2);
}

#[tokio::test]
async fn adding_an_unknown_user_to_a_group_is_404() {
    let app = spawn_app().await;
    let group_id = app.create_group("Ghosts").await;

    let reply = app
        .request(
            Method::PUT,
            &format!("/groups/{group_id}/members/424242"),
            &app.admin,
            Value::Null,
        )
        .await;

    assert_problem(&reply, 404);
}

#[tokio::test]
async fn renaming_and_deleting_a_group() {
    let app = spawn_app().await;
    let group_id = app.create_group("Old name").await;

    let (status, group) = app
        .patch(
            &format!("/groups/{group_id}"),
            &app.admin,
            json!({"name": "New name"}),
        )
        .await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["name"], "New name");

    let (status, _) = app.delete(&format!("/groups/{group_id}"), &app.admin).await;
    assert_eq!(status, 204);
    let reply = app
        .request(
            Method::GET,
            &format!("/groups/{group_id}"),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_problem(&reply, 404);
    let (_, list) = app.get("/groups", &app.admin).await;
    assert!(!item_ids(&list).contains(&group_id));
}

#[tokio::test]
async fn deleting_a_group_removes_it_from_its_members_group_ids() {
    let app = spawn_app().await;
    let group_id = app.create_group("Doomed").await;
    let user_id = app.create_user("survivor", &[group_id]).await;

    assert_eq!(
        app.delete(&format!("/groups/{group_id}"), &app.admin)
            .await
            .0,
        204
    );

    let (status, user) = app.get(&format!("/users/{user_id}"), &app.admin).await;
    assert_eq!(status, 200);
    assert_eq!(user["group_ids"], json!([]));
    assert_eq!(id(&user), user_id);
}

#[tokio::test]
async fn renaming_a_group_to_a_taken_name_is_a_409_conflict() {
    let app = spawn_app().await;
    app.create_group("Taken").await;
    let group_id = app.create_group("Free").await;

    let reply = app
        .request(
            Method::PATCH,
            &format!("/groups/{group_id}"),
            &app.admin,
            json!({"name": "Taken"}),
        )
        .await;

    assert_problem(&reply, 409);
}
