//! Enrollments: insert under R2, read, change, delete and the filtered lists
//! of R55 and R60–R62.

use crate::db::{Result, Tx, on_constraint};
use crate::records::{EnrollmentRecord, EnrollmentRow};

const RETURNING_COLUMNS: &str = "id, user_id, activity_id, type, status, due_on, required_by, reason, \
     enrolled_at, completed_at, source_kind, source, period";
const ENROLLMENT_COLUMNS: &str = "e.id, e.user_id, e.activity_id, e.type, e.status, e.due_on, \
     e.required_by, e.reason, e.enrolled_at, e.completed_at, e.source_kind, e.source, e.period";

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

impl Tx {
    /// Inserts the enrollment unless a unique key refuses it (an open one
    /// exists, R2, or the period is held, R14): then `None`.
    pub async fn insert_enrollment(
        &mut self,
        new: &EnrollmentInsert,
    ) -> Result<Option<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO enrollments (user_id, activity_id, type, status, due_on, required_by, reason, \
             enrolled_at, completed_at, source_kind, source, period, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $8) \
             ON CONFLICT DO NOTHING RETURNING {RETURNING_COLUMNS}"
        )))
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
        .map_err(on_constraint)?),
        )
    }

    pub async fn get_enrollment(&mut self, id: i64) -> Result<Option<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.id = $1"
        )))
        .bind(id)
        .fetch_optional(c)
        .await?),
        )
    }

    /// Applies the patch; a unique key refusing it (a second open enrollment)
    /// is a `Conflict`.
    pub async fn update_enrollment(
        &mut self,
        id: i64,
        patch: &EnrollmentPatch,
        now: i64,
    ) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "UPDATE enrollments SET type = $2, status = $3, due_on = $4, required_by = $5, reason = $6, \
             completed_at = $7, period = $8, updated_at = $9 WHERE id = $1"
        )
        .bind(id)
        .bind(&patch.enrollment_type)
        .bind(&patch.status)
        .bind(&patch.due_on)
        .bind(&patch.required_by)
        .bind(&patch.reason)
        .bind(patch.completed_at)
        .bind(&patch.period)
        .bind(now)
        .execute(c)
        .await
        .map_err(on_constraint)?.rows_affected());
        Ok(())
    }

    pub async fn delete_enrollment(&mut self, id: i64) -> Result<()> {
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
            on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.user_id = $1 AND e.activity_id = $2 \
             AND e.status = 'in_progress'"
        )))
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
            on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.user_id = $1 AND e.activity_id = $2 ORDER BY e.id"
        )))
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
    /// false when it has no items.
    pub async fn passed_all_items(&mut self, user_id: i64, parent_id: i64) -> Result<bool> {
        let (items, passed): (i64, i64) = on_tx!(self, c => sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM enrollments e \
             WHERE e.user_id = $1 AND e.activity_id = i.item_id AND e.status = 'passed')) \
             FROM activity_items i WHERE i.activity_id = $2"
        )
        .bind(user_id)
        .bind(parent_id)
        .fetch_one(c)
        .await?);
        Ok(items > 0 && items == passed)
    }

    /// Enrollments with their activity and user, filtered and paginated.
    pub async fn list_enrollments(
        &mut self,
        filter: &EnrollmentFilter,
    ) -> Result<Vec<EnrollmentRow>> {
        let pattern = filter
            .title_q
            .as_ref()
            .map(|q| format!("%{}%", q.to_lowercase()));
        let order = if filter.newest_first {
            "AND ($1 IS NULL OR e.id < $1) ORDER BY e.id DESC"
        } else {
            "AND ($1 IS NULL OR e.id > $1) ORDER BY e.id"
        };
        Ok(
            on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS}, a.title AS activity_title, a.kind AS activity_kind, \
             a.active AS activity_active, u.username \
             FROM enrollments e JOIN activities a ON a.id = e.activity_id JOIN users u ON u.id = e.user_id \
             WHERE ($2 IS NULL OR e.user_id = $2) AND ($3 IS NULL OR e.activity_id = $3) \
             AND ($4 IS NULL OR e.status = $4) AND ($5 IS NULL OR e.type = $5) \
             AND ($6 IS NULL OR e.source_kind = $6) \
             AND ($7 IS NULL OR ($7 = (e.status = 'in_progress' AND e.due_on IS NOT NULL AND e.due_on < $8))) \
             AND ($9 IS NULL OR e.due_on >= $9) AND ($10 IS NULL OR e.due_on <= $10) \
             AND ($11 IS NULL OR e.enrolled_at >= $11) AND ($12 IS NULL OR e.enrolled_at < $12) \
             AND ($13 IS NULL OR LOWER(a.title) LIKE $13) AND ($14 IS NULL OR a.active = $14) \
             AND ($15 IS NULL OR u.active = $15) \
             {order} LIMIT $16"
        )))
        .bind(filter.cursor)
        .bind(filter.user_id)
        .bind(filter.activity_id)
        .bind(&filter.status)
        .bind(&filter.enrollment_type)
        .bind(&filter.source_kind)
        .bind(filter.overdue)
        .bind(&filter.today)
        .bind(&filter.due_from)
        .bind(&filter.due_to)
        .bind(filter.enrolled_from)
        .bind(filter.enrolled_to)
        .bind(&pattern)
        .bind(filter.activity_active)
        .bind(filter.user_active)
        .bind(filter.limit)
        .fetch_all(c)
        .await?),
        )
    }

    /// Open enrollments of one activity, for bundle retroactivity (R40).
    pub async fn open_enrollments_in(&mut self, activity_id: i64) -> Result<Vec<EnrollmentRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.activity_id = $1 AND e.status = 'in_progress' ORDER BY e.id"
        )))
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
            on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments e JOIN activity_items i ON i.activity_id = e.activity_id \
             WHERE e.user_id = $1 AND i.item_id = $2 AND e.status = 'in_progress' ORDER BY e.id"
        )))
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
            on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments e JOIN users u ON u.id = e.user_id \
             WHERE u.active = FALSE AND e.status = 'in_progress' ORDER BY e.id"
        )))
        .fetch_all(c)
        .await?),
        )
    }
}
