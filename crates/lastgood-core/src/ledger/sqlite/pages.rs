//! The SQLite ledger's paged reads, for the dashboard and its API: releases,
//! operations and the audit trail a page at a time, newest first, and the counts the
//! metrics endpoint reports.
//!
//! Paging is by key (`before` an id), never by offset: a page deep in a history of
//! 100,000 releases costs the same index walk as the first one.

use rusqlite::params;

use super::{SqliteLedger, audit_event_row};
use crate::error::Result;
use crate::ledger::audit::AuditRow;
use crate::ledger::records::{Operation, OperationCount, Release, page_before, page_limit};
use crate::model::{EnvName, ReleaseId};

impl SqliteLedger {
    pub(super) fn releases_page_sql(
        &self,
        env: &EnvName,
        before: Option<ReleaseId>,
        limit: usize,
    ) -> Result<Vec<Release>> {
        self.many_releases(
            env,
            "SELECT * FROM releases WHERE env = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
            params![env.as_str(), page_before(before.map(|b| b.0)), page_limit(limit)],
        )
    }

    pub(super) fn operations_sql(
        &self,
        env: Option<&EnvName>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Operation>> {
        // `+env`: walk the primary key backwards and stop at `limit`, rather than
        // collect every operation of the environment through its index and sort them.
        let before = page_before(before);
        let (sql, env) = match env {
            Some(e) => ("SELECT * FROM operations WHERE +env = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3", e.as_str()),
            None => ("SELECT * FROM operations WHERE ?1 = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3", ""),
        };
        let mut s = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows =
            s.query_map(params![env, before, page_limit(limit)], Self::operation_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    pub(super) fn operation_counts_sql(&self) -> Result<Vec<OperationCount>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT env, kind, outcome, COUNT(*) FROM operations GROUP BY env, kind, outcome ORDER BY env, kind, outcome",
            )
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map([], |r| {
                Ok(OperationCount {
                    env: r.get(0)?,
                    kind: r.get(1)?,
                    outcome: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    pub(super) fn audit_page_sql(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditRow>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT id, at, actor, host, env, operation, event, detail, hash FROM audit_events
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map(params![before.unwrap_or(i64::MAX), page_limit(limit)], |r| {
                Ok(AuditRow { id: r.get(0)?, event: audit_event_row(r)?, hash: r.get(8)? })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }
}
