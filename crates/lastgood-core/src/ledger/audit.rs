//! The audit trail's hash chain, whatever store holds it.
//!
//! Each event is hashed together with the hash of the event before it
//! (`sha256(prev_hash || canonical JSON)`), so changing, removing or reordering any
//! stored event breaks every link after it. The store appends events inside the same
//! transaction as the change they describe, and its tables refuse updates and deletes;
//! the chain is what lets `lastgood audit verify` show that nobody went around that.
//!
//! This module is backend-independent: the canonical form an event's hash covers, the
//! link from one hash to the next, and the walk that checks a chain read back in order.
//! It neither reads nor writes rows; SQLite and PostgreSQL each append and
//! read with their own SQL and call these functions, so both keep the same chain.

use serde::Serialize;

use crate::digest::sha256_parts;

/// An audit event; the store chains it to the previous one by hash.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub at: i64,
    pub actor: String,
    pub host: String,
    pub env: Option<String>,
    pub operation: Option<u64>,
    pub event: String,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// An event by this actor, on this host, now.
    pub fn by(
        ctx: &crate::context::Context,
        env: &str,
        operation: Option<u64>,
        event: &str,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            at: ctx.now(),
            actor: ctx.actor(),
            host: ctx.host.clone(),
            env: Some(env.to_owned()),
            operation,
            event: event.to_owned(),
            detail,
        }
    }
}

/// An audit event as stored, with its place in the chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub event: AuditEvent,
    pub hash: String,
}

/// An event as read back for verification: what it says and the two hashes stored with it.
#[derive(Debug, Clone)]
pub struct ChainedEvent {
    pub id: i64,
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// What a walk over the whole chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AuditCheck {
    /// Every event links to the one before it and hashes to what it says.
    Intact { events: usize },
    /// The first event that does not: the chain is broken from here on.
    Broken { id: i64, event: String },
}

/// The canonical form an audit event's hash covers.
pub fn canonical(e: &AuditEvent) -> String {
    serde_json::json!({
        "at": e.at, "actor": e.actor, "host": e.host, "env": e.env,
        "operation": e.operation, "event": e.event, "detail": e.detail,
    })
    .to_string()
}

/// The hash of `e` appended after an event whose hash is `prev` (empty for the first).
pub fn link(prev: &str, e: &AuditEvent) -> String {
    sha256_parts(&[prev.as_bytes(), canonical(e).as_bytes()])
}

/// Checks a chain read in id order; stops at the first broken link (and at the first
/// read error, which it returns).
pub fn verify<E>(events: impl IntoIterator<Item = Result<ChainedEvent, E>>) -> Result<AuditCheck, E> {
    let mut prev = String::new();
    let mut n = 0;
    for e in events {
        let e = e?;
        if e.prev_hash != prev || link(&prev, &e.event) != e.hash {
            return Ok(AuditCheck::Broken { id: e.id, event: e.event.event });
        }
        prev = e.hash;
        n += 1;
    }
    Ok(AuditCheck::Intact { events: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> AuditEvent {
        AuditEvent {
            at: 1,
            actor: "ann".into(),
            host: "h".into(),
            env: Some("prod".into()),
            operation: Some(7),
            event: name.into(),
            detail: serde_json::json!({ "k": 1 }),
        }
    }

    fn chain(names: &[&str]) -> Vec<ChainedEvent> {
        let mut prev = String::new();
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let e = event(name);
            let hash = link(&prev, &e);
            out.push(ChainedEvent { id: i as i64 + 1, event: e, prev_hash: prev, hash: hash.clone() });
            prev = hash;
        }
        out
    }

    fn check(events: Vec<ChainedEvent>) -> AuditCheck {
        verify(events.into_iter().map(Ok::<_, ()>)).unwrap()
    }

    #[test]
    fn an_untouched_chain_is_intact() {
        assert_eq!(check(chain(&["a", "b", "c"])), AuditCheck::Intact { events: 3 });
        assert_eq!(check(vec![]), AuditCheck::Intact { events: 0 });
    }

    #[test]
    fn an_edited_event_breaks_the_chain_where_it_was_edited() {
        let mut events = chain(&["a", "b", "c"]);
        events[1].event.detail = serde_json::json!({ "k": 2 });
        assert_eq!(check(events), AuditCheck::Broken { id: 2, event: "b".into() });
    }

    #[test]
    fn a_removed_event_breaks_the_link_after_it() {
        let mut events = chain(&["a", "b", "c"]);
        events.remove(1);
        assert_eq!(check(events), AuditCheck::Broken { id: 3, event: "c".into() });
    }
}
