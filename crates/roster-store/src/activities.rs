//! Activities, their prerequisites and items, and the rules attached to them.

use crate::db::{Result, Tx, on_constraint};
use crate::marks::UserIds;
use crate::records::{ActivityBrief, ActivityRecord, PostRuleRecord};

/// The columns a record is read from, written once as a macro so that the
/// statements reading them are constant (`concat!`), not formatted.
macro_rules! activity_columns {
    () => {
        "id, title, kind, active, in_catalog, allow_failure, enrollment_token, auto_rule, created_at"
    };
}

/// `activity_columns!` of the activity named `a` in a join.
macro_rules! activity_columns_of_a {
    () => {
        "a.id, a.title, a.kind, a.active, a.in_catalog, a.allow_failure, \
     a.enrollment_token, a.auto_rule, a.created_at"
    };
}

impl Tx {
    pub async fn insert_activity(&mut self, activity: &ActivityRecord, now: i64) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "INSERT INTO activities (title, kind, active, in_catalog, allow_failure, enrollment_token, \
             auto_rule, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7) RETURNING id",
        )
        .bind(&activity.title)
        .bind(&activity.kind)
        .bind(activity.active)
        .bind(activity.in_catalog)
        .bind(activity.allow_failure)
        .bind(&activity.enrollment_token)
        .bind(now)
        .fetch_one(c)
        .await
        .map_err(on_constraint)?))
    }

    pub async fn update_activity(&mut self, activity: &ActivityRecord, now: i64) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "UPDATE activities SET title = $2, active = $3, in_catalog = $4, allow_failure = $5, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(activity.id)
        .bind(&activity.title)
        .bind(activity.active)
        .bind(activity.in_catalog)
        .bind(activity.allow_failure)
        .bind(now)
        .execute(c)
        .await?.rows_affected());
        Ok(())
    }

    /// Every activity's id, title, kind and active flag, by id: what a
    /// learner's lists show of it, kept by the server between requests.
    pub async fn activity_briefs(&mut self) -> Result<Vec<ActivityBrief>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, title, kind, active FROM activities ORDER BY id",
        )
        .fetch_all(c)
        .await?))
    }

    pub async fn get_activity(&mut self, id: i64) -> Result<Option<ActivityRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", activity_columns!(), " FROM activities WHERE id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await?),
        )
    }

    /// The activity, whether it is an item of a curriculum or bundle, and
    /// its post-enrollment rules (in id order), in one statement: what a
    /// completion needs of its activity.
    pub async fn get_activity_for_completion(
        &mut self,
        id: i64,
    ) -> Result<Option<(ActivityRecord, bool, Vec<PostRuleRecord>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            record: ActivityRecord,
            is_item: bool,
            rule_id: Option<i64>,
            trigger_on: Option<String>,
            delay_days: Option<i64>,
            target_ids: Option<String>,
            allow_consecutive: Option<bool>,
        }
        let rows: Vec<Row> = on_tx!(self, c => sqlx::query_as(concat!("SELECT ", activity_columns_of_a!(), ", EXISTS (SELECT 1 FROM activity_items i WHERE i.item_id = $1) AS is_item, \
             p.id AS rule_id, p.trigger_on, p.delay_days, p.target_ids, p.allow_consecutive \
             FROM activities a LEFT JOIN post_rules p ON p.activity_id = a.id WHERE a.id = $1 ORDER BY p.id"))
        .bind(id)
        .fetch_all(c)
        .await?);
        let mut rows = rows.into_iter();
        let Some(first) = rows.next() else {
            return Ok(None);
        };
        let rule_of = |row: &Row| -> Option<PostRuleRecord> {
            Some(PostRuleRecord {
                id: row.rule_id?,
                activity_id: id,
                trigger_on: row.trigger_on.clone()?,
                delay_days: row.delay_days?,
                target_ids: row.target_ids.clone()?,
                allow_consecutive: row.allow_consecutive?,
            })
        };
        let mut rules: Vec<PostRuleRecord> = rule_of(&first).into_iter().collect();
        rules.extend(rows.filter_map(|row| rule_of(&row)));
        Ok(Some((first.record, first.is_item, rules)))
    }

    /// The activities of `ids` that exist, in id order (one statement for a
    /// batch of sweep jobs).
    pub async fn get_activities(&mut self, ids: &UserIds) -> Result<Vec<ActivityRecord>> {
        Ok(on_tx_sql!(
            self,
            concat!(
                "SELECT ",
                activity_columns!(),
                " FROM activities WHERE TRUE",
                crate::marks::in_ids_sqlite!("id", 1),
                " ORDER BY id"
            ),
            concat!(
                "SELECT ",
                activity_columns!(),
                " FROM activities WHERE TRUE",
                crate::marks::in_ids_postgres!("id", 1),
                " ORDER BY id"
            ),
            sql,
            c => sqlx::query_as(sql).bind(ids).fetch_all(c).await?
        ))
    }

    pub async fn find_activity_by_token(&mut self, token: &str) -> Result<Option<ActivityRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", activity_columns!(), " FROM activities WHERE enrollment_token = $1"))
        .bind(token)
        .fetch_optional(c)
        .await?),
        )
    }

    /// Activities by title search and kind; `catalog_only` keeps active ones in
    /// the catalog (R3).
    pub async fn list_activities(
        &mut self,
        q: Option<&str>,
        kind: Option<&str>,
        catalog_only: bool,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ActivityRecord>> {
        let pattern = q.map(|q| format!("%{}%", q.to_lowercase()));
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", activity_columns!(), " FROM activities WHERE id > $1 \
             AND ($2 IS NULL OR LOWER(title) LIKE $2) AND ($3 IS NULL OR kind = $3) \
             AND ($4 = FALSE OR (active AND in_catalog)) ORDER BY id LIMIT $5"))
        .bind(after_id)
        .bind(&pattern)
        .bind(kind)
        .bind(catalog_only)
        .bind(limit)
        .fetch_all(c)
        .await?),
        )
    }

    /// Every activity that has an auto-enrollment rule, by id.
    pub async fn activities_with_rules(&mut self) -> Result<Vec<ActivityRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", activity_columns!(), " FROM activities WHERE auto_rule IS NOT NULL ORDER BY id"))
        .fetch_all(c)
        .await?),
        )
    }

    /// The ids among `ids` that name no activity.
    pub async fn missing_activities(&mut self, ids: &[i64]) -> Result<Vec<i64>> {
        let mut missing = Vec::new();
        for id in ids {
            let found: Option<i64> = on_tx!(self, c => sqlx::query_scalar("SELECT id FROM activities WHERE id = $1")
                .bind(id)
                .fetch_optional(c)
                .await?);
            if found.is_none() {
                missing.push(*id);
            }
        }
        Ok(missing)
    }

    pub async fn prerequisite_ids(&mut self, activity_id: i64) -> Result<Vec<i64>> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "SELECT prerequisite_id FROM activity_prerequisites WHERE activity_id = $1 ORDER BY prerequisite_id"
        )
        .bind(activity_id)
        .fetch_all(c)
        .await?))
    }

    pub async fn set_prerequisites(&mut self, activity_id: i64, ids: &[i64]) -> Result<()> {
        on_tx!(self, c => sqlx::query("DELETE FROM activity_prerequisites WHERE activity_id = $1")
            .bind(activity_id)
            .execute(c)
            .await?.rows_affected());
        for id in ids {
            on_tx!(self, c => sqlx::query(
                "INSERT INTO activity_prerequisites (activity_id, prerequisite_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            )
            .bind(activity_id)
            .bind(id)
            .execute(c)
            .await?.rows_affected());
        }
        Ok(())
    }

    pub async fn item_ids(&mut self, activity_id: i64) -> Result<Vec<i64>> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "SELECT item_id FROM activity_items WHERE activity_id = $1 ORDER BY position, item_id"
        )
        .bind(activity_id)
        .fetch_all(c)
        .await?))
    }

    pub async fn set_items(&mut self, activity_id: i64, ids: &[i64]) -> Result<()> {
        on_tx!(self, c => sqlx::query("DELETE FROM activity_items WHERE activity_id = $1")
            .bind(activity_id)
            .execute(c)
            .await?.rows_affected());
        for (position, id) in ids.iter().enumerate() {
            on_tx!(self, c => sqlx::query(
                "INSERT INTO activity_items (activity_id, item_id, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            )
            .bind(activity_id)
            .bind(id)
            .bind(position as i64)
            .execute(c)
            .await?.rows_affected());
        }
        Ok(())
    }

    /// Curricula and bundles that hold `item_id`.
    pub async fn parents_of(&mut self, item_id: i64) -> Result<Vec<i64>> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "SELECT activity_id FROM activity_items WHERE item_id = $1 ORDER BY activity_id"
        )
        .bind(item_id)
        .fetch_all(c)
        .await?))
    }

    /// Saves the rule (JSON) and its groups; `None` clears it.
    pub async fn set_auto_rule(
        &mut self,
        activity_id: i64,
        rule_json: Option<&str>,
        group_ids: &[i64],
        now: i64,
    ) -> Result<()> {
        on_tx!(self, c => {
            sqlx::query("UPDATE activities SET auto_rule = $2, updated_at = $3 WHERE id = $1")
                .bind(activity_id)
                .bind(rule_json)
                .bind(now)
                .execute(&mut *c)
                .await?.rows_affected();
            sqlx::query("DELETE FROM auto_rule_groups WHERE activity_id = $1")
                .bind(activity_id)
                .execute(&mut *c)
                .await?.rows_affected()
        });
        for group_id in group_ids {
            on_tx!(self, c => sqlx::query(
                "INSERT INTO auto_rule_groups (activity_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            )
            .bind(activity_id)
            .bind(group_id)
            .execute(c)
            .await?.rows_affected());
        }
        Ok(())
    }

    pub async fn insert_post_rule(&mut self, rule: &PostRuleRecord, now: i64) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "INSERT INTO post_rules (activity_id, trigger_on, delay_days, target_ids, allow_consecutive, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        )
        .bind(rule.activity_id)
        .bind(&rule.trigger_on)
        .bind(rule.delay_days)
        .bind(&rule.target_ids)
        .bind(rule.allow_consecutive)
        .bind(now)
        .fetch_one(c)
        .await?))
    }

    pub async fn update_post_rule(&mut self, rule: &PostRuleRecord) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "UPDATE post_rules SET trigger_on = $2, delay_days = $3, target_ids = $4, allow_consecutive = $5 WHERE id = $1"
        )
        .bind(rule.id)
        .bind(&rule.trigger_on)
        .bind(rule.delay_days)
        .bind(&rule.target_ids)
        .bind(rule.allow_consecutive)
        .execute(c)
        .await?.rows_affected());
        Ok(())
    }

    pub async fn delete_post_rule(&mut self, id: i64) -> Result<()> {
        on_tx!(self, c => sqlx::query("DELETE FROM post_rules WHERE id = $1").bind(id).execute(c).await?.rows_affected());
        Ok(())
    }

    /// The post-enrollment rules of several activities, in activity and id
    /// order.
    pub async fn post_rules_of(&mut self, activity_ids: &UserIds) -> Result<Vec<PostRuleRecord>> {
        macro_rules! rules_of {
            ($in_ids:expr) => {
                concat!(
                    "SELECT id, activity_id, trigger_on, delay_days, target_ids, allow_consecutive FROM post_rules \
                     WHERE TRUE",
                    $in_ids,
                    " ORDER BY activity_id, id"
                )
            };
        }
        Ok(on_tx_sql!(
            self,
            rules_of!(crate::marks::in_ids_sqlite!("activity_id", 1)),
            rules_of!(crate::marks::in_ids_postgres!("activity_id", 1)),
            sql,
            c => sqlx::query_as(sql).bind(activity_ids).fetch_all(c).await?
        ))
    }

    pub async fn post_rules(&mut self, activity_id: i64) -> Result<Vec<PostRuleRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, activity_id, trigger_on, delay_days, target_ids, allow_consecutive FROM post_rules \
             WHERE activity_id = $1 ORDER BY id"
        )
        .bind(activity_id)
        .fetch_all(c)
        .await?))
    }
}
