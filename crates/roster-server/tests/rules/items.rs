//! R39 curricula and R40 course bundles.

use serde_json::{Value, json};

use crate::helpers::id;
use crate::support::{app_at, course, field, member, of, only, post_rule, set_status, when};

#[tokio::test]
async fn r39_a_curriculum_passes_once_all_its_courses_are_passed_counting_earlier_passes_then_fires_completed()
 {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "student", &[], json!({})).await;
    let graduate = member(&app, "graduate", &[], json!({})).await;
    let first = course(&app, "Course one").await;
    let second = course(&app, "Course two").await;
    let next = course(&app, "Next step").await;
    let curriculum = id(&app
        .create_activity_with(
            json!({"title": "Path", "kind": "curriculum", "item_ids": [first, second]}),
        )
        .await);
    let completed = post_rule(&app, curriculum, when("completed", 0, &[next], false)).await;
    // Passed before the curriculum enrollment.
    app.enroll_one(first, learner, json!({"status": "passed"}))
        .await;
    app.enroll_one(first, graduate, json!({"status": "passed"}))
        .await;
    app.enroll_one(second, graduate, json!({"status": "passed"}))
        .await;

    let enrolled = app
        .enroll_one(curriculum, learner, json!({"type": "required"}))
        .await;

    assert_eq!(enrolled["status"], "in_progress", "{enrolled}");
    assert!(
        of(&app, learner, second).await.is_empty(),
        "enrolling in a curriculum does not enroll in its courses"
    );
    let course_two = app.enroll_one(second, learner, json!({})).await;
    app.set_clock("2030-02-01T09:00:00Z").await;
    set_status(&app, id(&course_two), "passed").await;

    let passed = only(&app, learner, curriculum).await;
    assert_eq!(passed["status"], "passed", "{passed}");
    assert_eq!(passed["completed_at"], "2030-02-01T09:00:00Z", "{passed}");
    app.run_due_jobs().await;
    let follow_up = only(&app, learner, next).await;
    assert_eq!(
        follow_up["source"],
        json!({"kind": "post_enrollment", "rule_id": id(&completed), "from_enrollment_id": id(&passed)})
    );

    // Everything passed already: the curriculum enrollment passes at once.
    let results = app.enroll(curriculum, &[graduate], json!({})).await;
    assert_eq!(results[0]["outcome"], "created", "{results:?}");
    assert_eq!(results[0]["enrollment"]["status"], "passed", "{results:?}");
    app.run_due_jobs().await;
    assert_eq!(
        field(&of(&app, graduate, next).await, "status"),
        ["in_progress"]
    );
}

#[tokio::test]
async fn r40_a_bundle_enrollment_enrolls_in_each_course_and_passes_when_all_pass() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "bundled", &[], json!({})).await;
    let first = course(&app, "Part one").await;
    let second = course(&app, "Part two").await;
    let bundle = id(&app
        .create_activity_with(
            json!({"title": "Bundle", "kind": "course_bundle", "item_ids": [first, second]}),
        )
        .await);
    let already_open = app.enroll_one(first, learner, json!({})).await;

    let enrollment = app
        .enroll_one(bundle, learner, json!({"type": "required"}))
        .await;

    // R2: the open enrollment in part one stays the only one.
    let part_one = only(&app, learner, first).await;
    assert_eq!(id(&part_one), id(&already_open));
    let part_two = only(&app, learner, second).await;
    assert_eq!(part_two["type"], "required");
    assert_eq!(part_two["status"], "in_progress");
    assert_eq!(part_two["due_on"], Value::Null);
    assert_eq!(
        part_two["source"],
        json!({"kind": "bundle", "enrollment_id": id(&enrollment)})
    );

    let (status, explained) = app
        .get(
            &format!("/enrollments/{}/explain", id(&part_two)),
            &app.admin,
        )
        .await;
    assert_eq!(status, 200, "{explained}");
    let chain = explained["chain"].as_array().expect("a chain");
    assert_eq!(chain.len(), 2, "{explained}");
    assert_eq!(chain[1]["enrollment_id"], id(&enrollment), "{explained}");
    assert_eq!(chain[1]["source"]["kind"], "manual", "{explained}");

    set_status(&app, id(&part_one), "passed").await;
    assert_eq!(only(&app, learner, bundle).await["status"], "in_progress");
    set_status(&app, id(&part_two), "passed").await;
    let passed = only(&app, learner, bundle).await;
    assert_eq!(passed["status"], "passed", "{passed}");
    assert!(passed["completed_at"].is_string(), "{passed}");
}

#[tokio::test]
async fn r40_adding_a_course_to_a_bundle_enrolls_learners_with_an_open_bundle_enrollment() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let open_learner = member(&app, "open", &[], json!({})).await;
    let finished = member(&app, "finished", &[], json!({})).await;
    let first = course(&app, "Part one").await;
    let added = course(&app, "Added later").await;
    let bundle = id(&app
        .create_activity_with(
            json!({"title": "Bundle", "kind": "course_bundle", "item_ids": [first]}),
        )
        .await);
    let open_bundle = app.enroll_one(bundle, open_learner, json!({})).await;
    app.enroll_one(bundle, finished, json!({})).await;
    let done = only(&app, finished, first).await;
    set_status(&app, id(&done), "passed").await;
    assert_eq!(only(&app, finished, bundle).await["status"], "passed");

    let (status, patched) = app
        .patch(
            &format!("/activities/{bundle}"),
            &app.admin,
            json!({"item_ids": [first, added]}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");

    let new_course = only(&app, open_learner, added).await;
    assert_eq!(
        new_course["source"],
        json!({"kind": "bundle", "enrollment_id": id(&open_bundle)})
    );
    assert_eq!(new_course["type"], "required");
    assert_eq!(new_course["status"], "in_progress");
    assert!(of(&app, finished, added).await.is_empty());
}

#[tokio::test]
async fn r39_passing_the_last_course_of_a_curriculum_with_an_annual_rule_opens_the_next_period_once()
 {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "yearly", &[staff], json!({})).await;
    let only_course = course(&app, "The course").await;
    let curriculum = id(&app
        .create_activity_with(
            json!({"title": "Yearly path", "kind": "curriculum", "item_ids": [only_course]}),
        )
        .await);
    crate::support::set_rule(
        &app,
        curriculum,
        crate::support::groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "06-30"}),
        ),
    )
    .await;
    crate::support::sweep(&app).await;
    let period = only(&app, learner, curriculum).await;
    assert_eq!(period["period"], "2030-06-30");
    let course_enrollment = app.enroll_one(only_course, learner, json!({})).await;

    let reply = app
        .request(
            reqwest::Method::PATCH,
            &format!("/enrollments/{}", id(&course_enrollment)),
            &app.admin,
            json!({"status": "passed"}),
        )
        .await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    let (status, _) = app.get("/healthz", "").await;
    assert_eq!(status, 200, "the server is still up");
    let list = of(&app, learner, curriculum).await;
    assert_eq!(list[0]["status"], "passed", "{list:?}");
    assert_eq!(list[0]["period"], "2030-06-30", "{list:?}");
    assert!(
        list.iter().any(|e| e["period"] == "2031-06-30"),
        "R19 opened the next period: {list:?}"
    );
    assert!(
        list.len() <= 3,
        "passing one period must not cascade through the years: {} enrollments",
        list.len()
    );
}

#[tokio::test]
async fn r38_a_recertification_rule_on_a_curriculum_whose_courses_are_passed_terminates() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "looped", &[], json!({})).await;
    let only_course = course(&app, "The course").await;
    let curriculum = id(&app
        .create_activity_with(
            json!({"title": "Recertified path", "kind": "curriculum", "item_ids": [only_course]}),
        )
        .await);
    post_rule(&app, curriculum, when("completed", 0, &[curriculum], true)).await;
    app.enroll_one(only_course, learner, json!({"status": "passed"}))
        .await;

    app.enroll_one(curriculum, learner, json!({})).await;
    // Give the job worker time to run the chain (no run-due: it would not return).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let first = of(&app, learner, curriculum).await.len();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let second = of(&app, learner, curriculum).await.len();

    assert!(
        second <= 3,
        "the chain must terminate after a few steps, got {second} curriculum enrollments"
    );
    assert_eq!(
        first, second,
        "the chain is still running: {first} then {second} enrollments"
    );
}

#[tokio::test]
async fn r40_a_bundle_enrolled_by_its_auto_enrollment_rule_enrolls_its_courses() {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let staff = app.create_group("Staff").await;
    let learner = member(&app, "swept", &[staff], json!({})).await;
    let first = course(&app, "Part one").await;
    let second = course(&app, "Part two").await;
    let bundle = id(&app
        .create_activity_with(
            json!({"title": "Bundle", "kind": "course_bundle", "item_ids": [first, second]}),
        )
        .await);
    crate::support::set_rule(
        &app,
        bundle,
        crate::support::groups_rule(&[staff], json!({"kind": "one_time", "due": null})),
    )
    .await;

    app.set_clock("2030-01-11T03:00:00Z").await;

    let bundle_enrollment = only(&app, learner, bundle).await;
    for item in [first, second] {
        let enrollment = only(&app, learner, item).await;
        assert_eq!(
            enrollment["source"],
            json!({"kind": "bundle", "enrollment_id": id(&bundle_enrollment)})
        );
        assert_eq!(enrollment["enrolled_at"], "2030-01-11T02:00:00Z");
    }
}

#[tokio::test]
async fn r39_an_enrolled_rule_enrolls_a_curriculum_learner_in_its_courses_and_passing_them_passes_it()
 {
    let app = app_at("2030-01-10T10:00:00Z").await;
    let learner = member(&app, "pathway", &[], json!({})).await;
    let first = course(&app, "Course one").await;
    let second = course(&app, "Course two").await;
    let curriculum = id(&app
        .create_activity_with(
            json!({"title": "Path", "kind": "curriculum", "item_ids": [first, second]}),
        )
        .await);
    let rule = post_rule(
        &app,
        curriculum,
        when("enrolled", 0, &[first, second], false),
    )
    .await;

    let enrollment = app.enroll_one(curriculum, learner, json!({})).await;
    app.run_due_jobs().await;

    let mut courses = Vec::new();
    for item in [first, second] {
        let record = only(&app, learner, item).await;
        assert_eq!(
            record["source"],
            json!({"kind": "post_enrollment", "rule_id": id(&rule), "from_enrollment_id": id(&enrollment)})
        );
        courses.push(record);
    }
    set_status(&app, id(&courses[0]), "passed").await;
    assert_eq!(
        only(&app, learner, curriculum).await["status"],
        "in_progress"
    );
    set_status(&app, id(&courses[1]), "passed").await;
    assert_eq!(only(&app, learner, curriculum).await["status"], "passed");
}
