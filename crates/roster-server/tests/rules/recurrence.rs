//! R12 recurrence: one_time due dates, annual periods and due dates (29
//! February), every_months, initial_due_days, and rule validation.

use serde_json::{Value, json};

use crate::helpers::assert_field_error;
use crate::support::{
    app_at, course, field, groups_rule, in_activity, member, of, only, put_rule_reply, set_rule,
    set_status,
};

#[tokio::test]
async fn r12_one_time_due_is_none_within_days_of_enrollment_or_on_a_date() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "una", &[staff], json!({})).await;
    let no_due = course(&app, "No due").await;
    let within = course(&app, "Within 14 days").await;
    let on_date = course(&app, "On a date").await;
    set_rule(
        &app,
        no_due,
        groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
    )
    .await;
    set_rule(
        &app,
        within,
        groups_rule(
            &[staff],
            json!({"kind": "one_time", "due": {"within_days": 14}}),
        ),
    )
    .await;
    set_rule(
        &app,
        on_date,
        groups_rule(
            &[staff],
            json!({"kind": "one_time", "due": {"on_date": "2030-03-31"}}),
        ),
    )
    .await;

    // The nightly sweep of 2030-01-11 (02:00 UTC) enrolls.
    app.set_clock("2030-01-11T03:00:00Z").await;

    let a = only(&app, learner, no_due).await;
    let b = only(&app, learner, within).await;
    let c = only(&app, learner, on_date).await;
    assert_eq!(a["due_on"], Value::Null, "{a}");
    assert_eq!(b["due_on"], "2030-01-25", "{b}");
    assert_eq!(c["due_on"], "2030-03-31", "{c}");
    for enrollment in [&a, &b, &c] {
        assert_eq!(
            enrollment["enrolled_at"], "2030-01-11T02:00:00Z",
            "{enrollment}"
        );
        assert_eq!(enrollment["period"], "once");
        assert_eq!(enrollment["type"], "required");
        assert_eq!(enrollment["status"], "in_progress");
        assert_eq!(enrollment["required_by"], Value::Null);
    }
}

#[tokio::test]
async fn r12_one_time_creates_at_most_one_enrollment_per_user_ever() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let finisher = member(&app, "fay", &[staff], json!({})).await;
    let dropper = member(&app, "dan", &[staff], json!({})).await;
    let activity = course(&app, "Once only").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
    )
    .await;
    app.set_clock("2030-01-11T03:00:00Z").await;
    let passed = only(&app, finisher, activity).await;
    let dropped = only(&app, dropper, activity).await;
    set_status(&app, crate::helpers::id(&passed), "passed").await;
    set_status(&app, crate::helpers::id(&dropped), "dropped").await;

    // A month of nightly sweeps later, still one each.
    app.set_clock("2030-02-11T03:00:00Z").await;

    assert_eq!(
        field(&of(&app, finisher, activity).await, "status"),
        ["passed"]
    );
    assert_eq!(
        field(&of(&app, dropper, activity).await, "status"),
        ["dropped"]
    );
}

#[tokio::test]
async fn r12_annual_enrollment_is_due_on_the_end_of_the_period_containing_today() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "ann", &[staff], json!({})).await;
    let june = course(&app, "Ends 06-30").await;
    let today = course(&app, "Ends 01-11").await;
    let yesterday = course(&app, "Ends 01-10").await;
    for (activity, month_day) in [(june, "06-30"), (today, "01-11"), (yesterday, "01-10")] {
        set_rule(
            &app,
            activity,
            groups_rule(
                &[staff],
                json!({"kind": "annual", "due_each_year_on": month_day}),
            ),
        )
        .await;
    }

    app.set_clock("2030-01-11T03:00:00Z").await;

    for (activity, end) in [
        (june, "2030-06-30"),
        (today, "2030-01-11"),
        (yesterday, "2031-01-10"),
    ] {
        let enrollment = only(&app, learner, activity).await;
        assert_eq!(enrollment["period"], end, "{enrollment}");
        assert_eq!(enrollment["due_on"], end, "{enrollment}");
        assert_eq!(
            enrollment["source"],
            json!({"kind": "auto_enrollment", "activity_id": activity, "period": end})
        );
    }
}

#[tokio::test]
async fn r12_annual_february_29_becomes_february_28_in_common_years() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "leap", &[staff], json!({})).await;
    let activity = course(&app, "Leap day review").await;
    set_rule(
        &app,
        activity,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "02-29"}),
        ),
    )
    .await;

    // 2030 and 2031 are common years, 2032 a leap year; each rollover opens
    // the next period the day after the last one ended.
    app.set_clock("2031-03-01T03:00:00Z").await;

    let enrollments = of(&app, learner, activity).await;
    assert_eq!(
        field(&enrollments, "period"),
        ["2030-02-28", "2031-02-28", "2032-02-29"]
    );
    assert_eq!(
        field(&enrollments, "due_on"),
        ["2030-02-28", "2031-02-28", "2032-02-29"]
    );
    assert_eq!(
        field(&enrollments, "status"),
        ["incomplete", "incomplete", "in_progress"]
    );
    assert_eq!(
        field(&enrollments, "enrolled_at"),
        [
            "2030-01-11T02:00:00Z",
            "2030-03-01T02:00:00Z",
            "2031-03-01T02:00:00Z"
        ]
    );
}

#[tokio::test]
async fn r12_every_months_first_enrollment_has_no_due_date() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "eve", &[staff], json!({})).await;
    let activity = course(&app, "Every six months").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "every_months", "months": 6})),
    )
    .await;

    app.set_clock("2030-01-11T03:00:00Z").await;

    let enrollment = only(&app, learner, activity).await;
    assert_eq!(enrollment["period"], "cycle-1", "{enrollment}");
    assert_eq!(enrollment["due_on"], Value::Null, "{enrollment}");
    assert_eq!(enrollment["type"], "required");
}

#[tokio::test]
async fn r12_initial_due_days_sets_the_due_date_of_the_first_annual_and_every_months_enrollment() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "ida", &[staff], json!({})).await;
    let annual = course(&app, "Annual with initial due").await;
    let every = course(&app, "Yearly cycle with initial due").await;
    let mut rule = groups_rule(
        &[staff],
        json!({"kind": "annual", "due_each_year_on": "06-30"}),
    );
    rule["initial_due_days"] = json!(30);
    set_rule(&app, annual, rule).await;
    let mut rule = groups_rule(&[staff], json!({"kind": "every_months", "months": 12}));
    rule["initial_due_days"] = json!(45);
    set_rule(&app, every, rule).await;

    app.set_clock("2030-01-11T03:00:00Z").await;

    let first_annual = only(&app, learner, annual).await;
    let first_cycle = only(&app, learner, every).await;
    assert_eq!(first_annual["due_on"], "2030-02-10", "{first_annual}");
    assert_eq!(first_annual["period"], "2030-06-30");
    assert_eq!(first_cycle["due_on"], "2030-02-25", "{first_cycle}");
    assert_eq!(first_cycle["period"], "cycle-1");

    // Later periods are due as the recurrence says, not initial_due_days.
    app.set_clock("2030-02-01T12:00:00Z").await;
    set_status(&app, crate::helpers::id(&first_annual), "passed").await;
    set_status(&app, crate::helpers::id(&first_cycle), "passed").await;
    let annual_list = of(&app, learner, annual).await;
    let cycle_list = of(&app, learner, every).await;
    assert_eq!(field(&annual_list, "period"), ["2030-06-30", "2031-06-30"]);
    assert_eq!(field(&annual_list, "due_on"), ["2030-02-10", "2031-06-30"]);
    assert_eq!(field(&cycle_list, "period"), ["cycle-1", "cycle-2"]);
    assert_eq!(field(&cycle_list, "due_on"), ["2030-02-25", "2031-02-01"]);
}

#[tokio::test]
async fn r12_invalid_rules_are_422_with_field_errors_and_change_nothing() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let activity = course(&app, "Validated").await;

    let cases = [
        (
            json!({"scope": "groups", "recurrence": {"kind": "one_time", "due": null}}),
            "group_ids",
        ),
        (
            groups_rule(&[staff], json!({"kind": "every_months", "months": 0})),
            "months",
        ),
        (
            groups_rule(&[staff], json!({"kind": "every_months", "months": 121})),
            "months",
        ),
        (
            groups_rule(
                &[staff],
                json!({"kind": "annual", "due_each_year_on": "02-30"}),
            ),
            "due_each_year_on",
        ),
        (groups_rule(&[staff], json!({"kind": "weekly"})), "kind"),
        (
            json!({"scope": "groups", "group_ids": [staff], "hired_after": "2030-02-30",
                   "recurrence": {"kind": "one_time", "due": null}}),
            "hired_after",
        ),
    ];
    for (body, field_name) in cases {
        let reply = put_rule_reply(&app, activity, body.clone()).await;
        assert_field_error(&reply, field_name);
    }
    let (_, fetched) = app
        .get(&format!("/activities/{activity}"), &app.admin)
        .await;
    assert_eq!(fetched["auto_enrollment"], Value::Null, "{fetched}");

    // The bounds themselves are accepted.
    for months in [1, 120] {
        set_rule(
            &app,
            activity,
            groups_rule(&[staff], json!({"kind": "every_months", "months": months})),
        )
        .await;
    }
    assert!(in_activity(&app, activity).await.is_empty());
}
