//! Enrollment details (R52): attachments and tasks.

use reqwest::{Method, multipart};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, id, into_reply, item_ids, items, spawn_app};

/// One learner enrolled in one course; returns (learner id, token, enrollment id).
async fn enrolled(app: &TestApp) -> (i64, String, i64) {
    let (user_id, token) = app.create_learner("holder").await;
    let activity_id = app.create_activity("With files", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);
    (user_id, token, enrollment)
}

#[tokio::test]
async fn r52_an_uploaded_attachment_is_listed_and_downloaded_as_an_attachment() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;
    let content = b"certificate of attendance\n".to_vec();

    let upload = app
        .upload(
            enrollment,
            &app.admin,
            "notes.txt",
            "text/plain",
            content.clone(),
        )
        .await;
    assert_eq!(upload.status, 201, "{}", upload.text());
    let attachment_id = id(&upload.json);
    assert_eq!(upload.json["filename"], "notes.txt");

    let (status, list) = app
        .get(
            &format!("/enrollments/{enrollment}/attachments"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![attachment_id]);

    let download = app
        .request(
            Method::GET,
            &format!("/enrollments/{enrollment}/attachments/{attachment_id}"),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(download.bytes, content);
    assert!(
        download.content_disposition.starts_with("attachment"),
        "Content-Disposition: {:?}",
        download.content_disposition
    );
    assert!(
        download.content_disposition.contains("notes.txt"),
        "{}",
        download.content_disposition
    );
}

#[tokio::test]
async fn r52_an_html_upload_is_never_served_as_html() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;
    let page = b"<html><script>alert(1)</script></html>".to_vec();

    let upload = app
        .upload(
            enrollment,
            &app.admin,
            "evil.html",
            "text/html",
            page.clone(),
        )
        .await;
    assert_eq!(upload.status, 201, "{}", upload.text());

    let download = app
        .request(
            Method::GET,
            &format!("/enrollments/{enrollment}/attachments/{}", id(&upload.json)),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(download.bytes, page);
    assert!(
        !download.content_type.to_ascii_lowercase().contains("html"),
        "{}",
        download.content_type
    );
    assert!(
        download.content_disposition.starts_with("attachment"),
        "{}",
        download.content_disposition
    );
}

#[tokio::test]
async fn r52_deleting_an_attachment_removes_it() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;
    let upload = app
        .upload(
            enrollment,
            &app.admin,
            "old.pdf",
            "application/pdf",
            vec![1, 2, 3],
        )
        .await;
    let path = format!("/enrollments/{enrollment}/attachments/{}", id(&upload.json));

    let (status, _) = app.delete(&path, &app.admin).await;

    assert_eq!(status, 204);
    let reply = app
        .request(Method::GET, &path, &app.admin, Value::Null)
        .await;
    assert_problem(&reply, 404);
    let (_, list) = app
        .get(
            &format!("/enrollments/{enrollment}/attachments"),
            &app.admin,
        )
        .await;
    assert_eq!(items(&list).len(), 0);
}

#[tokio::test]
async fn r52_an_upload_beyond_attachment_max_bytes_is_413() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;
    let (status, settings) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"attachment_max_bytes": 1024}),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["attachment_max_bytes"], 1024);

    let small = app
        .upload(
            enrollment,
            &app.admin,
            "small.bin",
            "application/octet-stream",
            vec![7; 512],
        )
        .await;
    let large = app
        .upload(
            enrollment,
            &app.admin,
            "large.bin",
            "application/octet-stream",
            vec![7; 4096],
        )
        .await;

    assert_eq!(small.status, 201, "{}", small.text());
    assert_problem(&large, 413);
    let (_, list) = app
        .get(
            &format!("/enrollments/{enrollment}/attachments"),
            &app.admin,
        )
        .await;
    assert_eq!(item_ids(&list), vec![id(&small.json)]);
}

#[tokio::test]
async fn r52_an_upload_without_a_file_field_is_422() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;
    let form = multipart::Form::new().text("comment", "no file here");

    let response = app
        .client
        .post(app.url(&format!("/enrollments/{enrollment}/attachments")))
        .bearer_auth(&app.admin)
        .multipart(form)
        .send()
        .await
        .expect("send");

    assert_problem(&into_reply(response).await, 422);
}

#[tokio::test]
async fn r52_an_attachment_of_an_unknown_enrollment_is_404() {
    let app = spawn_app().await;

    let reply = app
        .upload(737373, &app.admin, "x.txt", "text/plain", b"x".to_vec())
        .await;

    assert_problem(&reply, 404);
}

#[tokio::test]
async fn r52_a_learner_reads_the_attachments_of_their_own_enrollment() {
    let app = spawn_app().await;
    let (_, token, enrollment) = enrolled(&app).await;
    let upload = app
        .upload(
            enrollment,
            &app.admin,
            "mine.txt",
            "text/plain",
            b"mine".to_vec(),
        )
        .await;

    let (status, list) = app
        .get(&format!("/enrollments/{enrollment}/attachments"), &token)
        .await;
    let download = app
        .request(
            Method::GET,
            &format!("/enrollments/{enrollment}/attachments/{}", id(&upload.json)),
            &token,
            Value::Null,
        )
        .await;

    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![id(&upload.json)]);
    assert_eq!(download.status, 200);
    assert_eq!(download.bytes, b"mine".to_vec());
}

#[tokio::test]
async fn r52_a_task_is_created_with_its_fields() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;

    let (status, task) = app
        .post(
            &format!("/enrollments/{enrollment}/tasks"),
            &app.admin,
            json!({"title": "Hand in the form", "completed_on": "2030-01-05", "note": "Signed"}),
        )
        .await;

    assert_eq!(status, 201, "{task}");
    assert!(task["id"].is_i64());
    assert_eq!(task["title"], "Hand in the form");
    assert_eq!(task["completed_on"], "2030-01-05");
    assert_eq!(task["note"], "Signed");
    assert!(
        !task["created_by"].is_null(),
        "created_by is recorded: {task}"
    );
}

#[tokio::test]
async fn r52_tasks_are_listed_by_completed_on_then_creation() {
    let app = spawn_app().await;
    let (_, token, enrollment) = enrolled(&app).await;
    let path = format!("/enrollments/{enrollment}/tasks");
    let mut ids = Vec::new();
    for (title, completed_on) in [
        ("late", "2030-01-10"),
        ("early", "2030-01-05"),
        ("early too", "2030-01-05"),
    ] {
        let (status, task) = app
            .post(
                &path,
                &app.admin,
                json!({"title": title, "completed_on": completed_on}),
            )
            .await;
        assert_eq!(status, 201, "{task}");
        ids.push(id(&task));
    }

    let (status, list) = app.get(&path, &app.admin).await;
    let (learner_status, learner_list) = app.get(&path, &token).await;

    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![ids[1], ids[2], ids[0]]);
    assert_eq!(learner_status, 200, "a learner reads their own tasks");
    assert_eq!(item_ids(&learner_list), vec![ids[1], ids[2], ids[0]]);
}

#[tokio::test]
async fn r52_a_task_without_a_title_is_422() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;

    let reply = app
        .request(
            Method::POST,
            &format!("/enrollments/{enrollment}/tasks"),
            &app.admin,
            json!({"completed_on": "2030-01-05"}),
        )
        .await;

    assert_problem(&reply, 422);
}

#[tokio::test]
async fn r52_a_file_name_with_a_path_is_stored_inside_the_data_dir() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;

    let upload = app
        .upload(
            enrollment,
            &app.admin,
            "../../escaped.txt",
            "text/plain",
            b"stay inside".to_vec(),
        )
        .await;

    assert_eq!(upload.status, 201, "{}", upload.text());
    assert!(!app.dir.join("escaped.txt").exists());
    assert!(
        !app.dir
            .parent()
            .expect("a parent")
            .join("escaped.txt")
            .exists()
    );
    let download = app
        .request(
            Method::GET,
            &format!("/enrollments/{enrollment}/attachments/{}", id(&upload.json)),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_eq!(download.bytes, b"stay inside".to_vec());
    assert!(
        !download.content_disposition.contains('/'),
        "{}",
        download.content_disposition
    );
}

#[tokio::test]
async fn r52_an_upload_of_exactly_attachment_max_bytes_is_accepted_and_one_more_is_413() {
    let app = spawn_app().await;
    let (_, _, enrollment) = enrolled(&app).await;
    let (status, _) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"attachment_max_bytes": 1000}),
        )
        .await;
    assert_eq!(status, 200);

    let exact = app
        .upload(
            enrollment,
            &app.admin,
            "exact.bin",
            "application/octet-stream",
            vec![1; 1000],
        )
        .await;
    let over = app
        .upload(
            enrollment,
            &app.admin,
            "over.bin",
            "application/octet-stream",
            vec![1; 1001],
        )
        .await;

    assert_eq!(exact.status, 201, "{}", exact.text());
    assert_problem(&over, 413);
}
