//! The audit trail: who changed what, when, with the record before and after.

use crate::db::{Result, Tx};
use crate::records::AuditRecord;

/// One audit entry to write.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    pub actor_id: Option<i64>,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<i64>,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl Tx {
    pub async fn audit(&mut self, entry: AuditEntry<'_>, now: i64) -> Result<()> {
        self.audit_many(std::slice::from_ref(&entry), now).await
    }

    /// Writes the entries in multi-row inserts.
    pub async fn audit_many(&mut self, entries: &[AuditEntry<'_>], now: i64) -> Result<()> {
        for chunk in entries.chunks(500) {
            on_tx!(self, c => {
                let mut builder = sqlx::QueryBuilder::new(
                    "INSERT INTO audit (at, actor_id, action, entity, entity_id, before, after) ",
                );
                builder.push_values(chunk, |mut row, entry| {
                    row.push_bind(now)
                        .push_bind(entry.actor_id)
                        .push_bind(entry.action)
                        .push_bind(entry.entity)
                        .push_bind(entry.entity_id)
                        .push_bind(entry.before.as_deref())
                        .push_bind(entry.after.as_deref());
                });
                builder.build().execute(c).await?.rows_affected()
            });
        }
        Ok(())
    }

    pub async fn list_audit(
        &mut self,
        entity: Option<&str>,
        entity_id: Option<i64>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        Ok(on_tx!(self, c => sqlx::query_as(
            "SELECT id, at, actor_id, action, entity, entity_id, before, after FROM audit \
             WHERE id > $1 AND ($2 IS NULL OR entity = $2) AND ($3 IS NULL OR entity_id = $3) ORDER BY id LIMIT $4"
        )
        .bind(after_id)
        .bind(entity)
        .bind(entity_id)
        .bind(limit)
        .fetch_all(c)
        .await?))
    }
}
