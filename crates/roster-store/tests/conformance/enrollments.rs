//! Enrollments: the unique keys of R2 and R14, updates, the lists of R55 and
//! R60, curricula (R39) and the purge (R54).

use roster_store::{
    ActivityRecord, EnrollmentFilter, EnrollmentInsert, EnrollmentPatch, EnrollmentRecord,
    EnrollmentRow, ExemptionRecord, Store, TaskRecord, UserIds, UserInsert,
};

use crate::support::{HOUR, NOW, activity, enrollment, is_conflict, user};

fn patch_of(record: &EnrollmentRecord) -> EnrollmentPatch {
    EnrollmentPatch {
        enrollment_type: record.enrollment_type.clone(),
        status: record.status.clone(),
        due_on: record.due_on.clone(),
        required_by: record.required_by.clone(),
        reason: record.reason.clone(),
        completed_at: record.completed_at,
        period: record.period.clone(),
    }
}

fn closed(status: &str, new: EnrollmentInsert) -> EnrollmentInsert {
    EnrollmentInsert {
        status: status.to_string(),
        completed_at: Some(new.enrolled_at + HOUR),
        ..new
    }
}

pub async fn enrollments_round_trip_with_every_field(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let new = EnrollmentInsert {
        enrollment_type: "required".into(),
        status: "passed".into(),
        due_on: Some("2027-02-01".into()),
        required_by: Some("HR".into()),
        reason: Some("Compliance".into()),
        completed_at: Some(NOW + HOUR),
        source_kind: "auto_enrollment".into(),
        source: r#"{"kind":"auto_enrollment","activity_id":1,"period":"once"}"#.into(),
        period: Some("once".into()),
        ..enrollment(alice, course)
    };
    let record = tx.insert_enrollment(&new).await.unwrap().unwrap();
    let expected = EnrollmentRecord {
        id: record.id,
        user_id: alice,
        activity_id: course,
        enrollment_type: "required".into(),
        status: "passed".into(),
        due_on: Some("2027-02-01".into()),
        required_by: Some("HR".into()),
        reason: Some("Compliance".into()),
        enrolled_at: NOW,
        completed_at: Some(NOW + HOUR),
        source_kind: "auto_enrollment".into(),
        source: new.source.clone(),
        period: Some("once".into()),
    };
    assert_eq!(record, expected);
    assert_eq!(
        tx.get_enrollment(record.id).await.unwrap(),
        Some(expected.clone())
    );
    assert!(tx.ever_passed(alice, course).await.unwrap());
    assert_eq!(tx.open_enrollment(alice, course).await.unwrap(), None);

    let mut patch = patch_of(&expected);
    patch.status = "in_progress".into();
    patch.completed_at = None;
    patch.due_on = None;
    patch.enrollment_type = "recommended".into();
    patch.reason = None;
    tx.update_enrollment(record.id, &patch, NOW + 2 * HOUR)
        .await
        .unwrap();
    let updated = tx.get_enrollment(record.id).await.unwrap().unwrap();
    assert_eq!(updated.status, "in_progress");
    assert_eq!(updated.completed_at, None);
    assert_eq!(updated.due_on, None);
    assert_eq!(updated.enrollment_type, "recommended");
    assert_eq!(updated.reason, None);
    assert_eq!(updated.enrolled_at, NOW);
    assert!(!tx.ever_passed(alice, course).await.unwrap());
    assert_eq!(
        tx.open_enrollment(alice, course).await.unwrap(),
        Some(updated)
    );

    // Deleting takes the enrollment's tasks with it.
    let task = TaskRecord {
        id: 0,
        enrollment_id: record.id,
        title: "Read".into(),
        completed_on: None,
        note: None,
        created_by: Some(alice),
        created_at: NOW,
    };
    tx.insert_task(&task).await.unwrap();
    tx.delete_enrollment(record.id).await.unwrap();
    assert_eq!(tx.get_enrollment(record.id).await.unwrap(), None);
    assert!(tx.tasks_of(record.id).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

pub async fn r2_second_open_enrollment_of_a_user_in_an_activity_is_refused(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let bob = tx.insert_user(&user("bob"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let other = tx.insert_activity(&activity("Other"), NOW).await.unwrap();

    let first = tx
        .insert_enrollment(&enrollment(alice, course))
        .await
        .unwrap()
        .expect("first open enrollment");
    let second = EnrollmentInsert {
        enrollment_type: "elected".into(),
        source_kind: "self".into(),
        source: r#"{"kind":"self"}"#.into(),
        ..enrollment(alice, course)
    };
    assert_eq!(tx.insert_enrollment(&second).await.unwrap(), None);
    // The refusal leaves the open one as it is and the transaction usable.
    assert_eq!(
        tx.open_enrollment(alice, course).await.unwrap(),
        Some(first.clone())
    );
    // Other users and other activities are not affected.
    assert!(
        tx.insert_enrollment(&enrollment(bob, course))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        tx.insert_enrollment(&enrollment(alice, other))
            .await
            .unwrap()
            .is_some()
    );
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    assert_eq!(tx.enrollments_of(alice, course).await.unwrap(), vec![first]);
}

pub async fn r2_closed_enrollments_may_sit_beside_the_open_one(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let mut ids = Vec::new();
    for status in [
        "passed",
        "failed",
        "passed",
        "dropped",
        "no_show",
        "incomplete",
    ] {
        let record = tx
            .insert_enrollment(&closed(status, enrollment(alice, course)))
            .await
            .unwrap()
            .expect("closed enrollments never collide");
        ids.push(record.id);
    }
    let open = tx
        .insert_enrollment(&enrollment(alice, course))
        .await
        .unwrap()
        .expect("one open enrollment beside closed ones");
    ids.push(open.id);
    let listed: Vec<i64> = tx
        .enrollments_of(alice, course)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, ids);
    tx.commit().await.unwrap();
}

pub async fn r2_updating_a_closed_enrollment_into_a_second_open_one_is_a_conflict(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let open = tx
        .insert_enrollment(&enrollment(alice, course))
        .await
        .unwrap()
        .unwrap();
    let done = tx
        .insert_enrollment(&closed("passed", enrollment(alice, course)))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let mut reopen = patch_of(&done);
    reopen.status = "in_progress".into();
    reopen.completed_at = None;
    assert!(is_conflict(
        &tx.update_enrollment(done.id, &reopen, NOW).await
    ));
    tx.rollback().await.unwrap();

    // Once the open one is closed, the other may be reopened.
    let mut tx = store.write().await.unwrap();
    let mut drop_open = patch_of(&open);
    drop_open.status = "dropped".into();
    tx.update_enrollment(open.id, &drop_open, NOW)
        .await
        .unwrap();
    tx.update_enrollment(done.id, &reopen, NOW).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    assert_eq!(
        tx.open_enrollment(alice, course)
            .await
            .unwrap()
            .map(|e| e.id),
        Some(done.id)
    );
}

pub async fn r14_a_second_enrollment_for_the_same_rule_period_is_refused(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let held = EnrollmentInsert {
        period: Some("2027-06-30".into()),
        ..closed("failed", enrollment(alice, course))
    };
    tx.insert_enrollment(&held).await.unwrap().unwrap();
    // Closed or open, the period is held.
    let again = EnrollmentInsert {
        period: Some("2027-06-30".into()),
        ..enrollment(alice, course)
    };
    assert_eq!(tx.insert_enrollment(&again).await.unwrap(), None);
    let next = EnrollmentInsert {
        period: Some("2028-06-30".into()),
        ..enrollment(alice, course)
    };
    let next = tx.insert_enrollment(&next).await.unwrap().unwrap();
    // Enrollments without a period never collide on it.
    tx.insert_enrollment(&closed("passed", enrollment(alice, course)))
        .await
        .unwrap()
        .unwrap();
    tx.insert_enrollment(&closed("passed", enrollment(alice, course)))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let mut moved = patch_of(&next);
    moved.period = Some("2027-06-30".into());
    assert!(is_conflict(
        &tx.update_enrollment(next.id, &moved, NOW).await
    ));
    tx.rollback().await.unwrap();
}

/// The enrollments of `seed_lists`, by name.
struct Listed {
    alice: i64,
    bob: i64,
    fire: i64,
    aid: i64,
    e1: i64,
    e2: i64,
    e3: i64,
    e4: i64,
    e5: i64,
}

const DAY: i64 = 24 * HOUR;

/// Alice (active) and Bob (inactive); "Fire Safety" (active) and "First Aid"
/// (inactive); five enrollments, enrolled a day apart, e1 first.
async fn seed_lists(store: &Store) -> Listed {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let bob = UserInsert {
        active: false,
        ..user("bob")
    };
    let bob = tx.insert_user(&bob, NOW).await.unwrap();
    let fire = tx
        .insert_activity(&activity("Fire Safety"), NOW)
        .await
        .unwrap();
    let aid = ActivityRecord {
        active: false,
        kind: "instructor_led".into(),
        ..activity("First Aid")
    };
    let aid = tx.insert_activity(&aid, NOW).await.unwrap();
    let mut insert =
        async |new: EnrollmentInsert| tx.insert_enrollment(&new).await.unwrap().unwrap().id;
    let e1 = insert(EnrollmentInsert {
        enrollment_type: "required".into(),
        due_on: Some("2027-01-10".into()),
        enrolled_at: NOW,
        ..enrollment(alice, fire)
    })
    .await;
    let e2 = insert(EnrollmentInsert {
        source_kind: "self".into(),
        source: r#"{"kind":"self"}"#.into(),
        enrolled_at: NOW + DAY,
        ..closed("passed", enrollment(alice, aid))
    })
    .await;
    let e3 = insert(EnrollmentInsert {
        enrollment_type: "elected".into(),
        due_on: Some("2027-03-01".into()),
        source_kind: "auto_enrollment".into(),
        period: Some("once".into()),
        enrolled_at: NOW + 2 * DAY,
        ..enrollment(bob, fire)
    })
    .await;
    let e4 = insert(EnrollmentInsert {
        enrollment_type: "required".into(),
        due_on: Some("2027-01-05".into()),
        source_kind: "url".into(),
        enrolled_at: NOW + 3 * DAY,
        ..closed("failed", enrollment(bob, aid))
    })
    .await;
    let e5 = insert(EnrollmentInsert {
        due_on: Some("2026-12-01".into()),
        source_kind: "import".into(),
        enrolled_at: NOW + 4 * DAY,
        ..closed("dropped", enrollment(alice, fire))
    })
    .await;
    tx.commit().await.unwrap();
    Listed {
        alice,
        bob,
        fire,
        aid,
        e1,
        e2,
        e3,
        e4,
        e5,
    }
}

/// `base` changed by `change`.
fn with(base: &EnrollmentFilter, change: impl FnOnce(&mut EnrollmentFilter)) -> EnrollmentFilter {
    let mut filter = base.clone();
    change(&mut filter);
    filter
}

fn ids(rows: &[EnrollmentRow]) -> Vec<i64> {
    rows.iter().map(|row| row.enrollment.id).collect()
}

pub async fn r55_enrollment_lists_filter_by_every_field(store: Store) {
    let s = seed_lists(&store).await;
    let mut tx = store.read().await.unwrap();
    let all = EnrollmentFilter {
        today: "2027-02-01".into(),
        limit: 100,
        ..EnrollmentFilter::default()
    };
    // What the learners' lists show of each activity, by id.
    let briefs = tx.activity_briefs().await.unwrap();
    let brief_of = |id: i64| briefs.iter().find(|brief| brief.id == id).unwrap();
    assert!(briefs.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(brief_of(s.fire).title, "Fire Safety");
    assert_eq!(brief_of(s.fire).kind, "online_course");
    assert!(brief_of(s.fire).active);
    assert!(!brief_of(s.aid).active);
    let mut check = async |filter: EnrollmentFilter, expect: Vec<i64>| {
        let rows = tx.list_enrollments(&filter).await.unwrap();
        assert_eq!(ids(&rows), expect, "{filter:?}");
        // The enrollments alone (the learners' lists): the same records,
        // bounded or not (SQLite reads the two through different paths).
        let enrollments: Vec<_> = rows.iter().map(|row| row.enrollment.clone()).collect();
        for limit in [filter.limit, i64::MAX] {
            let alone = EnrollmentFilter {
                limit,
                ..filter.clone()
            };
            let records = tx.list_enrollment_records(&alone).await.unwrap();
            assert_eq!(records, enrollments, "{alone:?}");
        }
        rows
    };
    let rows = check(all.clone(), vec![s.e1, s.e2, s.e3, s.e4, s.e5]).await;
    let first = &rows[0];
    assert_eq!(first.activity_title, "Fire Safety");
    assert_eq!(first.activity_kind, "online_course");
    assert!(first.activity_active);
    assert_eq!(first.username, "alice");
    assert_eq!(first.enrollment.due_on.as_deref(), Some("2027-01-10"));
    assert!(!rows[1].activity_active);
    assert_eq!(rows[2].username, "bob");

    check(
        with(&all, |f| f.user_id = Some(s.alice)),
        vec![s.e1, s.e2, s.e5],
    )
    .await;
    check(
        with(&all, |f| f.activity_id = Some(s.aid)),
        vec![s.e2, s.e4],
    )
    .await;
    check(
        with(&all, |f| {
            f.user_id = Some(s.bob);
            f.activity_id = Some(s.fire);
        }),
        vec![s.e3],
    )
    .await;
    check(
        with(&all, |f| f.status = Some("in_progress".into())),
        vec![s.e1, s.e3],
    )
    .await;
    check(with(&all, |f| f.status = Some("failed".into())), vec![s.e4]).await;
    check(
        with(&all, |f| f.enrollment_type = Some("required".into())),
        vec![s.e1, s.e4],
    )
    .await;
    check(
        with(&all, |f| f.source_kind = Some("self".into())),
        vec![s.e2],
    )
    .await;
    check(
        with(&all, |f| f.source_kind = Some("import".into())),
        vec![s.e5],
    )
    .await;
    // Overdue: the filter is the core's R61 rule (`roster_core::is_overdue`),
    // row for row, whatever the day.
    for today in ["2027-01-09", "2027-01-10", "2027-01-11", "2027-03-02"] {
        let every = check(with(&all, |f| f.today = today.into()), ids(&rows)).await;
        let overdue: Vec<i64> = every
            .iter()
            .map(|row| &row.enrollment)
            .filter(|record| {
                let status: roster_core::Status = record.status.parse().unwrap();
                roster_core::is_overdue(status, record.due_on.as_deref(), today)
            })
            .map(|record| record.id)
            .collect();
        check(
            with(&all, |f| {
                f.overdue = Some(true);
                f.today = today.into();
            }),
            overdue,
        )
        .await;
    }
    // Overdue: open and due before today; closed ones are never overdue.
    check(with(&all, |f| f.overdue = Some(true)), vec![s.e1]).await;
    check(
        with(&all, |f| f.overdue = Some(false)),
        vec![s.e2, s.e3, s.e4, s.e5],
    )
    .await;
    check(
        with(&all, |f| {
            f.overdue = Some(true);
            f.today = "2027-01-10".into();
        }),
        vec![],
    )
    .await;
    check(
        with(&all, |f| {
            f.overdue = Some(true);
            f.today = "2027-03-02".into();
        }),
        vec![s.e1, s.e3],
    )
    .await;
    // Due date range, both ends inclusive; no due date never matches a range.
    check(
        with(&all, |f| {
            f.due_from = Some("2027-01-05".into());
            f.due_to = Some("2027-01-10".into());
        }),
        vec![s.e1, s.e4],
    )
    .await;
    check(
        with(&all, |f| f.due_from = Some("2027-01-11".into())),
        vec![s.e3],
    )
    .await;
    check(
        with(&all, |f| f.due_to = Some("2027-01-04".into())),
        vec![s.e5],
    )
    .await;
    // Enrollment time range: from inclusive, to exclusive.
    check(
        with(&all, |f| {
            f.enrolled_from = Some(NOW + DAY);
            f.enrolled_to = Some(NOW + 3 * DAY);
        }),
        vec![s.e2, s.e3],
    )
    .await;
    check(
        with(&all, |f| f.enrolled_from = Some(NOW + 3 * DAY + 1)),
        vec![s.e5],
    )
    .await;
    // Title search, case-insensitive.
    check(
        with(&all, |f| f.title_q = Some("FIRE".into())),
        vec![s.e1, s.e3, s.e5],
    )
    .await;
    check(
        with(&all, |f| f.title_q = Some("aid".into())),
        vec![s.e2, s.e4],
    )
    .await;
    check(with(&all, |f| f.title_q = Some("none".into())), vec![]).await;
    check(
        with(&all, |f| f.activity_active = Some(false)),
        vec![s.e2, s.e4],
    )
    .await;
    check(
        with(&all, |f| f.user_active = Some(false)),
        vec![s.e3, s.e4],
    )
    .await;
    check(
        with(&all, |f| {
            f.user_id = Some(s.alice);
            f.status = Some("in_progress".into());
            f.title_q = Some("safety".into());
            f.overdue = Some(true);
        }),
        vec![s.e1],
    )
    .await;
}

pub async fn r60_enrollment_lists_page_oldest_or_newest_first(store: Store) {
    let s = seed_lists(&store).await;
    let mut tx = store.read().await.unwrap();
    let mut page = EnrollmentFilter {
        today: "2027-02-01".into(),
        limit: 2,
        newest_first: true,
        ..EnrollmentFilter::default()
    };
    let mut pages = Vec::new();
    loop {
        let rows = tx.list_enrollments(&page).await.unwrap();
        let Some(last) = rows.last() else { break };
        page.cursor = Some(last.enrollment.id);
        pages.push(ids(&rows));
    }
    assert_eq!(pages, vec![vec![s.e5, s.e4], vec![s.e3, s.e2], vec![s.e1]]);

    page.newest_first = false;
    page.cursor = None;
    let mut pages = Vec::new();
    loop {
        let rows = tx.list_enrollments(&page).await.unwrap();
        let Some(last) = rows.last() else { break };
        page.cursor = Some(last.enrollment.id);
        pages.push(ids(&rows));
    }
    assert_eq!(pages, vec![vec![s.e1, s.e2], vec![s.e3, s.e4], vec![s.e5]]);

    // Paging composes with filters.
    let history = EnrollmentFilter {
        user_id: Some(s.alice),
        newest_first: true,
        cursor: Some(s.e5),
        limit: 10,
        today: "2027-02-01".into(),
        ..EnrollmentFilter::default()
    };
    assert_eq!(
        ids(&tx.list_enrollments(&history).await.unwrap()),
        vec![s.e2, s.e1]
    );
}

pub async fn r54_purge_candidates_are_the_open_enrollments_of_inactive_users(store: Store) {
    let s = seed_lists(&store).await;
    let mut tx = store.write().await.unwrap();
    // A second inactive user with an open enrollment in each activity.
    let carol = UserInsert {
        active: false,
        ..user("carol")
    };
    let carol = tx.insert_user(&carol, NOW).await.unwrap();
    let c1 = tx
        .insert_enrollment(&enrollment(carol, s.aid))
        .await
        .unwrap()
        .unwrap()
        .id;
    let c2 = tx
        .insert_enrollment(&enrollment(carol, s.fire))
        .await
        .unwrap()
        .unwrap()
        .id;
    let candidates: Vec<i64> = tx
        .purge_candidates()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(candidates, vec![s.e3, c1, c2]);
    tx.commit().await.unwrap();
}

pub async fn r39_passed_all_items_needs_a_pass_in_every_item(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let bob = tx.insert_user(&user("bob"), NOW).await.unwrap();
    let x = tx.insert_activity(&activity("X"), NOW).await.unwrap();
    let y = tx.insert_activity(&activity("Y"), NOW).await.unwrap();
    let curriculum = ActivityRecord {
        kind: "curriculum".into(),
        ..activity("Path")
    };
    let curriculum = tx.insert_activity(&curriculum, NOW).await.unwrap();
    let empty = ActivityRecord {
        kind: "course_bundle".into(),
        ..activity("Empty")
    };
    let empty = tx.insert_activity(&empty, NOW).await.unwrap();
    tx.set_items(curriculum, &[x, y]).await.unwrap();

    assert!(!tx.passed_all_items(alice, curriculum).await.unwrap());
    tx.insert_enrollment(&closed("passed", enrollment(alice, x)))
        .await
        .unwrap()
        .unwrap();
    tx.insert_enrollment(&closed("failed", enrollment(alice, y)))
        .await
        .unwrap()
        .unwrap();
    tx.insert_enrollment(&enrollment(alice, y))
        .await
        .unwrap()
        .unwrap();
    assert!(!tx.passed_all_items(alice, curriculum).await.unwrap());
    tx.insert_enrollment(&closed("passed", enrollment(alice, y)))
        .await
        .unwrap()
        .unwrap();
    assert!(tx.passed_all_items(alice, curriculum).await.unwrap());
    // Bob's passes are his own; an empty bundle is never passed through items.
    tx.insert_enrollment(&closed("passed", enrollment(bob, y)))
        .await
        .unwrap()
        .unwrap();
    assert!(!tx.passed_all_items(bob, curriculum).await.unwrap());
    assert!(!tx.passed_all_items(alice, empty).await.unwrap());

    let alice_open_parent = tx
        .insert_enrollment(&enrollment(alice, curriculum))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tx.open_parent_enrollments(alice, x).await.unwrap(),
        vec![alice_open_parent.clone()]
    );
    assert!(tx.open_parent_enrollments(bob, x).await.unwrap().is_empty());
    assert_eq!(
        tx.open_enrollments_in(curriculum).await.unwrap(),
        vec![alice_open_parent]
    );
    tx.commit().await.unwrap();
}

pub async fn r52_tasks_list_by_completion_date_then_creation(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let id = tx
        .insert_enrollment(&enrollment(alice, course))
        .await
        .unwrap()
        .unwrap()
        .id;
    let task = |title: &str, completed_on: Option<&str>, created_at: i64| TaskRecord {
        id: 0,
        enrollment_id: id,
        title: title.into(),
        completed_on: completed_on.map(str::to_string),
        note: Some(format!("note {title}")),
        created_by: Some(alice),
        created_at,
    };
    tx.insert_task(&task("undated", None, NOW)).await.unwrap();
    tx.insert_task(&task("late", Some("2027-03-01"), NOW + 1))
        .await
        .unwrap();
    tx.insert_task(&task("early b", Some("2027-01-01"), NOW + 3))
        .await
        .unwrap();
    tx.insert_task(&task("early a", Some("2027-01-01"), NOW + 2))
        .await
        .unwrap();
    let titles: Vec<String> = tx
        .tasks_of(id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.title)
        .collect();
    assert_eq!(titles, vec!["early a", "early b", "late", "undated"]);

    let attachment = roster_store::AttachmentRecord {
        id: 0,
        enrollment_id: id,
        filename: "cert.pdf".into(),
        content_type: "application/pdf".into(),
        size_bytes: 1234,
        storage_name: "abc123".into(),
        created_by: Some(alice),
        created_at: NOW,
    };
    let attachment_id = tx.insert_attachment(&attachment).await.unwrap();
    let stored = roster_store::AttachmentRecord {
        id: attachment_id,
        ..attachment
    };
    assert_eq!(tx.attachments_of(id).await.unwrap(), vec![stored.clone()]);
    assert_eq!(
        tx.get_attachment(id, attachment_id).await.unwrap(),
        Some(stored)
    );
    assert_eq!(
        tx.get_attachment(id + 1, attachment_id).await.unwrap(),
        None
    );
    tx.delete_attachment(attachment_id).await.unwrap();
    assert!(tx.attachments_of(id).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

/// R21, R36: the facts of many (user, activity) pairs in one statement are
/// those `target_facts` gives pair by pair; and a batch's users in one read.
pub async fn r21_r36_target_facts_of_many_pairs_agree_with_one_pair_at_a_time(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let bob = tx.insert_user(&user("bob"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let other = tx.insert_activity(&activity("Other"), NOW).await.unwrap();
    tx.insert_enrollment(&enrollment(alice, course))
        .await
        .unwrap()
        .unwrap();
    tx.insert_enrollment(&closed("passed", enrollment(bob, course)))
        .await
        .unwrap()
        .unwrap();
    tx.insert_enrollment(&enrollment(bob, course))
        .await
        .unwrap()
        .unwrap();
    tx.insert_exemption(&ExemptionRecord {
        id: 0,
        user_id: alice,
        activity_id: other,
        reason: "done elsewhere".into(),
        until: Some("2027-03-31".into()),
        created_by: None,
        created_at: NOW,
    })
    .await
    .unwrap();
    let pairs = [
        (alice, course),
        (alice, other),
        (bob, course),
        (bob, other),
        (alice + bob + 100, course),
    ];
    for day in ["2027-03-31", "2027-04-01"] {
        let mut got = tx
            .target_facts_of(
                &UserIds(pairs.iter().map(|(u, _)| *u).collect()),
                &UserIds(pairs.iter().map(|(_, a)| *a).collect()),
                day,
            )
            .await
            .unwrap();
        got.sort_unstable();
        let mut expected = Vec::new();
        for (u, a) in pairs {
            let (exempt, open, passed) = tx.target_facts(u, a, day).await.unwrap();
            expected.push((u, a, exempt, open, passed));
        }
        expected.sort_unstable();
        assert_eq!(got, expected, "on {day}");
    }
    // The exemption holds through its last day, then not.
    let on_last_day = tx
        .target_facts_of(&UserIds(vec![alice]), &UserIds(vec![other]), "2027-03-31")
        .await
        .unwrap();
    assert_eq!(on_last_day, vec![(alice, other, true, false, false)]);
    let bob_course = tx
        .target_facts_of(&UserIds(vec![bob]), &UserIds(vec![course]), "2027-03-31")
        .await
        .unwrap();
    assert_eq!(bob_course, vec![(bob, course, false, true, true)]);

    let users = tx
        .lock_users(&UserIds(vec![bob, alice + bob + 100, alice]))
        .await
        .unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| (u.id, u.username.as_str()))
            .collect::<Vec<_>>(),
        vec![(alice, "alice"), (bob, "bob")]
    );
    tx.commit().await.unwrap();
}

/// Bulk enrollment and bulk update (R50, R51) write many rows per
/// statement: the same rows, refusals (R2) and sweep stamps as one at a time.
pub async fn r50_r51_many_enrollments_inserted_and_updated_at_once(store: Store) {
    let mut tx = store.write().await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let mut users = Vec::new();
    // More than one statement's worth (500 rows each).
    for n in 0..600 {
        users.push(tx.insert_user(&user(&format!("u{n}")), NOW).await.unwrap());
    }
    let open = tx
        .insert_enrollment(&enrollment(users[0], course))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    // A stamp later than every one so far (see the sweep's marks test).
    let mut tx = store.write().await.unwrap();
    let now = tx.sweep_stamp_now().await.unwrap();
    let stamp = tx
        .sweep_stamped_users(i64::MIN, 1000)
        .await
        .unwrap()
        .iter()
        .map(|(_, stamp)| stamp + 1)
        .fold(now, i64::max);
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let news: Vec<EnrollmentInsert> = users
        .iter()
        .map(|&user_id| EnrollmentInsert {
            due_on: Some("2027-05-01".into()),
            ..enrollment(user_id, course)
        })
        .collect();
    let created = tx.insert_enrollments(&news).await.unwrap();
    // R2: the learner already enrolled is left out, the others created.
    let mut created_users: Vec<i64> = created.iter().map(|record| record.user_id).collect();
    created_users.sort_unstable();
    assert_eq!(created_users, users[1..].to_vec());
    for record in &created {
        let read = tx.get_enrollment(record.id).await.unwrap();
        assert_eq!(read.as_ref(), Some(record));
        assert_eq!(record.due_on.as_deref(), Some("2027-05-01"));
        assert_eq!(record.status, "in_progress");
    }

    let mut patches: Vec<(i64, EnrollmentPatch)> = created
        .iter()
        .map(|record| {
            (
                record.id,
                EnrollmentPatch {
                    enrollment_type: "required".into(),
                    due_on: None,
                    reason: Some(format!("reason {}", record.id)),
                    ..patch_of(record)
                },
            )
        })
        .collect();
    // An id that does not exist is left out.
    patches.push((open.id + 1_000_000, patch_of(&open)));
    let updated = tx.update_enrollments(&patches, NOW + HOUR).await.unwrap();
    assert_eq!(updated.len(), created.len());
    for record in &updated {
        let read = tx.get_enrollment(record.id).await.unwrap();
        assert_eq!(read.as_ref(), Some(record));
        assert_eq!(record.enrollment_type, "required");
        assert_eq!(record.due_on, None);
        assert_eq!(record.reason, Some(format!("reason {}", record.id)));
        assert_eq!(record.status, "in_progress");
    }
    let untouched = tx.get_enrollment(open.id).await.unwrap().unwrap();
    assert_eq!(untouched, open);
    tx.commit().await.unwrap();

    // Every learner written is stamped for the next incremental sweep.
    let mut tx = store.write().await.unwrap();
    let stamped: Vec<i64> = tx
        .sweep_stamped_users(stamp, 1000)
        .await
        .unwrap()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    for user_id in &users[1..] {
        assert!(stamped.contains(user_id), "user {user_id} not stamped");
    }
    assert!(!stamped.contains(&users[0]));
    tx.commit().await.unwrap();
}
