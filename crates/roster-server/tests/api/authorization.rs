//! R63 and the authorization rules of §3: a learner reaches only their own
//! records (another learner's answer 404, never revealing they exist) and
//! administrative endpoints answer 403.

use reqwest::{Method, multipart};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, id, into_reply, item_ids, items, spawn_app};

/// The first learner's records, which the second learner must not reach.
struct Owned {
    owner_token: String,
    user_id: i64,
    activity_id: i64,
    enrollment_id: i64,
    attachment_id: i64,
    task_id: i64,
}

async fn owned_records(app: &TestApp) -> Owned {
    let (user_id, owner_token) = app.create_learner("owner").await;
    let activity_id = app.create_activity("Private", "online_course").await;
    let enrollment_id = id(&app.enroll_one(activity_id, user_id, json!({})).await);
    let upload = app
        .upload(
            enrollment_id,
            &app.admin,
            "mine.txt",
            "text/plain",
            b"mine".to_vec(),
        )
        .await;
    assert_eq!(upload.status, 201, "{}", upload.text());
    let (status, task) = app
        .post(
            &format!("/enrollments/{enrollment_id}/tasks"),
            &app.admin,
            json!({"title": "Mine"}),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    Owned {
        owner_token,
        user_id,
        activity_id,
        enrollment_id,
        attachment_id: id(&upload.json),
        task_id: id(&task),
    }
}

#[tokio::test]
async fn r63_a_learner_reads_their_own_records() {
    let app = spawn_app().await;
    let owned = owned_records(&app).await;
    let token = &owned.owner_token;
    let enrollment = owned.enrollment_id;

    let (status, user) = app.get(&format!("/users/{}", owned.user_id), token).await;
    assert_eq!(status, 200, "{user}");
    let (status, list) = app
        .get(&format!("/users/{}/enrollments", owned.user_id), token)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![enrollment]);
    let (status, fetched) = app.get(&format!("/enrollments/{enrollment}"), token).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["activity_id"], owned.activity_id);
    let (status, attachments) = app
        .get(&format!("/enrollments/{enrollment}/attachments"), token)
        .await;
    assert_eq!(status, 200, "{attachments}");
    assert_eq!(item_ids(&attachments), vec![owned.attachment_id]);
    let (status, tasks) = app
        .get(&format!("/enrollments/{enrollment}/tasks"), token)
        .await;
    assert_eq!(status, 200, "{tasks}");
    assert_eq!(item_ids(&tasks), vec![owned.task_id]);
}

#[tokio::test]
async fn r63_another_learners_records_answer_404_for_every_id_taking_endpoint() {
    let app = spawn_app().await;
    let owned = owned_records(&app).await;
    let (_, intruder) = app.create_learner("intruder").await;
    let user = owned.user_id;
    let enrollment = owned.enrollment_id;
    let attachment = owned.attachment_id;

    let attempts: Vec<(Method, String, Value)> = vec![
        (Method::GET, format!("/users/{user}"), Value::Null),
        (
            Method::PATCH,
            format!("/users/{user}"),
            json!({"display_name": "Hacked"}),
        ),
        (
            Method::GET,
            format!("/users/{user}/enrollments"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/enrollments/{enrollment}"),
            Value::Null,
        ),
        (
            Method::PATCH,
            format!("/enrollments/{enrollment}"),
            json!({"status": "dropped"}),
        ),
        (
            Method::GET,
            format!("/enrollments/{enrollment}/attachments"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/enrollments/{enrollment}/attachments/{attachment}"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/enrollments/{enrollment}/tasks"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/enrollments/{enrollment}/explain"),
            Value::Null,
        ),
    ];
    for (method, path, body) in attempts {
        let reply = app.request(method.clone(), &path, &intruder, body).await;
        assert_eq!(
            reply.status,
            404,
            "{method} {path} by another learner: {}",
            reply.text()
        );
        assert_problem(&reply, 404);
    }

    // Nothing changed behind the 404s.
    let (_, user_record) = app.get(&format!("/users/{user}"), &app.admin).await;
    assert_eq!(user_record["display_name"], "owner person");
    let (_, enrollment_record) = app
        .get(&format!("/enrollments/{enrollment}"), &app.admin)
        .await;
    assert_eq!(enrollment_record["status"], "in_progress");
    let (_, attachments) = app
        .get(
            &format!("/enrollments/{enrollment}/attachments"),
            &app.admin,
        )
        .await;
    assert_eq!(item_ids(&attachments), vec![attachment]);
    let (_, tasks) = app
        .get(&format!("/enrollments/{enrollment}/tasks"), &app.admin)
        .await;
    assert_eq!(items(&tasks).len(), 1);
}

/// Uploads a file as `token`, answering whatever the server says.
async fn upload_as(app: &TestApp, token: &str, enrollment: i64) -> crate::helpers::Reply {
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(b"planted".to_vec()).file_name("planted.txt"),
    );
    let response = app
        .client
        .post(app.url(&format!("/enrollments/{enrollment}/attachments")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("send the upload");
    into_reply(response).await
}

/// Writing attachments and tasks may be reserved to administrators (403, §3)
/// or answered 404; either way another learner's ids must answer exactly as
/// ids that do not exist, so that nothing about them is revealed.
#[tokio::test]
async fn r63_writes_to_another_learners_attachments_and_tasks_reveal_nothing() {
    let app = spawn_app().await;
    let owned = owned_records(&app).await;
    let (_, intruder) = app.create_learner("vandal").await;
    let enrollment = owned.enrollment_id;
    let attachment = owned.attachment_id;
    let unknown = 898989;

    let pairs = [
        (
            app.request(
                Method::DELETE,
                &format!("/enrollments/{enrollment}/attachments/{attachment}"),
                &intruder,
                Value::Null,
            )
            .await,
            app.request(
                Method::DELETE,
                &format!("/enrollments/{unknown}/attachments/{unknown}"),
                &intruder,
                Value::Null,
            )
            .await,
        ),
        (
            app.request(
                Method::POST,
                &format!("/enrollments/{enrollment}/tasks"),
                &intruder,
                json!({"title": "Injected"}),
            )
            .await,
            app.request(
                Method::POST,
                &format!("/enrollments/{unknown}/tasks"),
                &intruder,
                json!({"title": "Injected"}),
            )
            .await,
        ),
        (
            upload_as(&app, &intruder, enrollment).await,
            upload_as(&app, &intruder, unknown).await,
        ),
    ];
    for (existing, missing) in pairs {
        assert!(
            existing.status == 403 || existing.status == 404,
            "{}: {}",
            existing.status,
            existing.text()
        );
        assert_problem(&existing, existing.status);
        assert_eq!(
            existing.status,
            missing.status,
            "{} vs {}",
            existing.text(),
            missing.text()
        );
        assert_eq!(existing.json["title"], missing.json["title"]);
    }

    let (_, attachments) = app
        .get(
            &format!("/enrollments/{enrollment}/attachments"),
            &app.admin,
        )
        .await;
    assert_eq!(item_ids(&attachments), vec![attachment]);
    let (_, tasks) = app
        .get(&format!("/enrollments/{enrollment}/tasks"), &app.admin)
        .await;
    assert_eq!(item_ids(&tasks), vec![owned.task_id]);
}

#[tokio::test]
async fn r63_an_unknown_id_and_another_learners_id_answer_alike() {
    let app = spawn_app().await;
    let owned = owned_records(&app).await;
    let (_, intruder) = app.create_learner("prober").await;

    let existing = app
        .request(
            Method::GET,
            &format!("/enrollments/{}", owned.enrollment_id),
            &intruder,
            Value::Null,
        )
        .await;
    let missing = app
        .request(Method::GET, "/enrollments/898989", &intruder, Value::Null)
        .await;

    assert_problem(&existing, 404);
    assert_problem(&missing, 404);
    assert_eq!(existing.json["title"], missing.json["title"]);
}

#[tokio::test]
async fn r63_a_learner_cannot_issue_a_token_for_another_user() {
    let app = spawn_app().await;
    let owned = owned_records(&app).await;
    let (_, intruder) = app.create_learner("forger").await;

    let reply = app
        .request(
            Method::POST,
            &format!("/users/{}/tokens", owned.user_id),
            &intruder,
            json!({}),
        )
        .await;

    assert!(
        reply.status == 403 || reply.status == 404,
        "{}: {}",
        reply.status,
        reply.text()
    );
    assert_problem(&reply, reply.status);
}

#[tokio::test]
async fn r63_a_learner_cannot_set_their_own_enrollment_to_passed_or_failed() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("cheater").await;
    let activity = app
        .create_activity_with(
            json!({"title": "Exam", "kind": "online_course", "allow_failure": true}),
        )
        .await;
    let enrollment = id(&app.enroll_one(id(&activity), user_id, json!({})).await);
    let path = format!("/enrollments/{enrollment}");

    for status in ["passed", "failed"] {
        let reply = app
            .request(Method::PATCH, &path, &token, json!({"status": status}))
            .await;
        assert!(
            reply.status == 403 || reply.status == 422,
            "a learner setting {status}: {} {}",
            reply.status,
            reply.text()
        );
        assert_problem(&reply, reply.status);
    }
    let (_, record) = app.get(&path, &app.admin).await;
    assert_eq!(record["status"], "in_progress");
    assert_eq!(record["completed_at"], Value::Null);
}

#[tokio::test]
async fn r63_a_learner_cannot_bulk_update_their_own_enrollment_to_passed() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("bulk-cheater").await;
    let activity_id = app.create_activity("Bulk exam", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let reply = app
        .request(
            Method::POST,
            "/enrollments/bulk-update",
            &token,
            json!({"ids": [enrollment], "status": "passed"}),
        )
        .await;

    assert_problem(&reply, 403);
    let (_, record) = app
        .get(&format!("/enrollments/{enrollment}"), &app.admin)
        .await;
    assert_eq!(record["status"], "in_progress");
}

#[tokio::test]
async fn administrative_endpoints_answer_403_to_a_learner() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("plain").await;
    let activity_id = app.create_activity("Admin only", "online_course").await;
    let group_id = app.create_group("Admins only").await;

    let attempts: Vec<(Method, String, Value)> = vec![
        (Method::GET, "/users".into(), Value::Null),
        (Method::POST, "/users".into(), json!({"username": "sneaky"})),
        (Method::POST, "/groups".into(), json!({"name": "Sneaky"})),
        (
            Method::PATCH,
            format!("/groups/{group_id}"),
            json!({"name": "Renamed"}),
        ),
        (
            Method::PUT,
            format!("/groups/{group_id}/members/{user_id}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/activities".into(),
            json!({"title": "Sneaky", "kind": "online_course"}),
        ),
        (
            Method::PATCH,
            format!("/activities/{activity_id}"),
            json!({"title": "Renamed"}),
        ),
        (
            Method::POST,
            format!("/activities/{activity_id}/enrollments"),
            json!({"user_ids": [user_id], "type": "required"}),
        ),
        (
            Method::GET,
            format!("/activities/{activity_id}/enrollments"),
            Value::Null,
        ),
        (Method::GET, "/enrollments".into(), Value::Null),
        (
            Method::POST,
            "/enrollments/bulk-delete".into(),
            json!({"ids": [], "confirm": true}),
        ),
        (
            Method::POST,
            "/maintenance/purge-inactive".into(),
            json!({"dry_run": true}),
        ),
        (
            Method::PATCH,
            "/settings".into(),
            json!({"timezone": "Europe/Paris"}),
        ),
        (
            Method::POST,
            "/clock".into(),
            json!({"now": "2031-01-01T00:00:00Z"}),
        ),
        (Method::GET, "/audit".into(), Value::Null),
        (Method::GET, "/jobs".into(), Value::Null),
        (Method::POST, "/jobs/run-due".into(), json!({})),
        (Method::POST, "/sweeps".into(), json!({"dry_run": true})),
    ];
    for (method, path, body) in attempts {
        let reply = app.request(method.clone(), &path, &token, body).await;
        assert_eq!(
            reply.status,
            403,
            "{method} {path} by a learner: {}",
            reply.text()
        );
        assert_problem(&reply, 403);
    }

    let (_, group) = app.get(&format!("/groups/{group_id}"), &app.admin).await;
    assert_eq!(group["member_count"], 0, "the refused PUT added nobody");
    let (_, enrollments) = app
        .get(
            &format!("/activities/{activity_id}/enrollments"),
            &app.admin,
        )
        .await;
    assert_eq!(
        items(&enrollments).len(),
        0,
        "the refused enrollment created nothing"
    );
}

#[tokio::test]
async fn r63_a_learner_cannot_make_themselves_an_administrator() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("climber").await;

    let reply = app
        .request(
            Method::PATCH,
            &format!("/users/{user_id}"),
            &token,
            json!({"role": "admin"}),
        )
        .await;

    assert!(
        reply.status == 403 || reply.status == 422,
        "{}: {}",
        reply.status,
        reply.text()
    );
    assert_problem(&reply, reply.status);
    let (_, user) = app.get(&format!("/users/{user_id}"), &app.admin).await;
    assert_eq!(user["role"], "learner");
    let users = app
        .request(Method::GET, "/users", &token, Value::Null)
        .await;
    assert_problem(&users, 403);
}

#[tokio::test]
async fn r63_a_learner_cannot_issue_a_token_for_the_admin() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("borrower").await;
    let admin_id = id(&app.admin_user().await);

    let reply = app
        .request(
            Method::POST,
            &format!("/users/{admin_id}/tokens"),
            &token,
            json!({}),
        )
        .await;

    assert!(
        reply.status == 403 || reply.status == 404,
        "{}: {}",
        reply.status,
        reply.text()
    );
    assert_problem(&reply, reply.status);
}
