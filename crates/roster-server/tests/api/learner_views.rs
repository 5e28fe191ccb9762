//! The learner's own views: History (R60), Plan and its iCalendar feed (R61),
//! home rows (R62), and inactive activities hidden from them (R37).

use serde_json::{Value, json};

use crate::helpers::{TestApp, activity_ids, encode, id, spawn_app};

/// Three enrollments made a month apart, newest last:
/// "Alpha Safety" (recommended, 2030-01-01), "Beta Ethics" (required and
/// passed, 2030-02-01), "Gamma Safety" (self-enrolled, 2030-03-01).
/// Returns the learner's token and the three activity ids.
async fn history_fixture(app: &TestApp) -> (String, [i64; 3]) {
    let (user_id, token) = app.create_learner("historian").await;
    let alpha = app.create_activity("Alpha Safety", "online_course").await;
    let beta = app.create_activity("Beta Ethics", "online_course").await;
    let gamma = app.create_activity("Gamma Safety", "online_course").await;
    app.set_clock("2030-01-01T09:00:00Z").await;
    app.enroll_one(alpha, user_id, json!({})).await;
    app.set_clock("2030-02-01T09:00:00Z").await;
    let beta_enrollment = app
        .enroll_one(beta, user_id, json!({"type": "required"}))
        .await;
    let (status, _) = app
        .patch(
            &format!("/enrollments/{}", id(&beta_enrollment)),
            &app.admin,
            json!({"status": "passed"}),
        )
        .await;
    assert_eq!(status, 200);
    app.set_clock("2030-03-01T09:00:00Z").await;
    let (status, body) = app
        .post("/me/enrollments", &token, json!({"activity_id": gamma}))
        .await;
    assert_eq!(status, 201, "{body}");
    (token, [alpha, beta, gamma])
}

fn history_activities(list: &Value) -> Vec<i64> {
    activity_ids(&list["items"])
}

#[tokio::test]
async fn r60_history_lists_every_status_newest_first() {
    let app = spawn_app().await;
    let (token, [alpha, beta, gamma]) = history_fixture(&app).await;

    let (status, history) = app.get("/me/history", &token).await;

    assert_eq!(status, 200, "{history}");
    assert_eq!(history_activities(&history), vec![gamma, beta, alpha]);
}

#[tokio::test]
async fn r60_history_shows_only_the_learners_own_enrollments() {
    let app = spawn_app().await;
    let (token, [alpha, beta, gamma]) = history_fixture(&app).await;
    let other = app.create_user("bystander", &[]).await;
    let elsewhere = app.create_activity("Someone else's", "online_course").await;
    app.enroll_one(elsewhere, other, json!({})).await;

    let (_, history) = app.get("/me/history", &token).await;

    assert_eq!(history_activities(&history), vec![gamma, beta, alpha]);
}

#[tokio::test]
async fn r60_history_searches_by_activity_title() {
    let app = spawn_app().await;
    let (token, [alpha, _, gamma]) = history_fixture(&app).await;

    let (status, history) = app.get("/me/history?q=Safety", &token).await;

    assert_eq!(status, 200, "{history}");
    assert_eq!(history_activities(&history), vec![gamma, alpha]);
}

#[tokio::test]
async fn r60_history_filters_by_status_and_type() {
    let app = spawn_app().await;
    let (token, [alpha, beta, gamma]) = history_fixture(&app).await;

    let (_, passed) = app.get("/me/history?status=passed", &token).await;
    let (_, open) = app.get("/me/history?status=in_progress", &token).await;
    let (_, elected) = app.get("/me/history?type=elected", &token).await;
    let (_, recommended) = app.get("/me/history?type=recommended", &token).await;

    assert_eq!(history_activities(&passed), vec![beta]);
    assert_eq!(history_activities(&open), vec![gamma, alpha]);
    assert_eq!(history_activities(&elected), vec![gamma]);
    assert_eq!(history_activities(&recommended), vec![alpha]);
}

#[tokio::test]
async fn r60_history_filters_by_an_inclusive_range_of_enrollment_dates() {
    let app = spawn_app().await;
    let (token, [alpha, beta, _]) = history_fixture(&app).await;

    let (status, february) = app
        .get("/me/history?from=2030-02-01&to=2030-02-28", &token)
        .await;
    let (_, both_ends) = app
        .get("/me/history?from=2030-01-01&to=2030-02-01", &token)
        .await;

    assert_eq!(status, 200, "{february}");
    assert_eq!(history_activities(&february), vec![beta]);
    assert_eq!(history_activities(&both_ends), vec![beta, alpha]);
}

#[tokio::test]
async fn r60_history_is_paginated() {
    let app = spawn_app().await;
    let (token, [alpha, beta, gamma]) = history_fixture(&app).await;

    let (status, first) = app.get("/me/history?limit=2", &token).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(history_activities(&first), vec![gamma, beta]);
    let cursor = first["next_cursor"].as_str().expect("a next cursor");
    let (_, second) = app
        .get(
            &format!("/me/history?limit=2&cursor={}", encode(cursor)),
            &token,
        )
        .await;

    assert_eq!(history_activities(&second), vec![alpha]);
    assert_eq!(second["next_cursor"], Value::Null);
}

#[tokio::test]
async fn r60_history_downloads_as_csv_with_a_header_row() {
    let app = spawn_app().await;
    let (token, _) = history_fixture(&app).await;

    let reply = app.get_accept("/me/history", &token, "text/csv").await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.content_type.starts_with("text/csv"),
        "{}",
        reply.content_type
    );
    let text = reply.text();
    let lines: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(lines.len(), 4, "a header and three rows: {text}");
    assert!(lines[0].contains("status"), "header row: {}", lines[0]);
    assert!(
        text.contains("Gamma Safety") && text.contains("Beta Ethics"),
        "{text}"
    );
}

/// Enrolls the learner into a fresh activity with the given due date and
/// extra fields, returning the activity id.
async fn enroll_in_new(app: &TestApp, user_id: i64, title: &str, extra: Value) -> i64 {
    let activity_id = app.create_activity(title, "online_course").await;
    app.enroll_one(activity_id, user_id, extra).await;
    activity_id
}

async fn deactivate(app: &TestApp, activity_id: i64) {
    let (status, body) = app
        .patch(
            &format!("/activities/{activity_id}"),
            &app.admin,
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn r61_plan_groups_open_enrollments_by_due_date() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("planner").await;
    app.set_clock("2030-01-10T09:00:00Z").await;
    let overdue = enroll_in_new(&app, user_id, "Overdue", json!({"due_on": "2030-01-05"})).await;
    let soon_last =
        enroll_in_new(&app, user_id, "Soon edge", json!({"due_on": "2030-01-17"})).await;
    let soon_first = enroll_in_new(&app, user_id, "Soon", json!({"due_on": "2030-01-12"})).await;
    let month_edge =
        enroll_in_new(&app, user_id, "Month edge", json!({"due_on": "2030-02-09"})).await;
    let month = enroll_in_new(&app, user_id, "Month", json!({"due_on": "2030-01-18"})).await;
    let later = enroll_in_new(&app, user_id, "Later", json!({"due_on": "2030-02-10"})).await;
    let undated = enroll_in_new(&app, user_id, "Undated", json!({})).await;
    enroll_in_new(
        &app,
        user_id,
        "Closed",
        json!({"due_on": "2030-01-20", "status": "passed"}),
    )
    .await;

    let (status, plan) = app.get("/me/plan", &token).await;

    assert_eq!(status, 200, "{plan}");
    assert_eq!(activity_ids(&plan["overdue"]), vec![overdue]);
    assert_eq!(activity_ids(&plan["due_soon"]), vec![soon_first, soon_last]);
    assert_eq!(
        activity_ids(&plan["due_this_month"]),
        vec![month, month_edge]
    );
    assert_eq!(activity_ids(&plan["later"]), vec![later]);
    assert_eq!(activity_ids(&plan["no_due_date"]), vec![undated]);
    assert_eq!(plan["overdue"][0]["overdue"], true);
    assert_eq!(plan["due_soon"][0]["overdue"], false);
}

#[tokio::test]
async fn r61_an_enrollment_due_today_is_due_soon_not_overdue() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("today").await;
    app.set_clock("2030-01-10T09:00:00Z").await;
    let today = enroll_in_new(&app, user_id, "Today", json!({"due_on": "2030-01-10"})).await;

    let (_, plan) = app.get("/me/plan", &token).await;

    assert_eq!(activity_ids(&plan["overdue"]), Vec::<i64>::new());
    assert_eq!(activity_ids(&plan["due_soon"]), vec![today]);
}

#[tokio::test]
async fn r61_plan_moves_an_enrollment_to_overdue_as_the_clock_passes_its_due_date() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("procrastinator").await;
    app.set_clock("2030-01-10T09:00:00Z").await;
    let activity_id =
        enroll_in_new(&app, user_id, "Deadline", json!({"due_on": "2030-01-12"})).await;

    app.set_clock("2030-01-13T09:00:00Z").await;
    let (_, plan) = app.get("/me/plan", &token).await;

    assert_eq!(activity_ids(&plan["overdue"]), vec![activity_id]);
    assert_eq!(activity_ids(&plan["due_soon"]), Vec::<i64>::new());
}

#[tokio::test]
async fn r37_plan_hides_enrollments_in_inactive_activities_until_active_again() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("hidden").await;
    app.set_clock("2030-01-10T09:00:00Z").await;
    let visible = enroll_in_new(&app, user_id, "Visible", json!({"due_on": "2030-01-12"})).await;
    let paused = enroll_in_new(&app, user_id, "Paused", json!({"due_on": "2030-01-13"})).await;
    deactivate(&app, paused).await;

    let (_, plan) = app.get("/me/plan", &token).await;
    assert_eq!(activity_ids(&plan["due_soon"]), vec![visible]);

    let (status, _) = app
        .patch(
            &format!("/activities/{paused}"),
            &app.admin,
            json!({"active": true}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, plan) = app.get("/me/plan", &token).await;
    assert_eq!(activity_ids(&plan["due_soon"]), vec![visible, paused]);
}

/// The learner's lists name each activity as it is now: a rename or a
/// deactivation shows in the next request, and an activity created after
/// the lists were first read is named too.
#[tokio::test]
async fn r60_r61_r62_learner_lists_show_an_activity_as_it_is_now() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("reader").await;
    app.set_clock("2030-01-10T09:00:00Z").await;
    let first = enroll_in_new(
        &app,
        user_id,
        "First title",
        json!({"due_on": "2030-01-12"}),
    )
    .await;
    let (_, plan) = app.get("/me/plan", &token).await;
    assert_eq!(
        plan["due_soon"][0]["activity_title"], "First title",
        "{plan}"
    );

    let (status, body) = app
        .patch(
            &format!("/activities/{first}"),
            &app.admin,
            json!({"title": "Second title"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let later = enroll_in_new(
        &app,
        user_id,
        "Later course",
        json!({"due_on": "2030-01-13"}),
    )
    .await;

    let (_, plan) = app.get("/me/plan", &token).await;
    let titles = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|item| item["activity_title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(titles(&plan["due_soon"]), ["Second title", "Later course"]);
    let (_, home) = app.get("/me/home", &token).await;
    assert_eq!(
        titles(&home["recommended"]),
        ["Second title", "Later course"]
    );
    let (_, history) = app.get("/me/history", &token).await;
    assert_eq!(titles(&history["items"]), ["Later course", "Second title"]);
    let (_, found) = app.get("/me/history?q=second", &token).await;
    assert_eq!(history_activities(&found), vec![first]);
    let (_, found) = app.get("/me/history?q=first", &token).await;
    assert_eq!(history_activities(&found), Vec::<i64>::new());

    deactivate(&app, later).await;
    let (_, plan) = app.get("/me/plan", &token).await;
    assert_eq!(activity_ids(&plan["due_soon"]), vec![first]);
    let (_, history) = app.get("/me/history", &token).await;
    assert_eq!(history_activities(&history), vec![later, first]);
}

#[tokio::test]
async fn r37_history_still_shows_enrollments_in_inactive_activities() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("archivist").await;
    let paused = enroll_in_new(&app, user_id, "Paused", json!({})).await;
    deactivate(&app, paused).await;

    let (status, history) = app.get("/me/history", &token).await;

    assert_eq!(status, 200, "{history}");
    assert_eq!(history_activities(&history), vec![paused]);
}

#[tokio::test]
async fn r61_the_ics_feed_has_one_all_day_event_per_dated_open_enrollment() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("calendar").await;
    app.set_clock("2030-01-10T09:00:00Z").await;
    enroll_in_new(
        &app,
        user_id,
        "Soon course",
        json!({"due_on": "2030-01-15"}),
    )
    .await;
    enroll_in_new(
        &app,
        user_id,
        "Late course",
        json!({"due_on": "2030-02-20"}),
    )
    .await;
    enroll_in_new(
        &app,
        user_id,
        "Overdue course",
        json!({"due_on": "2030-01-02"}),
    )
    .await;
    enroll_in_new(&app, user_id, "Undated course", json!({})).await;
    enroll_in_new(
        &app,
        user_id,
        "Closed course",
        json!({"due_on": "2030-01-20", "status": "passed"}),
    )
    .await;
    let paused = enroll_in_new(
        &app,
        user_id,
        "Paused course",
        json!({"due_on": "2030-01-25"}),
    )
    .await;
    deactivate(&app, paused).await;

    let reply = app
        .request(reqwest::Method::GET, "/me/plan.ics", &token, Value::Null)
        .await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.content_type.starts_with("text/calendar"),
        "{}",
        reply.content_type
    );
    let text = reply.text();
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .collect();
    assert_eq!(lines.first().copied(), Some("BEGIN:VCALENDAR"), "{text}");
    assert_eq!(
        lines.iter().rev().find(|line| !line.is_empty()).copied(),
        Some("END:VCALENDAR")
    );
    assert_eq!(
        lines.iter().filter(|line| **line == "BEGIN:VEVENT").count(),
        3,
        "{text}"
    );
    for date in ["20300115", "20300220", "20300102"] {
        let line = format!("DTSTART;VALUE=DATE:{date}");
        assert!(lines.contains(&line.as_str()), "{line} missing from {text}");
    }
    assert!(
        !text.contains("20300120") && !text.contains("20300125"),
        "{text}"
    );
}

/// The content lines of an iCalendar text, unfolded (RFC 5545 3.1).
fn ics_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.split("\r\n").flat_map(|line| line.split('\n')) {
        match (line.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ if line.is_empty() => {}
            _ => lines.push(line.to_string()),
        }
    }
    lines
}

/// The VEVENTs of a feed, each as its content lines.
fn ics_events(lines: &[String]) -> Vec<Vec<String>> {
    let mut events = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in lines {
        match line.as_str() {
            "BEGIN:VEVENT" => current = Some(Vec::new()),
            "END:VEVENT" => events.extend(current.take()),
            _ => {
                if let Some(event) = current.as_mut() {
                    event.push(line.clone());
                }
            }
        }
    }
    events
}

/// The one line of an event whose property name is `name`, parameters included.
fn ics_property<'a>(event: &'a [String], name: &str) -> &'a str {
    let found: Vec<&String> = event
        .iter()
        .filter(|line| line.split([';', ':']).next() == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "one {name} in {event:?}");
    found[0]
}

#[tokio::test]
async fn r61_ics_events_end_the_day_after_with_a_stable_uid_and_roster_prodid() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("subscriber").await;
    app.set_clock("2030-01-10T09:00:00Z").await;
    let mut expected = std::collections::BTreeMap::new();
    for (title, due, day_after) in [
        ("Month end", "2030-01-31", "20300201"),
        ("Year end", "2030-12-31", "20310101"),
    ] {
        let activity_id = app.create_activity(title, "online_course").await;
        let enrollment = app
            .enroll_one(activity_id, user_id, json!({"due_on": due}))
            .await;
        let uid = format!("UID:enrollment-{}@roster", id(&enrollment));
        let start = format!("DTSTART;VALUE=DATE:{}", due.replace('-', ""));
        expected.insert(uid, (start, format!("DTEND;VALUE=DATE:{day_after}")));
    }

    let mut feeds = Vec::new();
    for _ in 0..2 {
        let reply = app
            .request(reqwest::Method::GET, "/me/plan.ics", &token, Value::Null)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        feeds.push(reply.text());
    }

    let mut uids_per_fetch = Vec::new();
    for text in &feeds {
        let lines = ics_lines(text);
        let prodid = lines
            .iter()
            .find(|line| line.starts_with("PRODID:"))
            .unwrap_or_else(|| panic!("no PRODID in {text}"));
        assert!(prodid.contains("Roster"), "{prodid}");
        let mut uids = Vec::new();
        for event in ics_events(&lines) {
            let uid = ics_property(&event, "UID").to_string();
            let (start, end) = expected
                .get(&uid)
                .unwrap_or_else(|| panic!("unexpected {uid} in {text}"));
            assert_eq!(ics_property(&event, "DTSTART"), start, "{text}");
            assert_eq!(ics_property(&event, "DTEND"), end, "{text}");
            uids.push(uid);
        }
        uids.sort();
        uids_per_fetch.push(uids);
    }
    let all: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(uids_per_fetch, vec![all.clone(), all]);
}

#[tokio::test]
async fn r62_home_rows_hold_open_required_and_recommended_soonest_first() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("homebody").await;
    app.set_clock("2030-01-10T09:00:00Z").await;
    let required_late = enroll_in_new(
        &app,
        user_id,
        "Req late",
        json!({"type": "required", "due_on": "2030-02-01"}),
    )
    .await;
    let required_undated =
        enroll_in_new(&app, user_id, "Req undated", json!({"type": "required"})).await;
    let required_soon = enroll_in_new(
        &app,
        user_id,
        "Req soon",
        json!({"type": "required", "due_on": "2030-01-15"}),
    )
    .await;
    let recommended_undated = enroll_in_new(&app, user_id, "Rec undated", json!({})).await;
    let recommended_dated =
        enroll_in_new(&app, user_id, "Rec dated", json!({"due_on": "2030-03-01"})).await;
    enroll_in_new(
        &app,
        user_id,
        "Req closed",
        json!({"type": "required", "status": "passed"}),
    )
    .await;
    let elective = app.create_activity("Elective", "online_course").await;
    let (status, _) = app
        .post("/me/enrollments", &token, json!({"activity_id": elective}))
        .await;
    assert_eq!(status, 201);

    let (status, home) = app.get("/me/home", &token).await;

    assert_eq!(status, 200, "{home}");
    assert_eq!(
        activity_ids(&home["required"]),
        vec![required_soon, required_late, required_undated]
    );
    assert_eq!(
        activity_ids(&home["recommended"]),
        vec![recommended_dated, recommended_undated]
    );
}

#[tokio::test]
async fn r37_home_rows_hide_enrollments_in_inactive_activities() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("homeless").await;
    let shown = enroll_in_new(&app, user_id, "Shown", json!({"type": "required"})).await;
    let paused = enroll_in_new(&app, user_id, "Paused", json!({"type": "required"})).await;
    let paused_recommended = enroll_in_new(&app, user_id, "Paused rec", json!({})).await;
    deactivate(&app, paused).await;
    deactivate(&app, paused_recommended).await;

    let (_, home) = app.get("/me/home", &token).await;

    assert_eq!(activity_ids(&home["required"]), vec![shown]);
    assert_eq!(activity_ids(&home["recommended"]), Vec::<i64>::new());
}

#[tokio::test]
async fn r61_the_plan_of_a_learner_with_nothing_open_is_five_empty_groups() {
    let app = spawn_app().await;
    let (_, token) = app.create_learner("idle").await;

    let (status, plan) = app.get("/me/plan", &token).await;

    assert_eq!(status, 200, "{plan}");
    for group in [
        "overdue",
        "due_soon",
        "due_this_month",
        "later",
        "no_due_date",
    ] {
        assert_eq!(plan[group], json!([]), "group {group} in {plan}");
    }
}

#[tokio::test]
async fn r60_history_csv_neutralises_cells_that_start_a_formula() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("spreadsheet").await;
    enroll_in_new(&app, user_id, "=HYPERLINK(\"http://x\")", json!({})).await;

    let reply = app.get_accept("/me/history", &token, "text/csv").await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    assert!(text.contains("HYPERLINK"), "{text}");
    for line in text.lines() {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(!cell.starts_with('='), "formula cell {cell:?} in {text}");
        }
    }
}

#[tokio::test]
async fn r61_plan_overdue_follows_today_in_the_organisation_timezone() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("auckland").await;
    let (status, _) = app
        .patch(
            "/settings",
            &app.admin,
            json!({"timezone": "Pacific/Auckland"}),
        )
        .await;
    assert_eq!(status, 200);
    app.set_clock("2030-01-10T20:00:00Z").await;
    let activity_id = enroll_in_new(
        &app,
        user_id,
        "Due in UTC today",
        json!({"due_on": "2030-01-10"}),
    )
    .await;

    let (_, plan) = app.get("/me/plan", &token).await;

    assert_eq!(activity_ids(&plan["overdue"]), vec![activity_id], "{plan}");
}

#[tokio::test]
async fn r60_history_pages_cover_enrollments_made_at_the_same_instant_once_each() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_learner("simultaneous").await;
    let mut expected = Vec::new();
    for title in ["Same one", "Same two", "Same three"] {
        expected.push(enroll_in_new(&app, user_id, title, json!({})).await);
    }

    let (_, first) = app.get("/me/history?limit=2", &token).await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();
    let (_, second) = app
        .get(
            &format!("/me/history?limit=2&cursor={}", encode(&cursor)),
            &token,
        )
        .await;

    let mut seen = history_activities(&first);
    seen.extend(history_activities(&second));
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once");
}
