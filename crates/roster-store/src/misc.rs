//! Settings, exemptions, attachments, tasks and sweep records.

use crate::db::{Result, Tx};
use crate::records::{AttachmentRecord, ExemptionRecord, SweepRecord, TaskRecord};
use crate::sweep::SweepCounts;

/// The columns a record is read from, written once as a macro so that the
/// statements reading them are constant (`concat!`), not formatted.
macro_rules! sweep_columns {
    () => {
        "id, state, dry_run, trigger_by, day, started_at, finished_at, created, \
     adopted, closed, skipped, jobs_total, jobs_done, duration_ms"
    };
}

/// Real time in microseconds: sweep durations are operational, not business time.
fn real_now() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

impl Tx {
    pub async fn get_setting(&mut self, key: &str) -> Result<Option<String>> {
        Ok(
            on_tx!(self, c => sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(c)
            .await?),
        )
    }

    /// Every stored setting as (key, value), in one statement.
    pub async fn all_settings(&mut self) -> Result<Vec<(String, String)>> {
        Ok(
            on_tx!(self, c => sqlx::query_as("SELECT key, value FROM settings")
            .fetch_all(c)
            .await?),
        )
    }

    pub async fn put_setting(&mut self, key: &str, value: &str) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        .bind(key)
        .bind(value)
        .execute(c)
        .await?.rows_affected());
        Ok(())
    }

    pub async fn insert_exemption(&mut self, exemption: &ExemptionRecord) -> Result<i64> {
        self.stamp_user(exemption.user_id).await?;
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "INSERT INTO exemptions (user_id, activity_id, reason, until, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        )
        .bind(exemption.user_id)
        .bind(exemption.activity_id)
        .bind(&exemption.reason)
        .bind(&exemption.until)
        .bind(exemption.created_by)
        .bind(exemption.created_at)
        .fetch_one(c)
        .await?))
    }

    pub async fn get_exemption(&mut self, id: i64) -> Result<Option<ExemptionRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, user_id, activity_id, reason, until, created_by, created_at FROM exemptions WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    pub async fn delete_exemption(&mut self, id: i64) -> Result<()> {
        self.stamp_users(
            crate::marks::stamp_where!("id = (SELECT user_id FROM exemptions WHERE id = $1)"),
            id,
        )
        .await?;
        on_tx!(self, c => sqlx::query("DELETE FROM exemptions WHERE id = $1").bind(id).execute(c).await?.rows_affected());
        Ok(())
    }

    pub async fn list_exemptions(
        &mut self,
        user_id: Option<i64>,
        activity_id: Option<i64>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ExemptionRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, user_id, activity_id, reason, until, created_by, created_at FROM exemptions \
             WHERE id > $1 AND ($2 IS NULL OR user_id = $2) AND ($3 IS NULL OR activity_id = $3) ORDER BY id LIMIT $4"
        )
        .bind(after_id)
        .bind(user_id)
        .bind(activity_id)
        .bind(limit)
        .fetch_all(c)
        .await?))
    }

    /// The exemption of the user from the activity that holds on `today`.
    pub async fn exemption_on(
        &mut self,
        user_id: i64,
        activity_id: i64,
        today: &str,
    ) -> Result<Option<ExemptionRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, user_id, activity_id, reason, until, created_by, created_at FROM exemptions \
             WHERE user_id = $1 AND activity_id = $2 AND (until IS NULL OR until >= $3) ORDER BY id LIMIT 1"
        )
        .bind(user_id)
        .bind(activity_id)
        .bind(today)
        .fetch_optional(c)
        .await?))
    }

    pub async fn insert_attachment(&mut self, attachment: &AttachmentRecord) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "INSERT INTO attachments (enrollment_id, filename, content_type, size_bytes, storage_name, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
        )
        .bind(attachment.enrollment_id)
        .bind(&attachment.filename)
        .bind(&attachment.content_type)
        .bind(attachment.size_bytes)
        .bind(&attachment.storage_name)
        .bind(attachment.created_by)
        .bind(attachment.created_at)
        .fetch_one(c)
        .await?))
    }

    pub async fn attachments_of(&mut self, enrollment_id: i64) -> Result<Vec<AttachmentRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, enrollment_id, filename, content_type, size_bytes, storage_name, created_by, created_at \
             FROM attachments WHERE enrollment_id = $1 ORDER BY id"
        )
        .bind(enrollment_id)
        .fetch_all(c)
        .await?))
    }

    pub async fn get_attachment(
        &mut self,
        enrollment_id: i64,
        id: i64,
    ) -> Result<Option<AttachmentRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, enrollment_id, filename, content_type, size_bytes, storage_name, created_by, created_at \
             FROM attachments WHERE enrollment_id = $1 AND id = $2"
        )
        .bind(enrollment_id)
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    pub async fn delete_attachment(&mut self, id: i64) -> Result<()> {
        on_tx!(self, c => sqlx::query("DELETE FROM attachments WHERE id = $1").bind(id).execute(c).await?.rows_affected());
        Ok(())
    }

    pub async fn insert_task(&mut self, task: &TaskRecord) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "INSERT INTO tasks (enrollment_id, title, completed_on, note, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        )
        .bind(task.enrollment_id)
        .bind(&task.title)
        .bind(&task.completed_on)
        .bind(&task.note)
        .bind(task.created_by)
        .bind(task.created_at)
        .fetch_one(c)
        .await?))
    }

    /// Tasks by completion date (undated last), then creation (R52).
    pub async fn tasks_of(&mut self, enrollment_id: i64) -> Result<Vec<TaskRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, enrollment_id, title, completed_on, note, created_by, created_at FROM tasks \
             WHERE enrollment_id = $1 ORDER BY completed_on IS NULL, completed_on, created_at, id"
        )
        .bind(enrollment_id)
        .fetch_all(c)
        .await?))
    }

    /// Starts a sweep record; `Conflict` when another sweep is queued or
    /// running, or the nightly sweep of `day` exists.
    pub async fn insert_sweep(
        &mut self,
        dry_run: bool,
        trigger_by: &str,
        day: &str,
        now: i64,
        by: Option<i64>,
    ) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "INSERT INTO sweeps (state, dry_run, trigger_by, day, started_at, created_by, real_started_at) \
             VALUES ('queued', $1, $2, $3, $4, $5, $6) RETURNING id"
        )
        .bind(dry_run)
        .bind(trigger_by)
        .bind(day)
        .bind(now)
        .bind(by)
        .bind(real_now())
        .fetch_one(c)
        .await
        .map_err(crate::db::on_constraint)?))
    }

    pub async fn get_sweep(&mut self, id: i64) -> Result<Option<SweepRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", sweep_columns!(), " FROM sweeps WHERE id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await?),
        )
    }

    pub async fn running_sweep(&mut self) -> Result<Option<SweepRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", sweep_columns!(), " FROM sweeps WHERE state IN ('queued', 'running') ORDER BY id LIMIT 1"))
        .fetch_optional(c)
        .await?),
        )
    }

    pub async fn nightly_sweep_exists(&mut self, day: &str) -> Result<bool> {
        let found: Option<i64> = on_tx!(self, c => sqlx::query_scalar(
            "SELECT id FROM sweeps WHERE trigger_by = 'nightly' AND day = $1"
        )
        .bind(day)
        .fetch_optional(c)
        .await?);
        Ok(found.is_some())
    }

    pub async fn list_sweeps(
        &mut self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<SweepRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", sweep_columns!(), " FROM sweeps WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"))
        .bind(before_id)
        .bind(limit)
        .fetch_all(c)
        .await?),
        )
    }

    pub async fn set_sweep_jobs(&mut self, id: i64, jobs_total: i64, state: &str) -> Result<()> {
        on_tx!(self, c => sqlx::query("UPDATE sweeps SET jobs_total = $2, state = $3 WHERE id = $1")
            .bind(id)
            .bind(jobs_total)
            .bind(state)
            .execute(c)
            .await?.rows_affected());
        Ok(())
    }

    /// Adds a batch's counts to the sweep record.
    pub async fn add_sweep_counts(
        &mut self,
        id: i64,
        created: i64,
        adopted: i64,
        closed: i64,
        skipped: i64,
    ) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "UPDATE sweeps SET created = created + $2, adopted = adopted + $3, closed = closed + $4, \
             skipped = skipped + $5, state = CASE WHEN state = 'queued' THEN 'running' ELSE state END WHERE id = $1"
        )
        .bind(id)
        .bind(created)
        .bind(adopted)
        .bind(closed)
        .bind(skipped)
        .execute(c)
        .await?.rows_affected());
        Ok(())
    }

    /// Counts `jobs` finished activity jobs and adds their counts; the last
    /// job finishes the sweep. One statement, written just before the
    /// commit: the sweep's row is what concurrent workers share, and its
    /// lock is held from here to the end of the transaction.
    pub async fn finish_sweep_jobs(
        &mut self,
        id: i64,
        jobs: i64,
        counts: &SweepCounts,
        now: i64,
    ) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "UPDATE sweeps SET jobs_done = jobs_done + $2, created = created + $3, \
             adopted = adopted + $4, closed = closed + $5, skipped = skipped + $6, \
             state = CASE WHEN jobs_done + $2 >= jobs_total THEN 'done' ELSE 'running' END, \
             finished_at = CASE WHEN jobs_done + $2 >= jobs_total THEN $7 ELSE NULL END, \
             duration_ms = CASE WHEN jobs_done + $2 >= jobs_total THEN ($8 - real_started_at) / 1000 ELSE NULL END \
             WHERE id = $1"
        )
        .bind(id)
        .bind(jobs)
        .bind(counts.created)
        .bind(counts.adopted)
        .bind(counts.closed)
        .bind(counts.skipped)
        .bind(now)
        .bind(real_now())
        .execute(c)
        .await?.rows_affected());
        Ok(())
    }

    pub async fn finish_sweep(&mut self, id: i64, state: &str, now: i64) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "UPDATE sweeps SET state = $2, finished_at = $3, duration_ms = ($4 - real_started_at) / 1000 WHERE id = $1"
        )
            .bind(id)
            .bind(state)
            .bind(now)
            .bind(real_now())
            .execute(c)
            .await?.rows_affected());
        Ok(())
    }
}
