//! The store conformance suite: one set of test bodies, each run on a fresh
//! SQLite file (`sqlite::…`) and on a fresh PostgreSQL database
//! (`postgres::…`), so that both backends behave the same (§4 "Storage").
//!
//! PostgreSQL: the server at 127.0.0.1:5432 as user `postgres`, or the
//! administrator's URL in `ROSTER_TEST_PG_URL`.

#[macro_use]
mod support;

#[path = "conformance/enrollments.rs"]
mod enrollments;
#[path = "conformance/jobs.rs"]
mod jobs;
#[path = "conformance/misc.rs"]
mod misc;
#[path = "conformance/sweep.rs"]
mod sweep;
#[path = "conformance/users.rs"]
mod users;

both! {
    users::migrating_twice_is_harmless,
    users::users_round_trip_with_every_field,
    users::usernames_external_ids_and_group_names_are_unique,
    users::groups_and_membership_round_trip,
    users::list_users_filters_by_text_active_and_group_and_pages_by_id,
    users::tokens_find_their_user_by_hash,
    users::activities_round_trip_with_prerequisites_items_and_rules,
    enrollments::enrollments_round_trip_with_every_field,
    enrollments::r2_second_open_enrollment_of_a_user_in_an_activity_is_refused,
    enrollments::r2_closed_enrollments_may_sit_beside_the_open_one,
    enrollments::r2_updating_a_closed_enrollment_into_a_second_open_one_is_a_conflict,
    enrollments::r14_a_second_enrollment_for_the_same_rule_period_is_refused,
    enrollments::r55_enrollment_lists_filter_by_every_field,
    enrollments::r60_enrollment_lists_page_oldest_or_newest_first,
    enrollments::r54_purge_candidates_are_the_open_enrollments_of_inactive_users,
    enrollments::r39_passed_all_items_needs_a_pass_in_every_item,
    enrollments::r52_tasks_list_by_completion_date_then_creation,
    enrollments::r21_r36_target_facts_of_many_pairs_agree_with_one_pair_at_a_time,
    enrollments::r50_r51_many_enrollments_inserted_and_updated_at_once,
    jobs::enqueueing_the_same_dedupe_key_twice_keeps_the_first_job,
    jobs::claim_job_takes_due_jobs_by_run_at_then_id,
    jobs::claim_job_kind_narrows_the_choice,
    jobs::a_claimed_job_is_taken_again_only_after_its_lease_expires,
    jobs::complete_job_by_another_owner_is_refused,
    jobs::complete_jobs_marks_a_batch_done_each_with_its_outcome,
    jobs::fail_job_retries_at_the_new_time_then_gives_up,
    jobs::a_failed_attempt_whose_claim_rolled_back_is_still_counted,
    jobs::claim_more_jobs_takes_further_due_jobs_of_the_kind_in_order,
    jobs::r35_cancel_job_cancels_only_pending_jobs,
    jobs::job_lists_and_due_counts,
    jobs::jobs_are_listed_by_user_and_by_activity,
    jobs::two_workers_claiming_at_once_get_different_jobs,
    jobs::racing_workers_claim_every_job_exactly_once,
    jobs::leases_are_renewed_together_and_claims_given_back,
    jobs::audit_and_jobs_held_for_the_commit_are_written_together,
    misc::settings_are_put_read_and_overwritten,
    misc::r21_exemption_holds_through_its_until_date_inclusive,
    misc::audit_entries_are_written_in_bulk_and_listed_by_entity,
    misc::a_second_sweep_is_refused_while_one_is_queued_or_running,
    misc::the_nightly_sweep_runs_once_per_day,
    misc::sweep_counts_add_up_and_the_last_job_finishes_the_sweep,
    misc::every_migration_is_applied_with_its_indexes,
    misc::the_bench_scratch_table_is_the_enrollments_table_as_migrated,
    sweep::r10_r16_r21_sweep_sql_matches_the_core_plan_once_twice_and_in_batches,
    sweep::r10_r11_r15_r16_r21_one_time_sweep_on_a_small_company,
    sweep::r12_r14_annual_rollover_closes_earlier_periods_and_opens_the_new_one,
    sweep::r14_changed_users_are_read_since_a_mark_and_marks_count_each_ranges_skips,
    sweep::r14_marks_of_many_activities_are_written_at_once,
    sweep::r14_passes_over_whole_ranges_are_planned_for_the_table_as_it_is,
    sweep::r14_a_sweeps_passes_over_whole_ranges_keep_plans_that_read_by_index,
    sweep::r14_r21_a_batch_reads_its_users_enrollments_and_creates_in_one_statement,
}

/// What only SQLite has: its write-ahead log.
mod sqlite_only {
    use std::time::{Duration, Instant};

    use roster_store::Store;

    /// The log is copied into the database by the store's checkpointer, not
    /// by a writer at its commit: a few megabytes written stay in the log
    /// (under the writers' own checkpoint size) until the checkpointer copies
    /// them, within a second; closing the store removes the log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_ahead_log_is_checkpointed_in_the_background() {
        let directory = std::env::temp_dir().join(format!(
            "roster_t_checkpoint_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&directory).expect("temporary directory");
        let file = directory.join("roster.db");
        let wal = directory.join("roster.db-wal");
        let store = Store::connect(&format!("sqlite://{}", file.display()))
            .await
            .expect("open SQLite");
        store.migrate().await.expect("migrate");
        // Whatever the migrations left in the log is copied first.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let before = std::fs::metadata(&file).expect("database file").len();

        let mut tx = store.write().await.expect("write");
        for n in 0..4000 {
            let mut user = crate::support::user(&format!("learner{n:05}"));
            user.display_name = format!("{n:05} {}", "x".repeat(400));
            tx.insert_user(&user, crate::support::NOW)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
        let committed = std::fs::metadata(&file).expect("database file").len();
        assert!(
            committed < before + 1_000_000,
            "the commit itself copied the log: {before} -> {committed} bytes"
        );
        assert!(std::fs::metadata(&wal).expect("log").len() > 2_000_000);

        let waited = Instant::now();
        let grown = loop {
            let size = std::fs::metadata(&file).expect("database file").len();
            if size > before + 2_000_000 || waited.elapsed() > Duration::from_secs(5) {
                break size;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            grown > before + 2_000_000,
            "nothing copied the log into the database: {before} -> {grown} bytes"
        );
        assert!(
            waited.elapsed() < Duration::from_secs(2),
            "the log was copied only after {:?}",
            waited.elapsed()
        );
        let mut tx = store.read().await.expect("read");
        assert_eq!(tx.count_users().await.expect("count"), 4000);
        tx.rollback().await.expect("rollback");

        store.close().await;
        assert!(!wal.exists(), "the log outlived the store");
        let _ = std::fs::remove_dir_all(&directory);
    }
}

/// What only PostgreSQL has: transactions refused because of each other.
mod postgres_only {
    use roster_store::Store;

    use crate::support::{NOW, on_postgres, user};

    /// Two transactions updating two users in opposite orders deadlock; the
    /// one PostgreSQL refuses reports a transient error (the job queue then
    /// retries the job at once), the other commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadlock_is_reported_as_transient() {
        on_postgres(|store: Store| async move {
            let mut tx = store.write().await.expect("write");
            let a = tx.insert_user(&user("first"), NOW).await.expect("first");
            let b = tx.insert_user(&user("second"), NOW).await.expect("second");
            tx.commit().await.expect("commit");
            let record = |id| {
                let store = store.clone();
                async move {
                    let mut tx = store.read().await.expect("read");
                    let found = tx.get_user(id).await.expect("get").expect("user");
                    tx.rollback().await.expect("rollback");
                    found
                }
            };
            let (first, second) = (record(a).await, record(b).await);
            let mut one = store.write().await.expect("one");
            let mut two = store.write().await.expect("two");
            one.update_user(&first, NOW)
                .await
                .expect("one locks the first");
            two.update_user(&second, NOW)
                .await
                .expect("two locks the second");
            let crossed_one = async {
                let result = one.update_user(&second, NOW).await;
                (result, one)
            };
            let crossed_two = async {
                let result = two.update_user(&first, NOW).await;
                (result, two)
            };
            let ((result_one, one), (result_two, two)) = tokio::join!(crossed_one, crossed_two);
            let refused: Vec<_> = [&result_one, &result_two]
                .into_iter()
                .filter_map(|result| result.as_ref().err())
                .collect();
            assert_eq!(refused.len(), 1, "{result_one:?} {result_two:?}");
            assert!(refused[0].is_transient(), "{:?}", refused[0]);
            for (result, tx) in [(result_one, one), (result_two, two)] {
                if result.is_ok() {
                    tx.commit().await.expect("the other commits");
                } else {
                    tx.rollback().await.expect("rollback");
                }
            }
            let unique = roster_store::StoreError::Conflict("users_username_key".into());
            assert!(!unique.is_transient());
        })
        .await;
    }
}
