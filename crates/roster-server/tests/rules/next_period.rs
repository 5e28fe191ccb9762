//! R19: the next period on completion (annual and every_months), no
//! duplicate for a late completion, nothing for a learner who left.

use serde_json::json;

use crate::helpers::id;
use crate::support::{
    app_at, course, field, groups_rule, member, of, only, set_rule, set_status, sweep,
};

#[tokio::test]
async fn r19_passing_an_annual_period_enrolls_at_once_in_the_next_due_at_its_end() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "keen", &[staff], json!({})).await;
    let activity = course(&app, "Annual").await;
    set_rule(
        &app,
        activity,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "06-30"}),
        ),
    )
    .await;
    app.set_clock("2030-01-11T03:00:00Z").await;
    let first = only(&app, learner, activity).await;

    app.set_clock("2030-03-15T09:00:00Z").await;
    set_status(&app, id(&first), "passed").await;

    let list = of(&app, learner, activity).await;
    assert_eq!(field(&list, "period"), ["2030-06-30", "2031-06-30"]);
    assert_eq!(field(&list, "status"), ["passed", "in_progress"]);
    let next = &list[1];
    assert_eq!(next["due_on"], "2031-06-30", "{next}");
    assert_eq!(next["enrolled_at"], "2030-03-15T09:00:00Z", "{next}");
    assert_eq!(next["type"], "required");
    assert_eq!(
        next["source"],
        json!({"kind": "auto_enrollment", "activity_id": activity, "period": "2031-06-30"})
    );

    // The new period begins: nothing to close, nothing to add.
    app.set_clock("2030-07-01T03:00:00Z").await;
    let list = of(&app, learner, activity).await;
    assert_eq!(field(&list, "status"), ["passed", "in_progress"]);
    assert_eq!(field(&list, "period"), ["2030-06-30", "2031-06-30"]);
}

#[tokio::test]
async fn r19_a_late_annual_completion_after_the_new_period_started_creates_no_duplicate() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "tardy", &[staff], json!({})).await;
    let activity = course(&app, "Annual").await;
    set_rule(
        &app,
        activity,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "06-30"}),
        ),
    )
    .await;
    app.set_clock("2030-01-11T03:00:00Z").await;
    let first = only(&app, learner, activity).await;
    app.set_clock("2030-07-02T12:00:00Z").await;
    let rolled = of(&app, learner, activity).await;
    assert_eq!(field(&rolled, "status"), ["incomplete", "in_progress"]);

    // The administrator records the 2030 completion late.
    set_status(&app, id(&first), "passed").await;

    let list = of(&app, learner, activity).await;
    assert_eq!(field(&list, "period"), ["2030-06-30", "2031-06-30"]);
    assert_eq!(field(&list, "status"), ["passed", "in_progress"]);
    assert_eq!(
        id(&list[1]),
        id(&rolled[1]),
        "the open period is kept, not duplicated"
    );
}

#[tokio::test]
async fn r19_passing_an_every_months_cycle_creates_the_next_due_months_after_completion() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "cyclist", &[staff], json!({})).await;
    let activity = course(&app, "Every six months").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "every_months", "months": 6})),
    )
    .await;
    app.set_clock("2030-01-11T03:00:00Z").await;
    let first = only(&app, learner, activity).await;

    app.set_clock("2030-08-31T15:00:00Z").await;
    set_status(&app, id(&first), "passed").await;

    let list = of(&app, learner, activity).await;
    assert_eq!(field(&list, "period"), ["cycle-1", "cycle-2"]);
    assert_eq!(
        list[1]["due_on"], "2031-02-28",
        "six months after 2030-08-31, clamped to the end of February: {}",
        list[1]
    );
    assert_eq!(list[1]["status"], "in_progress");
    assert_eq!(list[1]["enrolled_at"], "2030-08-31T15:00:00Z");

    app.set_clock("2030-09-30T12:00:00Z").await;
    set_status(&app, id(&list[1]), "passed").await;
    let list = of(&app, learner, activity).await;
    assert_eq!(field(&list, "period"), ["cycle-1", "cycle-2", "cycle-3"]);
    assert_eq!(field(&list, "due_on"), ["null", "2031-02-28", "2031-03-30"]);
    assert_eq!(field(&list, "status"), ["passed", "passed", "in_progress"]);

    // Sweeps leave the chain alone.
    sweep(&app).await;
    assert_eq!(of(&app, learner, activity).await.len(), 3);
}

#[tokio::test]
async fn r19_a_learner_who_left_the_group_keeps_their_enrollments_but_gets_no_next_period() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let leaver = member(&app, "leaver", &[staff], json!({})).await;
    let stayer = member(&app, "stayer", &[staff], json!({})).await;
    let annual = course(&app, "Annual").await;
    let cycle = course(&app, "Every three months").await;
    set_rule(
        &app,
        annual,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "06-30"}),
        ),
    )
    .await;
    set_rule(
        &app,
        cycle,
        groups_rule(&[staff], json!({"kind": "every_months", "months": 3})),
    )
    .await;
    app.set_clock("2030-01-11T03:00:00Z").await;
    let (status, _) = app
        .delete(&format!("/groups/{staff}/members/{leaver}"), &app.admin)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        of(&app, leaver, annual).await.len(),
        1,
        "enrollments are kept"
    );

    app.set_clock("2030-02-01T12:00:00Z").await;
    for user in [leaver, stayer] {
        for activity in [annual, cycle] {
            let enrollment = only(&app, user, activity).await;
            set_status(&app, id(&enrollment), "passed").await;
        }
    }
    sweep(&app).await;

    assert_eq!(field(&of(&app, leaver, annual).await, "status"), ["passed"]);
    assert_eq!(field(&of(&app, leaver, cycle).await, "status"), ["passed"]);
    assert_eq!(
        field(&of(&app, stayer, annual).await, "period"),
        ["2030-06-30", "2031-06-30"]
    );
    assert_eq!(
        field(&of(&app, stayer, cycle).await, "period"),
        ["cycle-1", "cycle-2"]
    );
}
