//! What makes the sweep incremental (R14 at scale): every write that changes
//! what a rule reads about a user — the user row, their groups, their
//! exemptions, their enrollments outside the sweep — stamps the user; each
//! (activity, user range) keeps the mark it was last swept at, and the next
//! sweep of the range re-evaluates only the users stamped since (and those
//! whose exemption ran out since), or nobody at all.
//!
//! The stamp orders writes against sweeps. On SQLite, where one transaction
//! writes at a time, it is a counter the sweep moves forward when a range
//! starts. On PostgreSQL it is the id of the writing transaction, and a
//! range's mark is the oldest transaction id still running when the range
//! started: whatever the range could not see was written by a transaction
//! at or after the mark.
//!
//! A sweep of an (activity, user range) re-evaluates only the users stamped at
//! or after the range's mark, so a write path that forgets to stamp is a sweep
//! that misses a user: new write paths go through the store functions that
//! stamp (`Tx::stamp_user`, or `stamped` on PostgreSQL, where the stamp rides
//! in the statement that writes the enrollment). The sweep's own statements
//! do not stamp.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgTypeInfo;
use sqlx::sqlite::SqliteTypeInfo;
use sqlx::{Postgres, Sqlite};

use std::collections::HashMap;

pub use roster_core::sweep::SweepUser;

use crate::db::{Backend, Result, Tx};
use crate::records::EnrollmentRecord;

/// The stamp SQLite gives the users a statement writes, as a macro so that
/// constant statements are built with `concat!`.
macro_rules! sqlite_stamp {
    () => {
        "(SELECT value FROM sweep_clock WHERE id = 1)"
    };
}
pub(crate) use sqlite_stamp;
/// The stamp PostgreSQL gives the users a statement writes.
macro_rules! postgres_stamp {
    () => {
        "pg_current_xact_id()::text::bigint"
    };
}
pub(crate) use postgres_stamp;

/// ` AND $column IN (the users bound at $n)` on PostgreSQL: the ids are
/// an `int8[]` (see `UserIds`).
macro_rules! in_ids_postgres {
    ($column:literal, $n:literal) => {
        concat!(" AND ", $column, " = ANY($", $n, ")")
    };
}
pub(crate) use in_ids_postgres;

/// The same on SQLite, where the ids are a JSON array.
macro_rules! in_ids_sqlite {
    ($column:literal, $n:literal) => {
        concat!(
            " AND ",
            $column,
            " IN (SELECT value FROM json_each($",
            $n,
            "))"
        )
    };
}
pub(crate) use in_ids_sqlite;

/// The users to evaluate again (`SweepSince::changed_users`) with the
/// mark's parameters at `$stamp`, `$day` and `$today`, as a constant.
macro_rules! changed_users {
    ($stamp:literal, $day:literal, $today:literal) => {
        concat!(
            "SELECT d.id FROM users d WHERE d.sweep_stamp >= $",
            $stamp,
            " AND d.id + 0 >= $2 AND d.id + 0 < $3 \
             UNION ALL SELECT x.user_id FROM exemptions x WHERE x.activity_id = $1 \
             AND x.until IS NOT NULL AND x.until >= $",
            $day,
            " AND x.until < $",
            $today,
            " AND x.user_id >= $2 AND x.user_id < $3"
        )
    };
}

/// PostgreSQL: `$statement` (a write on enrollments `RETURNING` their
/// columns, `user_id` among them) with the stamp of the user it wrote in the
/// same statement, one round trip instead of two.
macro_rules! stamped {
    ($statement:expr) => {
        concat!(
            $crate::marks::stamped_head!(),
            $statement,
            $crate::marks::stamped_tail!()
        )
    };
}
pub(crate) use stamped;

/// What `stamped!` writes before the statement, for a statement built in
/// pieces (a multi-row write).
macro_rules! stamped_head {
    () => {
        "WITH written AS ("
    };
}
pub(crate) use stamped_head;

/// What `stamped!` writes after it.
macro_rules! stamped_tail {
    () => {
        concat!(
            "), stamp AS (UPDATE users SET sweep_stamp = ",
            $crate::marks::postgres_stamp!(),
            " WHERE id IN (SELECT user_id FROM written)) SELECT * FROM written"
        )
    };
}
pub(crate) use stamped_tail;

/// The statements stamping the users `$condition` selects (over `$1`), per
/// backend, for `Tx::stamp_users`.
macro_rules! stamp_where {
    ($condition:literal) => {
        $crate::marks::StampSql {
            sqlite: concat!(
                "UPDATE users SET sweep_stamp = ",
                $crate::marks::sqlite_stamp!(),
                " WHERE ",
                $condition
            ),
            postgres: concat!(
                "UPDATE users SET sweep_stamp = ",
                $crate::marks::postgres_stamp!(),
                " WHERE ",
                $condition
            ),
        }
    };
}
pub(crate) use stamp_where;

/// A statement stamping some users, one text per backend (`stamp_where!`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StampSql {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// The marks of one activity's ranges, as a pass writes them
/// (`Tx::put_sweep_marks_many`).
#[derive(Clone, Copy, Debug)]
pub struct MarksWrite<'a> {
    pub activity_id: i64,
    /// User `lo..hi` each.
    pub ranges: &'a [(i64, i64)],
    /// The rule and period swept.
    pub fingerprint: &'a str,
    pub stamp: i64,
    pub day: &'a str,
}

/// What the last sweep of one (activity, user range) saw.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SweepMark {
    pub activity_id: i64,
    pub user_lo: i64,
    pub user_hi: i64,
    /// The rule and period swept; another one means a full sweep of the range.
    pub fingerprint: String,
    pub stamp: i64,
    /// The day swept, for exemptions that ran out since.
    pub day: String,
    /// The range's users the rule skipped after that sweep.
    pub skipped: i64,
}

/// User ids bound as one parameter: an `int8[]` on PostgreSQL (`= ANY($n)`),
/// a JSON array on SQLite (`IN (SELECT value FROM json_each($n))`). One
/// statement text whatever the number of ids, so it is prepared once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserIds(pub Vec<i64>);

impl UserIds {
    /// ` AND {column} IN (these users)`, the ids bound at `$n`: for the
    /// sweep's statements, assembled from fragments chosen per pass (see
    /// `sweep.rs`); a constant statement uses `in_ids_sqlite!` and
    /// `in_ids_postgres!` instead.
    pub(crate) fn clause(column: &str, n: usize, backend: Backend) -> String {
        match backend {
            Backend::Postgres => format!(" AND {column} = ANY(${n})"),
            Backend::Sqlite => format!(" AND {column} IN (SELECT value FROM json_each(${n}))"),
        }
    }
}

impl sqlx::Type<Sqlite> for UserIds {
    fn type_info() -> SqliteTypeInfo {
        <String as sqlx::Type<Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, Sqlite> for UserIds {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> std::result::Result<IsNull, BoxDynError> {
        <String as sqlx::Encode<'q, Sqlite>>::encode(serde_json::to_string(&self.0)?, buf)
    }
}

impl sqlx::Type<Postgres> for UserIds {
    fn type_info() -> PgTypeInfo {
        <Vec<i64> as sqlx::Type<Postgres>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, Postgres> for UserIds {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as sqlx::Database>::ArgumentBuffer,
    ) -> std::result::Result<IsNull, BoxDynError> {
        <Vec<i64> as sqlx::Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// An enrollment as `Tx::sweep_user_records` reads it: (user, activity,
/// enrollment id, status, period, due_on).
pub type UserEnrollment = (i64, i64, i64, String, Option<String>, Option<String>);

/// What `Tx::sweep_user_records` reads of some users in some activities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRecords {
    /// (user, activity, enrollment id, status, period, due_on).
    pub enrollments: Vec<UserEnrollment>,
    /// (user, activity, until).
    pub exemptions: Vec<(i64, i64, Option<String>)>,
}

/// A user with one of their groups (none: no group), as `sweep_user_facts`
/// reads them: id, active, service account, hire date, group.
type FactRow = (i64, bool, bool, Option<String>, Option<i64>);

/// A range swept since a mark: only users stamped at or after `stamp`, or
/// whose exemption from the activity ran out on or after `day`, are
/// evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepSince {
    pub stamp: i64,
    pub day: String,
}

impl SweepSince {
    /// The users of `$2..$3` to evaluate again for activity `$1`: stamped
    /// since the mark (`$first`), or whose exemption ran out on or after
    /// the mark's day (`$first + 1`) and before today (`$first + 2`); see
    /// `bind_since!`. The stamp index leads (`+ 0` keeps the id range from
    /// leading): few users change between sweeps. Bound, not written into
    /// the text, so each statement is prepared once per connection.
    fn changed_users(first: usize) -> String {
        format!(
            "SELECT d.id FROM users d WHERE d.sweep_stamp >= ${stamp} \
               AND d.id + 0 >= $2 AND d.id + 0 < $3 \
             UNION ALL SELECT x.user_id FROM exemptions x WHERE x.activity_id = $1 \
               AND x.until IS NOT NULL AND x.until >= ${day} AND x.until < ${today} \
               AND x.user_id >= $2 AND x.user_id < $3",
            stamp = first,
            day = first + 1,
            today = first + 2,
        )
    }

    /// ` AND {column} IN (users to evaluate again)`, its mark bound from
    /// parameter `$first` on.
    pub(crate) fn clause(column: &str, first: usize) -> String {
        format!(" AND {column} IN ({})", Self::changed_users(first))
    }
}

/// Binds a mark's three parameters (stamp, day, today) after the others of
/// a statement holding `SweepSince::clause`.
macro_rules! bind_since {
    ($query:expr, $since:expr, $today:expr) => {
        $query.bind($since.stamp).bind(&$since.day).bind($today)
    };
}
pub(crate) use bind_since;

impl Tx {
    /// Stamps the users `statement` selects (over `$1`, bound to `value`):
    /// their sweep inputs changed in this transaction.
    pub(crate) async fn stamp_users(&mut self, statement: StampSql, value: i64) -> Result<()> {
        on_tx_sql!(
            self,
            statement.sqlite,
            statement.postgres,
            sql,
            c => sqlx::query(sql).bind(value).execute(c).await?.rows_affected()
        );
        Ok(())
    }

    /// SQLite: stamps the users of the enrollments a multi-row write wrote
    /// (on PostgreSQL `stamped` did in the same statement).
    pub(crate) async fn stamp_written(&mut self, written: &[EnrollmentRecord]) -> Result<()> {
        if matches!(self, Tx::Sqlite(_)) && !written.is_empty() {
            let users = UserIds(written.iter().map(|record| record.user_id).collect());
            self.stamp_users_of(&users).await?;
        }
        Ok(())
    }

    /// Stamps the users of `ids`.
    pub(crate) async fn stamp_users_of(&mut self, ids: &UserIds) -> Result<()> {
        on_tx_sql!(
            self,
            concat!(
                "UPDATE users SET sweep_stamp = ",
                sqlite_stamp!(),
                " WHERE TRUE",
                in_ids_sqlite!("id", 1)
            ),
            concat!(
                "UPDATE users SET sweep_stamp = ",
                postgres_stamp!(),
                " WHERE TRUE",
                in_ids_postgres!("id", 1)
            ),
            sql,
            c => sqlx::query(sql).bind(ids).execute(c).await?.rows_affected()
        );
        Ok(())
    }

    /// Stamps one user: something a rule reads about them changed.
    pub async fn stamp_user(&mut self, user_id: i64) -> Result<()> {
        self.stamp_users(stamp_where!("id = $1"), user_id).await
    }

    /// The stamp a range's sweep starts at, taken before it reads anything.
    pub async fn sweep_stamp_now(&mut self) -> Result<i64> {
        Ok(on_tx_sql!(
            self,
            "UPDATE sweep_clock SET value = value + 1 WHERE id = 1 RETURNING value",
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            sql,
            c => sqlx::query_scalar(sql).fetch_one(c).await?
        ))
    }

    /// The marks of an activity's ranges.
    pub async fn sweep_marks(&mut self, activity_id: i64) -> Result<Vec<SweepMark>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT activity_id, user_lo, user_hi, fingerprint, stamp, day, skipped FROM sweep_marks \
             WHERE activity_id = $1 ORDER BY user_lo"
        )
        .bind(activity_id)
        .fetch_all(c)
        .await?))
    }

    /// The marks of the ranges of the activities `ids`, by activity and
    /// range (one statement for a batch of sweep jobs).
    pub async fn sweep_marks_of(&mut self, ids: &UserIds) -> Result<Vec<SweepMark>> {
        macro_rules! marks_of {
            ($in_ids:expr) => {
                concat!(
                    "SELECT activity_id, user_lo, user_hi, fingerprint, stamp, day, skipped FROM sweep_marks \
                     WHERE TRUE",
                    $in_ids,
                    " ORDER BY activity_id, user_lo"
                )
            };
        }
        Ok(on_tx_sql!(
            self,
            marks_of!(in_ids_sqlite!("activity_id", 1)),
            marks_of!(in_ids_postgres!("activity_id", 1)),
            sql,
            c => sqlx::query_as(sql).bind(ids).fetch_all(c).await?
        ))
    }

    /// Writes the marks of an activity's ranges `ranges` (user `lo..hi`
    /// each): the rule and period swept, the stamp and day, and the skips
    /// recorded in each range, counted by the same statement. Answers the
    /// skips of all the ranges.
    pub async fn put_sweep_marks(
        &mut self,
        activity_id: i64,
        ranges: &[(i64, i64)],
        fingerprint: &str,
        stamp: i64,
        day: &str,
    ) -> Result<i64> {
        let skipped = self
            .put_sweep_marks_many(&[MarksWrite {
                activity_id,
                ranges,
                fingerprint,
                stamp,
                day,
            }])
            .await?;
        Ok(skipped.iter().sum())
    }

    /// `put_sweep_marks` for several activities' marks at once (the passes
    /// of a batch of sweep jobs): one statement, or one per 500 ranges and
    /// whenever a range comes again in `writes`. Answers the skips of each
    /// write's ranges, in order.
    pub async fn put_sweep_marks_many(&mut self, writes: &[MarksWrite<'_>]) -> Result<Vec<i64>> {
        const INSERT: &str = "INSERT INTO sweep_marks (activity_id, user_lo, user_hi, fingerprint, stamp, day, skipped) \
             SELECT r.column1, r.column2, r.column3, r.column4, r.column5, r.column6, \
             (SELECT COUNT(*) FROM sweep_skips s WHERE s.activity_id = r.column1 \
               AND s.user_id >= r.column2 AND s.user_id < r.column3) FROM (";
        const CONFLICT: &str = ") AS r WHERE TRUE ON CONFLICT (activity_id, user_lo, user_hi) \
             DO UPDATE SET fingerprint = excluded.fingerprint, stamp = excluded.stamp, day = excluded.day, \
             skipped = excluded.skipped RETURNING activity_id, user_lo, skipped";
        // (write, range) in order, cut where a statement would hold a range
        // twice (an upsert may not change a row twice) or grow too long.
        let mut statements: Vec<Vec<(usize, i64, i64)>> = vec![Vec::new()];
        let mut seen = std::collections::HashSet::new();
        for (index, write) in writes.iter().enumerate() {
            for &(lo, hi) in write.ranges {
                let key = (write.activity_id, lo, hi);
                let current = statements.last().map_or(0, Vec::len);
                if current >= 500 || !seen.insert(key) {
                    statements.push(Vec::new());
                    seen.clear();
                    seen.insert(key);
                }
                if let Some(last) = statements.last_mut() {
                    last.push((index, lo, hi));
                }
            }
        }
        let mut skipped = vec![0; writes.len()];
        for rows in statements.iter().filter(|rows| !rows.is_empty()) {
            let counted: Vec<(i64, i64, i64)> = on_tx!(self, c => {
                let mut query = sqlx::QueryBuilder::new(INSERT);
                query.push_values(rows, |mut row, &(index, lo, hi)| {
                    let write = &writes[index];
                    row.push("CAST(")
                        .push_bind_unseparated(write.activity_id)
                        .push_unseparated(" AS BIGINT)")
                        .push("CAST(")
                        .push_bind_unseparated(lo)
                        .push_unseparated(" AS BIGINT)")
                        .push("CAST(")
                        .push_bind_unseparated(hi)
                        .push_unseparated(" AS BIGINT)")
                        .push("CAST(")
                        .push_bind_unseparated(write.fingerprint)
                        .push_unseparated(" AS TEXT)")
                        .push("CAST(")
                        .push_bind_unseparated(write.stamp)
                        .push_unseparated(" AS BIGINT)")
                        .push("CAST(")
                        .push_bind_unseparated(write.day)
                        .push_unseparated(" AS TEXT)");
                });
                query.push(CONFLICT);
                query.build_query_as().fetch_all(c).await?
            });
            let by_range: HashMap<(i64, i64), i64> = counted
                .into_iter()
                .map(|(activity_id, lo, count)| ((activity_id, lo), count))
                .collect();
            for &(index, lo, _) in rows {
                skipped[index] += by_range
                    .get(&(writes[index].activity_id, lo))
                    .copied()
                    .unwrap_or(0);
            }
        }
        Ok(skipped)
    }

    /// Forgets every mark and recorded skip: the next sweep is a full one.
    pub async fn clear_sweep_marks(&mut self) -> Result<()> {
        on_tx!(self, c => {
            sqlx::query("DELETE FROM sweep_marks").execute(&mut *c).await?;
            sqlx::query("DELETE FROM sweep_skips").execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }

    /// Whether any user of `lo..hi` needs evaluating again for the activity
    /// on `today` since the mark.
    pub async fn sweep_range_dirty(
        &mut self,
        activity_id: i64,
        lo: i64,
        hi: i64,
        since: &SweepSince,
        today: &str,
    ) -> Result<bool> {
        const SQL: &str = concat!("SELECT EXISTS (", changed_users!(4, 5, 6), ")");
        Ok(on_tx!(self, c => bind_since!(sqlx::query_scalar(SQL)
            .bind(activity_id)
            .bind(lo)
            .bind(hi), since, today)
            .fetch_one(c)
            .await?))
    }

    /// The users stamped at or after `stamp`, with their stamps, in id
    /// order, at most `limit`: the part of every activity's changed users
    /// that does not depend on the activity.
    pub async fn sweep_stamped_users(&mut self, stamp: i64, limit: i64) -> Result<Vec<(i64, i64)>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, sweep_stamp FROM users WHERE sweep_stamp >= $1 ORDER BY id LIMIT $2"
        )
        .bind(stamp)
        .bind(limit)
        .fetch_all(c)
        .await?))
    }

    /// The exemptions of every activity that ran out on or after `day` and
    /// before `today`, as (activity, user): the other part.
    pub async fn sweep_exemptions_ended(
        &mut self,
        day: &str,
        today: &str,
    ) -> Result<Vec<(i64, i64)>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT activity_id, user_id FROM exemptions \
             WHERE until IS NOT NULL AND until >= $1 AND until < $2"
        )
        .bind(day)
        .bind(today)
        .fetch_all(c)
        .await?))
    }

    /// What a rule's scope reads of each of `users` (those found), in id
    /// order: whether active, whether a service account, the hire date and
    /// the groups; and the activities where a skip is recorded for them.
    /// Read once for the users an incremental sweep batch evaluates, so
    /// that each activity's statements look only at those its scope may
    /// hold.
    pub async fn sweep_user_facts(&mut self, users: &UserIds) -> Result<Vec<SweepUser>> {
        macro_rules! people {
            ($in_ids:expr) => {
                concat!(
                    "SELECT u.id, u.active, u.role = 'integration', u.hired_on, gm.group_id FROM users u \
                     LEFT JOIN group_members gm ON gm.user_id = u.id WHERE TRUE",
                    $in_ids,
                    " ORDER BY u.id"
                )
            };
        }
        macro_rules! skips {
            ($in_ids:expr) => {
                concat!(
                    "SELECT user_id, activity_id FROM sweep_skips WHERE TRUE",
                    $in_ids
                )
            };
        }
        let (people, skips) = on_tx_sql!(
            self,
            (
                people!(in_ids_sqlite!("u.id", 1)),
                skips!(in_ids_sqlite!("user_id", 1))
            ),
            (
                people!(in_ids_postgres!("u.id", 1)),
                skips!(in_ids_postgres!("user_id", 1))
            ),
            sql,
            _c => sql
        );
        let (rows, skips): (Vec<FactRow>, Vec<(i64, i64)>) = on_tx!(self, c => {
            let rows = sqlx::query_as(people)
                .bind(users)
                .fetch_all(&mut *c)
                .await?;
            let skips = sqlx::query_as(skips)
                .bind(users)
                .fetch_all(&mut *c)
                .await?;
            (rows, skips)
        });
        let mut facts: Vec<SweepUser> = Vec::new();
        for (id, active, integration, hired_on, group) in rows {
            if facts.last().is_none_or(|last| last.id != id) {
                facts.push(SweepUser {
                    id,
                    active,
                    integration,
                    hired_on,
                    groups: Vec::new(),
                    skipped_in: Vec::new(),
                });
            }
            if let (Some(last), Some(group)) = (facts.last_mut(), group) {
                last.groups.push(group);
            }
        }
        for (user_id, activity_id) in skips {
            if let Ok(at) = facts.binary_search_by_key(&user_id, |user| user.id) {
                facts[at].skipped_in.push(activity_id);
            }
        }
        Ok(facts)
    }

    /// Every enrollment of `users` in `activities`, as (user, activity, id,
    /// status, period, due_on), and every exemption of theirs from them, as (user,
    /// activity, until): what a batch of incremental passes needs to know of
    /// each user's open enrollment, whether their need is met and whether
    /// they are exempt, read once for all of them.
    pub async fn sweep_user_records(
        &mut self,
        users: &UserIds,
        activities: &UserIds,
    ) -> Result<UserRecords> {
        // SQLite would probe the enrollments' (activity, user) index once
        // per pair of the two lists; the unary `+` keeps the activity term
        // off the indexes, so it walks each user's entries of the (user,
        // activity) index instead and keeps those of the batch's activities:
        // a few dozen entries per user rather than one probe per activity.
        // (Exemptions have only the pair index, and few rows.)
        macro_rules! select_enrollments {
            () => {
                "SELECT user_id, activity_id, id, status, period, due_on FROM enrollments"
            };
        }
        macro_rules! select_exemptions {
            () => {
                "SELECT user_id, activity_id, until FROM exemptions"
            };
        }
        let (enrollments, exemptions) = on_tx_sql!(
            self,
            (
                concat!(
                    select_enrollments!(),
                    " WHERE TRUE",
                    in_ids_sqlite!("user_id", 1),
                    in_ids_sqlite!("+activity_id", 2)
                ),
                concat!(
                    select_exemptions!(),
                    " WHERE TRUE",
                    in_ids_sqlite!("user_id", 1),
                    in_ids_sqlite!("activity_id", 2)
                )
            ),
            (
                concat!(
                    select_enrollments!(),
                    " WHERE TRUE",
                    in_ids_postgres!("user_id", 1),
                    in_ids_postgres!("activity_id", 2)
                ),
                concat!(
                    select_exemptions!(),
                    " WHERE TRUE",
                    in_ids_postgres!("user_id", 1),
                    in_ids_postgres!("activity_id", 2)
                )
            ),
            sql,
            _c => sql
        );
        Ok(on_tx!(self, c => {
            let enrollments = sqlx::query_as(enrollments)
                .bind(users)
                .bind(activities)
                .fetch_all(&mut *c)
                .await?;
            let exemptions = sqlx::query_as(exemptions)
                .bind(users)
                .bind(activities)
                .fetch_all(&mut *c)
                .await?;
            UserRecords { enrollments, exemptions }
        }))
    }

    /// The users of `lo..hi` the activity's rule skipped when last evaluated.
    pub async fn sweep_skip_count(&mut self, activity_id: i64, lo: i64, hi: i64) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM sweep_skips WHERE activity_id = $1 AND user_id >= $2 AND user_id < $3"
        )
        .bind(activity_id)
        .bind(lo)
        .bind(hi)
        .fetch_one(c)
        .await?))
    }
}
