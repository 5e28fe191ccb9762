//! R17: dry run of a proposed or saved rule, due-date changes of a rule
//! change, and the forecast.

use serde_json::{Value, json};

use crate::helpers::{id, items};
use crate::support::{
    app_at, course, field, groups_rule, in_activity, jobs, member, post_rule, set_rule, sweep,
    user_ids, when,
};

/// Every audit entry, across pages.
async fn audit_count(app: &crate::helpers::TestApp) -> usize {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/audit?limit=1000&cursor={cursor}"),
            None => "/audit?limit=1000".to_string(),
        };
        let (status, list) = app.get(&path, &app.admin).await;
        assert_eq!(status, 200, "{list}");
        count += items(&list).len();
        match list["next_cursor"].as_str() {
            Some(next) => cursor = Some(crate::helpers::encode(next)),
            None => return count,
        }
    }
}

#[tokio::test]
async fn r17_preview_of_a_proposed_and_of_the_saved_rule_counts_enroll_adopt_skip_and_changes_nothing()
 {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let first = member(&app, "first", &[staff], json!({})).await;
    let second = member(&app, "second", &[staff], json!({})).await;
    let holder = member(&app, "holder", &[staff], json!({})).await;
    let exempt = member(&app, "exempt", &[staff], json!({})).await;
    let outsider = member(&app, "outsider", &[], json!({})).await;
    let activity = course(&app, "Previewed").await;
    let target = course(&app, "Follow-up").await;
    post_rule(&app, activity, when("enrolled", 0, &[target], false)).await;
    let manual = app.enroll_one(activity, holder, json!({})).await;
    let (status, _) = app
        .post(
            "/exemptions",
            &app.admin,
            json!({"user_id": exempt, "activity_id": activity, "reason": "Certified elsewhere", "until": null}),
        )
        .await;
    assert_eq!(status, 201);
    app.run_due_jobs().await;
    let jobs_before = jobs(&app, "").await.len();
    let audit_before = audit_count(&app).await;
    let rule = groups_rule(
        &[staff],
        json!({"kind": "one_time", "due": {"within_days": 10}}),
    );

    let (status, preview) = app
        .post(
            &format!("/activities/{activity}/auto-enrollment/preview"),
            &app.admin,
            rule.clone(),
        )
        .await;

    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["enroll"], 2, "{preview}");
    assert_eq!(preview["adopt"], 1, "{preview}");
    assert_eq!(preview["skip"], 1, "{preview}");
    let listed = items(&preview["users"]);
    let listed_users: Vec<i64> = listed
        .iter()
        .map(|entry| entry["user_id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed_users, vec![first, second, holder], "{preview}");
    assert_eq!(field(&listed, "action"), ["enroll", "enroll", "adopt"]);
    assert_eq!(
        field(&listed, "due_on"),
        ["2030-01-20", "2030-01-20", "2030-01-20"]
    );
    assert!(listed.iter().all(|entry| entry["user_id"] != outsider));

    // Nothing changed: no rule, no enrollment, no job, no audit entry.
    let (_, fetched) = app
        .get(&format!("/activities/{activity}"), &app.admin)
        .await;
    assert_eq!(fetched["auto_enrollment"], Value::Null, "{fetched}");
    let enrollments = in_activity(&app, activity).await;
    assert_eq!(enrollments.len(), 1, "{enrollments:?}");
    assert_eq!(id(&enrollments[0]), id(&manual));
    assert_eq!(enrollments[0]["period"], Value::Null);
    assert_eq!(enrollments[0]["type"], "recommended");
    assert_eq!(enrollments[0]["due_on"], Value::Null);
    assert_eq!(jobs(&app, "").await.len(), jobs_before);
    assert_eq!(audit_count(&app).await, audit_before);

    // The saved rule previews the same (an empty body means the saved rule).
    set_rule(&app, activity, rule).await;
    let (status, saved) = app
        .post(
            &format!("/activities/{activity}/auto-enrollment/preview"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        (
            saved["enroll"].clone(),
            saved["adopt"].clone(),
            saved["skip"].clone()
        ),
        (json!(2), json!(1), json!(1)),
        "{saved}"
    );
    assert_eq!(in_activity(&app, activity).await.len(), 1);

    // A dry-run sweep counts the same and changes nothing either.
    let (status, dry) = app
        .post("/sweeps", &app.admin, json!({"dry_run": true}))
        .await;
    assert_eq!(status, 202, "{dry}");
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["state"], "done", "{dry}");
    assert_eq!(
        (
            dry["created"].clone(),
            dry["adopted"].clone(),
            dry["skipped"].clone()
        ),
        (json!(2), json!(1), json!(1)),
        "{dry}"
    );
    assert_eq!(in_activity(&app, activity).await.len(), 1);
    assert_eq!(jobs(&app, "").await.len(), jobs_before);

    // And the sweep does what the preview said.
    let record = sweep(&app).await;
    assert_eq!(
        (
            record["created"].clone(),
            record["adopted"].clone(),
            record["skipped"].clone()
        ),
        (json!(2), json!(1), json!(1)),
        "{record}"
    );
    assert_eq!(
        user_ids(&in_activity(&app, activity).await),
        vec![first, second, holder]
    );
}

#[tokio::test]
async fn r17_preview_of_a_change_of_due_each_year_on_lists_the_due_dates_that_would_move() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let first = member(&app, "first", &[staff], json!({})).await;
    let second = member(&app, "second", &[staff], json!({})).await;
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
    sweep(&app).await;
    let before = in_activity(&app, activity).await;
    assert_eq!(field(&before, "due_on"), ["2030-06-30", "2030-06-30"]);

    let (status, preview) = app
        .post(
            &format!("/activities/{activity}/auto-enrollment/preview"),
            &app.admin,
            groups_rule(
                &[staff],
                json!({"kind": "annual", "due_each_year_on": "09-30"}),
            ),
        )
        .await;

    assert_eq!(status, 200, "{preview}");
    let mut changes = preview["due_date_changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no due_date_changes: {preview}"))
        .clone();
    changes.sort_by_key(|change| change["user_id"].as_i64());
    assert_eq!(changes.len(), 2, "{preview}");
    for (change, (user, enrollment)) in changes
        .iter()
        .zip([(first, &before[0]), (second, &before[1])])
    {
        assert_eq!(change["user_id"], user, "{change}");
        assert_eq!(change["enrollment_id"], id(enrollment), "{change}");
        assert_eq!(change["due_on"], "2030-06-30", "{change}");
        assert_eq!(change["new_due_on"], "2030-09-30", "{change}");
    }
    let (_, fetched) = app
        .get(&format!("/activities/{activity}"), &app.admin)
        .await;
    assert_eq!(
        fetched["auto_enrollment"]["recurrence"]["due_each_year_on"], "06-30",
        "{fetched}"
    );
    assert_eq!(in_activity(&app, activity).await, before);
}

#[tokio::test]
async fn r17_forecast_shows_the_annual_period_start_and_pending_post_enrollment_jobs() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let mut learners = Vec::new();
    for name in ["one", "two", "three"] {
        learners.push(member(&app, name, &[staff], json!({})).await);
    }
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
    let source = course(&app, "Source").await;
    let target = course(&app, "Thirty days later").await;
    let rule = post_rule(&app, source, when("completed", 30, &[target], false)).await;
    app.enroll_one(source, learners[0], json!({"status": "passed"}))
        .await;

    let (status, forecast) = app
        .get(
            &format!("/forecast?from=2030-06-25&to=2030-07-05&activity_id={annual}"),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{forecast}");
    let days = forecast["days"].as_array().expect("days").clone();
    let starts: Vec<(String, Value)> = days
        .iter()
        .flat_map(|day| {
            day["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|event| event["kind"] == "annual_period_start")
                .map(|event| (day["date"].as_str().unwrap().to_string(), event))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(starts.len(), 1, "{forecast}");
    assert_eq!(starts[0].0, "2030-07-01", "the day after the period end");
    assert_eq!(starts[0].1["users"], 3, "{forecast}");
    assert_eq!(starts[0].1["period"], "2031-06-30", "{forecast}");
    assert_eq!(starts[0].1["activity_id"], annual);
    let due_day = days
        .iter()
        .find(|day| day["date"] == "2030-06-30")
        .unwrap_or_else(|| panic!("2030-06-30 has the due enrollments: {forecast}"));
    let due = due_day["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "enrollments_due")
        .unwrap_or_else(|| panic!("{due_day}"));
    assert_eq!(due["count"], 3, "{due}");

    let (status, forecast) = app
        .get("/forecast?from=2030-02-01&to=2030-02-28", &app.admin)
        .await;
    assert_eq!(status, 200, "{forecast}");
    let days = forecast["days"].as_array().expect("days").clone();
    let job_days: Vec<&Value> = days
        .iter()
        .filter(|day| {
            day["events"]
                .as_array()
                .is_some_and(|events| events.iter().any(|e| e["kind"] == "post_enrollment_jobs"))
        })
        .collect();
    assert_eq!(job_days.len(), 1, "{forecast}");
    assert_eq!(
        job_days[0]["date"], "2030-02-09",
        "30 × 24 h after 2030-01-10T10:00"
    );
    let event = job_days[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "post_enrollment_jobs")
        .unwrap()
        .clone();
    assert_eq!(event["count"], 1, "{event}");
    assert_eq!(event["rule_ids"], json!([id(&rule)]), "{event}");
}

#[tokio::test]
async fn r17_preview_lists_the_users_page_by_page() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let activity = course(&app, "Paged").await;
    // The first user holds an open enrollment (adopt), the others do not (enroll).
    let mut learners = vec![member(&app, "holder", &[staff], json!({})).await];
    app.enroll_one(activity, learners[0], json!({})).await;
    for n in 0..10 {
        learners.push(member(&app, &format!("paged{n}"), &[staff], json!({})).await);
    }
    let path = format!("/activities/{activity}/auto-enrollment/preview");
    let rule = groups_rule(&[staff], json!({"kind": "one_time", "due": null}));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page_path = match &cursor {
            Some(cursor) => format!("{path}?limit=2&cursor={}", crate::helpers::encode(cursor)),
            None => format!("{path}?limit=2"),
        };
        let (status, preview) = app.post(&page_path, &app.admin, rule.clone()).await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(preview["enroll"], 10, "the counts are whole: {preview}");
        assert_eq!(preview["adopt"], 1, "the counts are whole: {preview}");
        let page = items(&preview["users"]);
        assert!(page.len() <= 2, "{preview}");
        seen.extend(page.iter().map(|entry| entry["user_id"].as_i64().unwrap()));
        pages += 1;
        assert!(pages <= 7, "the cursor does not end: {preview}");
        match preview["users"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, learners, "every user once, in id order");
    assert_eq!(in_activity(&app, activity).await.len(), 1);
}

#[tokio::test]
async fn r17_saving_a_change_of_due_each_year_on_moves_open_due_dates_as_previewed_and_closes_nothing()
 {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "moved", &[staff], json!({})).await;
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
    sweep(&app).await;
    let changed = groups_rule(
        &[staff],
        json!({"kind": "annual", "due_each_year_on": "09-30"}),
    );
    let (_, preview) = app
        .post(
            &format!("/activities/{activity}/auto-enrollment/preview"),
            &app.admin,
            changed.clone(),
        )
        .await;
    assert_eq!(
        preview["due_date_changes"][0]["new_due_on"], "2030-09-30",
        "{preview}"
    );

    set_rule(&app, activity, changed).await;
    sweep(&app).await;

    // In January no new period has begun: the learner's open enrollment is
    // not closed as `incomplete`; its due date moves as the preview said.
    let enrollments = crate::support::of(&app, learner, activity).await;
    assert!(
        enrollments.iter().all(|e| e["status"] != "incomplete"),
        "changing the rule closed an enrollment mid-period: {enrollments:?}"
    );
    let open: Vec<&Value> = enrollments
        .iter()
        .filter(|e| e["status"] == "in_progress")
        .collect();
    assert_eq!(open.len(), 1, "{enrollments:?}");
    assert_eq!(open[0]["due_on"], "2030-09-30", "{enrollments:?}");
}
