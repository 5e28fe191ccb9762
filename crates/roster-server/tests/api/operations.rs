//! Settings, the clock, the audit trail, jobs, health, metrics and OpenAPI.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{as_json, assert_field_error, assert_problem, items, spawn_app};

#[tokio::test]
async fn settings_have_the_documented_defaults() {
    let app = spawn_app().await;

    let (status, settings) = app.get("/settings", &app.admin).await;

    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["timezone"], "UTC");
    assert_eq!(settings["nightly_sweep_at"], "02:00");
    assert_eq!(settings["integration_evaluation"], "nightly");
    assert_eq!(settings["attachment_max_bytes"], 25 * 1024 * 1024);
}

#[tokio::test]
async fn patching_settings_changes_and_keeps_them() {
    let app = spawn_app().await;

    let (status, settings) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"timezone": "Europe/Paris", "nightly_sweep_at": "03:30", "integration_evaluation": "immediate"}),
        )
        .await;

    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["timezone"], "Europe/Paris");
    assert_eq!(settings["nightly_sweep_at"], "03:30");
    assert_eq!(settings["integration_evaluation"], "immediate");
    let (_, fetched) = app.get("/settings", &app.admin).await;
    assert_eq!(fetched, settings);
}

#[tokio::test]
async fn an_unknown_timezone_is_422_naming_the_field() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::PATCH,
            "/settings",
            &app.admin,
            json!({"timezone": "Mars/Olympus_Mons"}),
        )
        .await;

    assert_field_error(&reply, "timezone");
    let (_, settings) = app.get("/settings", &app.admin).await;
    assert_eq!(settings["timezone"], "UTC");
}

#[tokio::test]
async fn a_nightly_sweep_time_that_is_not_hh_mm_is_422() {
    let app = spawn_app().await;

    for bad in ["25:00", "12:60", "noon", "2:00:00"] {
        let reply = app
            .request(
                Method::PATCH,
                "/settings",
                &app.admin,
                json!({"nightly_sweep_at": bad}),
            )
            .await;
        assert_field_error(&reply, "nightly_sweep_at");
    }
    let (_, settings) = app.get("/settings", &app.admin).await;
    assert_eq!(settings["nightly_sweep_at"], "02:00");
}

#[tokio::test]
async fn an_unknown_integration_evaluation_is_422() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::PATCH,
            "/settings",
            &app.admin,
            json!({"integration_evaluation": "hourly"}),
        )
        .await;

    assert_field_error(&reply, "integration_evaluation");
}

#[tokio::test]
async fn a_non_positive_attachment_limit_is_422() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::PATCH,
            "/settings",
            &app.admin,
            json!({"attachment_max_bytes": 0}),
        )
        .await;

    assert_field_error(&reply, "attachment_max_bytes");
}

#[tokio::test]
async fn the_manual_clock_starts_at_the_real_time() {
    let app = spawn_app().await;

    let (status, clock) = app.get("/clock", &app.admin).await;

    assert_eq!(status, 200, "{clock}");
    assert_eq!(clock["mode"], "manual");
    let now: jiff::Timestamp = clock["now"]
        .as_str()
        .expect("now")
        .parse()
        .expect("RFC 3339");
    let drift = (jiff::Timestamp::now().as_second() - now.as_second()).abs();
    assert!(
        drift < 600,
        "the manual clock starts at the real time, off by {drift} s"
    );
    assert_eq!(
        clock["today"],
        now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
    );
}

#[tokio::test]
async fn moving_the_clock_forward_answers_the_new_time() {
    let app = spawn_app().await;

    let (status, clock) = app
        .post("/clock", &app.admin, json!({"now": "2030-01-01T09:00:00Z"}))
        .await;

    assert_eq!(status, 200, "{clock}");
    assert_eq!(clock["today"], "2030-01-01");
    assert_eq!(clock["mode"], "manual");
    let now: jiff::Timestamp = clock["now"]
        .as_str()
        .expect("now")
        .parse()
        .expect("RFC 3339");
    assert_eq!(
        now,
        "2030-01-01T09:00:00Z".parse::<jiff::Timestamp>().unwrap()
    );
    let (_, fetched) = app.get("/clock", &app.admin).await;
    assert_eq!(fetched["today"], "2030-01-01");
}

#[tokio::test]
async fn moving_the_clock_backward_is_422() {
    let app = spawn_app().await;
    app.set_clock("2030-06-01T00:00:00Z").await;

    let reply = app
        .request(
            Method::POST,
            "/clock",
            &app.admin,
            json!({"now": "2030-05-31T23:59:59Z"}),
        )
        .await;

    assert_problem(&reply, 422);
    let (_, clock) = app.get("/clock", &app.admin).await;
    assert_eq!(clock["today"], "2030-06-01");
}

#[tokio::test]
async fn today_follows_the_organisation_timezone() {
    let app = spawn_app().await;
    let (status, _) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"timezone": "Pacific/Auckland"}),
        )
        .await;
    assert_eq!(status, 200);

    let (_, clock) = app
        .post("/clock", &app.admin, json!({"now": "2030-01-01T20:00:00Z"}))
        .await;

    assert_eq!(
        clock["today"], "2030-01-02",
        "20:00 UTC is the next morning in Auckland"
    );
}

#[tokio::test]
async fn audit_entries_record_a_user_created_and_changed() {
    let app = spawn_app().await;
    let user_id = app.create_user("traced", &[]).await;
    let (status, _) = app
        .patch(
            &format!("/users/{user_id}"),
            &app.admin,
            json!({"display_name": "Renamed Person"}),
        )
        .await;
    assert_eq!(status, 200);

    let (status, audit) = app
        .get(&format!("/audit?entity=user&id={user_id}"), &app.admin)
        .await;

    assert_eq!(status, 200, "{audit}");
    let entries = items(&audit);
    assert!(entries.len() >= 2, "a create and an update: {audit}");
    let afters: Vec<Value> = entries
        .iter()
        .map(|entry| as_json(&entry["after"]))
        .collect();
    assert!(
        afters.iter().any(|after| after["username"] == "traced"),
        "{audit}"
    );
    assert!(
        afters
            .iter()
            .any(|after| after["display_name"] == "Renamed Person"),
        "{audit}"
    );
    let befores: Vec<Value> = entries
        .iter()
        .map(|entry| as_json(&entry["before"]))
        .collect();
    assert!(
        befores
            .iter()
            .any(|before| before["display_name"] == "traced person"),
        "{audit}"
    );
}

#[tokio::test]
async fn audit_entries_of_one_user_do_not_include_another() {
    let app = spawn_app().await;
    let first = app.create_user("first-audited", &[]).await;
    app.create_user("second-audited", &[]).await;

    let (_, audit) = app
        .get(&format!("/audit?entity=user&id={first}"), &app.admin)
        .await;

    let text = audit.to_string();
    assert!(text.contains("first-audited"), "{text}");
    assert!(!text.contains("second-audited"), "{text}");
}

#[tokio::test]
async fn running_due_jobs_with_nothing_due_runs_none() {
    let app = spawn_app().await;

    assert_eq!(app.run_due_jobs().await, 0);
}

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let app = spawn_app().await;

    let reply = app.request(Method::GET, "/healthz", "", Value::Null).await;

    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn metrics_answer_prometheus_text_without_a_token() {
    let app = spawn_app().await;
    app.get("/users", &app.admin).await;
    app.get("/activities", &app.admin).await;

    let reply = app.request(Method::GET, "/metrics", "", Value::Null).await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.content_type.starts_with("text/plain"),
        "{}",
        reply.content_type
    );
    let text = reply.text();
    assert!(text.contains("# TYPE "), "no metric families: {text}");
    for line in text
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "not a Prometheus sample line: {line}"
        );
    }
}

#[tokio::test]
async fn openapi_document_is_version_3_1_and_lists_the_users_path() {
    let app = spawn_app().await;

    let (status, document) = app.get("/api/v1/openapi.json", &app.admin).await;

    assert_eq!(status, 200, "{document}");
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1"), "{version}");
    for path in ["/api/v1/users", "/api/v1/activities", "/api/v1/me/plan"] {
        assert!(
            document["paths"][path].is_object(),
            "{path} missing from {}",
            document["paths"]
        );
    }
}

#[tokio::test]
async fn every_request_is_logged_at_info_in_one_line_without_colour_codes_off_a_terminal() {
    let app = crate::helpers::spawn_app_with(&[("RUST_LOG", "info")]).await;

    let (status, body) = app.get("/users?limit=5", &app.admin).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get("/users/999999", &app.admin).await;
    assert_eq!(status, 404);

    // The server writes each line as the request ends, just before answering.
    let log_path = app.dir.join("server.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).expect("read the server log");
        if log.contains("path=/api/v1/users/999999") || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log written to a file:\n{log}"
    );
    for (path, status) in [("/api/v1/users", 200), ("/api/v1/users/999999", 404)] {
        let line = log
            .lines()
            .find(|line| line.contains(&format!("path={path} ")))
            .unwrap_or_else(|| panic!("no request line for {path} in:\n{log}"));
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("method=GET"), "{line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(line.contains("latency_ms="), "{line}");
    }
}

#[tokio::test]
async fn openapi_document_names_enum_values_as_they_are_sent() {
    let app = spawn_app().await;

    let (status, document) = app.get("/api/v1/openapi.json", &app.admin).await;

    assert_eq!(status, 200, "{document}");
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["Status"]["enum"],
        json!([
            "in_progress",
            "passed",
            "failed",
            "no_show",
            "incomplete",
            "dropped"
        ])
    );
    assert_eq!(
        schemas["EnrollmentType"]["enum"],
        json!(["elected", "recommended", "required"])
    );
    let list = &document["paths"]["/api/v1/enrollments"]["get"];
    let source = list["parameters"]
        .as_array()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == "source"))
        .unwrap_or_else(|| panic!("no source parameter: {list}"));
    assert_eq!(
        source["schema"]["enum"],
        json!([
            "manual",
            "self",
            "url",
            "auto_enrollment",
            "post_enrollment",
            "curriculum",
            "bundle",
            "import"
        ])
    );
}

#[tokio::test]
async fn a_misspelt_field_in_a_settings_patch_is_422_naming_it_and_changes_nothing() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::PATCH,
            "/settings",
            &app.admin,
            json!({"timezone": "Europe/Paris", "nightly_sweep": "03:00"}),
        )
        .await;

    assert_field_error(&reply, "nightly_sweep");
    let (_, settings) = app.get("/settings", &app.admin).await;
    assert_eq!(settings["timezone"], "UTC", "{settings}");
}

#[tokio::test]
async fn an_attachment_limit_above_its_bound_is_422() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::PATCH,
            "/settings",
            &app.admin,
            json!({"attachment_max_bytes": 5_i64 * 1024 * 1024 * 1024}),
        )
        .await;

    assert_field_error(&reply, "attachment_max_bytes");
}

#[tokio::test]
async fn a_time_zone_is_kept_in_the_database_spelling() {
    let app = spawn_app().await;

    let (status, settings) = app
        .patch("/settings", &app.admin, json!({"timezone": "europe/paris"}))
        .await;

    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["timezone"], "Europe/Paris");
}

#[tokio::test]
async fn a_job_state_that_does_not_exist_is_422_naming_state() {
    let app = spawn_app().await;

    let reply = app
        .request(Method::GET, "/jobs?state=finished", &app.admin, Value::Null)
        .await;

    assert_field_error(&reply, "state");
}

#[tokio::test]
async fn r21_an_exemption_naming_an_unknown_user_or_activity_is_409_with_the_fields() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::POST,
            "/exemptions",
            &app.admin,
            json!({"user_id": 999_999, "activity_id": 999_998, "reason": "on leave"}),
        )
        .await;

    assert_problem(&reply, 409);
    let fields: Vec<&str> = reply.json["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["user_id", "activity_id"], "{}", reply.text());
}

#[tokio::test]
async fn r21_an_exemption_is_answered_listed_and_deleted() {
    let app = spawn_app().await;
    let user = app.create_user("exempted", &[]).await;
    let activity = app.create_activity("Fire safety", "online_course").await;

    let (status, created) = app
        .post(
            "/exemptions",
            &app.admin,
            json!({"user_id": user, "activity_id": activity, "reason": "on leave", "until": "2031-01-31"}),
        )
        .await;
    let (_, listed) = app
        .get(&format!("/exemptions?user_id={user}"), &app.admin)
        .await;
    let (deleted, _) = app
        .delete(&format!("/exemptions/{}", created["id"]), &app.admin)
        .await;

    assert_eq!(status, 201, "{created}");
    assert_eq!(created["until"], "2031-01-31", "{created}");
    assert_eq!(created["created_by"], app.admin_user().await["id"]);
    assert_eq!(items(&listed), vec![created.clone()]);
    assert_eq!(deleted, 204);
}

#[tokio::test]
async fn the_document_describes_the_import_as_csv_or_a_multipart_file() {
    let app = spawn_app().await;

    let (_, document) = app.get("/api/v1/openapi.json", &app.admin).await;

    let content = &document["paths"]["/api/v1/imports/users"]["post"]["requestBody"]["content"];
    assert_eq!(content["text/csv"]["schema"]["type"], "string", "{content}");
    let form = &content["multipart/form-data"]["schema"];
    let form = match form["$ref"].as_str() {
        Some(reference) => document["components"]["schemas"]
            [reference.rsplit('/').next().unwrap_or_default()]
        .clone(),
        None => form.clone(),
    };
    assert_eq!(form["properties"]["file"]["format"], "binary", "{form}");
}
