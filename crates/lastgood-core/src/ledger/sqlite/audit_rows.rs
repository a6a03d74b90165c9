//! Rows of the SQLite ledger's audit chain: reading an event back, appending one
//! linked to the chain's head.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::ledger::audit::{self, AuditEvent};

/// The event of an `audit_events` row selected as `id, at, actor, host, env, operation,
/// event, detail, ...` (columns 1 to 7).
pub(super) fn audit_event_row(r: &Row) -> rusqlite::Result<AuditEvent> {
    let detail: String = r.get(7)?;
    Ok(AuditEvent {
        at: r.get(1)?,
        actor: r.get(2)?,
        host: r.get(3)?,
        env: r.get(4)?,
        operation: r.get::<_, Option<i64>>(5)?.map(|o| o as u64),
        event: r.get(6)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

pub(super) fn append_audit(tx: &Connection, e: &AuditEvent) -> rusqlite::Result<()> {
    let prev: String = tx
        .query_row("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
        .optional()?
        .unwrap_or_default();
    let hash = audit::link(&prev, e);
    tx.execute(
        "INSERT INTO audit_events (at, actor, host, env, operation, event, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![e.at, e.actor, e.host, e.env, e.operation.map(|o| o as i64), e.event, e.detail.to_string(), prev, hash],
    )?;
    Ok(())
}
