//! The audit trail: who changed what, when, with the record before and after.

use crate::db::{Result, Tx};
use crate::records::AuditRecord;
use sqlx::{Postgres, QueryBuilder};

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

/// An audit entry held back until its transaction commits.
#[derive(Clone, Debug)]
pub(crate) struct PendingAudit {
    pub(crate) at: i64,
    pub(crate) actor_id: Option<i64>,
    pub(crate) action: String,
    pub(crate) entity: String,
    pub(crate) entity_id: Option<i64>,
    pub(crate) before: Option<String>,
    pub(crate) after: Option<String>,
}

/// The head of a multi-row insert of audit entries.
pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit (at, actor_id, action, entity, entity_id, before, after) ";

/// Binds one `PendingAudit` as a row of `INSERT_AUDIT`'s values.
macro_rules! push_audit_row {
    ($row:expr, $entry:expr) => {{
        let entry = $entry;
        $row.push_bind(entry.at)
            .push_bind(entry.actor_id)
            .push_bind(entry.action.as_str())
            .push_bind(entry.entity.as_str())
            .push_bind(entry.entity_id)
            .push_bind(entry.before.as_deref())
            .push_bind(entry.after.as_deref());
    }};
}
pub(crate) use push_audit_row;

/// Entries per multi-row insert (7 binds each, well under both backends'
/// limits on parameters).
pub(crate) const AUDIT_CHUNK: usize = 500;

/// On PostgreSQL, more entries than this are written as arrays, in one
/// statement (`Tx::flush_audit`); fewer, as a multi-row insert.
pub(crate) const AUDIT_ARRAYS_FROM: usize = 8;

/// PostgreSQL: `INSERT_AUDIT` of many entries as one statement with a
/// column per array, prepared once per connection — an annual rollover's
/// closes, a bulk change — instead of a multi-row insert whose thousands of
/// parameters are parsed and planned on every run.
pub(crate) fn push_audit_arrays(query: &mut QueryBuilder<Postgres>, entries: &[PendingAudit]) {
    let text = |pick: fn(&PendingAudit) -> Option<String>| -> Vec<Option<String>> {
        entries.iter().map(pick).collect()
    };
    let number = |pick: fn(&PendingAudit) -> Option<i64>| -> Vec<Option<i64>> {
        entries.iter().map(pick).collect()
    };
    query.push(INSERT_AUDIT);
    query.push("SELECT * FROM unnest(");
    query.push_bind(number(|entry| Some(entry.at)));
    query.push("::bigint[], ");
    query.push_bind(number(|entry| entry.actor_id));
    query.push("::bigint[], ");
    query.push_bind(text(|entry| Some(entry.action.clone())));
    query.push("::text[], ");
    query.push_bind(text(|entry| Some(entry.entity.clone())));
    query.push("::text[], ");
    query.push_bind(number(|entry| entry.entity_id));
    query.push("::bigint[], ");
    query.push_bind(text(|entry| entry.before.clone()));
    query.push("::text[], ");
    query.push_bind(text(|entry| entry.after.clone()));
    query.push("::text[])");
}

impl Tx {
    /// Records an entry. It is written with the transaction's other entries
    /// in one multi-row insert when the transaction commits (or before the
    /// audit trail is read in it), so that a request writing many
    /// enrollments does not pay a round trip per entry; rolled back, it is
    /// never written.
    pub async fn audit(&mut self, entry: AuditEntry<'_>, now: i64) -> Result<()> {
        let pending = PendingAudit {
            at: now,
            actor_id: entry.actor_id,
            action: entry.action.to_string(),
            entity: entry.entity.to_string(),
            entity_id: entry.entity_id,
            before: entry.before,
            after: entry.after,
        };
        let buffer = self.pending_audit();
        buffer.push(pending);
        if buffer.len() >= AUDIT_CHUNK {
            self.flush_audit().await?;
        }
        Ok(())
    }

    /// Records the entries, all at `now` (see `audit`).
    pub async fn audit_many(&mut self, entries: &[AuditEntry<'_>], now: i64) -> Result<()> {
        for entry in entries {
            self.audit(entry.clone(), now).await?;
        }
        Ok(())
    }

    /// Writes the entries held back: in multi-row inserts, or on PostgreSQL,
    /// when there are more than `AUDIT_ARRAYS_FROM`, as one statement of
    /// arrays (`push_audit_arrays`).
    pub(crate) async fn flush_audit(&mut self) -> Result<()> {
        let pending = std::mem::take(self.pending_audit());
        if let Tx::Postgres(transaction) = self
            && pending.len() > AUDIT_ARRAYS_FROM
        {
            let mut query = sqlx::QueryBuilder::new("");
            push_audit_arrays(&mut query, &pending);
            query.build().execute(&mut ***transaction).await?;
            return Ok(());
        }
        for chunk in pending.chunks(AUDIT_CHUNK) {
            on_tx!(self, c => {
                let mut builder = sqlx::QueryBuilder::new(INSERT_AUDIT);
                builder.push_values(chunk, |mut row, entry| push_audit_row!(row, entry));
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
        // What this transaction recorded is part of the trail it reads.
        self.flush_audit().await?;
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
