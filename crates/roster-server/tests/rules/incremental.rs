//! R14 at scale: a sweep re-evaluates only the users changed since the last
//! sweep of their range. Whatever changes in between — groups, `active` and
//! `hired_on` from an integration (no immediate evaluation), exemptions given,
//! withdrawn or running out, enrollments completed, dropped, deleted or added
//! by hand, a rule edited, the clock crossing a period end — a full sweep
//! afterwards (the dry run, which evaluates every user) must find nothing
//! left to do and count the same skipped users.

use serde_json::{Value, json};

use crate::helpers::{TestApp, id};
use crate::support::{app_at, course, groups_rule, member, of_user, only, set_rule, sweep};

/// A small deterministic generator (the test must fail the same way twice).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

async fn dry_run(app: &TestApp) -> Value {
    let (status, record) = app
        .post("/sweeps", &app.admin, json!({"dry_run": true}))
        .await;
    assert_eq!(status, 202, "{record}");
    assert_eq!(record["state"], "done", "{record}");
    record
}

/// After a real sweep, a full evaluation of every user finds nothing to do.
async fn assert_nothing_left(app: &TestApp, round: usize) {
    let swept = sweep(app).await;
    let full = dry_run(app).await;
    for count in ["created", "adopted", "closed"] {
        assert_eq!(
            full[count], 0,
            "round {round}: a full evaluation after the incremental sweep still finds {count} work: \
             sweep {swept}, full evaluation {full}"
        );
    }
    assert_eq!(
        full["skipped"], swept["skipped"],
        "round {round}: the incremental sweep's skipped count differs from a full evaluation: \
         sweep {swept}, full evaluation {full}"
    );
}

#[tokio::test]
async fn r14_an_incremental_sweep_leaves_exactly_what_a_full_sweep_would() {
    let app = app_at("2031-03-01T10:00:00Z").await;
    let integration = {
        let bot = member(&app, "hr-feed", &[], json!({"role": "integration"})).await;
        app.token_for(bot).await
    };
    let groups = [
        app.create_group("Sales").await,
        app.create_group("Support").await,
        app.create_group("Field").await,
    ];
    let mut rng = Lcg(20310301);
    let mut people = Vec::new();
    for n in 0..24 {
        let in_groups: Vec<i64> = groups.iter().copied().filter(|_| rng.chance(40)).collect();
        let hired = format!("2030-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
        people.push(
            member(
                &app,
                &format!("p{n}"),
                &in_groups,
                json!({"hired_on": hired}),
            )
            .await,
        );
    }

    let once = course(&app, "Code of conduct").await;
    set_rule(
        &app,
        once,
        json!({"scope": "company", "recurrence": {"kind": "one_time", "due": {"within_days": 30}}}),
    )
    .await;
    let hired_recently = course(&app, "Onboarding").await;
    set_rule(
        &app,
        hired_recently,
        json!({"scope": "groups", "group_ids": [groups[0]], "hired_after": "2030-06-30",
               "recurrence": {"kind": "one_time", "due": null}}),
    )
    .await;
    let annual = course(&app, "Safety").await;
    set_rule(
        &app,
        annual,
        groups_rule(
            &groups[1..],
            json!({"kind": "annual", "due_each_year_on": "03-15"}),
        ),
    )
    .await;
    let cycle = course(&app, "Privacy").await;
    set_rule(
        &app,
        cycle,
        json!({"scope": "company", "recurrence": {"kind": "every_months", "months": 6}, "initial_due_days": 10}),
    )
    .await;
    let activities = [once, hired_recently, annual, cycle];

    assert_nothing_left(&app, 0).await;

    let mut exemptions: Vec<i64> = Vec::new();
    for round in 1..=6 {
        // An integration changes people: no immediate evaluation.
        for _ in 0..6 {
            let person = people[rng.below(people.len())];
            let body = match rng.below(3) {
                0 => {
                    let in_groups: Vec<i64> =
                        groups.iter().copied().filter(|_| rng.chance(50)).collect();
                    json!({"group_ids": in_groups})
                }
                1 => json!({"active": rng.chance(60)}),
                _ => json!({"hired_on": format!("2030-{:02}-15", 1 + rng.below(12))}),
            };
            let (status, user) = app
                .patch(&format!("/users/{person}"), &integration, body.clone())
                .await;
            assert_eq!(status, 200, "{body}: {user}");
        }
        let (status, hire) = app
            .post(
                "/users",
                &integration,
                json!({"username": format!("hire{round}"), "group_ids": [groups[rng.below(3)]],
                       "hired_on": "2031-01-10"}),
            )
            .await;
        assert_eq!(status, 201, "{hire}");
        people.push(id(&hire));

        // Exemptions given (some running out within days) and withdrawn.
        for _ in 0..2 {
            let until = if rng.chance(50) {
                Value::Null
            } else {
                json!(format!(
                    "2031-{:02}-{:02}",
                    3 + round / 2,
                    1 + rng.below(28)
                ))
            };
            let (status, exemption) = app
                .post(
                    "/exemptions",
                    &app.admin,
                    json!({"user_id": people[rng.below(people.len())],
                           "activity_id": activities[rng.below(activities.len())],
                           "reason": "test", "until": until}),
                )
                .await;
            assert_eq!(status, 201, "{exemption}");
            exemptions.push(id(&exemption));
        }
        if rng.chance(50) && !exemptions.is_empty() {
            let exemption = exemptions.remove(rng.below(exemptions.len()));
            let (status, body) = app
                .delete(&format!("/exemptions/{exemption}"), &app.admin)
                .await;
            assert!(status == 200 || status == 204, "{status} {body}");
        }

        // Enrollments completed, dropped, reopened, deleted, or added by hand.
        for _ in 0..6 {
            let person = people[rng.below(people.len())];
            let (open, closed): (Vec<Value>, Vec<Value>) = of_user(&app, person)
                .await
                .into_iter()
                .partition(|enrollment| enrollment["status"] == "in_progress");
            if !closed.is_empty() && rng.chance(40) {
                // Reopened by an administrator (refused when another is open).
                let target = id(&closed[rng.below(closed.len())]);
                app.patch(
                    &format!("/enrollments/{target}"),
                    &app.admin,
                    json!({"status": "in_progress"}),
                )
                .await;
                continue;
            }
            if open.is_empty() {
                continue;
            }
            let target = id(&open[rng.below(open.len())]);
            match rng.below(4) {
                0 | 1 => {
                    let status = ["passed", "dropped"][rng.below(2)];
                    let (code, body) = app
                        .patch(
                            &format!("/enrollments/{target}"),
                            &app.admin,
                            json!({"status": status}),
                        )
                        .await;
                    assert_eq!(code, 200, "{body}");
                }
                2 => {
                    let (code, body) = app
                        .post(
                            "/enrollments/bulk-delete",
                            &app.admin,
                            json!({"ids": [target], "confirm": true}),
                        )
                        .await;
                    assert_eq!(code, 200, "{body}");
                }
                _ => {}
            }
        }
        for _ in 0..2 {
            let activity = activities[rng.below(activities.len())];
            let person = people[rng.below(people.len())];
            // Refused (409/422) when the person already has an open one.
            app.post(
                &format!("/activities/{activity}/enrollments"),
                &app.admin,
                json!({"user_ids": [person], "type": "recommended"}),
            )
            .await;
        }
        if round == 4 {
            // A rule edited: its ranges are swept in full again.
            set_rule(
                &app,
                hired_recently,
                json!({"scope": "groups", "group_ids": [groups[0], groups[2]], "hired_after": "2030-03-31",
                       "recurrence": {"kind": "one_time", "due": {"within_days": 14}}}),
            )
            .await;
        }

        assert_nothing_left(&app, round).await;

        // Days pass (nightly sweeps run, exemptions run out, the annual
        // period ends on 03-15 and again a year later).
        let days = [3, 9, 20, 40, 120, 200][round - 1];
        let (status, clock) = app.get("/clock", &app.admin).await;
        assert_eq!(status, 200, "{clock}");
        let now: jiff::Timestamp = clock["now"].as_str().expect("now").parse().expect("a time");
        let later = now
            .checked_add(jiff::SignedDuration::from_hours(24 * days))
            .expect("a later time");
        app.set_clock(&later.to_string()).await;
        assert_nothing_left(&app, round).await;
    }
}

#[tokio::test]
async fn r14_an_enrollment_changed_by_hand_since_the_last_sweep_is_seen_by_the_next_one() {
    let app = app_at("2031-03-01T10:00:00Z").await;
    let integration = {
        let bot = member(&app, "hr-feed", &[], json!({"role": "integration"})).await;
        app.token_for(bot).await
    };
    let staff = app.create_group("Staff").await;
    let person = member(&app, "person", &[staff], json!({})).await;
    let safety = course(&app, "Safety").await;
    set_rule(
        &app,
        safety,
        groups_rule(
            &[staff],
            json!({"kind": "annual", "due_each_year_on": "03-15"}),
        ),
    )
    .await;
    sweep(&app).await;
    let first = only(&app, person, safety).await;
    assert_eq!(first["period"], "2031-03-15", "{first}");

    // The person leaves the group; the period ends and the nightly sweeps
    // close it; no new period is opened for them.
    let (status, body) = app
        .patch(
            &format!("/users/{person}"),
            &integration,
            json!({"group_ids": []}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.set_clock("2031-03-20T10:00:00Z").await;
    assert_eq!(only(&app, person, safety).await["status"], "incomplete");

    // An administrator reopens the ended period's enrollment: nothing about
    // the person changed but that enrollment, and the next sweep closes it
    // again as a full one would.
    let (status, body) = app
        .patch(
            &format!("/enrollments/{}", id(&first)),
            &app.admin,
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let swept = sweep(&app).await;
    assert_eq!(swept["closed"], 1, "{swept}");
    assert_eq!(only(&app, person, safety).await["status"], "incomplete");
    let full = dry_run(&app).await;
    assert_eq!(full["closed"], 0, "{full}");
}
