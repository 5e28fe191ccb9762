//! R13 (nothing until the sweep; sweeps by hand), R14 (no duplicates, annual
//! rollover, every_months chains), R15 (adoption), R16 (one-time satisfied by
//! an earlier pass).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, id, items, spawn_app_with};
use crate::support::{
    app_at, audit, course, field, groups_rule, in_activity, jobs, member, of, only, post_rule,
    set_rule, set_status, sweep, user_ids, wait_sweep_done, when,
};

#[tokio::test]
async fn r13_saving_a_rule_enrolls_nobody_until_the_nightly_sweep() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let first = member(&app, "uno", &[staff], json!({})).await;
    let second = member(&app, "dos", &[staff], json!({})).await;
    let activity = course(&app, "Nightly").await;

    set_rule(
        &app,
        activity,
        groups_rule(
            &[staff],
            json!({"kind": "one_time", "due": {"within_days": 7}}),
        ),
    )
    .await;
    assert!(in_activity(&app, activity).await.is_empty());

    app.set_clock("2030-01-11T01:59:59Z").await;
    assert!(
        in_activity(&app, activity).await.is_empty(),
        "nothing before the nightly sweep at 02:00"
    );

    app.set_clock("2030-01-11T02:00:00Z").await;
    let enrollments = in_activity(&app, activity).await;
    assert_eq!(user_ids(&enrollments), vec![first, second]);
    assert_eq!(
        field(&enrollments, "enrolled_at"),
        ["2030-01-11T02:00:00Z", "2030-01-11T02:00:00Z"]
    );
    assert_eq!(field(&enrollments, "due_on"), ["2030-01-18", "2030-01-18"]);

    let (_, sweeps) = app.get("/sweeps?limit=1000", &app.admin).await;
    let nightly = items(&sweeps)
        .into_iter()
        .find(|record| record["day"] == "2030-01-11")
        .expect("the nightly sweep of 2030-01-11 is recorded");
    assert_eq!(nightly["trigger"], "nightly", "{nightly}");
    assert_eq!(nightly["state"], "done", "{nightly}");
    assert_eq!(nightly["created"], 2, "{nightly}");
    assert_eq!(nightly["started_at"], "2030-01-11T02:00:00Z", "{nightly}");
}

#[tokio::test]
async fn r13_a_sweep_started_by_hand_enrolls_at_once_and_a_second_one_while_it_is_queued_is_409() {
    // No job worker in the server: the sweep stays queued until the test runs
    // its jobs, so the second request meets it whatever the machine's load
    // (with workers, a descheduled test client let them finish the sweep
    // before the second request arrived).
    let app = spawn_app_with(&[("ROSTER_WORKERS", "0")]).await;
    app.set_clock("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let mut learners = Vec::new();
    for n in 0..5 {
        learners.push(member(&app, &format!("learner{n}"), &[staff], json!({})).await);
    }
    let mut activities = Vec::new();
    for n in 0..40 {
        let activity = course(&app, &format!("Course {n}")).await;
        set_rule(
            &app,
            activity,
            groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
        )
        .await;
        activities.push(activity);
    }

    let (status, started) = app
        .post("/sweeps", &app.admin, json!({"dry_run": false}))
        .await;
    let second = app
        .request(
            Method::POST,
            "/sweeps",
            &app.admin,
            json!({"dry_run": false}),
        )
        .await;

    assert_eq!(status, 202, "{started}");
    assert_eq!(started["state"], "queued", "{started}");
    assert_eq!(started["trigger"], "manual", "{started}");
    assert_problem(&second, 409);
    let sweep_id = id(&started);
    let (status, record) = app.get(&format!("/sweeps/{sweep_id}"), &app.admin).await;
    assert_eq!(
        (status, &record["state"]),
        (200, &json!("queued")),
        "{record}"
    );
    assert!(
        second.json["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains(&sweep_id.to_string())),
        "the 409 names the running sweep {sweep_id}: {}",
        second.text()
    );
    assert_eq!(second.json["sweep_id"], sweep_id, "{}", second.text());

    app.run_due_jobs().await;
    let record = wait_sweep_done(&app, sweep_id).await;
    assert_eq!(record["created"], 200, "{record}");
    assert_eq!(record["jobs_total"], 40, "{record}");
    for activity in activities {
        assert_eq!(user_ids(&in_activity(&app, activity).await), learners);
    }

    // Once it is done, another sweep may start; it has nothing to do.
    let again = sweep(&app).await;
    assert_eq!(again["created"], 0, "{again}");
}

#[tokio::test]
async fn r13_the_nightly_sweep_runs_at_nightly_sweep_at_in_the_organisation_time_zone_and_sees_its_local_day()
 {
    let app = app_at("2030-01-10T10:00:00Z").await;
    // Auckland is UTC+13 in January: 02:00 local on 2030-01-11 is 13:00 UTC on 2030-01-10.
    let (status, settings) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"timezone": "Pacific/Auckland"}),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "kiwi", &[staff], json!({})).await;
    let once = course(&app, "Within a day").await;
    let annual = course(&app, "Ends 01-10").await;
    set_rule(
        &app,
        once,
        groups_rule(
            &[staff],
            json!({"kind": "one_time", "due": {"within_days": 1}}),
        ),
    )
    .await;
    set_rule(
        &app,
        annual,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "01-10"}),
        ),
    )
    .await;

    app.set_clock("2030-01-10T12:59:59Z").await;
    assert!(in_activity(&app, once).await.is_empty());

    app.set_clock("2030-01-10T13:00:00Z").await;
    let (_, clock) = app.get("/clock", &app.admin).await;
    assert_eq!(clock["today"], "2030-01-11", "{clock}");
    let enrollment = only(&app, learner, once).await;
    assert_eq!(
        enrollment["enrolled_at"], "2030-01-10T13:00:00Z",
        "{enrollment}"
    );
    assert_eq!(
        enrollment["due_on"], "2030-01-12",
        "one day after the local date"
    );
    let yearly = only(&app, learner, annual).await;
    assert_eq!(
        yearly["period"], "2031-01-10",
        "the local day 2030-01-11 is past 01-10"
    );

    // A later sweep time moves the next nightly sweep.
    let (status, _) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"nightly_sweep_at": "05:30"}),
        )
        .await;
    assert_eq!(status, 200);
    let late = member(&app, "late", &[], json!({})).await;
    let reply = app
        .request_raw(
            Method::POST,
            "/imports/users",
            &app.admin,
            "text/csv",
            "username,groups\nlate,Staff\n",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // 05:30 in Auckland on 2030-01-12 is 16:30 UTC on 2030-01-11.
    app.set_clock("2030-01-11T16:29:59Z").await;
    assert!(of(&app, late, once).await.is_empty());
    app.set_clock("2030-01-11T16:30:00Z").await;
    let enrollment = only(&app, late, once).await;
    assert_eq!(
        enrollment["enrolled_at"], "2030-01-11T16:30:00Z",
        "{enrollment}"
    );
    assert_eq!(enrollment["due_on"], "2030-01-13");
}

#[tokio::test]
async fn r13_one_nightly_sweep_runs_per_local_day_across_daylight_saving_changes() {
    let app = app_at("2030-03-29T12:00:00Z").await;
    let (status, settings) = app
        .patch("/settings", &app.admin, json!({"timezone": "Europe/Paris"}))
        .await;
    assert_eq!(status, 200, "{settings}");
    let staff = app.create_group("Staff").await;
    member(&app, "paris", &[staff], json!({})).await;
    let activity = course(&app, "Daily count").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "every_months", "months": 1})),
    )
    .await;

    // 2030-03-31: 02:00 does not exist in Paris; 2030-10-27: it happens twice.
    app.set_clock("2030-04-01T12:00:00Z").await;
    app.set_clock("2030-10-26T12:00:00Z").await;
    app.set_clock("2030-10-28T12:00:00Z").await;

    let (_, sweeps) = app.get("/sweeps?limit=1000", &app.admin).await;
    let records = items(&sweeps);
    for day in [
        "2030-03-30",
        "2030-03-31",
        "2030-04-01",
        "2030-10-27",
        "2030-10-28",
    ] {
        let nightly: Vec<&Value> = records
            .iter()
            .filter(|record| record["day"] == day && record["trigger"] == "nightly")
            .collect();
        assert_eq!(nightly.len(), 1, "one nightly sweep on {day}: {nightly:?}");
        assert_eq!(nightly[0]["state"], "done", "{}", nightly[0]);
    }
    let started = |day: &str| {
        records
            .iter()
            .find(|record| record["day"] == day)
            .map(|record| {
                record["started_at"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default()
    };
    assert_eq!(started("2030-03-30"), "2030-03-30T01:00:00Z", "02:00 CET");
    assert_eq!(started("2030-04-01"), "2030-04-01T00:00:00Z", "02:00 CEST");
    assert_eq!(started("2030-10-28"), "2030-10-28T01:00:00Z", "02:00 CET");
}

#[tokio::test]
async fn r13_advancing_the_clock_plays_jobs_and_nightly_sweeps_in_time_order() {
    let app = app_at("2030-01-09T01:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "ordered", &[staff], json!({})).await;
    let source = course(&app, "Source").await;
    let activity = course(&app, "Ruled").await;
    let rule = post_rule(&app, source, when("completed", 1, &[activity], false)).await;
    app.enroll_one(source, learner, json!({"status": "passed"}))
        .await;
    app.set_clock("2030-01-09T10:00:00Z").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
    )
    .await;

    // The job at 01:00 runs before the nightly sweep at 02:00, which then
    // adopts what the job created instead of creating its own.
    app.set_clock("2030-01-10T03:00:00Z").await;

    let enrollment = only(&app, learner, activity).await;
    assert_eq!(
        enrollment["enrolled_at"], "2030-01-10T01:00:00Z",
        "{enrollment}"
    );
    assert_eq!(
        enrollment["source"]["kind"], "post_enrollment",
        "{enrollment}"
    );
    assert_eq!(
        enrollment["period"], "once",
        "adopted by the sweep: {enrollment}"
    );
    assert_eq!(enrollment["type"], "required");
    let job = &crate::support::jobs_of_rule(&app, id(&rule)).await[0];
    assert_eq!(job["outcome"][0]["outcome"], "created", "{job}");
}

#[tokio::test]
async fn r14_sweeps_never_create_a_second_enrollment_for_the_same_rule_user_and_period() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let first = member(&app, "uno", &[staff], json!({})).await;
    let second = member(&app, "dos", &[staff], json!({})).await;
    let once = course(&app, "Once").await;
    let annual = course(&app, "Annual").await;
    let cycle = course(&app, "Quarterly").await;
    set_rule(
        &app,
        once,
        groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
    )
    .await;
    set_rule(
        &app,
        annual,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "12-31"}),
        ),
    )
    .await;
    set_rule(
        &app,
        cycle,
        groups_rule(&[staff], json!({"kind": "every_months", "months": 3})),
    )
    .await;

    // Ten nightly sweeps, three by hand, and a dry run.
    app.set_clock("2030-01-20T12:00:00Z").await;
    for _ in 0..3 {
        let record = sweep(&app).await;
        assert_eq!(record["created"], 0, "{record}");
    }
    let (status, dry) = app
        .post("/sweeps", &app.admin, json!({"dry_run": true}))
        .await;
    assert_eq!(status, 202, "{dry}");
    assert_eq!(dry["created"], 0, "{dry}");

    for (activity, period) in [(once, "once"), (annual, "2030-12-31"), (cycle, "cycle-1")] {
        let enrollments = in_activity(&app, activity).await;
        assert_eq!(
            user_ids(&enrollments),
            vec![first, second],
            "{enrollments:?}"
        );
        assert_eq!(field(&enrollments, "period"), [period, period]);
        assert_eq!(
            field(&enrollments, "enrolled_at"),
            ["2030-01-11T02:00:00Z", "2030-01-11T02:00:00Z"]
        );
    }
}

#[tokio::test]
async fn r14_annual_rollover_closes_open_enrollment_as_incomplete_and_keeps_each_period_on_record()
{
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let late = member(&app, "late", &[staff], json!({})).await;
    let diligent = member(&app, "diligent", &[staff], json!({})).await;
    let welcome = course(&app, "Welcome").await;
    let after_pass = course(&app, "After pass").await;
    let after_fail = course(&app, "After fail").await;
    let activity = app
        .create_activity_with(
            json!({"title": "Annual safety", "kind": "online_course", "allow_failure": true}),
        )
        .await;
    let activity = id(&activity);
    post_rule(&app, activity, when("enrolled", 0, &[welcome], false)).await;
    post_rule(&app, activity, when("completed", 0, &[after_pass], false)).await;
    post_rule(&app, activity, when("failed", 0, &[after_fail], false)).await;
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
    let first_late = only(&app, late, activity).await;
    let first_diligent = only(&app, diligent, activity).await;
    // The `enrolled` rule (delay 0) ran during the sweep, at its time.
    assert_eq!(
        only(&app, late, welcome).await["enrolled_at"],
        "2030-01-11T02:00:00Z"
    );
    assert_eq!(first_late["period"], "2030-06-30");
    app.set_clock("2030-03-01T12:00:00Z").await;
    set_status(&app, id(&first_diligent), "passed").await;
    app.run_due_jobs().await;
    // diligent: R19 opened 2031-06-30 at once.
    assert_eq!(
        field(&of(&app, diligent, activity).await, "period"),
        ["2030-06-30", "2031-06-30"]
    );

    app.set_clock("2030-06-30T23:00:00Z").await;
    let jobs_before = jobs(&app, "kind=post_enrollment").await.len();

    // The first rollover: the late learner's period is closed, a new one opens.
    app.set_clock("2030-07-01T03:00:00Z").await;
    let after_first = jobs(&app, "kind=post_enrollment").await;
    assert_eq!(
        after_first.len(),
        jobs_before + 1,
        "the rollover adds only the new period's `enrolled` job: {after_first:?}"
    );
    let closed = of(&app, late, activity).await;
    assert_eq!(field(&closed, "status"), ["incomplete", "in_progress"]);
    assert_eq!(field(&closed, "period"), ["2030-06-30", "2031-06-30"]);
    assert_eq!(closed[0]["completed_at"], Value::Null);
    let rollover = audit(&app, "enrollment", id(&first_late)).await;
    let entry = rollover
        .iter()
        .find(|entry| entry["action"] == "enrollment.rollover")
        .unwrap_or_else(|| panic!("the rollover is audit-logged: {rollover:?}"));
    assert_eq!(entry["after"]["status"], "incomplete", "{entry}");
    assert_eq!(entry["at"], "2030-07-01T02:00:00Z", "{entry}");
    let (_, sweeps) = app.get("/sweeps?limit=10", &app.admin).await;
    let nightly = items(&sweeps)
        .into_iter()
        .find(|record| record["day"] == "2030-07-01")
        .unwrap_or_else(|| panic!("the nightly sweep of 2030-07-01: {sweeps}"));
    assert_eq!(nightly["closed"], 1, "{nightly}");
    assert_eq!(nightly["created"], 1, "{nightly}");

    // Two more years.
    app.set_clock("2032-07-01T03:00:00Z").await;

    let late_list = of(&app, late, activity).await;
    assert_eq!(
        field(&late_list, "period"),
        ["2030-06-30", "2031-06-30", "2032-06-30", "2033-06-30"]
    );
    assert_eq!(
        field(&late_list, "status"),
        ["incomplete", "incomplete", "incomplete", "in_progress"]
    );
    assert_eq!(
        field(&late_list, "due_on"),
        ["2030-06-30", "2031-06-30", "2032-06-30", "2033-06-30"]
    );
    let diligent_list = of(&app, diligent, activity).await;
    assert_eq!(
        field(&diligent_list, "period"),
        ["2030-06-30", "2031-06-30", "2032-06-30", "2033-06-30"]
    );
    assert_eq!(
        field(&diligent_list, "status"),
        ["passed", "incomplete", "incomplete", "in_progress"]
    );

    // Closing fired nothing: one `enrolled` job per enrollment, one
    // `completed` job for the pass, no `failed` job.
    let all = in_activity(&app, activity).await;
    let post_jobs: Vec<Value> = jobs(&app, "kind=post_enrollment")
        .await
        .into_iter()
        .filter(|job| job["payload"]["activity_id"] == activity)
        .collect();
    let mut enrolled_from: Vec<i64> = post_jobs
        .iter()
        .filter(|job| job["payload"]["when"] == "enrolled")
        .map(|job| job["payload"]["from_enrollment_id"].as_i64().unwrap())
        .collect();
    enrolled_from.sort_unstable();
    let mut all_ids: Vec<i64> = all.iter().map(id).collect();
    all_ids.sort_unstable();
    assert_eq!(enrolled_from, all_ids, "{post_jobs:?}");
    let completed: Vec<&Value> = post_jobs
        .iter()
        .filter(|job| job["payload"]["when"] == "completed")
        .collect();
    assert_eq!(completed.len(), 1, "{post_jobs:?}");
    assert_eq!(
        completed[0]["payload"]["from_enrollment_id"],
        id(&first_diligent)
    );
    assert!(
        post_jobs
            .iter()
            .all(|job| job["payload"]["when"] != "failed"),
        "{post_jobs:?}"
    );
    assert_eq!(post_jobs.len(), all.len() + 1);
    assert!(of(&app, late, after_fail).await.is_empty());
    assert!(of(&app, late, after_pass).await.is_empty());
}

#[tokio::test]
async fn r14_annual_rollover_closes_open_enrollments_of_learners_who_no_longer_match() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let leaver = member(&app, "leaver", &[staff], json!({})).await;
    let activity = course(&app, "Annual").await;
    set_rule(
        &app,
        activity,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "03-31"}),
        ),
    )
    .await;
    app.set_clock("2030-01-11T03:00:00Z").await;
    only(&app, leaver, activity).await;
    let (status, _) = app
        .delete(&format!("/groups/{staff}/members/{leaver}"), &app.admin)
        .await;
    assert_eq!(status, 204);

    app.set_clock("2030-04-01T03:00:00Z").await;

    let enrollment = only(&app, leaver, activity).await;
    assert_eq!(enrollment["status"], "incomplete", "{enrollment}");
    assert_eq!(enrollment["period"], "2030-03-31");
}

#[tokio::test]
async fn r14_a_dropped_every_months_enrollment_ends_the_chain_until_an_administrator_acts() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "drop", &[staff], json!({})).await;
    let activity = course(&app, "Every 6 months").await;
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "every_months", "months": 6})),
    )
    .await;
    app.set_clock("2030-01-11T03:00:00Z").await;
    let first = only(&app, learner, activity).await;
    set_status(&app, id(&first), "dropped").await;

    app.set_clock("2030-03-01T03:00:00Z").await;
    sweep(&app).await;
    let still = only(&app, learner, activity).await;
    assert_eq!(still["status"], "dropped");
    assert_eq!(still["period"], "cycle-1");

    // The administrator deletes the dropped record: the next sweep starts a new chain.
    let (status, deleted) = app
        .post(
            "/enrollments/bulk-delete",
            &app.admin,
            json!({"ids": [id(&first)], "confirm": true}),
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    app.set_clock("2030-03-02T03:00:00Z").await;
    let restarted = only(&app, learner, activity).await;
    assert_eq!(restarted["status"], "in_progress");
    assert_eq!(restarted["period"], "cycle-1");
    assert_eq!(restarted["enrolled_at"], "2030-03-02T02:00:00Z");
}

#[tokio::test]
async fn r14_every_months_has_no_rollover_an_overdue_enrollment_stays_open() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "slow", &[staff], json!({})).await;
    let activity = course(&app, "Quarterly").await;
    let mut rule = groups_rule(&[staff], json!({"kind": "every_months", "months": 3}));
    rule["initial_due_days"] = json!(10);
    set_rule(&app, activity, rule).await;

    app.set_clock("2031-01-15T03:00:00Z").await;

    let enrollment = only(&app, learner, activity).await;
    assert_eq!(enrollment["status"], "in_progress", "{enrollment}");
    assert_eq!(enrollment["due_on"], "2030-01-21");
    assert_eq!(enrollment["overdue"], true);
    assert_eq!(enrollment["period"], "cycle-1");
}

#[tokio::test]
async fn r15_the_sweep_adopts_an_open_manual_enrollment_for_the_period() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let undated = member(&app, "undated", &[staff], json!({})).await;
    let dated = member(&app, "dated", &[staff], json!({})).await;
    let annual = course(&app, "Annual").await;
    let once = course(&app, "Once within 7 days").await;
    let cycle = course(&app, "Cycle with initial due").await;
    let annual_manual = app
        .enroll_one(annual, undated, json!({"type": "recommended"}))
        .await;
    let annual_dated = app
        .enroll_one(
            annual,
            dated,
            json!({"type": "recommended", "due_on": "2030-02-15"}),
        )
        .await;
    let once_manual = app.enroll_one(once, undated, json!({})).await;
    let cycle_manual = app.enroll_one(cycle, undated, json!({})).await;
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
        once,
        groups_rule(
            &[staff],
            json!({"kind": "one_time", "due": {"within_days": 7}}),
        ),
    )
    .await;
    let mut rule = groups_rule(&[staff], json!({"kind": "every_months", "months": 6}));
    rule["initial_due_days"] = json!(20);
    set_rule(&app, cycle, rule).await;

    // Adopted by the nightly sweep of 2030-01-11.
    app.set_clock("2030-01-11T03:00:00Z").await;

    let adopted = only(&app, undated, annual).await;
    assert_eq!(id(&adopted), id(&annual_manual), "adopted, not duplicated");
    assert_eq!(adopted["type"], "required");
    assert_eq!(adopted["due_on"], "2030-06-30");
    assert_eq!(adopted["period"], "2030-06-30");
    assert_eq!(adopted["status"], "in_progress");
    let kept_due = only(&app, dated, annual).await;
    assert_eq!(id(&kept_due), id(&annual_dated));
    assert_eq!(kept_due["type"], "required");
    assert_eq!(
        kept_due["due_on"], "2030-02-15",
        "a due date it had is kept"
    );
    assert_eq!(kept_due["period"], "2030-06-30");

    let once_adopted = only(&app, undated, once).await;
    assert_eq!(id(&once_adopted), id(&once_manual));
    assert_eq!(
        once_adopted["due_on"], "2030-01-18",
        "7 days from the adoption"
    );
    assert_eq!(once_adopted["period"], "once");
    let cycle_adopted = only(&app, undated, cycle).await;
    assert_eq!(id(&cycle_adopted), id(&cycle_manual));
    assert_eq!(
        cycle_adopted["due_on"], "2030-01-31",
        "20 days from the adoption"
    );
    assert_eq!(cycle_adopted["period"], "cycle-1");

    let entries = audit(&app, "enrollment", id(&annual_manual)).await;
    let adoption = entries
        .iter()
        .find(|entry| entry["action"] == "enrollment.adopt")
        .unwrap_or_else(|| panic!("adoption is audit-logged: {entries:?}"));
    assert_eq!(adoption["before"]["type"], "recommended", "{adoption}");
    assert_eq!(adoption["after"]["type"], "required", "{adoption}");
    assert_eq!(adoption["after"]["period"], "2030-06-30", "{adoption}");
    assert_eq!(adoption["after"]["due_on"], "2030-06-30", "{adoption}");

    let (status, explained) = app
        .get(
            &format!("/enrollments/{}/explain", id(&adopted)),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{explained}");
    assert!(
        explained.to_string().contains("adopted"),
        "explain names the adoption: {explained}"
    );

    let (_, sweeps) = app.get("/sweeps?limit=1000", &app.admin).await;
    let nightly = items(&sweeps)
        .into_iter()
        .find(|record| record["day"] == "2030-01-11")
        .expect("the nightly sweep");
    assert_eq!(nightly["adopted"], 4, "{nightly}");
    // `dated` had no enrollment in the one-time and every_months activities.
    assert_eq!(nightly["created"], 2, "{nightly}");
}

#[tokio::test]
async fn r16_a_one_time_rule_is_satisfied_by_an_earlier_passed_enrollment() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let passed = member(&app, "passed", &[staff], json!({})).await;
    let failed = member(&app, "failed", &[staff], json!({})).await;
    let activity = course(&app, "Once").await;
    app.enroll_one(activity, passed, json!({"status": "passed"}))
        .await;
    app.enroll_one(activity, failed, json!({"status": "failed"}))
        .await;
    set_rule(
        &app,
        activity,
        groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
    )
    .await;

    let record = sweep(&app).await;

    assert_eq!(record["created"], 1, "{record}");
    assert_eq!(
        field(&of(&app, passed, activity).await, "status"),
        ["passed"]
    );
    let failed_list = of(&app, failed, activity).await;
    assert_eq!(field(&failed_list, "status"), ["failed", "in_progress"]);
    assert_eq!(field(&failed_list, "period"), ["null", "once"]);
}
