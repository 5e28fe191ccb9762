//! Post-enrollment rules: R30 (where), R31 (fields), R32/R33 (triggers and
//! timing), R34 (not retroactive), R35 (queued jobs survive rule changes;
//! cancel), R36 (outcomes, allow_consecutive), R37 (inactive targets), R38
//! (chains terminate), R41 (inactive learner).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_field_error, assert_problem, id};
use crate::support::{
    app_at, course, field, jobs, jobs_of_rule, member, of, of_user, only, post_rule,
    post_rule_reply, set_status, settle, when,
};

/// Whether any enrollment listed under the given keys is in the activity.
fn shown(view: &Value, keys: &[&str], activity: i64) -> bool {
    keys.iter().any(|key| {
        view[*key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} list in {view}"))
            .iter()
            .any(|enrollment| enrollment["activity_id"] == activity)
    })
}

const PLAN: &[&str] = &[
    "overdue",
    "due_soon",
    "due_this_month",
    "later",
    "no_due_date",
];
const HOME: &[&str] = &["required", "recommended"];

fn targets_of(enrollments: &[Value]) -> Vec<i64> {
    let mut ids: Vec<i64> = enrollments
        .iter()
        .map(|e| e["activity_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn r30_a_post_enrollment_rule_on_a_course_bundle_is_422() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let item = course(&app, "Item").await;
    let target = course(&app, "Target").await;
    let bundle = app
        .create_activity_with(
            json!({"title": "Bundle", "kind": "course_bundle", "item_ids": [item]}),
        )
        .await;
    let curriculum = app
        .create_activity_with(
            json!({"title": "Curriculum", "kind": "curriculum", "item_ids": [item]}),
        )
        .await;
    let classroom = app.create_activity("Classroom", "instructor_led").await;

    let reply = post_rule_reply(&app, id(&bundle), when("enrolled", 0, &[target], false)).await;

    assert_problem(&reply, 422);
    let (_, listed) = app
        .get(
            &format!("/activities/{}/post-enrollments", id(&bundle)),
            &app.admin,
        )
        .await;
    assert_eq!(listed["items"], json!([]), "{listed}");
    for accepted in [item, id(&curriculum), classroom] {
        post_rule(&app, accepted, when("completed", 0, &[target], false)).await;
    }
}

#[tokio::test]
async fn r31_failed_needs_allow_failure_and_delay_days_is_0_to_3650() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let strict = course(&app, "No failure").await;
    let lenient = id(&app
        .create_activity_with(
            json!({"title": "May fail", "kind": "online_course", "allow_failure": true}),
        )
        .await);
    let target = course(&app, "Target").await;

    let failed = post_rule_reply(&app, strict, when("failed", 0, &[target], false)).await;
    assert_field_error(&failed, "when");
    let too_long = post_rule_reply(&app, strict, when("completed", 3651, &[target], false)).await;
    assert_field_error(&too_long, "delay_days");
    let negative = post_rule_reply(&app, strict, when("completed", -1, &[target], false)).await;
    assert_field_error(&negative, "delay_days");

    let longest = post_rule(&app, strict, when("completed", 3650, &[target], true)).await;
    assert_eq!(longest["delay_days"], 3650);
    assert_eq!(longest["allow_consecutive"], true);
    let on_failure = post_rule(&app, lenient, when("failed", 0, &[target], false)).await;
    assert_eq!(on_failure["when"], "failed");

    // Changing an existing rule to `failed` is refused the same way.
    let reply = app
        .request(
            Method::PATCH,
            &format!("/activities/{strict}/post-enrollments/{}", id(&longest)),
            &app.admin,
            json!({"when": "failed"}),
        )
        .await;
    assert_field_error(&reply, "when");
}

#[tokio::test]
async fn r32_enrolled_completed_and_failed_each_fire_their_own_rules() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let passer = member(&app, "passer", &[], json!({})).await;
    let failer = member(&app, "failer", &[], json!({})).await;
    let source = id(&app
        .create_activity_with(
            json!({"title": "Source", "kind": "online_course", "allow_failure": true}),
        )
        .await);
    let on_enrolled = course(&app, "On enrolled").await;
    let on_completed = course(&app, "On completed").await;
    let on_failed = course(&app, "On failed").await;
    post_rule(&app, source, when("enrolled", 0, &[on_enrolled], false)).await;
    post_rule(&app, source, when("completed", 0, &[on_completed], false)).await;
    post_rule(&app, source, when("failed", 0, &[on_failed], false)).await;

    let passing = app.enroll_one(source, passer, json!({})).await;
    let failing = app.enroll_one(source, failer, json!({})).await;
    app.run_due_jobs().await;
    assert_eq!(
        targets_of(&of_user(&app, passer).await),
        vec![source, on_enrolled]
    );
    set_status(&app, id(&passing), "passed").await;
    set_status(&app, id(&failing), "failed").await;
    app.run_due_jobs().await;

    assert_eq!(
        targets_of(&of_user(&app, passer).await),
        vec![source, on_enrolled, on_completed]
    );
    assert_eq!(
        targets_of(&of_user(&app, failer).await),
        vec![source, on_enrolled, on_failed]
    );
}

#[tokio::test]
async fn r32_an_enrollment_created_already_passed_fires_both_enrolled_and_completed() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "veteran", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let on_enrolled = course(&app, "On enrolled").await;
    let on_completed = course(&app, "On completed").await;
    let enrolled_rule = post_rule(&app, source, when("enrolled", 0, &[on_enrolled], false)).await;
    let completed_rule =
        post_rule(&app, source, when("completed", 0, &[on_completed], false)).await;

    let record = app
        .enroll_one(source, learner, json!({"status": "passed"}))
        .await;
    app.run_due_jobs().await;

    for rule in [&enrolled_rule, &completed_rule] {
        let fired = jobs_of_rule(&app, id(rule)).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0]["payload"]["from_enrollment_id"], id(&record));
        assert_eq!(fired[0]["payload"]["when"], rule["when"]);
    }
    assert_eq!(
        targets_of(&of_user(&app, learner).await),
        vec![source, on_enrolled, on_completed]
    );
}

#[tokio::test]
async fn r33_delay_zero_is_processed_at_once_and_delay_n_runs_when_the_clock_passes_n_days() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "timed", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let now_target = course(&app, "At once").await;
    let later_target = course(&app, "Three days later").await;
    post_rule(&app, source, when("completed", 0, &[now_target], false)).await;
    let delayed = post_rule(&app, source, when("completed", 3, &[later_target], false)).await;
    let record = app.enroll_one(source, learner, json!({})).await;
    app.set_clock("2030-01-10T11:30:00Z").await;
    set_status(&app, id(&record), "passed").await;

    // Delay 0: the job worker processes it within seconds, unasked.
    let deadline = Instant::now() + Duration::from_secs(15);
    while of(&app, learner, now_target).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "delay 0 was not processed within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_once = only(&app, learner, now_target).await;
    assert_eq!(at_once["enrolled_at"], "2030-01-10T11:30:00Z", "{at_once}");

    // Delay 3: pending, due 72 hours after the trigger, with the snapshot.
    let pending = jobs_of_rule(&app, id(&delayed)).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let job = &pending[0];
    assert_eq!(job["state"], "pending", "{job}");
    assert_eq!(job["kind"], "post_enrollment");
    assert_eq!(job["run_at"], "2030-01-13T11:30:00Z", "{job}");
    assert_eq!(job["payload"]["target_ids"], json!([later_target]), "{job}");
    assert_eq!(job["payload"]["allow_consecutive"], false, "{job}");
    assert_eq!(job["payload"]["user_id"], learner, "{job}");
    assert_eq!(job["payload"]["from_enrollment_id"], id(&record), "{job}");

    app.set_clock("2030-01-13T11:29:59Z").await;
    assert!(of(&app, learner, later_target).await.is_empty());
    let (_, still) = app.get(&format!("/jobs/{}", id(job)), &app.admin).await;
    assert_eq!(still["state"], "pending", "{still}");

    app.set_clock("2030-01-13T11:30:00Z").await;
    let created = only(&app, learner, later_target).await;
    assert_eq!(created["enrolled_at"], "2030-01-13T11:30:00Z", "{created}");
    assert_eq!(created["type"], "required");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["due_on"], Value::Null);
    assert_eq!(
        created["source"],
        json!({"kind": "post_enrollment", "rule_id": id(&delayed), "from_enrollment_id": id(&record)})
    );
    let (_, done) = app.get(&format!("/jobs/{}", id(job)), &app.admin).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        done["outcome"],
        json!([{"activity_id": later_target, "outcome": "created", "enrollment_id": id(&created)}]),
        "{done}"
    );
}

#[tokio::test]
async fn r34_rules_are_not_retroactive() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let before = member(&app, "before", &[], json!({})).await;
    let after = member(&app, "after", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let on_enrolled = course(&app, "On enrolled").await;
    let on_completed = course(&app, "On completed").await;
    let earlier = app.enroll_one(source, before, json!({})).await;
    set_status(&app, id(&earlier), "passed").await;

    post_rule(&app, source, when("enrolled", 0, &[on_enrolled], false)).await;
    post_rule(&app, source, when("completed", 0, &[on_completed], false)).await;
    app.set_clock("2030-01-20T10:00:00Z").await;

    assert_eq!(targets_of(&of_user(&app, before).await), vec![source]);
    assert!(jobs(&app, "kind=post_enrollment").await.is_empty());

    app.enroll_one(source, after, json!({"status": "passed"}))
        .await;
    app.run_due_jobs().await;
    assert_eq!(
        targets_of(&of_user(&app, after).await),
        vec![source, on_enrolled, on_completed]
    );
    assert_eq!(targets_of(&of_user(&app, before).await), vec![source]);
}

#[tokio::test]
async fn r34_a_completion_after_the_rule_was_added_fires_it_even_if_the_enrollment_is_older() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "midway", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let on_enrolled = course(&app, "On enrolled").await;
    let on_completed = course(&app, "On completed").await;
    let enrollment = app.enroll_one(source, learner, json!({})).await;
    post_rule(&app, source, when("enrolled", 0, &[on_enrolled], false)).await;
    post_rule(&app, source, when("completed", 0, &[on_completed], false)).await;

    set_status(&app, id(&enrollment), "passed").await;
    app.run_due_jobs().await;

    assert_eq!(
        targets_of(&of_user(&app, learner).await),
        vec![source, on_completed],
        "the completion is a new event; the enrollment before the rule is not"
    );
}

#[tokio::test]
async fn r32_enrolled_fires_whichever_path_creates_the_enrollment() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let (by_self, self_token) = app.create_learner("self").await;
    let (by_url, url_token) = app.create_learner("url").await;
    let by_bundle = member(&app, "bundle", &[], json!({})).await;
    let by_sweep = member(&app, "sweep", &[staff], json!({})).await;
    let by_next_period = member(&app, "next", &[], json!({})).await;
    let target = course(&app, "Target").await;
    let source = app
        .create_activity_with(json!({"title": "Source", "kind": "online_course"}))
        .await;
    let url = source["enrollment_url"]
        .as_str()
        .expect("an enrollment URL")
        .to_string();
    let source = id(&source);
    let bundle = id(&app
        .create_activity_with(
            json!({"title": "Bundle", "kind": "course_bundle", "item_ids": [source]}),
        )
        .await);
    post_rule(&app, source, when("enrolled", 0, &[target], false)).await;

    let (status, body) = app
        .post(
            "/me/enrollments",
            &self_token,
            json!({"activity_id": source}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.post(&url, &url_token, json!({})).await;
    assert_eq!(status, 201, "{body}");
    app.enroll_one(bundle, by_bundle, json!({})).await;
    crate::support::set_rule(
        &app,
        source,
        crate::support::groups_rule(&[staff], json!({"kind": "every_months", "months": 12})),
    )
    .await;
    crate::support::sweep(&app).await;
    // R19: the next cycle is created by passing the first.
    let (status, _) = app
        .put(
            &format!("/groups/{staff}/members/{by_next_period}"),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    app.run_due_jobs().await;
    let first_cycle = only(&app, by_next_period, source).await;
    let first_target = only(&app, by_next_period, target).await;
    set_status(&app, id(&first_target), "passed").await;
    set_status(&app, id(&first_cycle), "passed").await;
    app.run_due_jobs().await;

    for user in [by_self, by_url, by_bundle, by_sweep] {
        let enrollments = of(&app, user, target).await;
        assert_eq!(enrollments.len(), 1, "user {user}: {enrollments:?}");
        assert_eq!(enrollments[0]["source"]["kind"], "post_enrollment");
    }
    // Cycle 2 fired the rule again: the target, passed, was not re-enrolled.
    let cycles = of(&app, by_next_period, source).await;
    assert_eq!(field(&cycles, "period"), ["cycle-1", "cycle-2"]);
    let fired: Vec<Value> = jobs(&app, "kind=post_enrollment")
        .await
        .into_iter()
        .filter(|job| job["payload"]["from_enrollment_id"] == id(&cycles[1]))
        .collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        fired[0]["outcome"],
        json!([{"activity_id": target, "outcome": "already_completed"}])
    );
}

#[tokio::test]
async fn r35_removing_or_editing_a_rule_leaves_queued_jobs_to_run_with_their_snapshot() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let first = member(&app, "first", &[], json!({})).await;
    let second = member(&app, "second", &[], json!({})).await;
    let third = member(&app, "third", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let old_target = course(&app, "Old target").await;
    let new_target = course(&app, "New target").await;
    let rule = post_rule(&app, source, when("completed", 5, &[old_target], false)).await;
    let rule_id = id(&rule);
    let path = format!("/activities/{source}/post-enrollments/{rule_id}");

    app.enroll_one(source, first, json!({"status": "passed"}))
        .await;
    let (status, edited) = app
        .patch(
            &path,
            &app.admin,
            json!({"target_ids": [new_target], "delay_days": 1}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    app.enroll_one(source, second, json!({"status": "passed"}))
        .await;
    let (status, _) = app.delete(&path, &app.admin).await;
    assert_eq!(status, 204);
    app.enroll_one(source, third, json!({"status": "passed"}))
        .await;

    let pending = jobs(&app, "state=pending").await;
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert_eq!(pending[0]["payload"]["user_id"], first);
    assert_eq!(pending[0]["payload"]["target_ids"], json!([old_target]));
    assert_eq!(pending[0]["run_at"], "2030-01-15T10:00:00Z");
    assert_eq!(pending[1]["payload"]["user_id"], second);
    assert_eq!(pending[1]["payload"]["target_ids"], json!([new_target]));
    assert_eq!(pending[1]["run_at"], "2030-01-11T10:00:00Z");
    assert!(pending.iter().all(|job| job["rule_id"] == rule_id));

    app.set_clock("2030-01-16T00:00:00Z").await;

    assert_eq!(
        targets_of(&of_user(&app, first).await),
        vec![source, old_target]
    );
    assert_eq!(
        targets_of(&of_user(&app, second).await),
        vec![source, new_target]
    );
    assert_eq!(targets_of(&of_user(&app, third).await), vec![source]);
    assert!(jobs(&app, "state=pending").await.is_empty());
}

#[tokio::test]
async fn r35_an_administrator_can_cancel_a_pending_job_once() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "cancelled", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let target = course(&app, "Target").await;
    post_rule(&app, source, when("completed", 2, &[target], false)).await;
    app.enroll_one(source, learner, json!({"status": "passed"}))
        .await;
    let pending = jobs(&app, "state=pending").await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let job_id = id(&pending[0]);

    let (status, cancelled) = app
        .post(&format!("/jobs/{job_id}/cancel"), &app.admin, json!({}))
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let again = app
        .request(
            Method::POST,
            &format!("/jobs/{job_id}/cancel"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_problem(&again, 409);

    app.set_clock("2030-01-13T00:00:00Z").await;
    assert!(of(&app, learner, target).await.is_empty());
    assert!(jobs(&app, "state=pending").await.is_empty());
    let listed = jobs(&app, "state=cancelled").await;
    assert_eq!(listed.iter().map(id).collect::<Vec<_>>(), vec![job_id]);
}

#[tokio::test]
async fn r35_jobs_are_listed_for_one_learner_and_for_one_activity() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let first = member(&app, "chain-one", &[], json!({})).await;
    let second = member(&app, "chain-two", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let target = course(&app, "Target").await;
    let other = course(&app, "Other").await;
    post_rule(&app, source, when("completed", 2, &[target], false)).await;
    app.enroll_one(source, first, json!({"status": "passed"}))
        .await;
    app.enroll_one(source, second, json!({"status": "passed"}))
        .await;
    let pending = jobs(&app, "state=pending").await;
    assert_eq!(pending.len(), 2, "{pending:?}");
    let job_of = |user_id: i64| {
        pending
            .iter()
            .find(|job| crate::helpers::as_json(&job["payload"])["user_id"] == user_id)
            .map(id)
            .expect("a job per learner")
    };

    let mine = jobs(&app, &format!("user_id={first}")).await;
    let by_source = jobs(&app, &format!("activity_id={source}")).await;
    let by_target = jobs(&app, &format!("state=pending&activity_id={target}")).await;
    let by_other = jobs(&app, &format!("activity_id={other}")).await;

    assert_eq!(mine.iter().map(id).collect::<Vec<_>>(), vec![job_of(first)]);
    let both = vec![job_of(first), job_of(second)];
    assert_eq!(by_source.iter().map(id).collect::<Vec<_>>(), both);
    assert_eq!(by_target.iter().map(id).collect::<Vec<_>>(), both);
    assert!(by_other.is_empty(), "{by_other:?}");
}

#[tokio::test]
async fn r36_job_outcomes_are_created_already_enrolled_and_already_completed() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "outcomes", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let open = course(&app, "Open").await;
    let passed = course(&app, "Passed").await;
    let fresh = course(&app, "Fresh").await;
    let rule = post_rule(
        &app,
        source,
        when("completed", 0, &[open, passed, fresh], false),
    )
    .await;
    app.enroll_one(open, learner, json!({})).await;
    app.enroll_one(passed, learner, json!({"status": "passed"}))
        .await;

    app.enroll_one(source, learner, json!({"status": "passed"}))
        .await;
    app.run_due_jobs().await;

    let created = only(&app, learner, fresh).await;
    let done = jobs_of_rule(&app, id(&rule)).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["state"], "done");
    assert_eq!(
        done[0]["outcome"],
        json!([
            {"activity_id": open, "outcome": "already_enrolled"},
            {"activity_id": passed, "outcome": "already_completed"},
            {"activity_id": fresh, "outcome": "created", "enrollment_id": id(&created)},
        ])
    );
    assert_eq!(of(&app, learner, open).await.len(), 1);
    assert_eq!(
        field(&of(&app, learner, passed).await, "status"),
        ["passed"]
    );
}

#[tokio::test]
async fn r36_allow_consecutive_re_enrolls_a_learner_who_passed_for_recertification() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "recert", &[], json!({})).await;
    let certificate = course(&app, "Certificate").await;
    let once = course(&app, "No consecutive").await;
    post_rule(
        &app,
        certificate,
        when("completed", 365, &[certificate], true),
    )
    .await;
    let blocked = post_rule(&app, once, when("completed", 365, &[once], false)).await;
    app.enroll_one(certificate, learner, json!({"status": "passed"}))
        .await;
    app.enroll_one(once, learner, json!({"status": "passed"}))
        .await;

    app.set_clock("2031-01-10T09:59:59Z").await;
    assert_eq!(of(&app, learner, certificate).await.len(), 1);
    app.set_clock("2031-01-11T00:00:00Z").await;

    let list = of(&app, learner, certificate).await;
    assert_eq!(field(&list, "status"), ["passed", "in_progress"]);
    assert_eq!(
        list[1]["enrolled_at"], "2031-01-10T10:00:00Z",
        "365 × 24 h later"
    );
    assert_eq!(list[1]["source"]["kind"], "post_enrollment");
    assert_eq!(field(&of(&app, learner, once).await, "status"), ["passed"]);
    let job = &jobs_of_rule(&app, id(&blocked)).await[0];
    assert_eq!(
        job["outcome"],
        json!([{"activity_id": once, "outcome": "already_completed"}])
    );
}

#[tokio::test]
async fn r37_an_inactive_target_is_enrolled_but_hidden_from_the_learner_until_active_again() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let (learner, token) = app.create_learner("hidden").await;
    let source = course(&app, "Source").await;
    let target = id(&app
        .create_activity_with(json!({"title": "Retired", "kind": "online_course", "active": false}))
        .await);
    post_rule(&app, source, when("enrolled", 0, &[target], false)).await;

    app.enroll_one(source, learner, json!({"type": "required"}))
        .await;
    app.run_due_jobs().await;

    let record = only(&app, learner, target).await;
    assert_eq!(record["status"], "in_progress");
    assert_eq!(record["type"], "required");
    let (status, plan) = app.get("/me/plan", &token).await;
    assert_eq!(status, 200, "{plan}");
    let (_, home) = app.get("/me/home", &token).await;
    assert!(shown(&plan, PLAN, source), "{plan}");
    assert!(!shown(&plan, PLAN, target), "{plan}");
    assert!(shown(&home, &["required"], source), "{home}");
    assert!(!shown(&home, HOME, target), "{home}");
    // Administration still shows it.
    let (_, listed) = app
        .get(&format!("/activities/{target}/enrollments"), &app.admin)
        .await;
    assert_eq!(crate::helpers::item_ids(&listed), vec![id(&record)]);

    let (status, _) = app
        .patch(
            &format!("/activities/{target}"),
            &app.admin,
            json!({"active": true}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, plan) = app.get("/me/plan", &token).await;
    let (_, home) = app.get("/me/home", &token).await;
    assert!(shown(&plan, PLAN, target), "{plan}");
    assert!(shown(&home, &["required"], target), "{home}");
}

#[tokio::test]
async fn r38_chains_run_through_and_cycles_terminate() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "chain", &[], json!({})).await;
    let a = course(&app, "A").await;
    let b = course(&app, "B").await;
    let c = course(&app, "C").await;
    post_rule(&app, a, when("enrolled", 0, &[b], false)).await;
    post_rule(&app, b, when("enrolled", 0, &[c], false)).await;
    let x = course(&app, "X").await;
    let y = course(&app, "Y").await;
    post_rule(&app, x, when("enrolled", 0, &[y], false)).await;
    let back = post_rule(&app, y, when("enrolled", 0, &[x], false)).await;

    app.enroll_one(a, learner, json!({})).await;
    app.enroll_one(x, learner, json!({})).await;
    app.run_due_jobs().await;
    app.set_clock("2030-01-12T00:00:00Z").await;

    assert_eq!(
        targets_of(&of_user(&app, learner).await),
        vec![a, b, c, x, y],
        "one enrollment in each activity of the chain and of the cycle"
    );
    let all = jobs(&app, "kind=post_enrollment").await;
    assert_eq!(all.len(), 4, "A→B, B→C, X→Y, Y→X: {all:?}");
    assert!(all.iter().all(|job| job["state"] == "done"), "{all:?}");
    let closing = &jobs_of_rule(&app, id(&back)).await[0];
    assert_eq!(
        closing["outcome"],
        json!([{"activity_id": x, "outcome": "already_enrolled"}])
    );
}

#[tokio::test]
async fn r41_a_job_whose_learner_became_inactive_creates_nothing_and_says_user_inactive() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "gone", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let target = course(&app, "Target").await;
    let rule = post_rule(&app, source, when("completed", 2, &[target], false)).await;
    app.enroll_one(source, learner, json!({"status": "passed"}))
        .await;
    let (status, _) = app
        .patch(
            &format!("/users/{learner}"),
            &app.admin,
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, 200);

    app.set_clock("2030-01-13T00:00:00Z").await;

    assert!(of(&app, learner, target).await.is_empty());
    let job = &jobs_of_rule(&app, id(&rule)).await[0];
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        job["outcome"],
        json!([{"activity_id": target, "outcome": "user_inactive"}])
    );
}

/// R36 with R39: two jobs for one learner make one enrollment, whether
/// they run in one batch (a later job sees what an earlier one of its batch
/// wrote) or on the server's two workers at once (the second batch waits
/// for the first's learner and then reads what it wrote). Two rules fire
/// into a curriculum whose every course the learner has passed: the first
/// enrollment passes at once (R39), so the other job finds it passed and
/// creates nothing.
#[tokio::test]
async fn r36_r39_two_jobs_for_one_learner_into_one_target_create_one_enrollment() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "batched", &[], json!({})).await;
    let item = course(&app, "Only course").await;
    let path = id(&app
        .create_activity_with(json!({"title": "Path", "kind": "curriculum", "item_ids": [item]}))
        .await);
    let source = course(&app, "Source").await;
    let first = post_rule(&app, source, when("completed", 0, &[path], false)).await;
    let second = post_rule(&app, source, when("completed", 0, &[path], false)).await;
    app.enroll_one(item, learner, json!({"status": "passed"}))
        .await;
    app.enroll_one(source, learner, json!({"status": "passed"}))
        .await;

    app.run_due_jobs().await;
    settle(&app).await;

    let created = only(&app, learner, path).await;
    assert_eq!(created["status"], "passed", "{created}");
    let mut outcomes = Vec::new();
    for rule in [&first, &second] {
        let done = jobs_of_rule(&app, id(rule)).await;
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0]["state"], "done", "{done:?}");
        outcomes.push(done[0]["outcome"].clone());
    }
    let created_outcome =
        json!([{"activity_id": path, "outcome": "created", "enrollment_id": id(&created)}]);
    let passed_outcome = json!([{"activity_id": path, "outcome": "already_completed"}]);
    assert!(
        outcomes == [created_outcome.clone(), passed_outcome.clone()]
            || outcomes == [passed_outcome, created_outcome],
        "{outcomes:?}"
    );
}
