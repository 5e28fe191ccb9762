//! Bulk loading and the raw-insert calibration for `roster bench`. Nothing
//! here is used by the application: the bench generates its synthetic
//! organisation with multi-row inserts (the path under test is the sweep, not
//! user creation), and measures the database's own insert rate for the rows
//! the sweep writes, on a scratch copy of the enrollments table.

use std::time::{Duration, Instant};

use crate::db::{Result, Store, Tx};
use crate::enrollments::EnrollmentInsert;

/// Rows per multi-row statement: well under SQLite's 32,766 and PostgreSQL's
/// 65,535 bind parameters for the widest row below (13 columns).
const CHUNK: usize = 2_000;

/// A user to bulk-insert.
#[derive(Clone, Debug)]
pub struct BenchUser {
    pub username: String,
    pub active: bool,
    pub hired_on: Option<String>,
    pub role: &'static str,
}

// The scratch table is the enrollments table under another name, built from
// the applied migrations so that it cannot drift from them: the same columns,
// keys, foreign keys and indexes (the two unique ones of R2 and R14 and the
// lookup ones), so inserting into it costs what the sweep's inserts must cost
// at the least.

/// The scratch table's name; its indexes are named `bench_` and the name of
/// the index they copy.
const SCRATCH_TABLE: &str = "bench_enrollments";

const DROP_SCRATCH: &str = "DROP TABLE IF EXISTS bench_enrollments";

/// SQLite: the stored definitions of the enrollments table and of its
/// explicit indexes (the implicit ones of UNIQUE constraints have none: the
/// table's definition makes them again), the table first.
const ENROLLMENTS_SCHEMA_SQLITE: &str = "SELECT type, name, sql FROM sqlite_master \
     WHERE tbl_name = 'enrollments' AND type IN ('table', 'index') AND sql IS NOT NULL \
     ORDER BY type = 'index', name";

/// PostgreSQL: `LIKE … INCLUDING ALL` copies the columns, defaults, identity,
/// checks and every index (partial ones with their predicate) but not the
/// foreign keys, which are copied from the catalog.
const CALIBRATION_POSTGRES: &str = "
DROP TABLE IF EXISTS bench_enrollments;
CREATE TABLE bench_enrollments (LIKE enrollments INCLUDING ALL);
DO $$
DECLARE foreign_key record;
BEGIN
    FOR foreign_key IN
        SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
        WHERE conrelid = 'enrollments'::regclass AND contype = 'f' ORDER BY conname
    LOOP
        EXECUTE format('ALTER TABLE bench_enrollments ADD CONSTRAINT %I %s',
                       'bench_' || foreign_key.conname, foreign_key.definition);
    END LOOP;
END $$;
";

/// The statement that makes the scratch copy of one SQLite schema object of
/// the enrollments table (`kind` and `name` as in `sqlite_master`) from its
/// stored definition: the name before the column list is replaced, the rest
/// (columns, keys, references, an index's columns and predicate) is kept.
fn scratch_definition_sqlite(kind: &str, name: &str, sql: &str) -> Result<String> {
    let corrupt = || {
        crate::db::StoreError::Corrupt(format!(
            "cannot copy the definition of {kind} {name}: {sql}"
        ))
    };
    let columns = sql.find('(').ok_or_else(corrupt)?;
    let head = sql[..columns].to_ascii_uppercase();
    let target = match kind {
        "table" => format!("CREATE TABLE {SCRATCH_TABLE} "),
        "index" if head.starts_with("CREATE UNIQUE INDEX") => {
            format!("CREATE UNIQUE INDEX bench_{name} ON {SCRATCH_TABLE} ")
        }
        "index" if head.starts_with("CREATE INDEX") => {
            format!("CREATE INDEX bench_{name} ON {SCRATCH_TABLE} ")
        }
        _ => return Err(corrupt()),
    };
    Ok(format!("{target}{}", &sql[columns..]))
}

const ENROLLMENT_INSERT_COLUMNS: &str = "user_id, activity_id, type, status, due_on, required_by, reason, \
     enrolled_at, completed_at, source_kind, source, period, updated_at";

impl Store {
    /// Brings the database to a quiet state between two measured phases, as
    /// hours between two nightly sweeps would: PostgreSQL's statistics
    /// refreshed and dead rows vacuumed (autovacuum would have done both) and
    /// a checkpoint taken; SQLite's write-ahead log checkpointed. SQLite keeps
    /// no planner statistics unless asked, and the application never asks.
    /// The audit trail is vacuumed but not analysed: no measured statement
    /// reads it, and its statistics were a third of the settling's time.
    pub async fn bench_settle(&self) -> Result<()> {
        if let Store::Postgres(pools) = self {
            sqlx::raw_sql("VACUUM").execute(&pools.pool).await?;
            let tables: String = sqlx::query_scalar(
                "SELECT string_agg(quote_ident(relname), ', ' ORDER BY relname) FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() AND relname <> 'audit'",
            )
            .fetch_one(&pools.pool)
            .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {tables}")))
                .execute(&pools.pool)
                .await?;
        }
        self.bench_checkpoint().await
    }

    /// Copies the write-ahead log into the database (PostgreSQL's
    /// `CHECKPOINT`, SQLite's `wal_checkpoint`), so that the next phase
    /// does not pay for the writes of the one before.
    pub async fn bench_checkpoint(&self) -> Result<()> {
        match self {
            Store::Sqlite(pools) => {
                sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pools.write)
                    .await?;
            }
            Store::Postgres(pools) => {
                sqlx::raw_sql("CHECKPOINT").execute(&pools.pool).await?;
            }
        }
        Ok(())
    }
}

impl Tx {
    pub async fn bench_insert_users(&mut self, users: &[BenchUser], now: i64) -> Result<()> {
        let before = self.max_user_id().await?;
        for chunk in users.chunks(CHUNK) {
            on_tx!(self, c => {
                let mut builder = sqlx::QueryBuilder::new(
                    "INSERT INTO users (username, email, display_name, active, hired_on, role, created_at, updated_at) ",
                );
                builder.push_values(chunk, |mut row, user| {
                    row.push_bind(&user.username)
                        .push_bind(format!("{}@bench.example", user.username))
                        .push_bind(&user.username)
                        .push_bind(user.active)
                        .push_bind(&user.hired_on)
                        .push_bind(user.role)
                        .push_bind(now)
                        .push_bind(now);
                });
                builder.build().execute(c).await?.rows_affected()
            });
        }
        self.stamp_users(crate::marks::stamp_where!("id > $1"), before)
            .await
    }

    /// Ids of the users whose username starts with `prefix`, by username.
    pub async fn bench_user_ids(&mut self, prefix: &str) -> Result<Vec<(String, i64)>> {
        let pattern = format!("{prefix}%");
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT username, id FROM users WHERE username LIKE $1 ORDER BY id"
        )
        .bind(&pattern)
        .fetch_all(c)
        .await?))
    }

    /// Adds memberships (group id, user id); existing ones are kept.
    pub async fn bench_insert_members(&mut self, pairs: &[(i64, i64)]) -> Result<()> {
        for chunk in pairs.chunks(CHUNK) {
            on_tx!(self, c => {
                let mut builder = sqlx::QueryBuilder::new("INSERT INTO group_members (group_id, user_id) ");
                builder.push_values(chunk, |mut row, (group_id, user_id)| {
                    row.push_bind(*group_id).push_bind(*user_id);
                });
                builder.push(" ON CONFLICT DO NOTHING");
                builder.build().execute(c).await?.rows_affected()
            });
        }
        for (_, user_id) in pairs {
            self.stamp_user(*user_id).await?;
        }
        Ok(())
    }

    pub async fn bench_remove_members(&mut self, pairs: &[(i64, i64)]) -> Result<()> {
        for (group_id, user_id) in pairs {
            self.remove_member(*group_id, *user_id).await?;
        }
        Ok(())
    }

    pub async fn bench_deactivate_users(&mut self, ids: &[i64], now: i64) -> Result<()> {
        for chunk in ids.chunks(CHUNK) {
            on_tx!(self, c => {
                let mut builder = sqlx::QueryBuilder::new("UPDATE users SET active = FALSE, updated_at = ");
                builder.push_bind(now).push(" WHERE id IN (");
                let mut separated = builder.separated(", ");
                for id in chunk {
                    separated.push_bind(*id);
                }
                builder.push(")");
                builder.build().execute(c).await?.rows_affected()
            });
        }
        for id in ids {
            self.stamp_user(*id).await?;
        }
        Ok(())
    }

    pub async fn bench_insert_enrollments(&mut self, rows: &[EnrollmentInsert]) -> Result<u64> {
        let mut inserted = 0;
        for chunk in rows.chunks(CHUNK) {
            inserted += insert_enrollment_rows(self, "enrollments", chunk).await?;
        }
        let mut users: Vec<i64> = rows.iter().map(|row| row.user_id).collect();
        users.sort_unstable();
        users.dedup();
        for user_id in users {
            self.stamp_user(user_id).await?;
        }
        Ok(inserted)
    }

    pub async fn bench_count_enrollments(&mut self) -> Result<i64> {
        Ok(
            on_tx!(self, c => sqlx::query_scalar("SELECT COUNT(*) FROM enrollments").fetch_one(c).await?),
        )
    }

    pub async fn bench_count_jobs(&mut self, kind: &str, state: &str) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state = $2"
        )
        .bind(kind)
        .bind(state)
        .fetch_one(c)
        .await?))
    }

    /// Open enrollments (id, activity id) in any of `activity_ids`, or in
    /// every activity when it is empty, by id.
    pub async fn bench_open_enrollments(
        &mut self,
        activity_ids: &[i64],
    ) -> Result<Vec<(i64, i64)>> {
        if activity_ids.is_empty() {
            return Ok(on_tx!(self, c => sqlx::query_as(
                "SELECT id, activity_id FROM enrollments WHERE status = 'in_progress' ORDER BY id"
            )
            .fetch_all(c)
            .await?));
        }
        let mut found = Vec::new();
        for activity_id in activity_ids {
            let rows: Vec<(i64, i64)> = on_tx!(self, c => sqlx::query_as(
                "SELECT id, activity_id FROM enrollments WHERE activity_id = $1 AND status = 'in_progress' ORDER BY id"
            )
            .bind(activity_id)
            .fetch_all(c)
            .await?);
            found.extend(rows);
        }
        found.sort_unstable();
        Ok(found)
    }

    /// Deletes every enrollment a sweep created and the post-enrollment jobs
    /// still pending, so that the next sweep starts cold again.
    pub async fn bench_reset_sweep(&mut self) -> Result<u64> {
        self.clear_sweep_marks().await?;
        Ok(on_tx!(self, c => {
            sqlx::query("DELETE FROM jobs WHERE kind = 'post_enrollment' AND state = 'pending'")
                .execute(&mut *c)
                .await?;
            sqlx::query("DELETE FROM enrollments WHERE source_kind = 'auto_enrollment'")
                .execute(&mut *c)
                .await?
                .rows_affected()
        }))
    }

    /// The enrollments a sweep created in the activity, in user order, as
    /// rows to insert again.
    pub async fn bench_auto_rows(&mut self, activity_id: i64) -> Result<Vec<EnrollmentInsert>> {
        type Row = (
            i64,
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
            String,
            String,
            Option<String>,
        );
        let rows: Vec<Row> = on_tx!(self, c => sqlx::query_as(
            "SELECT user_id, activity_id, type, status, due_on, required_by, reason, enrolled_at, \
             completed_at, source_kind, source, period FROM enrollments \
             WHERE activity_id = $1 AND source_kind = 'auto_enrollment' ORDER BY user_id, id"
        )
        .bind(activity_id)
        .fetch_all(c)
        .await?);
        Ok(rows
            .into_iter()
            .map(|row| EnrollmentInsert {
                user_id: row.0,
                activity_id: row.1,
                enrollment_type: row.2,
                status: row.3,
                due_on: row.4,
                required_by: row.5,
                reason: row.6,
                enrolled_at: row.7,
                completed_at: row.8,
                source_kind: row.9,
                source: row.10,
                period: row.11,
            })
            .collect())
    }

    /// Creates the empty scratch copy of the enrollments table from its
    /// definition in the database, as the migrations left it.
    pub async fn calibration_create(&mut self) -> Result<()> {
        match self {
            Tx::Sqlite(transaction) => {
                let connection = &mut ***transaction;
                sqlx::raw_sql(DROP_SCRATCH)
                    .execute(&mut *connection)
                    .await?;
                let objects: Vec<(String, String, String)> =
                    sqlx::query_as(ENROLLMENTS_SCHEMA_SQLITE)
                        .fetch_all(&mut *connection)
                        .await?;
                for (kind, name, sql) in objects {
                    let definition = scratch_definition_sqlite(&kind, &name, &sql)?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(definition))
                        .execute(&mut *connection)
                        .await?;
                }
            }
            Tx::Postgres(transaction) => {
                sqlx::raw_sql(CALIBRATION_POSTGRES)
                    .execute(&mut ***transaction)
                    .await?;
            }
        }
        Ok(())
    }

    /// Inserts the rows into the scratch table with prepared multi-row
    /// INSERTs (SQLite's fastest plain way); answers the time spent.
    pub async fn calibration_insert(&mut self, rows: &[EnrollmentInsert]) -> Result<Duration> {
        let started = Instant::now();
        for chunk in rows.chunks(CHUNK) {
            insert_enrollment_rows(self, "bench_enrollments", chunk).await?;
        }
        Ok(started.elapsed())
    }

    /// PostgreSQL: the enrollments the rules made in `activity_ids`, activity
    /// by activity in user order, as the text `calibration_copy` loads,
    /// written by the server itself (`COPY … TO STDOUT`), with their count.
    pub async fn calibration_rows_text(&mut self, activity_ids: &[i64]) -> Result<(i64, Vec<u8>)> {
        let Tx::Postgres(transaction) = self else {
            return Err(crate::db::StoreError::Database(sqlx::Error::Protocol(
                "COPY is PostgreSQL's; use bench_auto_rows on SQLite".into(),
            )));
        };
        if activity_ids.is_empty() {
            return Ok((0, Vec::new()));
        }
        let ids = activity_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // `updated_at` is written as the enrollment time, as the sweep does.
        let statement = format!(
            "COPY (SELECT user_id, activity_id, type, status, due_on, required_by, reason, \
             enrolled_at, completed_at, source_kind, source, period, enrolled_at FROM enrollments \
             WHERE source_kind = 'auto_enrollment' AND activity_id IN ({ids}) \
             ORDER BY activity_id, user_id, id) TO STDOUT"
        );
        let connection: &mut sqlx::PgConnection = transaction;
        let mut stream = connection.copy_out_raw(&statement).await?;
        let mut text = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            text.extend_from_slice(&chunk?);
        }
        let rows = text.iter().filter(|byte| **byte == b'\n').count() as i64;
        Ok((rows, text))
    }

    /// Loads rows written by `calibration_rows_text` into the scratch table with
    /// one COPY (PostgreSQL's fastest way); answers the time it took. One
    /// COPY for everything, because each COPY ends with a small message that
    /// Nagle's algorithm holds back for a delayed acknowledgement (40 ms).
    pub async fn calibration_copy(&mut self, text: Vec<u8>) -> Result<Duration> {
        let Tx::Postgres(transaction) = self else {
            return Err(crate::db::StoreError::Database(sqlx::Error::Protocol(
                "COPY is PostgreSQL's; use calibration_insert on SQLite".into(),
            )));
        };
        let started = Instant::now();
        let mut copy = transaction
            .copy_in_raw(
                "COPY bench_enrollments (user_id, activity_id, type, status, due_on, required_by, \
                 reason, enrolled_at, completed_at, source_kind, source, period, updated_at) FROM STDIN",
            )
            .await?;
        copy.send(text).await?;
        copy.finish().await?;
        Ok(started.elapsed())
    }

    /// SQLite: whether this connection's commits may checkpoint the log
    /// themselves. The calibration's one transaction writes a log larger
    /// than the writers' backstop; its commit would then copy the whole log
    /// into the database while being timed, where the sweep's commits leave
    /// that to the store's checkpointer. Held off for the calibration's
    /// commit, so that both are timed alike. No-op on PostgreSQL.
    pub async fn calibration_hold_checkpoints(&mut self, hold: bool) -> Result<()> {
        if let Tx::Sqlite(transaction) = self {
            let pages = if hold {
                "0"
            } else {
                crate::db::WRITER_CHECKPOINT_PAGES
            };
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA wal_autocheckpoint = {pages}"
            )))
            .execute(&mut ***transaction)
            .await?;
        }
        Ok(())
    }

    pub async fn calibration_drop(&mut self) -> Result<()> {
        on_tx!(self, c => sqlx::raw_sql(DROP_SCRATCH).execute(c).await?.rows_affected());
        Ok(())
    }
}

/// One multi-row INSERT of `rows` into `table` (`enrollments` or its copy).
async fn insert_enrollment_rows(
    tx: &mut Tx,
    table: &str,
    rows: &[EnrollmentInsert],
) -> Result<u64> {
    Ok(on_tx!(tx, c => {
        let mut builder = sqlx::QueryBuilder::new(format!("INSERT INTO {table} ({ENROLLMENT_INSERT_COLUMNS}) "));
        builder.push_values(rows, |mut row, new| {
            row.push_bind(new.user_id)
                .push_bind(new.activity_id)
                .push_bind(&new.enrollment_type)
                .push_bind(&new.status)
                .push_bind(&new.due_on)
                .push_bind(&new.required_by)
                .push_bind(&new.reason)
                .push_bind(new.enrolled_at)
                .push_bind(new.completed_at)
                .push_bind(&new.source_kind)
                .push_bind(&new.source)
                .push_bind(&new.period)
                .push_bind(new.enrolled_at);
        });
        builder.build().execute(c).await?.rows_affected()
    }))
}

#[cfg(test)]
mod tests {
    use super::scratch_definition_sqlite;

    #[test]
    fn the_scratch_copy_keeps_a_definition_and_changes_only_its_name() {
        let table = "CREATE TABLE \"enrollments\" (\n    id INTEGER PRIMARY KEY,\n    user_id BIGINT NOT NULL REFERENCES users (id)\n)";
        assert_eq!(
            scratch_definition_sqlite("table", "enrollments", table).unwrap(),
            "CREATE TABLE bench_enrollments (\n    id INTEGER PRIMARY KEY,\n    user_id BIGINT NOT NULL REFERENCES users (id)\n)"
        );
        let unique = "CREATE UNIQUE INDEX enrollments_one_open ON enrollments (activity_id, user_id) WHERE status = 'in_progress'";
        assert_eq!(
            scratch_definition_sqlite("index", "enrollments_one_open", unique).unwrap(),
            "CREATE UNIQUE INDEX bench_enrollments_one_open ON bench_enrollments (activity_id, user_id) WHERE status = 'in_progress'"
        );
        let lookup = "create index enrollments_user on enrollments(user_id, activity_id)";
        assert_eq!(
            scratch_definition_sqlite("index", "enrollments_user", lookup).unwrap(),
            "CREATE INDEX bench_enrollments_user ON bench_enrollments (user_id, activity_id)"
        );
        assert!(scratch_definition_sqlite("trigger", "t", "CREATE TRIGGER t (x)").is_err());
        assert!(scratch_definition_sqlite("table", "enrollments", "CREATE TABLE x").is_err());
    }
}
