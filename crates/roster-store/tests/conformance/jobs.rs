//! Durable jobs (§4 Runtime "Jobs"): enqueue with a dedupe key, claim by
//! business time under a lease measured in real time, complete, retry, give up
//! and cancel; two workers never hold the same job.

use std::time::Duration;

use roster_store::{AuditEntry, Backend, JobFilter, NewJob, Store, Tx, UserIds};

use crate::support::{HOUR, NOW};

/// A real-time instant, unrelated to business time on purpose: leases must
/// be measured against it, never against `run_at`.
const REAL: i64 = 5_000_000_000_000;
const LEASE: i64 = 30_000_000;

fn job(kind: &str, run_at: i64) -> NewJob {
    NewJob {
        kind: kind.to_string(),
        run_at,
        payload: format!(r#"{{"kind":"{kind}"}}"#),
        ..NewJob::default()
    }
}

async fn claim(tx: &mut Tx, owner: &str, now: i64, real_now: i64) -> Option<i64> {
    tx.claim_job(owner, now, real_now, real_now + LEASE, None)
        .await
        .unwrap()
        .map(|claimed| claimed.id)
}

async fn state_of(store: &Store, id: i64) -> (String, i64, i64) {
    let mut tx = store.read().await.unwrap();
    let job = tx.get_job(id).await.unwrap().unwrap();
    (job.state, job.run_at, job.attempts)
}

pub async fn enqueueing_the_same_dedupe_key_twice_keeps_the_first_job(store: Store) {
    let mut tx = store.write().await.unwrap();
    let keyed = NewJob {
        dedupe_key: Some("post:1:2".into()),
        rule_id: Some(7),
        user_id: Some(3),
        ..job("post_enrollment", NOW)
    };
    let first = tx.enqueue(&keyed, NOW).await.unwrap().expect("first job");
    let again = NewJob {
        payload: "{}".into(),
        run_at: NOW + HOUR,
        ..keyed.clone()
    };
    assert_eq!(tx.enqueue(&again, NOW).await.unwrap(), None);
    // Jobs without a key never collide.
    let a = tx.enqueue(&job("sweep", NOW), NOW).await.unwrap();
    let b = tx.enqueue(&job("sweep", NOW), NOW).await.unwrap();
    assert!(a.is_some() && b.is_some() && a != b);
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let stored = tx.get_job(first).await.unwrap().unwrap();
    assert_eq!(stored.state, "pending");
    assert_eq!(stored.run_at, NOW);
    assert_eq!(stored.payload, keyed.payload);
    assert_eq!(stored.dedupe_key.as_deref(), Some("post:1:2"));
    assert_eq!((stored.rule_id, stored.user_id), (Some(7), Some(3)));
    assert_eq!(stored.attempts, 0);
    assert_eq!(stored.created_at, NOW);
    assert_eq!(stored.finished_at, None);
}

pub async fn claim_job_takes_due_jobs_by_run_at_then_id(store: Store) {
    let mut tx = store.write().await.unwrap();
    let late = tx.enqueue(&job("a", NOW + 30), NOW).await.unwrap().unwrap();
    let early = tx.enqueue(&job("a", NOW + 10), NOW).await.unwrap().unwrap();
    let middle = tx.enqueue(&job("a", NOW + 20), NOW).await.unwrap().unwrap();
    let early_too = tx.enqueue(&job("a", NOW + 10), NOW).await.unwrap().unwrap();
    let future = tx
        .enqueue(&job("a", NOW + HOUR), NOW)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    // Nothing is due before the earliest run_at, whatever the real time.
    assert_eq!(claim(&mut tx, "w", NOW + 9, REAL).await, None);
    let mut order = Vec::new();
    while let Some(id) = claim(&mut tx, "w", NOW + 30, REAL).await {
        order.push(id);
    }
    assert_eq!(order, vec![early, early_too, middle, late]);
    // A job becomes due exactly at its run_at.
    assert_eq!(claim(&mut tx, "w", NOW + HOUR - 1, REAL).await, None);
    assert_eq!(claim(&mut tx, "w", NOW + HOUR, REAL).await, Some(future));
    tx.commit().await.unwrap();
}

pub async fn claim_job_kind_narrows_the_choice(store: Store) {
    let mut tx = store.write().await.unwrap();
    let post = tx
        .enqueue(&job("post_enrollment", NOW), NOW)
        .await
        .unwrap()
        .unwrap();
    let sweep = tx
        .enqueue(&job("sweep_activity", NOW + 1), NOW)
        .await
        .unwrap()
        .unwrap();
    let claimed = tx
        .claim_job("w", NOW + 1, REAL, REAL + LEASE, Some("sweep_activity"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, sweep);
    assert_eq!(claimed.kind, "sweep_activity");
    assert_eq!(claimed.run_at, NOW + 1);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.payload, r#"{"kind":"sweep_activity"}"#);
    assert!(
        tx.claim_job("w", NOW + 1, REAL, REAL + LEASE, Some("sweep_activity"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(claim(&mut tx, "w", NOW + 1, REAL).await, Some(post));
    tx.commit().await.unwrap();
}

pub async fn a_claimed_job_is_taken_again_only_after_its_lease_expires(store: Store) {
    let mut tx = store.write().await.unwrap();
    let id = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert_eq!(claim(&mut tx, "first", NOW, REAL).await, Some(id));
    tx.commit().await.unwrap();
    assert_eq!(state_of(&store, id).await, ("running".into(), NOW, 1));

    let mut tx = store.write().await.unwrap();
    // While the lease holds, no business time makes the job claimable again.
    assert_eq!(
        claim(&mut tx, "second", NOW + 1000 * HOUR, REAL + 1).await,
        None
    );
    assert_eq!(claim(&mut tx, "second", NOW, REAL + LEASE).await, None);
    // Past the lease (real time), another worker takes it over.
    assert_eq!(
        claim(&mut tx, "second", NOW, REAL + LEASE + 1).await,
        Some(id)
    );
    tx.commit().await.unwrap();
    assert_eq!(state_of(&store, id).await, ("running".into(), NOW, 2));

    let mut tx = store.write().await.unwrap();
    // The first worker lost its lease: its completion is refused.
    assert!(!tx.complete_job(id, "first", "{}", NOW).await.unwrap());
    assert!(
        tx.complete_job(id, "second", r#"{"ok":true}"#, NOW + 5)
            .await
            .unwrap()
    );
    // A done job is never claimed again, even long after its lease.
    assert_eq!(
        claim(&mut tx, "third", NOW + HOUR, REAL + 100 * LEASE).await,
        None
    );
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let done = tx.get_job(id).await.unwrap().unwrap();
    assert_eq!(done.state, "done");
    assert_eq!(done.outcome.as_deref(), Some(r#"{"ok":true}"#));
    assert_eq!(done.finished_at, Some(NOW + 5));
}

pub async fn complete_job_by_another_owner_is_refused(store: Store) {
    let mut tx = store.write().await.unwrap();
    let id = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    let pending = tx
        .enqueue(&job("a", NOW + HOUR), NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim(&mut tx, "owner", NOW, REAL).await, Some(id));
    assert!(!tx.complete_job(id, "intruder", "{}", NOW).await.unwrap());
    // Nobody completes a job that is not running.
    assert!(!tx.complete_job(pending, "owner", "{}", NOW).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(state_of(&store, id).await.0, "running");
    assert_eq!(state_of(&store, pending).await.0, "pending");

    let mut tx = store.write().await.unwrap();
    assert!(tx.complete_job(id, "owner", "{}", NOW).await.unwrap());
    // Completing twice is refused: the lease is released.
    assert!(!tx.complete_job(id, "owner", "{}", NOW).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(state_of(&store, id).await.0, "done");
}

/// A batch's jobs are done in one statement, each with its own outcome,
/// and only while their owner holds them.
pub async fn complete_jobs_marks_a_batch_done_each_with_its_outcome(store: Store) {
    let mut tx = store.write().await.unwrap();
    let first = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    let second = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    let pending = tx
        .enqueue(&job("a", NOW + HOUR), NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim(&mut tx, "owner", NOW, REAL).await, Some(first));
    assert_eq!(claim(&mut tx, "owner", NOW, REAL).await, Some(second));
    let outcomes = [r#"[{"n":1}]"#.to_string(), r#"[{"n":"two"}]"#.to_string()];
    // Another owner completes none of them.
    let ids = UserIds(vec![first, second]);
    assert_eq!(
        tx.complete_jobs(&ids, &outcomes, "intruder", NOW)
            .await
            .unwrap(),
        0
    );
    // A job that is not running is not done: the count says so.
    let with_pending = UserIds(vec![pending, second]);
    assert_eq!(
        tx.complete_jobs(&with_pending, &outcomes, "owner", NOW)
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    assert_eq!(state_of(&store, pending).await.0, "pending");

    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.complete_jobs(&UserIds(vec![first]), &outcomes[..1], "owner", NOW + 5)
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    let done = tx.get_job(first).await.unwrap().unwrap();
    assert_eq!(done.state, "done");
    assert_eq!(done.outcome.as_deref(), Some(r#"[{"n":1}]"#));
    assert_eq!(done.finished_at, Some(NOW + 5));
    // The second got the outcome paired with it in its own call.
    let done = tx.get_job(second).await.unwrap().unwrap();
    assert_eq!(done.state, "done");
    assert_eq!(done.outcome.as_deref(), Some(r#"[{"n":"two"}]"#));
    tx.rollback().await.unwrap();
}

pub async fn fail_job_retries_at_the_new_time_then_gives_up(store: Store) {
    let mut tx = store.write().await.unwrap();
    let id = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    assert_eq!(claim(&mut tx, "w", NOW, REAL).await, Some(id));
    tx.fail_job(id, "w", "boom", NOW + 2 * HOUR, false, NOW + 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let retried = tx.get_job(id).await.unwrap().unwrap();
    assert_eq!(retried.state, "pending");
    assert_eq!(retried.run_at, NOW + 2 * HOUR);
    assert_eq!(retried.last_error.as_deref(), Some("boom"));
    assert_eq!(retried.finished_at, None);
    assert_eq!(retried.attempts, 1);
    // Not before its new run_at.
    assert_eq!(claim(&mut tx, "w", NOW + 2 * HOUR - 1, REAL).await, None);
    assert_eq!(claim(&mut tx, "w2", NOW + 2 * HOUR, REAL).await, Some(id));
    // A worker that does not hold the job cannot fail it.
    tx.fail_job(id, "w", "stale", NOW + 9 * HOUR, true, NOW)
        .await
        .unwrap();
    assert_eq!(tx.get_job(id).await.unwrap().unwrap().state, "running");
    tx.fail_job(id, "w2", "boom again", NOW + 4 * HOUR, true, NOW + 3 * HOUR)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let failed = tx.get_job(id).await.unwrap().unwrap();
    assert_eq!(failed.state, "failed");
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.run_at, NOW + 2 * HOUR);
    assert_eq!(failed.last_error.as_deref(), Some("boom again"));
    assert_eq!(failed.finished_at, Some(NOW + 3 * HOUR));
    // A failed job is never claimed again.
    assert_eq!(
        claim(&mut tx, "w", NOW + 100 * HOUR, REAL + 100 * LEASE).await,
        None
    );
    tx.commit().await.unwrap();
}

pub async fn a_failed_attempt_whose_claim_rolled_back_is_still_counted(store: Store) {
    let mut tx = store.write().await.unwrap();
    let id = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    // The attempt ran in the claiming transaction, which rolled back.
    let mut tx = store.write().await.unwrap();
    assert_eq!(claim(&mut tx, "w", NOW, REAL).await, Some(id));
    tx.rollback().await.unwrap();
    assert_eq!(state_of(&store, id).await, ("pending".into(), NOW, 0));

    let mut tx = store.write().await.unwrap();
    tx.fail_unclaimed_job(id, "boom", NOW + 2 * HOUR, false, NOW + 1, REAL)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        state_of(&store, id).await,
        ("pending".into(), NOW + 2 * HOUR, 1)
    );

    // Another worker holds it now under a live lease: left alone.
    let mut tx = store.write().await.unwrap();
    assert_eq!(claim(&mut tx, "w2", NOW + 2 * HOUR, REAL).await, Some(id));
    tx.fail_unclaimed_job(id, "stale", NOW + 9 * HOUR, true, NOW, REAL + 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        state_of(&store, id).await,
        ("running".into(), NOW + 2 * HOUR, 2)
    );

    // Its lease ran out: the failure is recorded, and for good.
    let mut tx = store.write().await.unwrap();
    tx.fail_unclaimed_job(
        id,
        "boom again",
        NOW + 9 * HOUR,
        true,
        NOW + 3 * HOUR,
        REAL + 2 * LEASE,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    let failed = tx.get_job(id).await.unwrap().unwrap();
    assert_eq!(failed.state, "failed");
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.last_error.as_deref(), Some("boom again"));
    assert_eq!(failed.finished_at, Some(NOW + 3 * HOUR));
}

pub async fn claim_more_jobs_takes_further_due_jobs_of_the_kind_in_order(store: Store) {
    let mut tx = store.write().await.unwrap();
    let late = tx
        .enqueue(&job("post", NOW + 30), NOW)
        .await
        .unwrap()
        .unwrap();
    let early = tx
        .enqueue(&job("post", NOW + 10), NOW)
        .await
        .unwrap()
        .unwrap();
    let other = tx
        .enqueue(&job("sweep", NOW + 5), NOW)
        .await
        .unwrap()
        .unwrap();
    let middle = tx
        .enqueue(&job("post", NOW + 20), NOW)
        .await
        .unwrap()
        .unwrap();
    let early_too = tx
        .enqueue(&job("post", NOW + 10), NOW)
        .await
        .unwrap()
        .unwrap();
    let future = tx
        .enqueue(&job("post", NOW + HOUR), NOW)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let more = tx
        .claim_more_jobs("w", NOW + 60, REAL + LEASE, "post", 3)
        .await
        .unwrap();
    assert_eq!(
        more.iter().map(|job| job.id).collect::<Vec<_>>(),
        vec![early, early_too, middle],
        "earliest first, ties by id, only the kind asked for, at most the limit"
    );
    assert!(
        more.iter()
            .all(|job| job.attempts == 1 && job.kind == "post")
    );
    // The rest: the one left over, then nothing due of the kind.
    let rest = tx
        .claim_more_jobs("w", NOW + 60, REAL + LEASE, "post", 3)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|job| job.id).collect::<Vec<_>>(),
        vec![late]
    );
    tx.commit().await.unwrap();

    for id in [early, early_too, middle, late] {
        assert_eq!(state_of(&store, id).await.0, "running");
    }
    assert_eq!(state_of(&store, other).await.0, "pending");
    assert_eq!(state_of(&store, future).await.0, "pending");
    // Leased to the claimer: another owner cannot complete them.
    let mut tx = store.write().await.unwrap();
    assert!(!tx.complete_job(early, "w2", "{}", NOW + 61).await.unwrap());
    assert!(tx.complete_job(early, "w", "{}", NOW + 61).await.unwrap());
    tx.commit().await.unwrap();
}

pub async fn r35_cancel_job_cancels_only_pending_jobs(store: Store) {
    let mut tx = store.write().await.unwrap();
    let pending = tx
        .enqueue(&job("a", NOW + HOUR), NOW)
        .await
        .unwrap()
        .unwrap();
    let running = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    let done = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    assert_eq!(claim(&mut tx, "w", NOW, REAL).await, Some(running));
    assert_eq!(claim(&mut tx, "w", NOW, REAL).await, Some(done));
    assert!(tx.complete_job(done, "w", "{}", NOW).await.unwrap());

    assert!(tx.cancel_job(pending, NOW + 1).await.unwrap());
    assert!(!tx.cancel_job(pending, NOW + 2).await.unwrap());
    assert!(!tx.cancel_job(running, NOW).await.unwrap());
    assert!(!tx.cancel_job(done, NOW).await.unwrap());
    assert!(!tx.cancel_job(done + 100, NOW).await.unwrap());
    // A cancelled job is never claimed.
    assert_eq!(claim(&mut tx, "w", NOW + 2 * HOUR, REAL).await, None);
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let cancelled = tx.get_job(pending).await.unwrap().unwrap();
    assert_eq!(cancelled.state, "cancelled");
    assert_eq!(cancelled.finished_at, Some(NOW + 1));
    assert_eq!(tx.get_job(running).await.unwrap().unwrap().state, "running");
}

pub async fn job_lists_and_due_counts(store: Store) {
    let mut tx = store.write().await.unwrap();
    let post = |run_at: i64, rule_id: i64, user_id: i64| NewJob {
        rule_id: Some(rule_id),
        user_id: Some(user_id),
        ..job("post_enrollment", run_at)
    };
    let j1 = tx.enqueue(&post(NOW, 1, 10), NOW).await.unwrap().unwrap();
    let j2 = tx
        .enqueue(&post(NOW + HOUR, 2, 10), NOW)
        .await
        .unwrap()
        .unwrap();
    let j3 = tx
        .enqueue(&post(NOW + 2 * HOUR, 1, 11), NOW)
        .await
        .unwrap()
        .unwrap();
    let j4 = tx
        .enqueue(&job("sweep_activity", NOW), NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim(&mut tx, "w", NOW, REAL).await, Some(j1));
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let ids =
        |jobs: Vec<roster_store::JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let all = JobFilter {
        limit: 100,
        ..JobFilter::default()
    };
    assert_eq!(ids(tx.list_jobs(&all).await.unwrap()), vec![j1, j2, j3, j4]);
    let pending = JobFilter {
        state: Some("pending".into()),
        ..all.clone()
    };
    assert_eq!(ids(tx.list_jobs(&pending).await.unwrap()), vec![j2, j3, j4]);
    let sweeps = JobFilter {
        kind: Some("sweep_activity".into()),
        ..all.clone()
    };
    assert_eq!(ids(tx.list_jobs(&sweeps).await.unwrap()), vec![j4]);
    let rule_one = JobFilter {
        rule_id: Some(1),
        ..all.clone()
    };
    assert_eq!(ids(tx.list_jobs(&rule_one).await.unwrap()), vec![j1, j3]);
    let page = JobFilter {
        after_id: j2,
        limit: 1,
        ..all
    };
    assert_eq!(ids(tx.list_jobs(&page).await.unwrap()), vec![j3]);

    assert_eq!(tx.next_job_time(NOW + 10 * HOUR).await.unwrap(), Some(NOW));
    assert_eq!(tx.next_job_time(NOW - 1).await.unwrap(), None);
    // Running j1 plus pending j4 due now; then j2 at one hour.
    assert_eq!(tx.count_due_jobs(NOW).await.unwrap(), 2);
    assert_eq!(tx.count_due_jobs(NOW + HOUR).await.unwrap(), 3);
    assert_eq!(
        ids(tx.pending_jobs_of_user(10).await.unwrap()),
        vec![j1, j2]
    );
    assert_eq!(ids(tx.pending_jobs_of_user(11).await.unwrap()), vec![j3]);
    assert_eq!(
        ids(tx.pending_jobs_between(NOW, NOW + 2 * HOUR).await.unwrap()),
        vec![j4, j2]
    );
}

/// Two workers claim at the same moment, each in its own write transaction:
/// they get different jobs. On PostgreSQL the second skips the row the first
/// holds (`FOR UPDATE SKIP LOCKED`) without waiting; on SQLite the second
/// waits for the write lock and then sees the first job leased.
/// `GET /jobs?user_id=&activity_id=`: a post-enrollment job belongs to its
/// learner and to its rule's activity and target activities; a sweep job to
/// the activity it sweeps.
pub async fn jobs_are_listed_by_user_and_by_activity(store: Store) {
    let mut tx = store.write().await.unwrap();
    let post = |user_id: i64, activity_id: i64, targets: &[i64]| NewJob {
        kind: "post_enrollment".into(),
        run_at: NOW,
        payload: serde_json::json!({
            "rule_id": 1, "activity_id": activity_id, "user_id": user_id,
            "target_ids": targets, "from_enrollment_id": 99,
        })
        .to_string(),
        rule_id: Some(1),
        user_id: Some(user_id),
        ..NewJob::default()
    };
    let sweep = |activity_id: i64| NewJob {
        kind: "sweep_activity".into(),
        run_at: NOW,
        payload:
            serde_json::json!({"sweep_id": 5, "activity_id": activity_id, "day": "2030-01-01"})
                .to_string(),
        sweep_id: Some(5),
        ..NewJob::default()
    };
    let mut ids = Vec::new();
    for new in [
        post(10, 100, &[200, 201]),
        post(11, 100, &[202]),
        post(10, 300, &[100]),
        sweep(100),
        sweep(201),
    ] {
        ids.push(tx.enqueue(&new, NOW).await.unwrap().unwrap());
    }
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let mut listed = async |user_id: Option<i64>, activity_id: Option<i64>| {
        let filter = JobFilter {
            user_id,
            activity_id,
            limit: 100,
            ..JobFilter::default()
        };
        let jobs = tx.list_jobs(&filter).await.unwrap();
        jobs.into_iter().map(|job| job.id).collect::<Vec<_>>()
    };
    assert_eq!(listed(Some(10), None).await, vec![ids[0], ids[2]]);
    assert_eq!(listed(Some(11), None).await, vec![ids[1]]);
    assert_eq!(listed(Some(12), None).await, Vec::<i64>::new());
    // Activity 100: the rule's activity of two jobs, the target of a third,
    // and the activity of a sweep job.
    assert_eq!(
        listed(None, Some(100)).await,
        vec![ids[0], ids[1], ids[2], ids[3]]
    );
    assert_eq!(listed(None, Some(201)).await, vec![ids[0], ids[4]]);
    assert_eq!(listed(None, Some(202)).await, vec![ids[1]]);
    assert_eq!(listed(None, Some(999)).await, Vec::<i64>::new());
    assert_eq!(listed(Some(10), Some(300)).await, vec![ids[2]]);
    assert_eq!(listed(Some(11), Some(300)).await, Vec::<i64>::new());
}

pub async fn two_workers_claiming_at_once_get_different_jobs(store: Store) {
    let mut tx = store.write().await.unwrap();
    let first = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    let second = tx.enqueue(&job("a", NOW), NOW).await.unwrap().unwrap();
    tx.commit().await.unwrap();

    match store.backend() {
        Backend::Postgres => {
            let mut one = store.write().await.unwrap();
            let mut two = store.write().await.unwrap();
            let got_one = claim(&mut one, "one", NOW, REAL).await;
            let got_two =
                tokio::time::timeout(Duration::from_secs(10), claim(&mut two, "two", NOW, REAL))
                    .await
                    .expect("the second claim does not wait for the first transaction");
            assert_eq!(got_one, Some(first));
            assert_eq!(got_two, Some(second));
            // Neither sees a third job while both hold theirs.
            let mut three = store.write().await.unwrap();
            assert_eq!(claim(&mut three, "three", NOW, REAL).await, None);
            three.rollback().await.unwrap();
            one.commit().await.unwrap();
            two.commit().await.unwrap();
        }
        Backend::Sqlite => {
            let mut one = store.write().await.unwrap();
            let got_one = claim(&mut one, "one", NOW, REAL).await;
            let other = store.clone();
            let worker = tokio::spawn(async move {
                let mut two = other.write().await.unwrap();
                let got = claim(&mut two, "two", NOW, REAL).await;
                two.commit().await.unwrap();
                got
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                !worker.is_finished(),
                "BEGIN IMMEDIATE waits for the writer"
            );
            one.commit().await.unwrap();
            let got_two = worker.await.unwrap();
            assert_eq!(got_one, Some(first));
            assert_eq!(got_two, Some(second));
        }
    }
    assert_eq!(state_of(&store, first).await.0, "running");
    assert_eq!(state_of(&store, second).await.0, "running");
    let mut tx = store.read().await.unwrap();
    let attempts: Vec<i64> = tx
        .list_jobs(&JobFilter {
            state: Some("running".into()),
            limit: 10,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.attempts)
        .collect();
    assert_eq!(attempts, vec![1, 1]);
}

/// Many workers race for a handful of jobs; every job is claimed exactly once
/// (§5 "every job runs once").
pub async fn racing_workers_claim_every_job_exactly_once(store: Store) {
    let mut tx = store.write().await.unwrap();
    let mut expected = Vec::new();
    for n in 0..24 {
        expected.push(tx.enqueue(&job("a", NOW + n), NOW).await.unwrap().unwrap());
    }
    tx.commit().await.unwrap();

    let mut workers = Vec::new();
    for worker in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let owner = format!("worker-{worker}");
            let mut mine = Vec::new();
            loop {
                let mut tx = store.write().await.unwrap();
                let Some(id) = claim(&mut tx, &owner, NOW + 100, REAL).await else {
                    tx.rollback().await.unwrap();
                    break;
                };
                assert!(tx.complete_job(id, &owner, "{}", NOW).await.unwrap());
                tx.commit().await.unwrap();
                mine.push(id);
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    claimed.sort();
    assert_eq!(claimed, expected);
}

pub async fn leases_are_renewed_together_and_claims_given_back(store: Store) {
    let mut tx = store.write().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(tx.enqueue(&job("sweep", NOW), NOW).await.unwrap().unwrap());
    }
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let claimed = tx
        .claim_more_jobs("w", NOW, REAL + LEASE, "sweep", 3)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    // The last one is given back in the claiming transaction: pending,
    // unleased, its attempt not counted.
    assert_eq!(
        tx.release_jobs(&UserIds(vec![ids[2]]), "w").await.unwrap(),
        1
    );
    tx.commit().await.unwrap();
    assert_eq!(
        state_of(&store, ids[2]).await,
        ("pending".to_string(), NOW, 0)
    );
    assert_eq!(state_of(&store, ids[0]).await.0, "running");

    // Renewed in one statement: only the leases the owner still holds.
    let mut tx = store.write().await.unwrap();
    let mut held = tx
        .renew_leases(&UserIds(ids.clone()), "w", REAL + 2 * LEASE)
        .await
        .unwrap();
    held.sort_unstable();
    assert_eq!(held, vec![ids[0], ids[1]]);
    assert!(
        tx.renew_leases(&UserIds(ids.clone()), "other", REAL + 2 * LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        tx.release_jobs(&UserIds(vec![ids[0]]), "other")
            .await
            .unwrap(),
        0,
        "another owner's claim is not given back"
    );
    tx.commit().await.unwrap();
    // Renewed past the first lease: nobody takes them over before its end.
    let mut tx = store.write().await.unwrap();
    let taken = tx
        .claim_job("w2", NOW, REAL + LEASE + 1, REAL + 3 * LEASE, None)
        .await
        .unwrap()
        .map(|claimed| claimed.id);
    assert_eq!(taken, Some(ids[2]), "only the job given back is free");
    tx.commit().await.unwrap();
}

/// What a transaction holds back for its commit — audit entries and jobs
/// (`Tx::enqueue_at_commit`) — is all written when it commits, whether one
/// statement writes both (PostgreSQL, when each fits one insert) or one
/// each; a job whose dedupe key exists is left out as `enqueue` does, and a
/// rolled-back transaction writes neither.
pub async fn audit_and_jobs_held_for_the_commit_are_written_together(store: Store) {
    let mut tx = store.write().await.unwrap();
    tx.enqueue(
        &NewJob {
            dedupe_key: Some("post:1:1".into()),
            ..job("post_enrollment", NOW)
        },
        NOW,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    for (entries, jobs) in [(1, 1), (3, 2), (20, 3), (600, 1), (2, 1001), (0, 4), (5, 0)] {
        let mut tx = store.write().await.unwrap();
        let entity = format!("commit-{entries}-{jobs}");
        let audit: Vec<AuditEntry> = (0..entries)
            .map(|n| AuditEntry {
                actor_id: None,
                action: "enrollment.update",
                entity: &entity,
                entity_id: Some(n),
                before: None,
                after: Some(format!("after {n}")),
            })
            .collect();
        tx.audit_many(&audit, NOW).await.unwrap();
        let mut new: Vec<NewJob> = (0..jobs)
            .map(|n| NewJob {
                payload: format!(r#"{{"n":{n}}}"#),
                dedupe_key: Some(format!("{entity}:{n}")),
                ..job(&entity, NOW + n)
            })
            .collect();
        // A job already enqueued under its key stays as it was.
        if let Some(first) = new.first_mut() {
            first.dedupe_key = Some("post:1:1".into());
        }
        tx.enqueue_at_commit(new, NOW).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.read().await.unwrap();
        let written = tx.list_audit(Some(&entity), None, 0, 1000).await.unwrap();
        assert_eq!(written.len() as i64, entries, "{entity}: audit entries");
        // In order, each as held (a few as a multi-row insert, more as
        // arrays on PostgreSQL).
        for (n, entry) in written.iter().enumerate() {
            assert_eq!(
                (entry.entity_id, entry.after.clone(), entry.before.clone()),
                (Some(n as i64), Some(format!("after {n}")), None),
                "{entity}: entry {n}"
            );
        }
        let filter = JobFilter {
            state: None,
            kind: Some(entity.clone()),
            after_id: 0,
            limit: 2000,
            ..JobFilter::default()
        };
        let listed = tx.list_jobs(&filter).await.unwrap();
        assert_eq!(listed.len() as i64, (jobs - 1).max(0), "{entity}: jobs");
        assert!(listed.iter().all(|job| job.state == "pending"));
    }

    // Rolled back: nothing held back is written.
    let mut tx = store.write().await.unwrap();
    tx.audit_many(
        &[AuditEntry {
            actor_id: None,
            action: "enrollment.update",
            entity: "rolled-back",
            entity_id: Some(1),
            before: None,
            after: None,
        }],
        NOW,
    )
    .await
    .unwrap();
    tx.enqueue_at_commit(vec![job("rolled-back", NOW)], NOW)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.read().await.unwrap();
    assert!(
        tx.list_audit(Some("rolled-back"), None, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let filter = JobFilter {
        state: None,
        kind: Some("rolled-back".into()),
        after_id: 0,
        limit: 10,
        ..JobFilter::default()
    };
    assert!(tx.list_jobs(&filter).await.unwrap().is_empty());
}
