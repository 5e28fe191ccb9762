//! The CSV user import (R18, SPEC §3 `POST /imports/users` and
//! `roster import users`): CSV bodies and multipart uploads, whole-file
//! refusals, per-row results with their totals and the groups created.

use std::process::Command;

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, assert_problem, into_reply, items, spawn_app};

async fn import_csv(app: &TestApp, csv: &[u8]) -> Reply {
    let request = app
        .client
        .post(app.url("/imports/users"))
        .bearer_auth(&app.admin)
        .header(reqwest::header::CONTENT_TYPE, "text/csv")
        .body(csv.to_vec());
    into_reply(request.send().await.expect("send the import")).await
}

async fn import_form(app: &TestApp, field: &str, csv: &[u8]) -> Reply {
    let part = Part::bytes(csv.to_vec())
        .file_name("users.csv")
        .mime_str("text/csv")
        .expect("a MIME type");
    let form = Form::new()
        .text("note", "ignored")
        .part(field.to_string(), part);
    let request = app
        .client
        .post(app.url("/imports/users"))
        .bearer_auth(&app.admin)
        .multipart(form);
    into_reply(request.send().await.expect("send the upload")).await
}

fn outcomes(answer: &Value) -> Vec<(String, String)> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {answer}"))
        .iter()
        .map(|row| {
            (
                row["username"].as_str().unwrap_or_default().to_string(),
                row["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(name, outcome)| (name.to_string(), outcome.to_string()))
        .collect()
}

async fn group_names(app: &TestApp) -> Vec<String> {
    let (status, list) = app.get("/groups", &app.admin).await;
    assert_eq!(status, 200, "{list}");
    let mut names: Vec<String> = items(&list)
        .iter()
        .map(|group| group["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn r18_a_multipart_upload_imports_like_a_csv_body_with_groups_split_on_semicolons() {
    let app = spawn_app().await;
    let csv =
        b"username,email,groups\nann,ann@example.com,Staff; Sales\nbob,bob@example.com,Staff\n";

    let reply = import_form(&app, "file", csv).await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        outcomes(&reply.json),
        pairs(&[("ann", "created"), ("bob", "created")])
    );
    assert_eq!(reply.json["groups_created"], json!(["Staff", "Sales"]));
    assert_eq!(group_names(&app).await, vec!["Sales", "Staff"]);
    let (_, ann) = app.get("/users?q=ann", &app.admin).await;
    assert_eq!(
        items(&ann)[0]["group_ids"].as_array().map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn r18_an_import_counts_created_updated_unchanged_and_failed_rows() {
    let app = spawn_app().await;
    let first = import_csv(
        &app,
        b"username,display_name,groups\nann,Ann,Staff\nbob,Bob,Staff\n",
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text());

    let reply = import_csv(
        &app,
        b"username,display_name,groups,hired_on\nann,Ann,Staff,\nbob,Robert,Staff;Night,\ncid,Cid,,\n,Nobody,,\ndee,Dee,,2030-02-30\n",
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = &reply.json;
    assert_eq!(
        outcomes(answer),
        pairs(&[
            ("ann", "unchanged"),
            ("bob", "updated"),
            ("cid", "created"),
            ("", "error"),
            ("dee", "error"),
        ])
    );
    assert_eq!(
        [
            &answer["created"],
            &answer["updated"],
            &answer["unchanged"],
            &answer["failed"]
        ],
        [&json!(1), &json!(1), &json!(1), &json!(2)],
        "{answer}"
    );
    assert_eq!(answer["groups_created"], json!(["Night"]));
    assert_eq!(answer["results"][3]["line"], 5);
    assert!(answer["results"][4]["error"].is_string(), "{answer}");
    // The unchanged row wrote nothing, not even an audit entry.
    let ann = answer["results"][0]["user_id"].as_i64().expect("ann's id");
    let (status, audit) = app
        .get(&format!("/audit?entity=user&id={ann}"), &app.admin)
        .await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(items(&audit).len(), 1, "{audit}");
}

#[tokio::test]
async fn r18_an_empty_or_unreadable_upload_is_422_and_imports_nothing() {
    let app = spawn_app().await;
    let cases: [(&str, &[u8], &str); 6] = [
        ("empty", b"", "empty"),
        ("blank lines", b"\n \n", "empty"),
        ("not UTF-8", b"username\n\xff\xfeann\n", "UTF-8"),
        (
            "no username column",
            b"name,email\nann,ann@example.com\n",
            "username",
        ),
        ("a row but no header", b"ann,ann@example.com\n", "username"),
        ("a header and no rows", b"username,email\n", "no rows"),
    ];
    for (case, csv, says) in cases {
        for reply in [
            import_csv(&app, csv).await,
            import_form(&app, "file", csv).await,
        ] {
            assert_problem(&reply, 422);
            let detail = reply.json["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(says), "{case}: {}", reply.text());
            assert_eq!(reply.json["errors"][0]["field"], "file", "{case}");
        }
    }
    let missing_field = import_form(&app, "upload", b"username\nann\n").await;
    assert_problem(&missing_field, 422);
    assert_eq!(missing_field.json["errors"][0]["field"], "file");

    let (_, users) = app.get("/users", &app.admin).await;
    assert_eq!(items(&users).len(), 1, "only the bootstrap admin: {users}");
}

#[tokio::test]
async fn r18_a_byte_order_mark_before_the_header_row_is_ignored() {
    let app = spawn_app().await;

    let reply = import_csv(
        &app,
        "\u{feff}username,email\nann,ann@example.com\n".as_bytes(),
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(outcomes(&reply.json), pairs(&[("ann", "created")]));
}

#[tokio::test]
async fn r18_roster_import_users_prints_its_counts_and_the_groups_it_created() {
    let app = spawn_app().await;
    let first = import_csv(&app, b"username,groups\nann,Staff\n").await;
    assert_eq!(first.status, 200, "{}", first.text());
    let file = app.dir.join("users.csv");
    std::fs::write(
        &file,
        "username,groups,active\nann,Staff,\nbob,Staff;Night,\ncid,,maybe\n",
    )
    .expect("write the CSV");

    let output = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["import", "users", "--database", &app.database_url])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run roster import users");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a failed row fails the command");
    assert!(
        stdout.contains("1 created, 0 updated, 1 unchanged, 1 failed"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("groups created: Night"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("line 4: active must be true or false"),
        "{stderr}"
    );

    let empty = app.dir.join("empty.csv");
    std::fs::write(&empty, "").expect("write the empty file");
    let output = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["import", "users", "--database", &app.database_url])
        .arg(&empty)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run roster import users");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is empty"), "{stderr}");
}

#[tokio::test]
async fn r18_a_learner_cannot_import() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("curious").await;

    let reply = app
        .request_raw(
            Method::POST,
            "/imports/users",
            &token,
            "text/csv",
            "username\nx\n",
        )
        .await;

    assert_problem(&reply, 403);
}
