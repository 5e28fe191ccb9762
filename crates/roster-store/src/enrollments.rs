//! Enrollments: insert under R2, read, change, delete and the filtered lists
//! of R55 and R60–R62.
//!
//! R2 and R14 are unique indexes, not checks, on both backends: at most one
//! open enrollment per (user, activity) (`enrollments_one_open`), and at most
//! one enrollment per (activity, user, period) (`enrollments_period`; a rule
//! is one per activity). A rerun, a concurrent run or a crash therefore cannot
//! duplicate an enrollment; a violation becomes a conflict in one place
//! (`on_constraint`).

use crate::db::{Result, Tx, on_constraint};
use crate::marks::{UserIds, stamp_where, stamped, stamped_head, stamped_tail};
use crate::records::{EnrollmentRecord, EnrollmentRow};

/// The columns a record is read from, written once as a macro so that the
/// statements reading them are constant (`concat!`), not formatted.
macro_rules! returning_columns {
    () => {
        "id, user_id, activity_id, type, status, due_on, required_by, reason, \
     enrolled_at, completed_at, source_kind, source, period"
    };
}
/// `returning_columns!` of an `UPDATE … FROM` another table.
macro_rules! returning_columns_qualified {
    () => {
        "enrollments.id, enrollments.user_id, \
     enrollments.activity_id, enrollments.type, enrollments.status, enrollments.due_on, \
     enrollments.required_by, enrollments.reason, enrollments.enrolled_at, \
     enrollments.completed_at, enrollments.source_kind, enrollments.source, enrollments.period"
    };
}
/// The columns a record is read from, written once as a macro so that the
/// statements reading them are constant (`concat!`), not formatted.
macro_rules! enrollment_columns {
    () => {
        "e.id, e.user_id, e.activity_id, e.type, e.status, e.due_on, \
     e.required_by, e.reason, e.enrolled_at, e.completed_at, e.source_kind, e.source, e.period"
    };
}

/// R61's overdue rule (`roster_core::is_overdue`: open and due before
/// today) in SQL, up to the day, which the caller binds next; the store's
/// conformance suite checks the two agree row for row.
const OVERDUE_BEFORE: &str =
    " = (e.status = 'in_progress' AND e.due_on IS NOT NULL AND e.due_on < ";

/// The fields of an enrollment as the database writes them into a JSON
/// array (`list_enrollments`); the same on both backends.
macro_rules! record_json_fields {
    () => {
        "'id', id, 'user_id', user_id, 'activity_id', activity_id, 'type', type, \
         'status', status, 'due_on', due_on, 'required_by', required_by, 'reason', reason, \
         'enrolled_at', enrolled_at, 'completed_at', completed_at, 'source_kind', source_kind, \
         'source', source, 'period', period"
    };
}
/// The same with the activity's title, kind and active flag and the username.
macro_rules! row_json_fields {
    () => {
        concat!(
            record_json_fields!(),
            ", 'activity_title', activity_title, 'activity_kind', activity_kind, \
             'activity_active', activity_active, 'username', username"
        )
    };
}

/// One element of that array (without the activity's and user's fields
/// when the list reads enrollments alone: then empty).
#[derive(serde::Deserialize)]
struct RowJson {
    id: i64,
    user_id: i64,
    activity_id: i64,
    #[serde(rename = "type")]
    enrollment_type: String,
    status: String,
    due_on: Option<String>,
    required_by: Option<String>,
    reason: Option<String>,
    enrolled_at: i64,
    completed_at: Option<i64>,
    source_kind: String,
    source: String,
    period: Option<String>,
    #[serde(default)]
    activity_title: String,
    #[serde(default)]
    activity_kind: String,
    /// SQLite writes its booleans as 0 and 1.
    #[serde(default, deserialize_with = "bool_or_int")]
    activity_active: bool,
    #[serde(default)]
    username: String,
}

fn bool_or_int<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<bool, D::Error> {
    struct Flag;
    impl serde::de::Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a boolean, 0 or 1")
        }
        fn visit_bool<E>(self, value: bool) -> std::result::Result<bool, E> {
            Ok(value)
        }
        fn visit_i64<E>(self, value: i64) -> std::result::Result<bool, E> {
            Ok(value != 0)
        }
        fn visit_u64<E>(self, value: u64) -> std::result::Result<bool, E> {
            Ok(value != 0)
        }
    }
    deserializer.deserialize_any(Flag)
}

impl From<RowJson> for EnrollmentRow {
    fn from(row: RowJson) -> EnrollmentRow {
        EnrollmentRow {
            enrollment: EnrollmentRecord {
                id: row.id,
                user_id: row.user_id,
                activity_id: row.activity_id,
                enrollment_type: row.enrollment_type,
                status: row.status,
                due_on: row.due_on,
                required_by: row.required_by,
                reason: row.reason,
                enrolled_at: row.enrolled_at,
                completed_at: row.completed_at,
                source_kind: row.source_kind,
                source: row.source,
                period: row.period,
            },
            activity_title: row.activity_title,
            activity_kind: row.activity_kind,
            activity_active: row.activity_active,
            username: row.username,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EnrollmentInsert {
    pub user_id: i64,
    pub activity_id: i64,
    pub enrollment_type: String,
    pub status: String,
    pub due_on: Option<String>,
    pub required_by: Option<String>,
    pub reason: Option<String>,
    pub enrolled_at: i64,
    pub completed_at: Option<i64>,
    pub source_kind: String,
    pub source: String,
    pub period: Option<String>,
}

/// The fields an update may change.
#[derive(Clone, Debug)]
pub struct EnrollmentPatch {
    pub enrollment_type: String,
    pub status: String,
    pub due_on: Option<String>,
    pub required_by: Option<String>,
    pub reason: Option<String>,
    pub completed_at: Option<i64>,
    pub period: Option<String>,
}

/// Filters of the enrollment lists; `None` means "any".
#[derive(Clone, Debug, Default)]
pub struct EnrollmentFilter {
    pub user_id: Option<i64>,
    pub activity_id: Option<i64>,
    pub status: Option<String>,
    pub enrollment_type: Option<String>,
    pub source_kind: Option<String>,
    /// With `today`: true keeps open enrollments due before today, false the others.
    pub overdue: Option<bool>,
    pub today: String,
    pub due_from: Option<String>,
    pub due_to: Option<String>,
    pub enrolled_from: Option<i64>,
    pub enrolled_to: Option<i64>,
    pub title_q: Option<String>,
    pub activity_active: Option<bool>,
    pub user_active: Option<bool>,
    /// Page after this id (ascending) or before it (`newest_first`).
    pub cursor: Option<i64>,
    pub newest_first: bool,
    pub limit: i64,
}

/// An enrollment read by position, in the order of `ENROLLMENT_COLUMNS`:
/// finding each column by its name cost more than the rest of decoding a
/// learner's list.
fn enrollment_record_at<'r, R>(row: &'r R) -> std::result::Result<EnrollmentRecord, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(EnrollmentRecord {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        activity_id: row.try_get(2)?,
        enrollment_type: row.try_get(3)?,
        status: row.try_get(4)?,
        due_on: row.try_get(5)?,
        required_by: row.try_get(6)?,
        reason: row.try_get(7)?,
        enrolled_at: row.try_get(8)?,
        completed_at: row.try_get(9)?,
        source_kind: row.try_get(10)?,
        source: row.try_get(11)?,
        period: row.try_get(12)?,
    })
}

/// A list row read by position: the enrollment, then the activity's title,
/// kind and active flag and the username.
fn enrollment_row_at<'r, R>(row: &'r R) -> std::result::Result<EnrollmentRow, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(EnrollmentRow {
        enrollment: enrollment_record_at(row)?,
        activity_title: row.try_get(13)?,
        activity_kind: row.try_get(14)?,
        activity_active: row.try_get(15)?,
        username: row.try_get(16)?,
    })
}

/// Pushes onto `$query` the conditions of `$filter`, each only when given:
/// a generic `($2 IS NULL OR e.user_id = $2)` keeps SQLite from using any
/// index, and a learner's History would scan every enrollment. A macro, so
/// that each backend's `QueryBuilder` binds its own types.
macro_rules! push_enrollment_filters {
    ($query:ident, $filter:ident, $pattern:ident) => {{
        let filter = $filter;
        let pattern = &$pattern;
        let query = &mut $query;
        if let Some(user_id) = filter.user_id {
            query.push(" AND e.user_id = ").push_bind(user_id);
        }
        if let Some(activity_id) = filter.activity_id {
            query.push(" AND e.activity_id = ").push_bind(activity_id);
        }
        if let Some(status) = &filter.status {
            // A known status is written as a literal: bound, it would
            // make SQLite re-prepare the statement on every execution
            // (the partial index on open enrollments depends on it).
            match roster_core::Status::ALL
                .iter()
                .find(|known| known.as_str() == status)
            {
                Some(known) => query.push(format_args!(" AND e.status = '{}'", known.as_str())),
                None => query.push(" AND e.status = ").push_bind(status),
            };
        }
        if let Some(enrollment_type) = &filter.enrollment_type {
            query.push(" AND e.type = ").push_bind(enrollment_type);
        }
        if let Some(source_kind) = &filter.source_kind {
            query.push(" AND e.source_kind = ").push_bind(source_kind);
        }
        if let Some(overdue) = filter.overdue {
            query
                .push(" AND (")
                .push_bind(overdue)
                .push(OVERDUE_BEFORE)
                .push_bind(&filter.today)
                .push("))");
        }
        if let Some(due_from) = &filter.due_from {
            query.push(" AND e.due_on >= ").push_bind(due_from);
        }
        if let Some(due_to) = &filter.due_to {
            query.push(" AND e.due_on <= ").push_bind(due_to);
        }
        if let Some(enrolled_from) = filter.enrolled_from {
            query
                .push(" AND e.enrolled_at >= ")
                .push_bind(enrolled_from);
        }
        if let Some(enrolled_to) = filter.enrolled_to {
            query.push(" AND e.enrolled_at < ").push_bind(enrolled_to);
        }
        if let Some(pattern) = &pattern {
            query.push(" AND LOWER(a.title) LIKE ").push_bind(pattern);
        }
        if let Some(activity_active) = filter.activity_active {
            query.push(" AND a.active = ").push_bind(activity_active);
        }
        if let Some(user_active) = filter.user_active {
            query.push(" AND u.active = ").push_bind(user_active);
        }
        match (filter.cursor, filter.newest_first) {
            (Some(cursor), true) => {
                query.push(" AND e.id < ").push_bind(cursor);
            }
            (Some(cursor), false) => {
                query.push(" AND e.id > ").push_bind(cursor);
            }
            (None, _) => {}
        }
    }};
}

impl Tx {
    /// Inserts the enrollment unless a unique key refuses it (an open one
    /// exists, R2, or the period is held, R14): then `None`.
    pub async fn insert_enrollment(
        &mut self,
        new: &EnrollmentInsert,
    ) -> Result<Option<EnrollmentRecord>> {
        // On PostgreSQL the user is stamped in the same statement (one
        // round trip); on SQLite, in-process, by a second one.
        macro_rules! insert {
            () => {
                concat!(
                    "INSERT INTO enrollments (user_id, activity_id, type, status, due_on, required_by, reason, \
                     enrolled_at, completed_at, source_kind, source, period, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $8) \
                     ON CONFLICT DO NOTHING RETURNING ",
                    returning_columns!()
                )
            };
        }
        let inserted: Option<EnrollmentRecord> = on_tx_sql!(
            self,
            insert!(),
            stamped!(insert!()),
            sql,
            c => sqlx::query_as(sql)
                .bind(new.user_id)
                .bind(new.activity_id)
                .bind(&new.enrollment_type)
                .bind(&new.status)
                .bind(&new.due_on)
                .bind(&new.required_by)
                .bind(&new.reason)
                .bind(new.enrolled_at)
                .bind(new.completed_at)
                .bind(&new.source_kind)
                .bind(&new.source)
                .bind(&new.period)
                .fetch_optional(c)
                .await
                .map_err(on_constraint)?
        );
        if inserted.is_some() && matches!(self, Tx::Sqlite(_)) {
            self.stamp_user(new.user_id).await?;
        }
        Ok(inserted)
    }

    /// `insert_enrollment` for many at once, in multi-row inserts (one
    /// statement per 500): the ones created, in no particular order; one
    /// that R2's open enrollment or its period's uniqueness refuses is left
    /// out, as `insert_enrollment` answers `None` for it.
    pub async fn insert_enrollments(
        &mut self,
        new: &[EnrollmentInsert],
    ) -> Result<Vec<EnrollmentRecord>> {
        let mut created = Vec::with_capacity(new.len());
        macro_rules! insert {
            () => {
                "INSERT INTO enrollments (user_id, activity_id, type, status, due_on, required_by, reason, \
                 enrolled_at, completed_at, source_kind, source, period, updated_at) "
            };
        }
        macro_rules! returning {
            () => {
                concat!(" ON CONFLICT DO NOTHING RETURNING ", returning_columns!())
            };
        }
        // On PostgreSQL the users are stamped in the same statement, as one
        // insert does: the statement goes inside `stamped!`'s CTE.
        for chunk in new.chunks(500) {
            let rows: Vec<EnrollmentRecord> = on_tx_sql!(
                self,
                (insert!(), returning!()),
                (
                    concat!(stamped_head!(), insert!()),
                    concat!(returning!(), stamped_tail!())
                ),
                sql,
                c => {
                    let (open, close) = sql;
                    let mut query = sqlx::QueryBuilder::new(open);
                    query.push_values(chunk, |mut row, new| {
                        row.push_bind(new.user_id)
                            .push_bind(new.activity_id)
                            .push_bind(new.enrollment_type.as_str())
                            .push_bind(new.status.as_str())
                            .push_bind(new.due_on.as_deref())
                            .push_bind(new.required_by.as_deref())
                            .push_bind(new.reason.as_deref())
                            .push_bind(new.enrolled_at)
                            .push_bind(new.completed_at)
                            .push_bind(new.source_kind.as_str())
                            .push_bind(new.source.as_str())
                            .push_bind(new.period.as_deref())
                            .push_bind(new.enrolled_at);
                    });
                    query.push(close);
                    query
                        .build_query_as()
                        .fetch_all(c)
                        .await
                        .map_err(on_constraint)?
                }
            );
            created.extend(rows);
        }
        self.stamp_written(&created).await?;
        Ok(created)
    }

    pub async fn get_enrollment(&mut self, id: i64) -> Result<Option<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", enrollment_columns!(), " FROM enrollments e WHERE e.id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await?),
        )
    }

    /// The enrollments of `ids` that exist, by id, in one statement per
    /// thousand ids.
    pub async fn get_enrollments(
        &mut self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, EnrollmentRecord>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let rows: Vec<EnrollmentRecord> = on_tx!(self, c => {
                let mut builder = sqlx::QueryBuilder::new(concat!("SELECT ", enrollment_columns!(), " FROM enrollments e WHERE e.id IN ("));
                let mut separated = builder.separated(", ");
                for id in chunk {
                    separated.push_bind(*id);
                }
                builder.push(")");
                builder.build_query_as().fetch_all(c).await?
            });
            found.extend(rows.into_iter().map(|record| (record.id, record)));
        }
        Ok(found)
    }

    /// Applies the patch; a unique key refusing it (a second open enrollment)
    /// is a `Conflict`.
    /// Writes the patch and answers the enrollment as it now is (`None` when
    /// there is no such enrollment).
    pub async fn update_enrollment(
        &mut self,
        id: i64,
        patch: &EnrollmentPatch,
        now: i64,
    ) -> Result<Option<EnrollmentRecord>> {
        macro_rules! update {
            () => {
                concat!(
                    "UPDATE enrollments SET type = $2, status = $3, due_on = $4, required_by = $5, reason = $6, \
                     completed_at = $7, period = $8, updated_at = $9 WHERE id = $1 RETURNING ",
                    returning_columns!()
                )
            };
        }
        let updated: Option<EnrollmentRecord> = on_tx_sql!(
            self,
            update!(),
            stamped!(update!()),
            sql,
            c => sqlx::query_as(sql)
                .bind(id)
                .bind(&patch.enrollment_type)
                .bind(&patch.status)
                .bind(&patch.due_on)
                .bind(&patch.required_by)
                .bind(&patch.reason)
                .bind(patch.completed_at)
                .bind(&patch.period)
                .bind(now)
                .fetch_optional(c)
                .await
                .map_err(on_constraint)?
        );
        if let Some(record) = &updated
            && matches!(self, Tx::Sqlite(_))
        {
            self.stamp_user(record.user_id).await?;
        }
        Ok(updated)
    }

    /// `update_enrollment` for many enrollments at once, each with its own
    /// patch, in multi-row statements (one per 500): the enrollments as
    /// updated, in no particular order; an id that does not exist is left
    /// out. The ids must be distinct.
    pub async fn update_enrollments(
        &mut self,
        patches: &[(i64, EnrollmentPatch)],
        now: i64,
    ) -> Result<Vec<EnrollmentRecord>> {
        // A table of the new values (`column1` the id, then the fields in
        // the order of the `SET`), named so on both databases.
        macro_rules! update {
            () => {
                "UPDATE enrollments SET type = vals.column2, status = vals.column3, \
                 due_on = vals.column4, required_by = vals.column5, reason = vals.column6, \
                 completed_at = vals.column7, period = vals.column8, updated_at = vals.column9 FROM ("
            };
        }
        macro_rules! returning {
            () => {
                concat!(
                    ") AS vals WHERE enrollments.id = vals.column1 RETURNING ",
                    returning_columns_qualified!()
                )
            };
        }
        let mut updated = Vec::with_capacity(patches.len());
        for chunk in patches.chunks(500) {
            let rows: Vec<EnrollmentRecord> = on_tx_sql!(
                self,
                (update!(), returning!()),
                (
                    concat!(stamped_head!(), update!()),
                    concat!(returning!(), stamped_tail!())
                ),
                sql,
                c => {
                    let (open, close) = sql;
                    let mut query = sqlx::QueryBuilder::new(open);
                    query.push_values(chunk, |mut row, (id, patch)| {
                        row.push_bind(*id)
                            .push_bind(patch.enrollment_type.as_str())
                            .push_bind(patch.status.as_str())
                            .push_bind(patch.due_on.as_deref())
                            .push_bind(patch.required_by.as_deref())
                            .push_bind(patch.reason.as_deref())
                            .push_bind(patch.completed_at)
                            .push_bind(patch.period.as_deref())
                            .push_bind(now);
                    });
                    query.push(close);
                    query
                        .build_query_as()
                        .fetch_all(c)
                        .await
                        .map_err(on_constraint)?
                }
            );
            updated.extend(rows);
        }
        self.stamp_written(&updated).await?;
        Ok(updated)
    }

    /// What a post-enrollment rule needs to know of a user and a target
    /// (R36): exempt on `today`, enrolled now, passed it ever — in one query.
    pub async fn target_facts(
        &mut self,
        user_id: i64,
        activity_id: i64,
        today: &str,
    ) -> Result<(bool, bool, bool)> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM exemptions WHERE user_id = $1 AND activity_id = $2 \
                 AND (until IS NULL OR until >= $3)), \
             EXISTS (SELECT 1 FROM enrollments WHERE user_id = $1 AND activity_id = $2 AND status = 'in_progress'), \
             EXISTS (SELECT 1 FROM enrollments WHERE user_id = $1 AND activity_id = $2 AND status = 'passed')"
        )
        .bind(user_id)
        .bind(activity_id)
        .bind(today)
        .fetch_one(c)
        .await?))
    }

    /// `target_facts` for many (user, activity) pairs in one statement: the
    /// pairs are `users[i]`, `activities[i]`. One row per pair asked:
    /// (user, activity, exempt, has open, ever passed).
    pub async fn target_facts_of(
        &mut self,
        users: &UserIds,
        activities: &UserIds,
        today: &str,
    ) -> Result<Vec<(i64, i64, bool, bool, bool)>> {
        macro_rules! facts_of {
            ($pairs:literal) => {
                concat!(
                    "SELECT p.u, p.a, \
                     EXISTS (SELECT 1 FROM exemptions x WHERE x.user_id = p.u AND x.activity_id = p.a \
                     AND (x.until IS NULL OR x.until >= $3)), \
                     EXISTS (SELECT 1 FROM enrollments e WHERE e.user_id = p.u AND e.activity_id = p.a \
                     AND e.status = 'in_progress'), \
                     EXISTS (SELECT 1 FROM enrollments e WHERE e.user_id = p.u AND e.activity_id = p.a \
                     AND e.status = 'passed') \
                     FROM ",
                    $pairs
                )
            };
        }
        Ok(on_tx_sql!(
            self,
            facts_of!(
                "(SELECT pu.value AS u, pa.value AS a FROM json_each($1) pu \
                 JOIN json_each($2) pa ON pa.key = pu.key) AS p"
            ),
            facts_of!("unnest($1::bigint[], $2::bigint[]) AS p(u, a)"),
            sql,
            c => sqlx::query_as(sql)
                .bind(users)
                .bind(activities)
                .bind(today)
                .fetch_all(c)
                .await?
        ))
    }

    pub async fn delete_enrollment(&mut self, id: i64) -> Result<()> {
        self.stamp_users(
            stamp_where!("id = (SELECT user_id FROM enrollments WHERE id = $1)"),
            id,
        )
        .await?;
        on_tx!(self, c => {
            sqlx::query("DELETE FROM tasks WHERE enrollment_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
            sqlx::query("DELETE FROM attachments WHERE enrollment_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
            sqlx::query("DELETE FROM enrollments WHERE id = $1").bind(id).execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }

    pub async fn open_enrollment(
        &mut self,
        user_id: i64,
        activity_id: i64,
    ) -> Result<Option<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", enrollment_columns!(), " FROM enrollments e WHERE e.user_id = $1 AND e.activity_id = $2 \
             AND e.status = 'in_progress'"))
        .bind(user_id)
        .bind(activity_id)
        .fetch_optional(c)
        .await?),
        )
    }

    /// Every enrollment of the user in the activity, oldest first.
    pub async fn enrollments_of(
        &mut self,
        user_id: i64,
        activity_id: i64,
    ) -> Result<Vec<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", enrollment_columns!(), " FROM enrollments e WHERE e.user_id = $1 AND e.activity_id = $2 ORDER BY e.id"))
        .bind(user_id)
        .bind(activity_id)
        .fetch_all(c)
        .await?),
        )
    }

    pub async fn ever_passed(&mut self, user_id: i64, activity_id: i64) -> Result<bool> {
        let found: Option<i64> = on_tx!(self, c => sqlx::query_scalar(
            "SELECT id FROM enrollments WHERE user_id = $1 AND activity_id = $2 AND status = 'passed' LIMIT 1"
        )
        .bind(user_id)
        .bind(activity_id)
        .fetch_optional(c)
        .await?);
        Ok(found.is_some())
    }

    /// Whether the user has passed every item of the curriculum or bundle;
    /// false when it has no items. Passes from before the enrollment count
    /// (R39), but once the user has passed the parent itself, only course
    /// passes completed after that count toward passing it again, so a
    /// re-enrollment is not passed by the same course passes.
    pub async fn passed_all_items(&mut self, user_id: i64, parent_id: i64) -> Result<bool> {
        let (items, passed): (i64, i64) = on_tx!(self, c => sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM enrollments e \
             WHERE e.user_id = $1 AND e.activity_id = i.item_id AND e.status = 'passed' \
             AND e.completed_at > COALESCE((SELECT MAX(p.completed_at) FROM enrollments p \
                 WHERE p.user_id = $1 AND p.activity_id = $2 AND p.status = 'passed'), -1))) \
             FROM activity_items i WHERE i.activity_id = $2"
        )
        .bind(user_id)
        .bind(parent_id)
        .fetch_one(c)
        .await?);
        Ok(items > 0 && items == passed)
    }

    /// Enrollments with their activity and user, filtered and paginated.
    ///
    /// On SQLite a bounded list (one learner's, or a page) comes back as one
    /// JSON array built by the database, not as a row per enrollment: per
    /// row, the driver would copy every value and hand it across threads,
    /// which costs more than building and parsing the array. An unbounded
    /// list of everyone's enrollments (an export) is read row by row, so it
    /// never has to fit in one text. PostgreSQL's driver reads rows cheaply
    /// and its JSON functions cost more than they save: rows there.
    pub async fn list_enrollments(
        &mut self,
        filter: &EnrollmentFilter,
    ) -> Result<Vec<EnrollmentRow>> {
        self.list_enrollments_with(filter, true).await
    }

    /// The same list without the activity's and user's fields: the
    /// enrollments alone. The database joins only what a filter needs (the
    /// activity for `title_q` or `activity_active`, the user for
    /// `user_active`), so that a learner's list costs no hash of every
    /// activity when its caller knows the activities already.
    pub async fn list_enrollment_records(
        &mut self,
        filter: &EnrollmentFilter,
    ) -> Result<Vec<EnrollmentRecord>> {
        Ok(self
            .list_enrollments_with(filter, false)
            .await?
            .into_iter()
            .map(|row| row.enrollment)
            .collect())
    }

    /// `list_enrollments` with (`joined`) or without the activity's and the
    /// user's fields; without them, the rows' fields are empty.
    async fn list_enrollments_with(
        &mut self,
        filter: &EnrollmentFilter,
        joined: bool,
    ) -> Result<Vec<EnrollmentRow>> {
        let as_json =
            matches!(self, Tx::Sqlite(_)) && (filter.user_id.is_some() || filter.limit <= 1000);
        // The aggregate around the list, per backend, with the activity's and
        // user's fields when `joined`.
        macro_rules! json_open {
            ($fields:expr) => {
                (
                    concat!("SELECT json_group_array(json_object(", $fields, ")) FROM ("),
                    concat!(
                        "SELECT COALESCE(json_agg(json_build_object(",
                        $fields,
                        ")), '[]')::text FROM ("
                    ),
                )
            };
        }
        let (sqlite_open, postgres_open) = if joined {
            json_open!(row_json_fields!())
        } else {
            json_open!(record_json_fields!())
        };
        let pattern = filter
            .title_q
            .as_ref()
            .map(|q| format!("%{}%", q.to_lowercase()));
        // Only the filters given are written into the statement: a generic
        // `($2 IS NULL OR e.user_id = $2)` keeps SQLite from using any index,
        // and a learner's History would scan every enrollment.
        // The array's order is put right here after parsing: ordering inside
        // the aggregate would sort the rows a second time.
        let (json_open, json_close) = on_tx_sql!(self,
            (sqlite_open, ")"),
            (postgres_open, ") r"),
            sql, _c => sql);
        Ok(on_tx!(self, c => {
            let mut query = sqlx::QueryBuilder::new(if as_json { json_open } else { "" });
            if joined {
                query.push(concat!("SELECT ", enrollment_columns!(), ", a.title AS activity_title, a.kind AS activity_kind, \
                     a.active AS activity_active, u.username \
                     FROM enrollments e JOIN activities a ON a.id = e.activity_id \
                     JOIN users u ON u.id = e.user_id WHERE TRUE"));
            } else {
                query.push(concat!("SELECT ", enrollment_columns!(), " FROM enrollments e"));
                if pattern.is_some() || filter.activity_active.is_some() {
                    query.push(" JOIN activities a ON a.id = e.activity_id");
                }
                if filter.user_active.is_some() {
                    query.push(" JOIN users u ON u.id = e.user_id");
                }
                query.push(" WHERE TRUE");
            }
            push_enrollment_filters!(query, filter, pattern);
            query.push(if filter.newest_first {
                " ORDER BY e.id DESC LIMIT "
            } else {
                " ORDER BY e.id LIMIT "
            });
            query.push_bind(filter.limit);
            if as_json {
                query.push(json_close);
                let array: String = query.build_query_scalar().fetch_one(c).await?;
                let mut rows = serde_json::from_str::<Vec<RowJson>>(&array)
                    .map_err(|error| crate::db::StoreError::Corrupt(format!("enrollment list: {error}")))?;
                if filter.newest_first {
                    rows.sort_unstable_by_key(|row| std::cmp::Reverse(row.id));
                } else {
                    rows.sort_unstable_by_key(|row| row.id);
                }
                rows.into_iter().map(EnrollmentRow::from).collect()
            } else if joined {
                query
                    .build()
                    .fetch_all(c)
                    .await?
                    .iter()
                    .map(enrollment_row_at)
                    .collect::<std::result::Result<_, _>>()?
            } else {
                query
                    .build()
                    .fetch_all(c)
                    .await?
                    .iter()
                    .map(|row| {
                        enrollment_record_at(row).map(|enrollment| EnrollmentRow {
                            enrollment,
                            activity_title: String::new(),
                            activity_kind: String::new(),
                            activity_active: false,
                            username: String::new(),
                        })
                    })
                    .collect::<std::result::Result<_, _>>()?
            }
        }))
    }

    /// Open enrollments of one activity, for bundle retroactivity (R40).
    pub async fn open_enrollments_in(&mut self, activity_id: i64) -> Result<Vec<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", enrollment_columns!(), " FROM enrollments e WHERE e.activity_id = $1 AND e.status = 'in_progress' ORDER BY e.id"))
        .bind(activity_id)
        .fetch_all(c)
        .await?),
        )
    }

    /// Open enrollments of the user in curricula or bundles holding `item_id`.
    pub async fn open_parent_enrollments(
        &mut self,
        user_id: i64,
        item_id: i64,
    ) -> Result<Vec<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", enrollment_columns!(), " FROM enrollments e JOIN activity_items i ON i.activity_id = e.activity_id \
             WHERE e.user_id = $1 AND i.item_id = $2 AND e.status = 'in_progress' ORDER BY e.id"))
        .bind(user_id)
        .bind(item_id)
        .fetch_all(c)
        .await?),
        )
    }

    /// Open enrollments of an activity due in [from, to], counted per day.
    pub async fn due_counts(
        &mut self,
        activity_id: i64,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, i64)>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT due_on, COUNT(*) FROM enrollments WHERE activity_id = $1 AND status = 'in_progress' \
             AND due_on >= $2 AND due_on <= $3 GROUP BY due_on ORDER BY due_on"
        )
        .bind(activity_id)
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await?))
    }

    /// In-progress enrollments of inactive users (R54), oldest first.
    pub async fn purge_candidates(&mut self) -> Result<Vec<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", enrollment_columns!(), " FROM enrollments e JOIN users u ON u.id = e.user_id \
             WHERE u.active = FALSE AND e.status = 'in_progress' ORDER BY e.id"))
        .fetch_all(c)
        .await?),
        )
    }
}
