//! Administration of enrollments: manual enrollment (R50, R2), completion
//! timestamps (R5), bulk update (R51), bulk delete (R53) and lists (R55).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{as_json, assert_field_error, assert_problem, id, item_ids, items, spawn_app};

#[tokio::test]
async fn r50_manual_enrollment_defaults_to_recommended_in_progress_by_the_admin() {
    let app = spawn_app().await;
    let admin = app.admin_user().await;
    let (status, _) = app
        .patch(
            &format!("/users/{}", id(&admin)),
            &app.admin,
            json!({"display_name": "Ada Admin"}),
        )
        .await;
    assert_eq!(status, 200);
    let user_id = app.create_user("kim", &[]).await;
    let activity_id = app.create_activity("Hygiene", "online_course").await;

    let enrollment = app.enroll_one(activity_id, user_id, json!({})).await;

    assert!(enrollment["id"].is_i64(), "{enrollment}");
    assert_eq!(enrollment["user_id"], user_id);
    assert_eq!(enrollment["activity_id"], activity_id);
    assert_eq!(enrollment["type"], "recommended");
    assert_eq!(enrollment["status"], "in_progress");
    assert_eq!(enrollment["due_on"], Value::Null);
    assert_eq!(enrollment["required_by"], "Ada Admin");
    assert_eq!(enrollment["reason"], Value::Null);
    assert_eq!(enrollment["completed_at"], Value::Null);
    assert_eq!(enrollment["period"], Value::Null);
    assert_eq!(enrollment["overdue"], false);
    assert_eq!(
        enrollment["source"],
        json!({"kind": "manual", "by": id(&admin)})
    );
    let enrolled_at = enrollment["enrolled_at"].as_str().expect("enrolled_at");
    enrolled_at
        .parse::<jiff::Timestamp>()
        .expect("enrolled_at is RFC 3339");
}

#[tokio::test]
async fn r50_manual_enrollment_takes_type_due_on_required_by_and_reason() {
    let app = spawn_app().await;
    let user_id = app.create_user("lee", &[]).await;
    let activity_id = app.create_activity("Ladders", "instructor_led").await;

    let enrollment = app
        .enroll_one(
            activity_id,
            user_id,
            json!({
                "type": "required",
                "due_on": "2030-03-31",
                "required_by": "Safety office",
                "reason": "New site",
            }),
        )
        .await;

    assert_eq!(enrollment["type"], "required");
    assert_eq!(enrollment["due_on"], "2030-03-31");
    assert_eq!(enrollment["required_by"], "Safety office");
    assert_eq!(enrollment["reason"], "New site");
    let (status, fetched) = app
        .get(&format!("/enrollments/{}", id(&enrollment)), &app.admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched["due_on"], "2030-03-31");
    assert_eq!(fetched["required_by"], "Safety office");
}

#[tokio::test]
async fn r50_manual_enrollment_as_elected_is_refused_with_422() {
    let app = spawn_app().await;
    let user_id = app.create_user("eli", &[]).await;
    let activity_id = app.create_activity("Choice", "online_course").await;

    let reply = app
        .request(
            Method::POST,
            &format!("/activities/{activity_id}/enrollments"),
            &app.admin,
            json!({"user_ids": [user_id], "type": "elected"}),
        )
        .await;

    assert_problem(&reply, 422);
    let (_, list) = app
        .get(&format!("/users/{user_id}/enrollments"), &app.admin)
        .await;
    assert_eq!(items(&list).len(), 0, "{list}");
}

#[tokio::test]
async fn r50_manual_enrollment_with_a_closed_status_records_it() {
    let app = spawn_app().await;
    let user_id = app.create_user("pat", &[]).await;
    let activity_id = app.create_activity("Done before", "online_course").await;

    let enrollment = app
        .enroll_one(activity_id, user_id, json!({"status": "passed"}))
        .await;

    assert_eq!(enrollment["status"], "passed");
    let completed_at = enrollment["completed_at"]
        .as_str()
        .expect("R5: completed_at is set");
    completed_at
        .parse::<jiff::Timestamp>()
        .expect("completed_at is RFC 3339");
}

#[tokio::test]
async fn r50_manual_enrollment_answers_per_user_results() {
    let app = spawn_app().await;
    let first = app.create_user("first", &[]).await;
    let second = app.create_user("second", &[]).await;
    let activity_id = app.create_activity("Many", "online_course").await;

    let results = app
        .enroll(activity_id, &[first, second, 909090], json!({}))
        .await;

    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0]["user_id"], first);
    assert_eq!(results[0]["outcome"], "created");
    assert_eq!(results[0]["enrollment"]["user_id"], first);
    assert_eq!(results[1]["user_id"], second);
    assert_eq!(results[1]["outcome"], "created");
    assert_eq!(results[2]["user_id"], 909090);
    assert_eq!(results[2]["outcome"], "user_not_found");
}

#[tokio::test]
async fn r2_manual_enrollment_of_an_enrolled_user_reports_already_enrolled() {
    let app = spawn_app().await;
    let user_id = app.create_user("again", &[]).await;
    let activity_id = app.create_activity("Twice", "online_course").await;
    let open = app
        .enroll_one(activity_id, user_id, json!({"due_on": "2030-05-01"}))
        .await;

    let results = app
        .enroll(
            activity_id,
            &[user_id],
            json!({"due_on": "2031-01-01", "type": "required"}),
        )
        .await;

    assert_eq!(results[0]["user_id"], user_id);
    assert_eq!(results[0]["outcome"], "already_enrolled");
    let (_, list) = app
        .get(&format!("/users/{user_id}/enrollments"), &app.admin)
        .await;
    assert_eq!(item_ids(&list), vec![id(&open)]);
    let (_, kept) = app
        .get(&format!("/enrollments/{}", id(&open)), &app.admin)
        .await;
    assert_eq!(kept["due_on"], "2030-05-01");
    assert_eq!(kept["type"], "recommended");
}

#[tokio::test]
async fn r2_a_user_with_only_closed_enrollments_can_be_enrolled_again() {
    let app = spawn_app().await;
    let user_id = app.create_user("retake", &[]).await;
    let activity_id = app.create_activity("Retake", "online_course").await;
    app.enroll_one(activity_id, user_id, json!({"status": "passed"}))
        .await;

    let results = app.enroll(activity_id, &[user_id], json!({})).await;

    assert_eq!(results[0]["outcome"], "created", "{results:?}");
    let (_, list) = app
        .get(&format!("/users/{user_id}/enrollments"), &app.admin)
        .await;
    assert_eq!(items(&list).len(), 2);
}

#[tokio::test]
async fn r50_manual_enrollment_into_an_unknown_activity_is_404() {
    let app = spawn_app().await;
    let user_id = app.create_user("nowhere", &[]).await;

    let reply = app
        .request(
            Method::POST,
            "/activities/616161/enrollments",
            &app.admin,
            json!({"user_ids": [user_id]}),
        )
        .await;

    assert_problem(&reply, 404);
}

#[tokio::test]
async fn r5_completed_at_is_set_on_passed_and_cleared_when_reopened() {
    let app = spawn_app().await;
    app.set_clock("2030-01-01T09:00:00Z").await;
    let user_id = app.create_user("r5", &[]).await;
    let activity_id = app.create_activity("R5", "online_course").await;
    let enrollment = app.enroll_one(activity_id, user_id, json!({})).await;
    let path = format!("/enrollments/{}", id(&enrollment));

    app.set_clock("2030-01-02T10:30:00Z").await;
    let (status, passed) = app
        .patch(&path, &app.admin, json!({"status": "passed"}))
        .await;
    assert_eq!(status, 200, "{passed}");
    assert_eq!(passed["status"], "passed");
    let completed_at: jiff::Timestamp = passed["completed_at"]
        .as_str()
        .expect("completed_at set")
        .parse()
        .expect("RFC 3339");
    assert_eq!(
        completed_at,
        "2030-01-02T10:30:00Z".parse::<jiff::Timestamp>().unwrap()
    );

    let (status, reopened) = app
        .patch(&path, &app.admin, json!({"status": "in_progress"}))
        .await;
    assert_eq!(status, 200, "{reopened}");
    assert_eq!(reopened["completed_at"], Value::Null);
}

#[tokio::test]
async fn r5_failed_sets_completed_at_and_no_show_clears_it() {
    let app = spawn_app().await;
    let user_id = app.create_user("r5f", &[]).await;
    let activity = app
        .create_activity_with(
            json!({"title": "Exam", "kind": "online_course", "allow_failure": true}),
        )
        .await;
    let enrollment = app.enroll_one(id(&activity), user_id, json!({})).await;
    let path = format!("/enrollments/{}", id(&enrollment));

    let (status, failed) = app
        .patch(&path, &app.admin, json!({"status": "failed"}))
        .await;
    assert_eq!(status, 200, "{failed}");
    assert!(failed["completed_at"].is_string(), "{failed}");

    let (status, no_show) = app
        .patch(&path, &app.admin, json!({"status": "no_show"}))
        .await;
    assert_eq!(status, 200, "{no_show}");
    assert_eq!(no_show["status"], "no_show");
    assert_eq!(no_show["completed_at"], Value::Null);
}

#[tokio::test]
async fn patching_an_enrollment_changes_due_on_and_type() {
    let app = spawn_app().await;
    let user_id = app.create_user("patchy", &[]).await;
    let activity_id = app.create_activity("Patchable", "online_course").await;
    let enrollment = app.enroll_one(activity_id, user_id, json!({})).await;

    let (status, patched) = app
        .patch(
            &format!("/enrollments/{}", id(&enrollment)),
            &app.admin,
            json!({"due_on": "2030-09-30", "type": "required"}),
        )
        .await;

    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["due_on"], "2030-09-30");
    assert_eq!(patched["type"], "required");
    assert_eq!(patched["status"], "in_progress");
}

#[tokio::test]
async fn r2_reopening_a_closed_enrollment_beside_an_open_one_is_a_409_conflict() {
    let app = spawn_app().await;
    let user_id = app.create_user("double", &[]).await;
    let activity_id = app.create_activity("Single", "online_course").await;
    let closed = app
        .enroll_one(activity_id, user_id, json!({"status": "dropped"}))
        .await;
    app.enroll_one(activity_id, user_id, json!({})).await;

    let reply = app
        .request(
            Method::PATCH,
            &format!("/enrollments/{}", id(&closed)),
            &app.admin,
            json!({"status": "in_progress"}),
        )
        .await;

    assert_problem(&reply, 409);
}

#[tokio::test]
async fn r51_bulk_update_sets_and_clears_due_on() {
    let app = spawn_app().await;
    let user_id = app.create_user("bulk", &[]).await;
    let first = app.create_activity("Bulk one", "online_course").await;
    let second = app.create_activity("Bulk two", "online_course").await;
    let one = id(&app.enroll_one(first, user_id, json!({})).await);
    let two = id(&app.enroll_one(second, user_id, json!({})).await);

    let (status, answer) = app
        .post(
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [one, two], "due_on": "2030-06-30"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer), vec![(one, "updated"), (two, "updated")]);
    for enrollment_id in [one, two] {
        let (_, enrollment) = app
            .get(&format!("/enrollments/{enrollment_id}"), &app.admin)
            .await;
        assert_eq!(enrollment["due_on"], "2030-06-30");
    }

    let (status, answer) = app
        .post(
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [one], "due_on": null}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, cleared) = app.get(&format!("/enrollments/{one}"), &app.admin).await;
    let (_, untouched) = app.get(&format!("/enrollments/{two}"), &app.admin).await;
    assert_eq!(cleared["due_on"], Value::Null);
    assert_eq!(untouched["due_on"], "2030-06-30");
}

#[tokio::test]
async fn r51_bulk_update_changes_status_and_type_and_leaves_out_fields_alone() {
    let app = spawn_app().await;
    let user_id = app.create_user("bulk2", &[]).await;
    let activity_id = app.create_activity("Bulk status", "online_course").await;
    let enrollment = id(&app
        .enroll_one(activity_id, user_id, json!({"due_on": "2030-04-04"}))
        .await);

    let (status, answer) = app
        .post(
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [enrollment], "status": "passed", "type": "required"}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["outcome"], "updated");
    let (_, updated) = app
        .get(&format!("/enrollments/{enrollment}"), &app.admin)
        .await;
    assert_eq!(updated["status"], "passed");
    assert_eq!(updated["type"], "required");
    assert_eq!(updated["due_on"], "2030-04-04");
    assert!(updated["completed_at"].is_string(), "R5: {updated}");
}

#[tokio::test]
async fn r51_bulk_update_reports_unknown_ids_as_not_found() {
    let app = spawn_app().await;
    let user_id = app.create_user("bulk3", &[]).await;
    let activity_id = app.create_activity("Bulk missing", "online_course").await;
    let known = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let (status, answer) = app
        .post(
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [known, 818181], "type": "required"}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        outcomes(&answer),
        vec![(known, "updated"), (818181, "not_found")]
    );
}

#[tokio::test]
async fn r51_bulk_update_with_an_unknown_status_is_422_naming_the_field() {
    let app = spawn_app().await;
    let user_id = app.create_user("bulk4", &[]).await;
    let activity_id = app.create_activity("Bulk elected", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let reply = app
        .request(
            Method::POST,
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [enrollment], "status": "finished"}),
        )
        .await;

    assert_field_error(&reply, "status");
}

#[tokio::test]
async fn r53_bulk_delete_without_confirmation_is_422_and_deletes_nothing() {
    let app = spawn_app().await;
    let user_id = app.create_user("keep", &[]).await;
    let activity_id = app.create_activity("Keep", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let reply = app
        .request(
            Method::POST,
            "/enrollments/bulk-delete",
            &app.admin,
            json!({"ids": [enrollment]}),
        )
        .await;

    assert_problem(&reply, 422);
    let (status, _) = app
        .get(&format!("/enrollments/{enrollment}"), &app.admin)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn r53_bulk_delete_with_confirmation_deletes_and_the_audit_keeps_the_record() {
    let app = spawn_app().await;
    let user_id = app.create_user("gone", &[]).await;
    let activity_id = app.create_activity("Gone", "online_course").await;
    let enrollment = id(&app
        .enroll_one(
            activity_id,
            user_id,
            json!({"due_on": "2030-05-01", "reason": "compliance"}),
        )
        .await);

    let (status, answer) = app
        .post(
            "/enrollments/bulk-delete",
            &app.admin,
            json!({"ids": [enrollment], "confirm": true}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["deleted"], 1);
    assert_eq!(answer["ids"], json!([enrollment]));
    let reply = app
        .request(
            Method::GET,
            &format!("/enrollments/{enrollment}"),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_problem(&reply, 404);

    let (status, audit) = app
        .get(
            &format!("/audit?entity=enrollment&id={enrollment}"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let deleted = items(&audit)
        .iter()
        .map(|entry| as_json(&entry["before"]))
        .find(|before| before["id"] == enrollment && entry_is_whole(before))
        .unwrap_or_else(|| panic!("no audit entry keeps the deleted record: {audit}"));
    assert_eq!(deleted["user_id"], user_id);
    assert_eq!(deleted["activity_id"], activity_id);
    assert_eq!(deleted["due_on"], "2030-05-01");
    assert_eq!(deleted["reason"], "compliance");
    assert_eq!(deleted["status"], "in_progress");
}

/// The `(id, outcome)` pairs of a bulk update answer (R51).
fn outcomes(answer: &Value) -> Vec<(i64, &str)> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {answer}"))
        .iter()
        .map(|result| (id(result), result["outcome"].as_str().unwrap_or_default()))
        .collect()
}

fn entry_is_whole(record: &Value) -> bool {
    record["user_id"].is_i64() && record["activity_id"].is_i64() && record["status"].is_string()
}

/// Sets up one user with four enrollments for the R55 filter tests:
/// a passed recommended one, an open required one due 2030-01-05 (overdue on
/// 2030-01-10), an open recommended one due 2030-02-01, and a self-enrolled one.
async fn r55_fixture(app: &crate::helpers::TestApp) -> (i64, [i64; 4], [i64; 4]) {
    app.set_clock("2030-01-10T09:00:00Z").await;
    let (user_id, token) = app.create_learner("filtered").await;
    let passed_activity = app.create_activity("Passed one", "online_course").await;
    let overdue_activity = app.create_activity("Overdue one", "online_course").await;
    let later_activity = app.create_activity("Later one", "online_course").await;
    let self_activity = app.create_activity("Chosen one", "online_course").await;
    let passed = id(&app
        .enroll_one(passed_activity, user_id, json!({"status": "passed"}))
        .await);
    let overdue = id(&app
        .enroll_one(
            overdue_activity,
            user_id,
            json!({"type": "required", "due_on": "2030-01-05"}),
        )
        .await);
    let later = id(&app
        .enroll_one(later_activity, user_id, json!({"due_on": "2030-02-01"}))
        .await);
    let (status, chosen) = app
        .post(
            "/me/enrollments",
            &token,
            json!({"activity_id": self_activity}),
        )
        .await;
    assert_eq!(status, 201, "{chosen}");
    (
        user_id,
        [passed, overdue, later, id(&chosen["enrollment"])],
        [
            passed_activity,
            overdue_activity,
            later_activity,
            self_activity,
        ],
    )
}

fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort();
    ids
}

#[tokio::test]
async fn r55_user_enrollments_filter_by_status_and_type() {
    let app = spawn_app().await;
    let (user_id, [passed, overdue, later, chosen], _) = r55_fixture(&app).await;
    let base = format!("/users/{user_id}/enrollments");

    let (status, all) = app.get(&base, &app.admin).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        sorted(item_ids(&all)),
        sorted(vec![passed, overdue, later, chosen])
    );
    let (_, by_status) = app.get(&format!("{base}?status=passed"), &app.admin).await;
    assert_eq!(item_ids(&by_status), vec![passed]);
    let (_, open) = app
        .get(&format!("{base}?status=in_progress"), &app.admin)
        .await;
    assert_eq!(
        sorted(item_ids(&open)),
        sorted(vec![overdue, later, chosen])
    );
    let (_, by_type) = app.get(&format!("{base}?type=required"), &app.admin).await;
    assert_eq!(item_ids(&by_type), vec![overdue]);
    let (_, elected) = app.get(&format!("{base}?type=elected"), &app.admin).await;
    assert_eq!(item_ids(&elected), vec![chosen]);
}

#[tokio::test]
async fn r55_user_enrollments_filter_by_source_and_overdue() {
    let app = spawn_app().await;
    let (user_id, [passed, overdue, later, chosen], _) = r55_fixture(&app).await;
    let base = format!("/users/{user_id}/enrollments");

    let (status, by_source) = app.get(&format!("{base}?source=self"), &app.admin).await;
    assert_eq!(status, 200, "{by_source}");
    assert_eq!(item_ids(&by_source), vec![chosen]);
    let (_, manual) = app.get(&format!("{base}?source=manual"), &app.admin).await;
    assert_eq!(
        sorted(item_ids(&manual)),
        sorted(vec![passed, overdue, later])
    );
    let (_, late) = app.get(&format!("{base}?overdue=true"), &app.admin).await;
    assert_eq!(item_ids(&late), vec![overdue]);
    assert_eq!(items(&late)[0]["overdue"], true);
    let (_, on_time) = app.get(&format!("{base}?overdue=false"), &app.admin).await;
    assert_eq!(
        sorted(item_ids(&on_time)),
        sorted(vec![passed, later, chosen])
    );
}

#[tokio::test]
async fn r55_user_enrollments_filter_by_due_date_range() {
    let app = spawn_app().await;
    let (user_id, [_, overdue, later, _], _) = r55_fixture(&app).await;
    let base = format!("/users/{user_id}/enrollments");

    let (status, january) = app
        .get(
            &format!("{base}?due_from=2030-01-01&due_to=2030-01-31"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{january}");
    assert_eq!(item_ids(&january), vec![overdue]);
    let (_, inclusive) = app
        .get(
            &format!("{base}?due_from=2030-01-05&due_to=2030-02-01"),
            &app.admin,
        )
        .await;
    assert_eq!(sorted(item_ids(&inclusive)), sorted(vec![overdue, later]));
}

#[tokio::test]
async fn r55_activity_enrollments_list_every_user_and_filter_by_status() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Shared", "online_course").await;
    let first = app.create_user("shared-1", &[]).await;
    let second = app.create_user("shared-2", &[]).await;
    let other_activity = app.create_activity("Elsewhere", "online_course").await;
    let one = id(&app.enroll_one(activity_id, first, json!({})).await);
    let two = id(&app
        .enroll_one(activity_id, second, json!({"status": "passed"}))
        .await);
    app.enroll_one(other_activity, first, json!({})).await;

    let (status, all) = app
        .get(
            &format!("/activities/{activity_id}/enrollments"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(sorted(item_ids(&all)), sorted(vec![one, two]));
    let (_, passed) = app
        .get(
            &format!("/activities/{activity_id}/enrollments?status=passed"),
            &app.admin,
        )
        .await;
    assert_eq!(item_ids(&passed), vec![two]);
}

#[tokio::test]
async fn r55_the_global_enrollment_list_filters_by_status() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Global", "online_course").await;
    let user_id = app.create_user("global", &[]).await;
    let dropped = id(&app
        .enroll_one(activity_id, user_id, json!({"status": "dropped"}))
        .await);
    let open = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let (status, list) = app.get("/enrollments?status=dropped", &app.admin).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![dropped]);
    let (_, all) = app.get("/enrollments", &app.admin).await;
    assert_eq!(sorted(item_ids(&all)), sorted(vec![dropped, open]));
}

#[tokio::test]
async fn r55_enrollment_lists_page_with_limit_and_cursor() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Paged", "online_course").await;
    let mut created = Vec::new();
    for name in ["paged-1", "paged-2", "paged-3"] {
        let user_id = app.create_user(name, &[]).await;
        created.push(id(&app.enroll_one(activity_id, user_id, json!({})).await));
    }
    let base = format!("/activities/{activity_id}/enrollments");

    let (_, first) = app.get(&format!("{base}?limit=2"), &app.admin).await;
    assert_eq!(items(&first).len(), 2, "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next cursor");
    let (_, second) = app
        .get(
            &format!("{base}?limit=2&cursor={}", crate::helpers::encode(cursor)),
            &app.admin,
        )
        .await;
    assert_eq!(items(&second).len(), 1, "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let mut seen = item_ids(&first);
    seen.extend(item_ids(&second));
    assert_eq!(sorted(seen), sorted(created));
}

#[tokio::test]
async fn r55_accept_text_csv_gives_csv_with_a_header_row() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Exported", "online_course").await;
    for name in ["csv-1", "csv-2"] {
        let user_id = app.create_user(name, &[]).await;
        app.enroll_one(activity_id, user_id, json!({})).await;
    }

    let reply = app
        .get_accept(
            &format!("/activities/{activity_id}/enrollments"),
            &app.admin,
            "text/csv",
        )
        .await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.content_type.starts_with("text/csv"),
        "{}",
        reply.content_type
    );
    let text = reply.text();
    let lines: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(lines.len(), 3, "a header and two rows: {text}");
    let header: Vec<&str> = lines[0]
        .split(',')
        .map(|cell| cell.trim_matches('"'))
        .collect();
    for column in ["id", "user_id", "activity_id", "type", "status", "due_on"] {
        assert!(
            header.contains(&column),
            "column {column} missing from {header:?}"
        );
    }
}

#[tokio::test]
async fn r55_user_enrollments_as_csv_have_one_row_per_enrollment() {
    let app = spawn_app().await;
    let (user_id, _, _) = r55_fixture(&app).await;

    let reply = app
        .get_accept(
            &format!("/users/{user_id}/enrollments"),
            &app.admin,
            "text/csv",
        )
        .await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.content_type.starts_with("text/csv"),
        "{}",
        reply.content_type
    );
    assert_eq!(
        reply.text().lines().filter(|line| !line.is_empty()).count(),
        5
    );
}

#[tokio::test]
async fn audit_entries_record_an_enrollment_created_and_changed() {
    let app = spawn_app().await;
    let user_id = app.create_user("audited", &[]).await;
    let activity_id = app.create_activity("Audited", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);
    app.patch(
        &format!("/enrollments/{enrollment}"),
        &app.admin,
        json!({"status": "passed"}),
    )
    .await;

    let (status, audit) = app
        .get(
            &format!("/audit?entity=enrollment&id={enrollment}"),
            &app.admin,
        )
        .await;

    assert_eq!(status, 200, "{audit}");
    let entries = items(&audit);
    assert!(entries.len() >= 2, "a create and an update: {audit}");
    let afters: Vec<Value> = entries
        .iter()
        .map(|entry| as_json(&entry["after"]))
        .collect();
    assert!(
        afters.iter().any(|after| after["status"] == "in_progress"),
        "{audit}"
    );
    assert!(
        afters.iter().any(|after| after["status"] == "passed"),
        "{audit}"
    );
}

#[tokio::test]
async fn r2_bulk_update_reopening_beside_an_open_enrollment_reports_a_conflict() {
    let app = spawn_app().await;
    let user_id = app.create_user("bulk-conflict", &[]).await;
    let activity_id = app.create_activity("Bulk conflict", "online_course").await;
    let closed = id(&app
        .enroll_one(activity_id, user_id, json!({"status": "dropped"}))
        .await);
    let open = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let (status, answer) = app
        .post(
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [closed], "status": "in_progress"}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer), vec![(closed, "conflict")]);
    let (_, still_closed) = app.get(&format!("/enrollments/{closed}"), &app.admin).await;
    assert_eq!(still_closed["status"], "dropped");
    let (_, still_open) = app.get(&format!("/enrollments/{open}"), &app.admin).await;
    assert_eq!(still_open["status"], "in_progress");
}

#[tokio::test]
async fn r53_bulk_delete_answers_only_the_ids_it_deleted() {
    let app = spawn_app().await;
    let user_id = app.create_user("partly", &[]).await;
    let activity_id = app.create_activity("Partly", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let (status, answer) = app
        .post(
            "/enrollments/bulk-delete",
            &app.admin,
            json!({"ids": [enrollment, 919191], "confirm": true}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["deleted"], 1);
    assert_eq!(answer["ids"], json!([enrollment]));
}

#[tokio::test]
async fn r53_bulk_delete_with_confirm_false_is_422() {
    let app = spawn_app().await;
    let user_id = app.create_user("unsure", &[]).await;
    let activity_id = app.create_activity("Unsure", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let reply = app
        .request(
            Method::POST,
            "/enrollments/bulk-delete",
            &app.admin,
            json!({"ids": [enrollment], "confirm": false}),
        )
        .await;

    assert_problem(&reply, 422);
    let (status, _) = app
        .get(&format!("/enrollments/{enrollment}"), &app.admin)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn r51_bulk_update_is_recorded_in_the_audit_log() {
    let app = spawn_app().await;
    let user_id = app.create_user("bulk-audit", &[]).await;
    let activity_id = app.create_activity("Bulk audit", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);
    app.post(
        "/enrollments/bulk-update",
        &app.admin,
        json!({"ids": [enrollment], "due_on": "2031-07-07"}),
    )
    .await;

    let (_, audit) = app
        .get(
            &format!("/audit?entity=enrollment&id={enrollment}"),
            &app.admin,
        )
        .await;

    let afters: Vec<Value> = items(&audit)
        .iter()
        .map(|entry| as_json(&entry["after"]))
        .collect();
    assert!(
        afters.iter().any(|after| after["due_on"] == "2031-07-07"),
        "{audit}"
    );
}

#[tokio::test]
async fn r55_a_limit_above_1000_is_capped_not_refused() {
    let app = spawn_app().await;
    let user_id = app.create_user("capped", &[]).await;
    let activity_id = app.create_activity("Capped", "online_course").await;
    app.enroll_one(activity_id, user_id, json!({})).await;

    let (status, list) = app.get("/enrollments?limit=5000", &app.admin).await;

    assert_eq!(
        status, 200,
        "docs/decisions.md: limit is capped at 1000: {list}"
    );
    assert_eq!(items(&list).len(), 1);
}

#[tokio::test]
async fn r55_overdue_follows_today_in_the_organisation_timezone() {
    let app = spawn_app().await;
    let (status, _) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"timezone": "Pacific/Auckland"}),
        )
        .await;
    assert_eq!(status, 200);
    // 20:00 UTC on 2030-01-10 is already 2030-01-11 in Auckland.
    app.set_clock("2030-01-10T20:00:00Z").await;
    let user_id = app.create_user("kiwi", &[]).await;
    let activity_id = app.create_activity("Kiwi", "online_course").await;
    let enrollment = app
        .enroll_one(activity_id, user_id, json!({"due_on": "2030-01-10"}))
        .await;

    let (_, fetched) = app
        .get(&format!("/enrollments/{}", id(&enrollment)), &app.admin)
        .await;

    assert_eq!(fetched["overdue"], true, "{fetched}");
}

/// A bulk enrollment and a bulk update of more enrollments than one
/// statement writes (500) answer every one in the request's order: created,
/// already enrolled (R2), a user named twice once, an unknown user; then
/// the update changes each, an id given twice is read again, and the audit
/// log holds every change.
#[tokio::test]
async fn r50_r51_bulk_enrollment_and_update_of_many_answer_each_in_order() {
    let app = spawn_app().await;
    let activity_id = app.create_activity("Many at once", "online_course").await;
    let mut users = Vec::new();
    for n in 0..520 {
        users.push(app.create_user(&format!("many{n:03}"), &[]).await);
    }
    let enrolled = id(&app.enroll_one(activity_id, users[7], json!({})).await);
    let mut request = users.clone();
    request.insert(3, users[1]);
    request.push(909090);

    let results = app
        .enroll(
            activity_id,
            &request,
            json!({"type": "required", "due_on": "2031-01-31"}),
        )
        .await;

    let answered: Vec<(i64, &str)> = results
        .iter()
        .map(|result| {
            (
                result["user_id"].as_i64().unwrap(),
                result["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<(i64, &str)> = users
        .iter()
        .map(|&user_id| {
            (
                user_id,
                if user_id == users[7] {
                    "already_enrolled"
                } else {
                    "created"
                },
            )
        })
        .collect();
    expected.push((909090, "user_not_found"));
    assert_eq!(answered, expected);
    for result in results
        .iter()
        .filter(|result| result["outcome"] == "created")
    {
        assert_eq!(result["enrollment"]["user_id"], result["user_id"]);
        assert_eq!(result["enrollment"]["type"], "required");
        assert_eq!(result["enrollment"]["due_on"], "2031-01-31");
    }
    let created: Vec<i64> = results
        .iter()
        .filter(|result| result["outcome"] == "created")
        .map(|result| id(&result["enrollment"]))
        .collect();
    assert_eq!(created.len(), 519);

    let mut ids = created.clone();
    ids.push(enrolled);
    ids.push(777777777);
    let (status, answer) = app
        .post(
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": ids, "due_on": "2032-02-29", "type": "recommended"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut expected: Vec<(i64, &str)> = created.iter().map(|&id| (id, "updated")).collect();
    expected.push((enrolled, "updated"));
    expected.push((777777777, "not_found"));
    assert_eq!(outcomes(&answer), expected);
    for result in answer["results"].as_array().unwrap().iter().take(520) {
        assert_eq!(result["enrollment"]["due_on"], "2032-02-29", "{result}");
        assert_eq!(result["enrollment"]["type"], "recommended");
        // A field the update leaves out stays as it was.
        assert_eq!(
            result["enrollment"]["required_by"], "Administrator",
            "{result}"
        );
    }
    let (_, one) = app
        .get(&format!("/enrollments/{}", created[300]), &app.admin)
        .await;
    assert_eq!(one["due_on"], "2032-02-29");
    assert_eq!(one["type"], "recommended");

    // An id given twice: the second change reads what the first left.
    let (status, answer) = app
        .post(
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [enrolled, enrolled], "type": "required"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        outcomes(&answer),
        vec![(enrolled, "updated"), (enrolled, "updated")]
    );

    let (_, audit) = app
        .get(
            &format!("/audit?entity=enrollment&id={}", created[519 - 1]),
            &app.admin,
        )
        .await;
    let actions: Vec<String> = items(&audit)
        .iter()
        .map(|entry| entry["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        ["enrollment.create", "enrollment.update"],
        "{audit}"
    );
}

#[tokio::test]
async fn a_misspelt_field_in_an_enrollment_patch_is_422_naming_it_and_changes_nothing() {
    let app = spawn_app().await;
    let user_id = app.create_user("typo", &[]).await;
    let activity_id = app.create_activity("Typos", "online_course").await;
    let enrollment = app
        .enroll_one(activity_id, user_id, json!({"due_on": "2030-05-31"}))
        .await;

    let reply = app
        .request(
            Method::PATCH,
            &format!("/enrollments/{}", id(&enrollment)),
            &app.admin,
            json!({"due": "2030-09-30"}),
        )
        .await;

    assert_field_error(&reply, "due");
    let (_, unchanged) = app
        .get(&format!("/enrollments/{}", id(&enrollment)), &app.admin)
        .await;
    assert_eq!(unchanged["due_on"], "2030-05-31");
}

#[tokio::test]
async fn r55_an_unknown_status_filter_is_422_naming_status() {
    let app = spawn_app().await;

    let reply = app
        .request(
            Method::GET,
            "/enrollments?status=finished",
            &app.admin,
            Value::Null,
        )
        .await;

    assert_field_error(&reply, "status");
}

#[tokio::test]
async fn r51_bulk_update_with_due_on_null_clears_every_due_date_also_with_a_status() {
    let app = spawn_app().await;
    let user_id = app.create_user("undue", &[]).await;
    let first = app.create_activity("Undue one", "online_course").await;
    let second = app.create_activity("Undue two", "online_course").await;
    let due = json!({"due_on": "2030-06-30"});
    let one = id(&app.enroll_one(first, user_id, due.clone()).await);
    let two = id(&app.enroll_one(second, user_id, due).await);

    let (status, answer) = app
        .post(
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [one, two], "due_on": null, "status": "passed"}),
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer), vec![(one, "updated"), (two, "updated")]);
    for enrollment_id in [one, two] {
        let (_, enrollment) = app
            .get(&format!("/enrollments/{enrollment_id}"), &app.admin)
            .await;
        assert_eq!(enrollment["due_on"], Value::Null, "{enrollment}");
        assert_eq!(enrollment["status"], "passed", "{enrollment}");
    }
}

#[tokio::test]
async fn an_enrollment_read_by_id_names_its_activity_and_its_learner() {
    let app = spawn_app().await;
    let user_id = app.create_user("shown", &[]).await;
    let activity_id = app.create_activity("Shown", "online_course").await;
    let enrollment = app.enroll_one(activity_id, user_id, json!({})).await;

    let (status, read) = app
        .get(&format!("/enrollments/{}", id(&enrollment)), &app.admin)
        .await;

    assert_eq!(status, 200, "{read}");
    assert_eq!(read["activity_title"], "Shown");
    assert_eq!(read["user"]["id"], user_id);
    assert_eq!(read["user"]["username"], "shown");
}

#[tokio::test]
async fn r51_bulk_update_refuses_fields_only_a_single_patch_may_change() {
    let app = spawn_app().await;
    let user_id = app.create_user("strict", &[]).await;
    let activity_id = app.create_activity("Strict", "online_course").await;
    let enrollment = id(&app.enroll_one(activity_id, user_id, json!({})).await);

    let reply = app
        .request(
            Method::POST,
            "/enrollments/bulk-update",
            &app.admin,
            json!({"ids": [enrollment], "reason": "audit"}),
        )
        .await;

    assert_field_error(&reply, "reason");
}
