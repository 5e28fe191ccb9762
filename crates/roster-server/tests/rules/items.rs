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
