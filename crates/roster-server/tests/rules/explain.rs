//! R20 (explain: the chain of sources, and why there is no enrollment) and
//! R21 (exemptions).

use serde_json::{Value, json};

use crate::helpers::id;
use crate::support::{
    admin_id, app_at, audit, course, explain_pair, groups_rule, in_activity, jobs_of_rule, member,
    of, only, post_rule, reason_codes, set_rule, set_status, sweep, user_ids, when,
};

#[tokio::test]
async fn r20_explain_of_a_post_enrollment_chain_names_each_step_up_to_the_person() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let admin = admin_id(&app).await;
    let learner = member(&app, "chained", &[], json!({})).await;
    let first = course(&app, "First").await;
    let second = course(&app, "Second").await;
    let third = course(&app, "Third").await;
    let to_second = post_rule(&app, first, when("enrolled", 0, &[second], false)).await;
    let to_third = post_rule(&app, second, when("enrolled", 0, &[third], false)).await;
    let start = app.enroll_one(first, learner, json!({})).await;
    app.run_due_jobs().await;
    let middle = only(&app, learner, second).await;
    let end = only(&app, learner, third).await;

    let (status, answer) = app
        .get(&format!("/enrollments/{}/explain", id(&end)), &app.admin)
        .await;

    assert_eq!(status, 200, "{answer}");
    let chain = answer["chain"].as_array().expect("a chain").clone();
    assert_eq!(chain.len(), 3, "{answer}");
    assert_eq!(chain[0]["enrollment_id"], id(&end));
    assert_eq!(
        chain[0]["source"],
        json!({"kind": "post_enrollment", "rule_id": id(&to_third), "from_enrollment_id": id(&middle)})
    );
    assert_eq!(chain[1]["enrollment_id"], id(&middle));
    assert_eq!(
        chain[1]["source"],
        json!({"kind": "post_enrollment", "rule_id": id(&to_second), "from_enrollment_id": id(&start)})
    );
    assert_eq!(chain[2]["enrollment_id"], id(&start));
    assert_eq!(chain[2]["source"], json!({"kind": "manual", "by": admin}));
    let summary = answer["summary"].as_str().expect("a summary in words");
    for title in ["First", "Second", "Third"] {
        assert!(summary.contains(title), "{summary}");
    }
}

#[tokio::test]
async fn r20_explain_of_an_enrollment_whose_source_was_deleted_says_so_and_names_no_other_record() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "orphan", &[], json!({})).await;
    let other = member(&app, "other", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let target = course(&app, "Target").await;
    let unrelated = course(&app, "Unrelated").await;
    post_rule(&app, source, when("enrolled", 1, &[target], false)).await;
    let parent = app.enroll_one(source, learner, json!({})).await;
    let (status, body) = app
        .post(
            "/enrollments/bulk-delete",
            &app.admin,
            json!({"ids": [id(&parent)], "confirm": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A later, unrelated enrollment must not take the deleted one's place.
    let newer = app.enroll_one(unrelated, other, json!({})).await;

    app.set_clock("2030-01-11T11:00:00Z").await;
    let child = only(&app, learner, target).await;
    assert_eq!(child["source"]["from_enrollment_id"], id(&parent));

    let (status, answer) = app
        .get(&format!("/enrollments/{}/explain", id(&child)), &app.admin)
        .await;
    assert_eq!(status, 200, "{answer}");
    let chain = answer["chain"].as_array().expect("a chain");
    assert_eq!(chain.len(), 2, "{answer}");
    assert_eq!(chain[1]["enrollment_id"], id(&parent), "{answer}");
    assert!(
        chain[1]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("deleted"),
        "{answer}"
    );
    assert!(
        chain.iter().all(|step| step["activity_id"] != unrelated),
        "explain names another learner's enrollment: {answer}"
    );
    assert_ne!(
        id(&newer),
        id(&parent),
        "the id of a deleted enrollment was given to a new one"
    );
}

#[tokio::test]
async fn r20_explain_of_an_auto_enrollment_names_the_rule_and_its_period() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "auto", &[staff], json!({})).await;
    let activity = course(&app, "Ruled").await;
    set_rule(
        &app,
        activity,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "06-30"}),
        ),
    )
    .await;
    sweep(&app).await;
    let enrollment = only(&app, learner, activity).await;

    let (status, answer) = app
        .get(
            &format!("/enrollments/{}/explain", id(&enrollment)),
            &app.admin,
        )
        .await;

    assert_eq!(status, 200, "{answer}");
    let chain = answer["chain"].as_array().expect("a chain");
    assert_eq!(chain.len(), 1, "{answer}");
    assert_eq!(
        chain[0]["source"],
        json!({"kind": "auto_enrollment", "activity_id": activity, "period": "2030-06-30"})
    );
    assert!(
        answer["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("2030-06-30"),
        "{answer}"
    );
}

#[tokio::test]
async fn r20_explain_for_a_user_without_enrollment_names_the_reason() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let activity = course(&app, "Ruled").await;
    let source = course(&app, "Source").await;
    let outsider = member(&app, "outsider", &[], json!({"hired_on": "2029-06-01"})).await;
    let inactive = member(
        &app,
        "inactive",
        &[staff],
        json!({"active": false, "hired_on": "2029-06-01"}),
    )
    .await;
    let early = member(&app, "early", &[staff], json!({"hired_on": "2028-12-31"})).await;
    let exempt = member(&app, "exempt", &[staff], json!({"hired_on": "2029-06-01"})).await;
    let waiting = member(&app, "waiting", &[], json!({"hired_on": "2029-06-01"})).await;
    let (status, _) = app
        .post(
            "/exemptions",
            &app.admin,
            json!({"user_id": exempt, "activity_id": activity, "reason": "Works abroad", "until": "2030-12-31"}),
        )
        .await;
    assert_eq!(status, 201);
    post_rule(&app, source, when("completed", 10, &[activity], false)).await;
    app.enroll_one(source, waiting, json!({"status": "passed"}))
        .await;
    set_rule(
        &app,
        activity,
        json!({"scope": "groups", "group_ids": [staff], "hired_after": "2029-01-01",
               "recurrence": {"kind": "one_time", "due": null}}),
    )
    .await;
    sweep(&app).await;
    assert!(in_activity(&app, activity).await.is_empty());

    for (user, code) in [
        (outsider, "not_in_groups"),
        (inactive, "inactive_user"),
        (early, "hired_too_early"),
        (exempt, "exempt"),
        (waiting, "pending_job"),
    ] {
        let answer = explain_pair(&app, user, activity).await;
        assert_eq!(answer["enrolled"], false, "{answer}");
        let codes = reason_codes(&answer);
        assert!(
            codes.iter().any(|c| c == code),
            "user {user}: expected reason {code}, got {codes:?}: {answer}"
        );
    }
    let exempt_answer = explain_pair(&app, exempt, activity).await;
    let text = exempt_answer["reasons"].to_string();
    assert!(text.contains("Works abroad"), "{exempt_answer}");
    let waiting_answer = explain_pair(&app, waiting, activity).await;
    assert_eq!(
        waiting_answer["pending_jobs"][0]["run_at"], "2030-01-20T10:00:00Z",
        "{waiting_answer}"
    );
}

#[tokio::test]
async fn r21_an_exemption_keeps_every_rule_from_enrolling_the_user_until_it_ends() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let admin = admin_id(&app).await;
    let staff = app.create_group("Staff").await;
    let exempt = member(&app, "onleave", &[], json!({})).await;
    let colleague = member(&app, "colleague", &[staff], json!({})).await;
    let activity = course(&app, "Mandatory").await;
    let (status, exemption) = app
        .post(
            "/exemptions",
            &app.admin,
            json!({"user_id": exempt, "activity_id": activity, "reason": "Parental leave", "until": "2030-01-20"}),
        )
        .await;
    assert_eq!(status, 201, "{exemption}");
    assert_eq!(exemption["created_by"], admin, "{exemption}");
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
    )
    .await;

    // Neither the immediate evaluation of an administrator's change nor the
    // nightly sweeps enroll the exempt user.
    let (status, _) = app
        .put(
            &format!("/groups/{staff}/members/{exempt}"),
            &app.admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    assert!(of(&app, exempt, activity).await.is_empty());
    app.set_clock("2030-01-20T03:00:00Z").await;
    assert_eq!(
        user_ids(&in_activity(&app, activity).await),
        vec![colleague]
    );

    let answer = explain_pair(&app, exempt, activity).await;
    assert!(
        reason_codes(&answer).iter().any(|c| c == "exempt"),
        "{answer}"
    );
    assert!(
        answer["reasons"].to_string().contains("Parental leave"),
        "{answer}"
    );
    let entries = audit(&app, "exemption", id(&exemption)).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["action"], "exemption.create");
    assert_eq!(entries[0]["actor_id"], admin, "who granted it");
    assert_eq!(entries[0]["after"]["reason"], "Parental leave");

    // The exemption holds through 2030-01-20; the sweep of 2030-01-21 enrolls.
    app.set_clock("2030-01-21T03:00:00Z").await;
    let enrollment = only(&app, exempt, activity).await;
    assert_eq!(
        enrollment["enrolled_at"], "2030-01-21T02:00:00Z",
        "{enrollment}"
    );
    assert_eq!(enrollment["period"], "once");
}

#[tokio::test]
async fn r21_a_post_enrollment_job_for_an_exempt_learner_reports_exempt() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "excused", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let target = course(&app, "Target").await;
    let rule = post_rule(&app, source, when("enrolled", 0, &[target], false)).await;
    let (status, _) = app
        .post(
            "/exemptions",
            &app.admin,
            json!({"user_id": learner, "activity_id": target, "reason": "Already certified", "until": null}),
        )
        .await;
    assert_eq!(status, 201);

    app.enroll_one(source, learner, json!({})).await;
    app.run_due_jobs().await;

    assert!(of(&app, learner, target).await.is_empty());
    let jobs = jobs_of_rule(&app, id(&rule)).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["state"], "done", "{}", jobs[0]);
    assert_eq!(
        jobs[0]["outcome"],
        json!([{"activity_id": target, "outcome": "exempt"}]),
        "{}",
        jobs[0]
    );
}

#[tokio::test]
async fn r21_deleting_an_auto_enrollment_does_not_stop_the_next_sweep_but_an_exemption_does() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "deleted", &[staff], json!({})).await;
    let activity = course(&app, "Mandatory").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
    )
    .await;
    sweep(&app).await;
    let first = only(&app, learner, activity).await;

    let delete = |ids: Vec<i64>| {
        let app = &app;
        async move {
            let (status, body) = app
                .post(
                    "/enrollments/bulk-delete",
                    &app.admin,
                    json!({"ids": ids, "confirm": true}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    delete(vec![id(&first)]).await;
    assert!(of(&app, learner, activity).await.is_empty());
    app.set_clock("2030-01-10T12:00:00Z").await;
    sweep(&app).await;
    let again = only(&app, learner, activity).await;
    assert_eq!(
        again["enrolled_at"], "2030-01-10T12:00:00Z",
        "the sweep created it again: {again}"
    );

    let (status, exemption) = app
        .post(
            "/exemptions",
            &app.admin,
            json!({"user_id": learner, "activity_id": activity, "reason": "Not applicable", "until": null}),
        )
        .await;
    assert_eq!(status, 201, "{exemption}");
    delete(vec![id(&again)]).await;
    app.set_clock("2030-01-13T03:00:00Z").await;
    sweep(&app).await;
    assert!(of(&app, learner, activity).await.is_empty());

    // Lifting the exemption lets the next sweep enroll again.
    let (status, _) = app
        .delete(&format!("/exemptions/{}", id(&exemption)), &app.admin)
        .await;
    assert_eq!(status, 204);
    app.set_clock("2030-01-14T03:00:00Z").await;
    assert_eq!(
        only(&app, learner, activity).await["enrolled_at"],
        "2030-01-14T02:00:00Z"
    );
}

#[tokio::test]
async fn r21_an_exempt_learner_who_passes_a_period_gets_no_next_period() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "excused", &[staff], json!({})).await;
    let annual = course(&app, "Annual").await;
    set_rule(
        &app,
        annual,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "06-30"}),
        ),
    )
    .await;
    sweep(&app).await;
    let enrollment = only(&app, learner, annual).await;
    let (status, _) = app
        .post(
            "/exemptions",
            &app.admin,
            json!({"user_id": learner, "activity_id": annual, "reason": "Retiring", "until": null}),
        )
        .await;
    assert_eq!(status, 201);

    set_status(&app, id(&enrollment), "passed").await;
    app.set_clock("2030-07-01T03:00:00Z").await;

    assert_eq!(
        crate::support::field(&of(&app, learner, annual).await, "status"),
        ["passed"]
    );
}
