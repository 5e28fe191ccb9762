//! R10 scope (company, groups; inactive users and integration accounts never
//! enrolled) and R11 hire date.

use serde_json::json;

use crate::support::{
    admin_id, app_at, course, groups_rule, in_activity, member, set_rule, sweep, user_ids,
};

#[tokio::test]
async fn r10_company_scope_enrolls_every_active_person_but_never_inactive_users_or_integration_accounts()
 {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let admin = admin_id(&app).await;
    let alice = member(&app, "alice", &[], json!({})).await;
    let bob = member(&app, "bob", &[], json!({"active": false})).await;
    let service = member(&app, "hr-feed", &[], json!({"role": "integration"})).await;
    let activity = course(&app, "Code of conduct").await;
    set_rule(
        &app,
        activity,
        json!({"scope": "company", "recurrence": {"kind": "one_time", "due": null}}),
    )
    .await;

    let record = sweep(&app).await;

    let enrollments = in_activity(&app, activity).await;
    let mut expected = vec![admin, alice];
    expected.sort_unstable();
    assert_eq!(user_ids(&enrollments), expected, "{enrollments:?}");
    assert_eq!(record["created"], 2, "{record}");
    for enrollment in &enrollments {
        assert_ne!(enrollment["user_id"], bob);
        assert_ne!(enrollment["user_id"], service);
        assert_eq!(enrollment["type"], "required");
        assert_eq!(enrollment["status"], "in_progress");
        assert_eq!(enrollment["period"], "once");
        assert_eq!(
            enrollment["source"],
            json!({"kind": "auto_enrollment", "activity_id": activity, "period": "once"})
        );
    }

    // Neither a later sweep nor reactivating the integration account changes that.
    let (status, _) = app
        .patch(
            &format!("/users/{service}"),
            &app.admin,
            json!({"display_name": "HR feed"}),
        )
        .await;
    assert_eq!(status, 200);
    sweep(&app).await;
    assert_eq!(user_ids(&in_activity(&app, activity).await), expected);
}

#[tokio::test]
async fn r10_groups_scope_enrolls_only_active_members_of_any_of_its_groups() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let sales = app.create_group("Sales").await;
    let support = app.create_group("Support").await;
    let finance = app.create_group("Finance").await;
    let in_sales = member(&app, "sam", &[sales], json!({})).await;
    let in_support = member(&app, "sue", &[support], json!({})).await;
    let in_both = member(&app, "bea", &[sales, support], json!({})).await;
    let in_finance = member(&app, "fin", &[finance], json!({})).await;
    let in_none = member(&app, "nob", &[], json!({})).await;
    let inactive = member(&app, "ina", &[sales], json!({"active": false})).await;
    let service = member(&app, "bot", &[sales], json!({"role": "integration"})).await;
    let activity = course(&app, "Customer care").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[sales, support], json!({"kind": "one_time", "due": null})),
    )
    .await;

    let record = sweep(&app).await;

    let enrollments = in_activity(&app, activity).await;
    assert_eq!(
        user_ids(&enrollments),
        vec![in_sales, in_support, in_both],
        "one enrollment each for the active members, the member of both groups once"
    );
    assert_eq!(record["created"], 3, "{record}");
    for outsider in [in_finance, in_none, inactive, service] {
        assert!(
            enrollments.iter().all(|e| e["user_id"] != outsider),
            "user {outsider} must not be enrolled: {enrollments:?}"
        );
    }
}

#[tokio::test]
async fn r10_a_groups_rule_without_groups_is_422() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let activity = course(&app, "Empty").await;
    let reply = crate::support::put_rule_reply(
        &app,
        activity,
        json!({"scope": "groups", "group_ids": [], "recurrence": {"kind": "one_time", "due": null}}),
    )
    .await;
    crate::helpers::assert_field_error(&reply, "group_ids");
}

#[tokio::test]
async fn r11_hired_after_matches_only_users_hired_strictly_after_it_and_never_users_without_hire_date()
 {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let before = member(&app, "early", &[staff], json!({"hired_on": "2029-06-29"})).await;
    let on_the_day = member(&app, "sameday", &[staff], json!({"hired_on": "2029-06-30"})).await;
    let after = member(&app, "late", &[staff], json!({"hired_on": "2029-07-01"})).await;
    let undated = member(&app, "undated", &[staff], json!({})).await;
    let activity = course(&app, "New hire orientation").await;
    set_rule(
        &app,
        activity,
        json!({"scope": "groups", "group_ids": [staff], "hired_after": "2029-06-30",
               "recurrence": {"kind": "one_time", "due": null}}),
    )
    .await;

    sweep(&app).await;

    let enrollments = in_activity(&app, activity).await;
    assert_eq!(user_ids(&enrollments), vec![after], "{enrollments:?}");
    let _ = (before, on_the_day, undated);

    // Company scope with a hire date: the bootstrap admin (no hire date) is
    // not matched either.
    let company = course(&app, "Benefits").await;
    set_rule(
        &app,
        company,
        json!({"scope": "company", "hired_after": "2029-06-30",
               "recurrence": {"kind": "one_time", "due": null}}),
    )
    .await;
    sweep(&app).await;
    assert_eq!(user_ids(&in_activity(&app, company).await), vec![after]);

    // A hire date moved past the limit by an administrator matches at once (R18).
    let (status, _) = app
        .patch(
            &format!("/users/{on_the_day}"),
            &app.admin,
            json!({"hired_on": "2029-07-02"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        user_ids(&in_activity(&app, activity).await),
        vec![on_the_day, after]
    );
}

#[tokio::test]
async fn r10_no_rule_ever_enrolls_an_integration_account_not_even_a_post_enrollment_rule() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let service = member(&app, "sync-bot", &[], json!({"role": "integration"})).await;
    let person = member(&app, "person", &[], json!({})).await;
    let source = course(&app, "Source").await;
    let target = course(&app, "Target").await;
    crate::support::post_rule(
        &app,
        source,
        crate::support::when("enrolled", 0, &[target], false),
    )
    .await;

    // An administrator may enroll the account by hand; the rule may not follow.
    app.enroll_one(source, service, json!({})).await;
    app.enroll_one(source, person, json!({})).await;
    app.run_due_jobs().await;

    assert_eq!(crate::support::of(&app, person, target).await.len(), 1);
    let service_targets = crate::support::of(&app, service, target).await;
    assert!(
        service_targets.is_empty(),
        "a post-enrollment rule enrolled the integration account: {service_targets:?}"
    );
}
