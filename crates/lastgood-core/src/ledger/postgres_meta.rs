//! The team ledger's `meta` table (its schema version and the oldest lastgood that may
//! write it) and what the session is (a superuser is refused writes unless allowed).

use super::postgres::PgLedger;
use crate::error::Result;

/// `meta`: the schema version (None: no ledger) and the oldest version that may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub version: Option<i64>,
    pub min_writer: i64,
    /// The session's role, when it is a superuser.
    pub superuser: Option<String>,
}

impl PgLedger {
    /// The schema version and who may write, from `meta` (None when there is no ledger).
    pub fn meta(&self) -> Result<Meta> {
        // One round trip when the ledger is there; a missing table or schema is no ledger.
        // The session's superuser bit rides along (a role, not a key of `meta`).
        let sql = self.sql(
            "SELECT key, value FROM {s}.meta UNION ALL SELECT ' superuser', session_user::text WHERE current_setting('is_superuser') = 'on'",
        );
        let rows = self.with_client(|c| match c.query_typed(&sql, &[]) {
            Err(e) if e.code().is_some_and(|c| matches!(c.code(), "42P01" | "3F000")) => Ok(Vec::new()),
            other => other,
        })?;
        let get = |k: &str| {
            rows.iter().find(|r| r.get::<_, String>(0) == k).and_then(|r| r.get::<_, String>(1).parse::<i64>().ok())
        };
        let superuser = rows.iter().find(|r| r.get::<_, String>(0) == " superuser").map(|r| r.get::<_, String>(1));
        Ok(Meta { version: get("schema_version"), min_writer: get("min_writer").unwrap_or(0), superuser })
    }

    /// Refuses to write as a superuser, who bypasses the grants that keep the audit
    /// table append-only (`[ledger] allow_superuser = true` accepts it); reads go on.
    pub fn refuse_superuser_writes(&mut self) {
        if self.read_only.is_some() {
            return;
        }
        if let Some(role) = &self.superuser {
            self.read_only = Some(format!(
                "it is connected as `{role}`, a superuser, and a superuser bypasses the grants that keep the audit chain append-only, so lastgood does not write a team ledger as one; connect as a role with the operator grants `lastgood ledger init` prints (role lastgood_operator), or set `[ledger] allow_superuser = true` to accept it"
            ));
        }
    }
}
