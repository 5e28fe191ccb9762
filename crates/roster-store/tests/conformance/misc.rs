//! Settings, exemptions (R21), the audit trail and sweep records (§4
//! "Nightly sweep").

use roster_store::{AuditEntry, ExemptionRecord, Store, SweepCounts, Tx};

use crate::support::{HOUR, NOW, activity, enrollment, is_conflict, user};

pub async fn settings_are_put_read_and_overwritten(store: Store) {
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.get_setting("timezone").await.unwrap(), None);
    tx.put_setting("timezone", "Europe/Paris").await.unwrap();
    tx.put_setting("nightly_sweep_at", "02:00").await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.get_setting("timezone").await.unwrap().as_deref(),
        Some("Europe/Paris")
    );
    tx.put_setting("timezone", "UTC").await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    assert_eq!(
        tx.get_setting("timezone").await.unwrap().as_deref(),
        Some("UTC")
    );
    assert_eq!(
        tx.get_setting("nightly_sweep_at").await.unwrap().as_deref(),
        Some("02:00")
    );
}

pub async fn r21_exemption_holds_through_its_until_date_inclusive(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let bob = tx.insert_user(&user("bob"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    let other = tx.insert_activity(&activity("Other"), NOW).await.unwrap();
    let exemption = |user_id: i64, activity_id: i64, until: Option<&str>| ExemptionRecord {
        id: 0,
        user_id,
        activity_id,
        reason: format!("reason {user_id}"),
        until: until.map(str::to_string),
        created_by: Some(alice),
        created_at: NOW,
    };
    let limited = exemption(alice, course, Some("2027-03-31"));
    let limited_id = tx.insert_exemption(&limited).await.unwrap();
    let forever_id = tx
        .insert_exemption(&exemption(bob, other, None))
        .await
        .unwrap();
    let stored = ExemptionRecord {
        id: limited_id,
        ..limited
    };
    assert_eq!(
        tx.get_exemption(limited_id).await.unwrap(),
        Some(stored.clone())
    );

    let on = async |tx: &mut roster_store::Tx, user_id: i64, activity_id: i64, day: &str| {
        tx.exemption_on(user_id, activity_id, day)
            .await
            .unwrap()
            .map(|e| e.id)
    };
    assert_eq!(
        on(&mut tx, alice, course, "2027-01-01").await,
        Some(limited_id)
    );
    assert_eq!(
        on(&mut tx, alice, course, "2027-03-31").await,
        Some(limited_id)
    );
    assert_eq!(on(&mut tx, alice, course, "2027-04-01").await, None);
    assert_eq!(on(&mut tx, alice, other, "2027-01-01").await, None);
    assert_eq!(
        on(&mut tx, bob, other, "9999-12-31").await,
        Some(forever_id)
    );
    assert_eq!(on(&mut tx, bob, course, "2027-01-01").await, None);

    // Of several exemptions, an expired one does not hide one that holds.
    let expired_id = tx
        .insert_exemption(&exemption(bob, course, Some("2026-12-31")))
        .await
        .unwrap();
    let later_id = tx
        .insert_exemption(&exemption(bob, course, Some("2027-12-31")))
        .await
        .unwrap();
    assert_eq!(on(&mut tx, bob, course, "2027-01-01").await, Some(later_id));
    assert_eq!(
        on(&mut tx, bob, course, "2026-12-31").await,
        Some(expired_id)
    );

    let listed = |list: Vec<ExemptionRecord>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        listed(tx.list_exemptions(None, None, 0, 100).await.unwrap()),
        vec![limited_id, forever_id, expired_id, later_id]
    );
    assert_eq!(
        listed(tx.list_exemptions(Some(bob), None, 0, 100).await.unwrap()),
        vec![forever_id, expired_id, later_id]
    );
    assert_eq!(
        listed(
            tx.list_exemptions(Some(bob), Some(course), 0, 100)
                .await
                .unwrap()
        ),
        vec![expired_id, later_id]
    );
    assert_eq!(
        listed(
            tx.list_exemptions(None, Some(course), limited_id, 1)
                .await
                .unwrap()
        ),
        vec![expired_id]
    );

    tx.delete_exemption(later_id).await.unwrap();
    assert_eq!(tx.get_exemption(later_id).await.unwrap(), None);
    assert_eq!(on(&mut tx, bob, course, "2027-01-01").await, None);
    tx.commit().await.unwrap();
}

pub async fn audit_entries_are_written_in_bulk_and_listed_by_entity(store: Store) {
    let mut tx = store.write().await.unwrap();
    tx.audit(
        AuditEntry {
            actor_id: Some(1),
            action: "create",
            entity: "user",
            entity_id: Some(5),
            before: None,
            after: Some(r#"{"username":"alice"}"#.into()),
        },
        NOW,
    )
    .await
    .unwrap();
    // More than one multi-row insert's worth of entries.
    let many: Vec<AuditEntry> = (0..1203)
        .map(|n| AuditEntry {
            actor_id: None,
            action: "sweep_create",
            entity: "enrollment",
            entity_id: Some(n),
            before: (n % 2 == 0).then(|| format!("before {n}")),
            after: Some(format!("after {n}")),
        })
        .collect();
    tx.audit_many(&many, NOW + HOUR).await.unwrap();
    tx.audit_many(&[], NOW).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let users = tx.list_audit(Some("user"), None, 0, 10).await.unwrap();
    assert_eq!(users.len(), 1);
    let entry = &users[0];
    assert_eq!(
        (
            entry.at,
            entry.actor_id,
            entry.action.as_str(),
            entry.entity_id
        ),
        (NOW, Some(1), "create", Some(5))
    );
    assert_eq!(entry.before, None);
    assert_eq!(entry.after.as_deref(), Some(r#"{"username":"alice"}"#));

    let mut all = Vec::new();
    let mut after_id = 0;
    loop {
        let page = tx
            .list_audit(Some("enrollment"), None, after_id, 500)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = last.id;
        all.extend(page);
    }
    assert_eq!(all.len(), 1203);
    for (n, entry) in all.iter().enumerate() {
        let n = n as i64;
        assert_eq!(entry.entity_id, Some(n), "entries keep their order");
        assert_eq!(entry.at, NOW + HOUR);
        assert_eq!(entry.actor_id, None);
        assert_eq!(entry.after, Some(format!("after {n}")));
        assert_eq!(entry.before, (n % 2 == 0).then(|| format!("before {n}")));
    }
    let one = tx
        .list_audit(Some("enrollment"), Some(600), 0, 10)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].action, "sweep_create");
    assert_eq!(tx.list_audit(None, Some(5), 0, 10).await.unwrap().len(), 2);
    assert_eq!(
        tx.list_audit(None, None, 0, 5000).await.unwrap().len(),
        1204
    );
}

pub async fn a_second_sweep_is_refused_while_one_is_queued_or_running(store: Store) {
    let mut tx = store.write().await.unwrap();
    let first = tx
        .insert_sweep(false, "manual", "2027-01-15", NOW, Some(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert!(is_conflict(
        &tx.insert_sweep(false, "manual", "2027-01-15", NOW, Some(1))
            .await
    ));
    tx.rollback().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let running = tx.running_sweep().await.unwrap().unwrap();
    assert_eq!(running.id, first);
    assert_eq!(running.state, "queued");
    assert!(!running.dry_run);
    assert_eq!(running.trigger_by, "manual");
    assert_eq!(running.day, "2027-01-15");
    assert_eq!(running.started_at, NOW);
    tx.set_sweep_jobs(first, 3, "running").await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert!(is_conflict(
        &tx.insert_sweep(false, "nightly", "2027-01-16", NOW, None)
            .await
    ));
    tx.rollback().await.unwrap();

    let mut tx = store.write().await.unwrap();
    tx.finish_sweep(first, "failed", NOW + HOUR).await.unwrap();
    assert_eq!(tx.running_sweep().await.unwrap(), None);
    let second = tx
        .insert_sweep(false, "manual", "2027-01-15", NOW + HOUR, None)
        .await
        .unwrap();
    assert!(second > first);
    let finished = tx.get_sweep(first).await.unwrap().unwrap();
    assert_eq!(finished.state, "failed");
    assert_eq!(finished.finished_at, Some(NOW + HOUR));
    tx.commit().await.unwrap();
}

pub async fn the_nightly_sweep_runs_once_per_day(store: Store) {
    let mut tx = store.write().await.unwrap();
    assert!(!tx.nightly_sweep_exists("2027-01-15").await.unwrap());
    let nightly = tx
        .insert_sweep(false, "nightly", "2027-01-15", NOW, None)
        .await
        .unwrap();
    assert!(tx.nightly_sweep_exists("2027-01-15").await.unwrap());
    assert!(!tx.nightly_sweep_exists("2027-01-16").await.unwrap());
    tx.finish_sweep(nightly, "done", NOW + 1).await.unwrap();
    tx.commit().await.unwrap();

    // Finished or not, the day's nightly sweep exists: another is refused.
    let mut tx = store.write().await.unwrap();
    assert!(is_conflict(
        &tx.insert_sweep(false, "nightly", "2027-01-15", NOW + 2, None)
            .await
    ));
    tx.rollback().await.unwrap();

    // A manual sweep on the same day and the next day's nightly are fine.
    let mut tx = store.write().await.unwrap();
    let manual = tx
        .insert_sweep(false, "manual", "2027-01-15", NOW + 3, Some(1))
        .await
        .unwrap();
    tx.finish_sweep(manual, "done", NOW + 4).await.unwrap();
    tx.insert_sweep(false, "nightly", "2027-01-16", NOW + 5, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let listed: Vec<String> = tx
        .list_sweeps(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{} {}", s.trigger_by, s.day))
        .collect();
    assert_eq!(
        listed,
        vec![
            "nightly 2027-01-16",
            "manual 2027-01-15",
            "nightly 2027-01-15"
        ]
    );
    let older = tx.list_sweeps(Some(manual), 10).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].id, nightly);
}

pub async fn sweep_counts_add_up_and_the_last_job_finishes_the_sweep(store: Store) {
    let mut tx = store.write().await.unwrap();
    let id = tx
        .insert_sweep(false, "manual", "2027-01-15", NOW, None)
        .await
        .unwrap();
    tx.set_sweep_jobs(id, 4, "queued").await.unwrap();
    tx.add_sweep_counts(id, 10, 2, 1, 3).await.unwrap();
    let sweep = tx.get_sweep(id).await.unwrap().unwrap();
    assert_eq!(sweep.state, "running");
    tx.add_sweep_counts(id, 5, 0, 4, 1).await.unwrap();
    tx.finish_sweep_jobs(id, 1, &SweepCounts::default(), NOW + 1)
        .await
        .unwrap();
    let sweep = tx.get_sweep(id).await.unwrap().unwrap();
    assert_eq!(
        (sweep.created, sweep.adopted, sweep.closed, sweep.skipped),
        (15, 2, 5, 4)
    );
    assert_eq!((sweep.jobs_total, sweep.jobs_done), (4, 1));
    assert_eq!(sweep.state, "running");
    assert_eq!(sweep.finished_at, None);
    // A batch of jobs finished at once, with their counts.
    let batch = SweepCounts {
        created: 1,
        adopted: 1,
        closed: 0,
        skipped: 2,
    };
    tx.finish_sweep_jobs(id, 2, &batch, NOW + 2).await.unwrap();
    let sweep = tx.get_sweep(id).await.unwrap().unwrap();
    assert_eq!(
        (sweep.created, sweep.adopted, sweep.closed, sweep.skipped),
        (16, 3, 5, 6)
    );
    assert_eq!((sweep.jobs_done, sweep.state.as_str()), (3, "running"));
    tx.finish_sweep_jobs(id, 1, &SweepCounts::default(), NOW + 3)
        .await
        .unwrap();
    let sweep = tx.get_sweep(id).await.unwrap().unwrap();
    assert_eq!(sweep.state, "done");
    assert_eq!(sweep.jobs_done, 4);
    assert_eq!(sweep.finished_at, Some(NOW + 3));
    assert_eq!(tx.running_sweep().await.unwrap(), None);
    tx.commit().await.unwrap();
}

/// Every migration in the source tree is applied: the index the latest
/// creates exists after `migrate` — the exemptions' end dates, read by each
/// batch of an incremental sweep (its file was once left out of the list,
/// and no database had the index).
pub async fn every_migration_is_applied_with_its_indexes(store: Store) {
    let mut tx = store.read().await.unwrap();
    let indexes: Vec<String> = match &mut tx {
        Tx::Sqlite(transaction) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
                .fetch_all(&mut ***transaction)
                .await
                .unwrap()
        }
        Tx::Postgres(transaction) => sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() \
             ORDER BY indexname",
        )
        .fetch_all(&mut ***transaction)
        .await
        .unwrap(),
    };
    for wanted in ["exemptions_until", "enrollments_one_open"] {
        assert!(
            indexes.iter().any(|name| name == wanted),
            "{wanted} missing from {indexes:?}"
        );
    }
    let files = ["sqlite", "postgres"].map(|backend| {
        std::fs::read_dir(format!(
            "{}/migrations/{backend}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .count() as i64
    });
    assert_eq!(files[0], files[1], "both backends have every migration");
    let applied: i64 = match &mut tx {
        Tx::Sqlite(transaction) => sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut ***transaction)
            .await
            .unwrap(),
        Tx::Postgres(transaction) => sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut ***transaction)
            .await
            .unwrap(),
    };
    assert_eq!(applied, files[0], "every migration file is applied");
}

/// The columns of `table` (name, declared type, not null) and the number of
/// its indexes and foreign keys, as the database describes them.
async fn shape_of(tx: &mut Tx, table: &str) -> (Vec<(String, String, bool)>, i64, i64) {
    match tx {
        Tx::Sqlite(transaction) => {
            let columns: Vec<(String, String, bool)> = sqlx::query_as(
                "SELECT name, type, \"notnull\" FROM pragma_table_info($1) ORDER BY cid",
            )
            .bind(table)
            .fetch_all(&mut ***transaction)
            .await
            .unwrap();
            let indexes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_index_list($1)")
                .bind(table)
                .fetch_one(&mut ***transaction)
                .await
                .unwrap();
            let foreign_keys: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pragma_foreign_key_list($1)")
                    .bind(table)
                    .fetch_one(&mut ***transaction)
                    .await
                    .unwrap();
            (columns, indexes, foreign_keys)
        }
        Tx::Postgres(transaction) => {
            let columns: Vec<(String, String, bool)> = sqlx::query_as(
                "SELECT column_name::text, data_type::text, is_nullable = 'NO' \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut ***transaction)
            .await
            .unwrap();
            let indexes: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
            )
            .bind(table)
            .fetch_one(&mut ***transaction)
            .await
            .unwrap();
            let foreign_keys: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'",
            )
            .bind(table)
            .fetch_one(&mut ***transaction)
            .await
            .unwrap();
            (columns, indexes, foreign_keys)
        }
    }
}

/// `roster bench`'s raw-insert figure is measured on a scratch copy of the
/// enrollments table made from the applied schema: the same columns, indexes
/// and foreign keys, so it pays what the sweep's inserts pay, and R2's unique
/// index and the references refuse rows there as they do in the real table.
pub async fn the_bench_scratch_table_is_the_enrollments_table_as_migrated(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let course = tx.insert_activity(&activity("Course"), NOW).await.unwrap();
    tx.calibration_create().await.unwrap();
    let real = shape_of(&mut tx, "enrollments").await;
    let scratch = shape_of(&mut tx, "bench_enrollments").await;
    assert_eq!(scratch, real);
    assert!(real.1 >= 4 && real.2 == 2, "{real:?}");
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    tx.calibration_insert(&[enrollment(alice, course)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert!(
        tx.calibration_insert(&[enrollment(alice, course)])
            .await
            .is_err(),
        "R2: a second open enrollment is refused in the copy too"
    );
    tx.rollback().await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert!(
        tx.calibration_insert(&[enrollment(alice + 1_000, course)])
            .await
            .is_err(),
        "the copy references the users"
    );
    tx.rollback().await.unwrap();
    let mut tx = store.write().await.unwrap();
    tx.calibration_drop().await.unwrap();
    tx.commit().await.unwrap();
}
