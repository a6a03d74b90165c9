//! The team ledger's paged reads, for the dashboard and its API (the twins of the SQLite
//! ledger's `pages`), and its lookup of releases by a commit prefix. Paging is by key
//! (`before` an id), never by offset.

use postgres::types::Type;

use super::audit::AuditRow;
use super::postgres::{AUDIT, OPERATION, PgLedger, audit_row, operation_row};
use super::records::{Operation, OperationCount, Release, page_before, page_limit};
use crate::error::Result;
use crate::model::{EnvName, ReleaseId};

impl PgLedger {
    pub(super) fn releases_page_pg(
        &self,
        env: &EnvName,
        before: Option<ReleaseId>,
        limit: usize,
    ) -> Result<Vec<Release>> {
        let before = page_before(before.map(|b| b.0));
        self.many_releases(
            "env = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            &[(&env.as_str(), Type::TEXT), (&before, Type::INT8), (&page_limit(limit), Type::INT8)],
        )
    }

    pub(super) fn operations_pg(
        &self,
        env: Option<&EnvName>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Operation>> {
        let before = page_before(before);
        let env = env.map(|e| e.as_str().to_owned());
        let rows = self.query(
            &format!(
                "SELECT {OPERATION} FROM {{s}}.operations WHERE ($1::text IS NULL OR env = $1) AND id < $2
                 ORDER BY id DESC LIMIT $3"
            ),
            &[(&env, Type::TEXT), (&before, Type::INT8), (&page_limit(limit), Type::INT8)],
        )?;
        rows.iter().map(|r| operation_row(r).map_err(|e| self.fail(e))).collect()
    }

    pub(super) fn operation_counts_pg(&self) -> Result<Vec<OperationCount>> {
        let rows = self.query(
            "SELECT env, kind, outcome, count(*) FROM {s}.operations GROUP BY env, kind, outcome ORDER BY env, kind, outcome",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| OperationCount {
                env: r.get(0),
                kind: r.get(1),
                outcome: r.get(2),
                count: r.get::<_, i64>(3) as u64,
            })
            .collect())
    }

    pub(super) fn audit_page_pg(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditRow>> {
        let rows = self.query(
            &format!("SELECT {AUDIT} FROM {{s}}.audit_events WHERE id < $1 ORDER BY id DESC LIMIT $2"),
            &[(&before.unwrap_or(i64::MAX), Type::INT8), (&page_limit(limit), Type::INT8)],
        )?;
        self.audit_rows(&rows)
    }

    /// Rows of `audit_events` (selected as [`AUDIT`]) as the store's audit rows.
    pub(super) fn audit_rows(&self, rows: &[postgres::Row]) -> Result<Vec<AuditRow>> {
        rows.iter()
            .map(|r| {
                let e = audit_row(r).map_err(|e| self.pg_fail(&e))?;
                Ok(AuditRow { id: e.id, event: e.event, hash: e.hash })
            })
            .collect()
    }

    pub(super) fn releases_by_commit_pg(&self, env: &EnvName, prefix: &str) -> Result<Vec<Release>> {
        // The prefix is lower-case hex (checked by the caller): no LIKE wildcards.
        let like = format!("{prefix}%");
        self.many_releases(
            "env = $1 AND (commit_id LIKE $2 OR deploy_commit LIKE $2) ORDER BY id DESC LIMIT 20",
            &[(&env.as_str(), Type::TEXT), (&like, Type::TEXT)],
        )
    }
}
