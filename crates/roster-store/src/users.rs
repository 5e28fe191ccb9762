//! Users, groups, membership and API tokens.

use crate::db::{Result, Tx, on_constraint};
use crate::marks::UserIds;
use crate::records::{GroupRecord, UserRecord};

/// The columns a record is read from, written once as a macro so that the
/// statements reading them are constant (`concat!`), not formatted.
macro_rules! user_columns {
    () => {
        "id, username, email, display_name, active, hired_on, external_id, \
     employee_number, role, password_hash, created_at"
    };
}

/// `user_columns!` of the user named `u` in a join.
macro_rules! user_columns_of_u {
    () => {
        "u.id, u.username, u.email, u.display_name, u.active, u.hired_on, u.external_id, \
         u.employee_number, u.role, u.password_hash, u.created_at"
    };
}

#[derive(Clone, Debug, Default)]
pub struct UserInsert {
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    pub hired_on: Option<String>,
    pub external_id: Option<String>,
    pub employee_number: Option<String>,
    pub role: String,
    pub password_hash: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    pub q: Option<String>,
    pub active: Option<bool>,
    pub group_id: Option<i64>,
    pub after_id: i64,
    pub limit: i64,
}

impl Tx {
    pub async fn insert_user(&mut self, user: &UserInsert, now: i64) -> Result<i64> {
        let id: i64 = on_tx!(self, c => sqlx::query_scalar(
            "INSERT INTO users (username, email, display_name, active, hired_on, external_id, \
             employee_number, role, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
        )
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(user.active)
        .bind(&user.hired_on)
        .bind(&user.external_id)
        .bind(&user.employee_number)
        .bind(&user.role)
        .bind(&user.password_hash)
        .bind(now)
        .fetch_one(c)
        .await
        .map_err(on_constraint)?);
        self.stamp_user(id).await?;
        Ok(id)
    }

    /// Writes every column of the user but its id and creation time.
    pub async fn update_user(&mut self, user: &UserRecord, now: i64) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "UPDATE users SET username = $2, email = $3, display_name = $4, active = $5, \
             hired_on = $6, external_id = $7, employee_number = $8, role = $9, \
             password_hash = $10, updated_at = $11 WHERE id = $1",
        )
        .bind(user.id)
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(user.active)
        .bind(&user.hired_on)
        .bind(&user.external_id)
        .bind(&user.employee_number)
        .bind(&user.role)
        .bind(&user.password_hash)
        .bind(now)
        .execute(c)
        .await
        .map_err(on_constraint)?.rows_affected());
        self.stamp_user(user.id).await?;
        Ok(())
    }

    pub async fn get_user(&mut self, id: i64) -> Result<Option<UserRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await?),
        )
    }

    /// The users of `ids` that exist, in id order, in one statement, held
    /// until the transaction ends: on PostgreSQL their rows are locked (in
    /// id order, `FOR UPDATE`), so that two transactions acting for the same
    /// learners — batches of post-enrollment jobs on two workers — run one
    /// after the other, the second seeing what the first wrote; SQLite's
    /// single writer does so already.
    pub async fn lock_users(&mut self, ids: &UserIds) -> Result<Vec<UserRecord>> {
        Ok(on_tx_sql!(
            self,
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE TRUE",
                crate::marks::in_ids_sqlite!("id", 1),
                " ORDER BY id"
            ),
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE TRUE",
                crate::marks::in_ids_postgres!("id", 1),
                " ORDER BY id FOR UPDATE"
            ),
            sql,
            c => sqlx::query_as(sql).bind(ids).fetch_all(c).await?
        ))
    }

    /// Which of `ids` are users, in one statement per thousand ids.
    pub async fn existing_user_ids(
        &mut self,
        ids: &[i64],
    ) -> Result<std::collections::HashSet<i64>> {
        let mut found = std::collections::HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let rows: Vec<i64> = on_tx!(self, c => {
                let mut builder = sqlx::QueryBuilder::new("SELECT id FROM users WHERE id IN (");
                let mut separated = builder.separated(", ");
                for id in chunk {
                    separated.push_bind(*id);
                }
                builder.push(")");
                builder.build_query_scalar().fetch_all(c).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    pub async fn find_user_by_username(&mut self, username: &str) -> Result<Option<UserRecord>> {
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1"))
        .bind(username)
        .fetch_optional(c)
        .await?),
        )
    }

    pub async fn find_user_by_token_hash(&mut self, hash: &str) -> Result<Option<UserRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(concat!(
            "SELECT ", user_columns_of_u!(), " FROM users u JOIN api_tokens t ON t.user_id = u.id WHERE t.token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(c)
        .await?))
    }

    pub async fn list_users(&mut self, filter: &UserFilter) -> Result<Vec<UserRecord>> {
        let pattern = filter.q.as_ref().map(|q| format!("%{}%", q.to_lowercase()));
        Ok(
            on_tx!(self, c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id > $1 \
             AND ($2 IS NULL OR LOWER(username) LIKE $2 OR LOWER(display_name) LIKE $2 OR LOWER(email) LIKE $2) \
             AND ($3 IS NULL OR active = $3) \
             AND ($4 IS NULL OR id IN (SELECT user_id FROM group_members WHERE group_id = $4)) \
             ORDER BY id LIMIT $5"))
        .bind(filter.after_id)
        .bind(&pattern)
        .bind(filter.active)
        .bind(filter.group_id)
        .bind(filter.limit)
        .fetch_all(c)
        .await?),
        )
    }

    pub async fn count_users(&mut self) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(c).await?))
    }

    pub async fn user_group_ids(&mut self, user_id: i64) -> Result<Vec<i64>> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id"
        )
        .bind(user_id)
        .fetch_all(c)
        .await?))
    }

    /// Adds the membership; false when it already existed.
    pub async fn add_member(&mut self, group_id: i64, user_id: i64) -> Result<bool> {
        let result = on_tx!(self, c => sqlx::query(
            "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        )
        .bind(group_id)
        .bind(user_id)
        .execute(c)
        .await?
        .rows_affected());
        if result > 0 {
            self.stamp_user(user_id).await?;
        }
        Ok(result > 0)
    }

    /// Removes the membership; false when there was none.
    pub async fn remove_member(&mut self, group_id: i64, user_id: i64) -> Result<bool> {
        let result = on_tx!(self, c => sqlx::query(
            "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2"
        )
        .bind(group_id)
        .bind(user_id)
        .execute(c)
        .await?
        .rows_affected());
        if result > 0 {
            self.stamp_user(user_id).await?;
        }
        Ok(result > 0)
    }

    pub async fn insert_token(&mut self, user_id: i64, token_hash: &str, now: i64) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id"
        )
        .bind(user_id)
        .bind(token_hash)
        .bind(now)
        .execute(c)
        .await?.rows_affected());
        Ok(())
    }

    pub async fn insert_group(&mut self, name: &str, now: i64) -> Result<i64> {
        Ok(on_tx!(self, c => sqlx::query_scalar(
            "INSERT INTO user_groups (name, created_at) VALUES ($1, $2) RETURNING id"
        )
        .bind(name)
        .bind(now)
        .fetch_one(c)
        .await
        .map_err(on_constraint)?))
    }

    pub async fn rename_group(&mut self, id: i64, name: &str) -> Result<()> {
        on_tx!(self, c => sqlx::query("UPDATE user_groups SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(c)
            .await
            .map_err(on_constraint)?.rows_affected());
        Ok(())
    }

    pub async fn delete_group(&mut self, id: i64) -> Result<()> {
        self.stamp_users(
            crate::marks::stamp_where!(
                "id IN (SELECT user_id FROM group_members WHERE group_id = $1)"
            ),
            id,
        )
        .await?;
        on_tx!(self, c => {
            sqlx::query("DELETE FROM group_members WHERE group_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
            sqlx::query("DELETE FROM auto_rule_groups WHERE group_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
            sqlx::query("DELETE FROM user_groups WHERE id = $1").bind(id).execute(&mut *c).await?.rows_affected()
        });
        Ok(())
    }

    pub async fn get_group(&mut self, id: i64) -> Result<Option<GroupRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT g.id, g.name, (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS member_count \
             FROM user_groups g WHERE g.id = $1"
        )
        .bind(id)
        .fetch_optional(c)
        .await?))
    }

    pub async fn find_group_by_name(&mut self, name: &str) -> Result<Option<i64>> {
        Ok(
            on_tx!(self, c => sqlx::query_scalar("SELECT id FROM user_groups WHERE name = $1")
            .bind(name)
            .fetch_optional(c)
            .await?),
        )
    }

    pub async fn list_groups(&mut self, after_id: i64, limit: i64) -> Result<Vec<GroupRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT g.id, g.name, (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS member_count \
             FROM user_groups g WHERE g.id > $1 ORDER BY g.id LIMIT $2"
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(c)
        .await?))
    }

    /// The ids among `ids` that name no group.
    pub async fn missing_groups(&mut self, ids: &[i64]) -> Result<Vec<i64>> {
        let mut missing = Vec::new();
        for id in ids {
            let found: Option<i64> = on_tx!(self, c => sqlx::query_scalar("SELECT id FROM user_groups WHERE id = $1")
                .bind(id)
                .fetch_optional(c)
                .await?);
            if found.is_none() {
                missing.push(*id);
            }
        }
        Ok(missing)
    }
}
