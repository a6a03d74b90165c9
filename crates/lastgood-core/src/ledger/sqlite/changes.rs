//! How the SQLite ledger writes each [`Change`] of an operation, inside the caller's
//! transaction.

use rusqlite::{Connection, params};

use super::audit_rows::append_audit;
use super::{SqliteLedger, insert_steps};
use crate::ledger::records::Change;
use crate::model::EnvName;

impl SqliteLedger {
    pub(super) fn write_changes(tx: &Connection, env: &EnvName, changes: Vec<Change>) -> rusqlite::Result<()> {
        for c in changes {
            match c {
                Change::StepIntended { op, seq, at_ms } => {
                    tx.execute(
                        "UPDATE steps SET state = 'intended', started_at = ?3 WHERE operation = ?1 AND seq = ?2",
                        params![op as i64, seq, at_ms],
                    )?;
                }
                Change::StepFinished { op, seq, state, duration_ms, detail } => {
                    tx.execute(
                        "UPDATE steps SET state = ?3, duration_ms = ?4, detail = ?5 WHERE operation = ?1 AND seq = ?2",
                        params![op as i64, seq, state.as_str(), duration_ms, detail],
                    )?;
                }
                Change::SkipRemaining { op, from_seq } => {
                    tx.execute(
                        "UPDATE steps SET state = 'skipped' WHERE operation = ?1 AND seq >= ?2 AND state NOT IN ('done', 'failed')",
                        params![op as i64, from_seq],
                    )?;
                }
                Change::AppendSteps { op, steps } => {
                    let next: u32 = tx.query_row(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE operation = ?1",
                        [op as i64],
                        |r| r.get(0),
                    )?;
                    insert_steps(tx, op, next, &steps)?;
                }
                Change::SetCurrent(r) => {
                    tx.execute(
                        "UPDATE environments SET current_release = ?2 WHERE name = ?1",
                        params![env.as_str(), r.map(|r| r.0 as i64)],
                    )?;
                }
                Change::SetSchemaAhead(n) => {
                    tx.execute("UPDATE environments SET schema_ahead = ?2 WHERE name = ?1", params![env.as_str(), n])?;
                }
                Change::SetConfigRelease(r) => {
                    tx.execute(
                        "UPDATE environments SET config_release = ?2 WHERE name = ?1",
                        params![env.as_str(), r.map(|r| r.0 as i64)],
                    )?;
                }
                Change::SetReleaseState { release, state } => {
                    tx.execute(
                        "UPDATE releases SET state = ?3 WHERE env = ?1 AND id = ?2",
                        params![env.as_str(), release.0 as i64, state.as_str()],
                    )?;
                }
                Change::SetDeployCommit { release, commit } => {
                    tx.execute(
                        "UPDATE releases SET deploy_commit = ?3 WHERE env = ?1 AND id = ?2",
                        params![env.as_str(), release.0 as i64, commit.as_str()],
                    )?;
                }
                Change::SetArtifact { release, present } => {
                    tx.execute(
                        "UPDATE releases SET artifact = ?3 WHERE env = ?1 AND id = ?2",
                        params![env.as_str(), release.0 as i64, present],
                    )?;
                }
                Change::AdoptOperation { op, pid } => {
                    tx.execute(
                        "UPDATE operations SET pid = ?2, epoch = (SELECT epoch FROM locks WHERE env = operations.env) WHERE id = ?1",
                        params![op as i64, pid],
                    )?;
                    tx.execute("UPDATE locks SET operation = ?2 WHERE env = ?1", params![env.as_str(), op as i64])?;
                }
                Change::FinishOperation { op, outcome, at, error } => {
                    tx.execute(
                        "UPDATE operations SET outcome = ?2, finished_at = ?3, error = ?4 WHERE id = ?1",
                        params![op as i64, outcome.as_str(), at, error],
                    )?;
                }
                Change::Audit(e) => append_audit(tx, &e)?,
                Change::SetSchemaRevision { release, revision } => {
                    tx.execute(
                        "UPDATE releases SET schema_revision = ?3 WHERE env = ?1 AND id = ?2",
                        params![env.as_str(), release.0 as i64, revision],
                    )?;
                }
                Change::RecordBackup(b) => {
                    tx.execute(
                        "INSERT INTO backups (env, operation, release, path, kind, sha256, bytes, schema_revision, created_at, created_by)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![
                            env.as_str(),
                            b.operation.map(|o| o as i64),
                            b.release.map(|r| r.0 as i64),
                            b.file.path.display().to_string(),
                            serde_json::to_value(b.file.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                            b.file.sha256,
                            b.file.bytes as i64,
                            b.schema_revision,
                            b.created_at,
                            b.created_by,
                        ],
                    )?;
                }
                Change::ReleaseLock => {
                    tx.execute("DELETE FROM locks WHERE env = ?1", [env.as_str()])?;
                }
            }
        }
        Ok(())
    }
}
