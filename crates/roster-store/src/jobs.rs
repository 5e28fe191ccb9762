//! Durable jobs: enqueued in the caller's transaction, claimed under a lease
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite),
//! completed in the handler's transaction, retried with backoff.
//!
//! A job's `run_at` is business time (the clock passed in); its lease is real
//! time. Completion checks the lease owner (`complete_job`, and
//! `complete_jobs` for a batch in one statement), so a job whose lease was
//! taken over cannot commit twice; `release_jobs` gives claimed jobs back,
//! pending, with their attempt uncounted. The jobs a transaction sets off are
//! written in one multi-row insert when it commits (`enqueue_at_commit`).

use crate::audit::{
    AUDIT_ARRAYS_FROM, AUDIT_CHUNK, INSERT_AUDIT, push_audit_arrays, push_audit_row,
};
use crate::db::{Result, Tx};
use crate::marks::UserIds;
use crate::records::JobRecord;

/// Rows per multi-row insert of jobs (nine parameters each: within
/// SQLite's and PostgreSQL's limits on bound parameters).
const JOBS_CHUNK: usize = 1_000;

/// The head of a multi-row insert of jobs.
const INSERT_JOBS: &str = "INSERT INTO jobs (kind, state, run_at, dedupe_key, payload, rule_id, sweep_id, user_id, created_at) ";

/// Binds one new job, enqueued at `now`, as a row of `INSERT_JOBS`'s values.
macro_rules! push_job_row {
    ($row:expr, $job:expr, $now:expr) => {{
        let (job, now) = ($job, $now);
        $row.push_bind(&job.kind)
            .push("'pending'")
            .push_bind(job.run_at)
            .push_bind(&job.dedupe_key)
            .push_bind(&job.payload)
            .push_bind(job.rule_id)
            .push_bind(job.sweep_id)
            .push_bind(job.user_id)
            .push_bind(*now);
    }};
}

/// The columns a record is read from, written once as a macro so that the
/// statements reading them are constant (`concat!`), not formatted.
macro_rules! job_columns {
    () => {
        "id, kind, state, run_at, dedupe_key, payload, rule_id, sweep_id, user_id, \
     attempts, last_error, outcome, created_at, finished_at"
    };
}

/// `list_jobs`: the payload is a JSON snapshot; reading the activity out of
/// it, rather than keeping a column, serves this administrative list
/// without widening every job row.
const LIST_JOBS_SQLITE: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs \
     WHERE id > $1 AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR kind = $3) \
     AND ($4 IS NULL OR rule_id = $4) AND ($6 IS NULL OR user_id = $6) \
     AND ($7 IS NULL OR json_extract(payload, '$.activity_id') = $7 \
          OR EXISTS (SELECT 1 FROM json_each(payload, '$.target_ids') t WHERE t.value = $7)) \
     ORDER BY id LIMIT $5"
);
const LIST_JOBS_POSTGRES: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs \
     WHERE id > $1 AND ($2::TEXT IS NULL OR state = $2) AND ($3::TEXT IS NULL OR kind = $3) \
     AND ($4::BIGINT IS NULL OR rule_id = $4) AND ($6::BIGINT IS NULL OR user_id = $6) \
     AND ($7::BIGINT IS NULL OR (payload::jsonb ->> 'activity_id')::BIGINT = $7 \
          OR payload::jsonb -> 'target_ids' @> to_jsonb($7::BIGINT)) \
     ORDER BY id LIMIT $5"
);

#[derive(Clone, Debug, Default)]
pub struct NewJob {
    pub kind: String,
    pub run_at: i64,
    pub dedupe_key: Option<String>,
    pub payload: String,
    pub rule_id: Option<i64>,
    pub sweep_id: Option<i64>,
    pub user_id: Option<i64>,
}

/// A job this worker holds the lease of.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub run_at: i64,
    pub payload: String,
    pub rule_id: Option<i64>,
    pub sweep_id: Option<i64>,
    pub attempts: i64,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub rule_id: Option<i64>,
    pub user_id: Option<i64>,
    pub activity_id: Option<i64>,
    pub after_id: i64,
    pub limit: i64,
}

impl Tx {
    /// Enqueues the job; a job with the same `dedupe_key` already there wins
    /// and `None` is returned.
    pub async fn enqueue(&mut self, job: &NewJob, now: i64) -> Result<Option<i64>> {
        self.flush_jobs().await?;
        Ok(on_tx!(self, c => {
            let mut query = sqlx::QueryBuilder::new(INSERT_JOBS);
            query.push_values([(job, now)], |mut row, (job, now)| push_job_row!(row, job, &now));
            query.push(" ON CONFLICT DO NOTHING RETURNING id");
            query.build_query_scalar().fetch_optional(c).await?
        }))
    }

    /// Enqueues the jobs in multi-row inserts, in order; as with `enqueue`, a
    /// job whose `dedupe_key` is already there is skipped. Answers how many
    /// were written.
    pub async fn enqueue_many(&mut self, jobs: &[NewJob], now: i64) -> Result<u64> {
        self.flush_jobs().await?;
        let jobs: Vec<(&NewJob, i64)> = jobs.iter().map(|job| (job, now)).collect();
        self.insert_jobs(&jobs).await
    }

    /// Enqueues the jobs when the transaction commits (or before it next
    /// reads or changes jobs), all the jobs it enqueued so in one multi-row
    /// insert: a batch of post-enrollment jobs sets off `enrolled` rules for
    /// many enrollments. Dropped with the transaction if it rolls back.
    pub async fn enqueue_at_commit(&mut self, jobs: Vec<NewJob>, now: i64) -> Result<()> {
        let pending = self.pending_jobs();
        pending.extend(jobs.into_iter().map(|job| (job, now)));
        if pending.len() >= JOBS_CHUNK {
            self.flush_jobs().await?;
        }
        Ok(())
    }

    /// Writes the jobs `enqueue_at_commit` held back.
    pub(crate) async fn flush_jobs(&mut self) -> Result<()> {
        let pending = std::mem::take(self.pending_jobs());
        if !pending.is_empty() {
            let jobs: Vec<(&NewJob, i64)> = pending.iter().map(|(job, now)| (job, *now)).collect();
            self.insert_jobs(&jobs).await?;
        }
        Ok(())
    }

    /// Writes what the transaction held back for its commit: its audit
    /// entries and its jobs. On PostgreSQL, when both fit one multi-row
    /// insert, one statement writes both (a round trip fewer for every
    /// completion that sets off a rule).
    pub(crate) async fn flush_at_commit(&mut self) -> Result<()> {
        let both = match self {
            Tx::Postgres(transaction) => {
                let (audit, jobs) = (&transaction.pending_audit, &transaction.pending_jobs);
                !audit.is_empty()
                    && !jobs.is_empty()
                    && audit.len() <= AUDIT_CHUNK
                    && jobs.len() <= JOBS_CHUNK
            }
            Tx::Sqlite(_) => false,
        };
        if !both {
            self.flush_audit().await?;
            return self.flush_jobs().await;
        }
        let audit = std::mem::take(self.pending_audit());
        let jobs = std::mem::take(self.pending_jobs());
        if let Tx::Postgres(transaction) = self {
            let mut query = sqlx::QueryBuilder::new("WITH audited AS (");
            if audit.len() > AUDIT_ARRAYS_FROM {
                push_audit_arrays(&mut query, &audit);
            } else {
                query.push(INSERT_AUDIT);
                query.push_values(&audit, |mut row, entry| push_audit_row!(row, entry));
            }
            query.push(") ");
            query.push(INSERT_JOBS);
            query.push_values(&jobs, |mut row, (job, now)| push_job_row!(row, job, now));
            query.push(" ON CONFLICT DO NOTHING");
            query.build().execute(&mut ***transaction).await?;
        }
        Ok(())
    }

    async fn insert_jobs(&mut self, jobs: &[(&NewJob, i64)]) -> Result<u64> {
        let mut written = 0;
        for chunk in jobs.chunks(JOBS_CHUNK) {
            written += on_tx!(self, c => {
                let mut query = sqlx::QueryBuilder::new(INSERT_JOBS);
                query.push_values(chunk, |mut row, (job, now)| push_job_row!(row, job, now));
                query.push(" ON CONFLICT DO NOTHING");
                query.build().execute(c).await?.rows_affected()
            });
        }
        Ok(written)
    }

    /// Takes the earliest job due at business time `now` (or whose lease
    /// expired at real time `real_now`), leasing it to `owner` until
    /// `lease_until` (real time). `kind` narrows the choice.
    pub async fn claim_job(
        &mut self,
        owner: &str,
        now: i64,
        real_now: i64,
        lease_until: i64,
        kind: Option<&str>,
    ) -> Result<Option<ClaimedJob>> {
        self.flush_jobs().await?;
        // The earliest job of each kind of candidate (due and pending, or
        // running with an expired lease) is found by its own ordered index
        // scan, then the earlier of the two is taken. One query with an OR
        // would read and sort every due job on each claim, which turns a
        // backlog into quadratic work.
        Ok(on_tx_sql!(self,
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM ( \
                 SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE state = 'running' \
                     AND lease_expires_at < $4 AND ($5 IS NULL OR kind = $5) ORDER BY run_at, id LIMIT 1) \
                 UNION ALL \
                 SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE state = 'pending' \
                     AND run_at <= $3 AND ($5 IS NULL OR kind = $5) ORDER BY run_at, id LIMIT 1) \
             ) ORDER BY run_at, id LIMIT 1) \
             RETURNING id, kind, run_at, payload, rule_id, sweep_id, attempts",
            "WITH expired AS (SELECT id, run_at FROM jobs WHERE state = 'running' AND lease_expires_at < $4 \
                 AND ($5::text IS NULL OR kind = $5) ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED), \
             due AS (SELECT id, run_at FROM jobs WHERE state = 'pending' AND run_at <= $3 \
                 AND ($5::text IS NULL OR kind = $5) ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM (SELECT id, run_at FROM expired UNION ALL SELECT id, run_at FROM due) candidates \
                 ORDER BY run_at, id LIMIT 1) \
             RETURNING id, kind, run_at, payload, rule_id, sweep_id, attempts",
            sql, c => sqlx::query_as(sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(real_now)
            .bind(kind)
            .fetch_optional(c)
            .await?))
    }

    /// Takes up to `limit` more pending jobs of `kind` due at business time
    /// `now`, earliest first, leasing them to `owner` until `lease_until`:
    /// a worker runs them in the transaction of its first claim.
    pub async fn claim_more_jobs(
        &mut self,
        owner: &str,
        now: i64,
        lease_until: i64,
        kind: &str,
        limit: i64,
    ) -> Result<Vec<ClaimedJob>> {
        self.flush_jobs().await?;
        // The limit is written into the text (callers use one or two
        // values): bound, PostgreSQL could not cost a generic plan and
        // planned the statement anew at every claim.
        let limit = limit.max(0);
        let mut jobs: Vec<ClaimedJob> = on_tx_sql!(self,
            format!("UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' AND run_at <= $3 AND kind = $4 \
                 ORDER BY run_at, id LIMIT {limit}) \
             RETURNING id, kind, run_at, payload, rule_id, sweep_id, attempts"),
            format!("WITH due AS (SELECT id FROM jobs WHERE state = 'pending' AND run_at <= $3 AND kind = $4 \
                 ORDER BY run_at, id LIMIT {limit} FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM due) \
             RETURNING id, kind, run_at, payload, rule_id, sweep_id, attempts"),
            sql, c => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(kind)
            .fetch_all(c)
            .await?);
        jobs.sort_by_key(|job| (job.run_at, job.id));
        Ok(jobs)
    }

    /// Marks the job done with its outcome, if this owner still holds it.
    /// False means the lease was lost: the caller must roll back.
    pub async fn complete_job(
        &mut self,
        id: i64,
        owner: &str,
        outcome: &str,
        now: i64,
    ) -> Result<bool> {
        self.flush_jobs().await?;
        let changed = on_tx!(self, c => sqlx::query(
            "UPDATE jobs SET state = 'done', outcome = $3, finished_at = $4, lease_owner = NULL, \
             lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2 AND state = 'running'"
        )
        .bind(id)
        .bind(owner)
        .bind(outcome)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
        Ok(changed == 1)
    }

    /// `complete_job` for a batch in one statement: job `ids[i]` done with
    /// `outcomes[i]`. Answers how many this owner still held; fewer than
    /// asked means a lease was lost: the caller must roll back.
    pub async fn complete_jobs(
        &mut self,
        ids: &UserIds,
        outcomes: &[String],
        owner: &str,
        now: i64,
    ) -> Result<u64> {
        self.flush_jobs().await?;
        macro_rules! done_set {
            () => {
                "UPDATE jobs SET state = 'done', outcome = d.outcome, finished_at = $4, \
             lease_owner = NULL, lease_expires_at = NULL FROM "
            };
        }
        macro_rules! done_where {
            () => {
                " WHERE jobs.id = d.id AND jobs.lease_owner = $3 AND jobs.state = 'running'"
            };
        }
        Ok(match self {
            Tx::Sqlite(transaction) => sqlx::query(concat!(
                done_set!(),
                "(SELECT i.value AS id, o.value AS outcome FROM json_each($1) i \
                 JOIN json_each($2) o ON o.key = i.key) AS d",
                done_where!()
            ))
            .bind(ids)
            .bind(serde_json::to_string(outcomes).map_err(|error| {
                crate::db::StoreError::Corrupt(format!("job outcomes: {error}"))
            })?)
            .bind(owner)
            .bind(now)
            .execute(&mut ***transaction)
            .await?
            .rows_affected(),
            Tx::Postgres(transaction) => sqlx::query(concat!(
                done_set!(),
                "unnest($1::bigint[], $2::text[]) AS d(id, outcome)",
                done_where!()
            ))
            .bind(ids)
            .bind(outcomes)
            .bind(owner)
            .bind(now)
            .execute(&mut ***transaction)
            .await?
            .rows_affected(),
        })
    }

    /// Gives back jobs `owner` claimed in this transaction and will not run:
    /// pending again, unleased, their attempt not counted.
    pub async fn release_jobs(&mut self, ids: &UserIds, owner: &str) -> Result<u64> {
        self.flush_jobs().await?;
        macro_rules! release {
            ($in_ids:expr) => {
                concat!(
                    "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
                     attempts = attempts - 1 WHERE lease_owner = $1 AND state = 'running'",
                    $in_ids
                )
            };
        }
        Ok(on_tx_sql!(
            self,
            release!(crate::marks::in_ids_sqlite!("id", 2)),
            release!(crate::marks::in_ids_postgres!("id", 2)),
            sql,
            c => sqlx::query(sql)
                .bind(owner)
                .bind(ids)
                .execute(c)
                .await?
                .rows_affected()
        ))
    }

    /// Renews the leases of several running jobs `owner` holds, in one
    /// statement; answers the ids whose lease it still held (the others
    /// were taken over, or are no longer running).
    pub async fn renew_leases(
        &mut self,
        ids: &UserIds,
        owner: &str,
        lease_until: i64,
    ) -> Result<Vec<i64>> {
        self.flush_jobs().await?;
        macro_rules! renew {
            ($in_ids:expr) => {
                concat!(
                    "UPDATE jobs SET lease_expires_at = $2 WHERE lease_owner = $1 AND state = 'running'",
                    $in_ids,
                    " RETURNING id"
                )
            };
        }
        Ok(on_tx_sql!(
            self,
            renew!(crate::marks::in_ids_sqlite!("id", 3)),
            renew!(crate::marks::in_ids_postgres!("id", 3)),
            sql,
            c => sqlx::query_scalar(sql)
                .bind(owner)
                .bind(lease_until)
                .bind(ids)
                .fetch_all(c)
                .await?
        ))
    }

    /// Records a failed attempt: back to `pending` at `retry_at`, or `failed`
    /// for good when `give_up`.
    pub async fn fail_job(
        &mut self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: i64,
        give_up: bool,
        now: i64,
    ) -> Result<()> {
        self.flush_jobs().await?;
        on_tx!(self, c => sqlx::query(
            "UPDATE jobs SET state = CASE WHEN $5 THEN 'failed' ELSE 'pending' END, run_at = CASE WHEN $5 THEN run_at ELSE $4 END, \
             last_error = $3, lease_owner = NULL, lease_expires_at = NULL, \
             finished_at = CASE WHEN $5 THEN $6 ELSE NULL END WHERE id = $1 AND lease_owner = $2"
        )
        .bind(id)
        .bind(owner)
        .bind(error)
        .bind(retry_at)
        .bind(give_up)
        .bind(now)
        .execute(c)
        .await?.rows_affected());
        Ok(())
    }

    /// Records a failed attempt of a job whose claim was rolled back with
    /// the attempt (a job run in its claiming transaction): counts the
    /// attempt, then back to `pending` at `retry_at` or `failed` for good —
    /// unless another worker holds the job by now.
    pub async fn fail_unclaimed_job(
        &mut self,
        id: i64,
        error: &str,
        retry_at: i64,
        give_up: bool,
        now: i64,
        real_now: i64,
    ) -> Result<()> {
        self.flush_jobs().await?;
        on_tx!(self, c => sqlx::query(
            "UPDATE jobs SET attempts = attempts + 1, state = CASE WHEN $4 THEN 'failed' ELSE 'pending' END, \
             run_at = CASE WHEN $4 THEN run_at ELSE $3 END, last_error = $2, lease_owner = NULL, \
             lease_expires_at = NULL, finished_at = CASE WHEN $4 THEN $5 ELSE NULL END \
             WHERE id = $1 AND (state = 'pending' OR (state = 'running' AND lease_expires_at < $6))"
        )
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .bind(give_up)
        .bind(now)
        .bind(real_now)
        .execute(c)
        .await?.rows_affected());
        Ok(())
    }

    /// Cancels a pending job; false when it is not pending.
    pub async fn cancel_job(&mut self, id: i64, now: i64) -> Result<bool> {
        self.flush_jobs().await?;
        let changed = on_tx!(self, c => sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $2 WHERE id = $1 AND state = 'pending'"
        )
        .bind(id)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
        Ok(changed == 1)
    }

    pub async fn get_job(&mut self, id: i64) -> Result<Option<JobRecord>> {
        self.flush_jobs().await?;
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await?),
        )
    }

    /// Jobs in id order after `filter.after_id`. `user_id` matches the learner
    /// of a post-enrollment job; `activity_id` matches the activity a job is
    /// about: a post-enrollment job's rule activity or any of its target
    /// activities (both in the payload's snapshot), a sweep job's activity.
    pub async fn list_jobs(&mut self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        self.flush_jobs().await?;
        Ok(
            on_tx_sql!(self, LIST_JOBS_SQLITE, LIST_JOBS_POSTGRES, sql, c => {
                sqlx::query_as(sql)
                    .bind(filter.after_id)
                    .bind(&filter.state)
                    .bind(&filter.kind)
                    .bind(filter.rule_id)
                    .bind(filter.limit)
                    .bind(filter.user_id)
                    .bind(filter.activity_id)
                    .fetch_all(c)
                    .await?
            }),
        )
    }

    /// The earliest `run_at` of a pending job due by `until`, if any.
    pub async fn next_job_time(&mut self, until: i64) -> Result<Option<i64>> {
        self.flush_jobs().await?;
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "SELECT MIN(run_at) FROM jobs WHERE state = 'pending' AND run_at <= $1"
        )
        .bind(until)
        .fetch_one(c)
        .await?))
    }

    /// How many jobs are pending and due, or running, at business time `now`.
    pub async fn count_due_jobs(&mut self, now: i64) -> Result<i64> {
        self.flush_jobs().await?;
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE (state = 'pending' AND run_at <= $1) OR state = 'running'"
        )
        .bind(now)
        .fetch_one(c)
        .await?))
    }

    /// Pending post-enrollment jobs of a user (for explain, R20).
    pub async fn pending_jobs_of_user(&mut self, user_id: i64) -> Result<Vec<JobRecord>> {
        self.flush_jobs().await?;
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", job_columns!(), " FROM jobs WHERE user_id = $1 AND state IN ('pending', 'running') ORDER BY run_at, id"))
        .bind(user_id)
        .fetch_all(c)
        .await?),
        )
    }

    /// Pending jobs with `run_at` in [from, to), for the forecast (R17).
    pub async fn pending_jobs_between(&mut self, from: i64, to: i64) -> Result<Vec<JobRecord>> {
        self.flush_jobs().await?;
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", job_columns!(), " FROM jobs WHERE state = 'pending' AND run_at >= $1 AND run_at < $2 ORDER BY run_at, id"))
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await?),
        )
    }
}
