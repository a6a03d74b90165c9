//! The SQLite ledger, the embedded default.
//!
//! WAL with `synchronous=FULL`: with `NORMAL` a commit can roll back after a power
//! loss, and a deploy tool that forgets it switched `current` is worse than a slow one.
//! Writers use `BEGIN IMMEDIATE`, so two processes racing for an environment serialise
//! on SQLite's own write lock and `busy_timeout` instead of failing with SQLITE_BUSY.
//! The schema is versioned with `PRAGMA user_version` and upgraded in one transaction
//! when the ledger is opened; a ledger newer than this binary is refused.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::audit::{self, AuditCheck, AuditEvent, AuditRow, ChainedEvent};
use super::backup::{BackupFile, BackupRecord};
use super::records::{
    Acquired, Change, EnvState, Fence, LockInfo, LockRequest, NewOperation, Operation, OperationCount, Release,
    StepRecord, StepState,
};
use super::sqlite_schema;
use super::store::Ledger;
use crate::error::{Error, Result};
use crate::model::{CommitId, EnvName, OperationKind, Outcome, ReleaseId, ReleaseState, Scope};
use crate::plan::{Phase, Step};

mod audit_rows;
mod changes;
mod pages;

use audit_rows::{append_audit, audit_event_row};

pub struct SqliteLedger {
    path: PathBuf,
    conn: Connection,
    /// Where `lastgood ledger migrate` moved this ledger (its URL, shown without a
    /// password, and schema): every write is refused.
    moved: Option<(String, String)>,
}

impl SqliteLedger {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create ledger folder", dir))?;
        }
        let conn = Connection::open(path).map_err(|e| ledger_err(path, e))?;
        let mut me = Self { path: path.to_path_buf(), conn, moved: None };
        me.conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| me.err(e))?;
        // Switching a new file to WAL and creating the schema take locks that SQLite
        // does not always wait for through the busy handler when several processes open
        // a fresh ledger at once (eight racing `lastgood lock`s): retry those briefly.
        me.retry_busy(|c| {
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        })?;
        me.retry_busy(sqlite_schema::upgrade)?;
        me.moved = me
            .conn
            .query_row("SELECT url, schema FROM moved", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| me.err(e))?;
        Ok(me)
    }

    /// Refuses a write to a ledger that was moved to a team ledger.
    fn writable(&self) -> Result<()> {
        self.moved
            .as_ref()
            .map_or(Ok(()), |(url, schema)| Err(Error::LedgerMoved { url: url.clone(), schema: schema.clone() }))
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    fn retry_busy(&self, f: impl Fn(&Connection) -> rusqlite::Result<()>) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match f(&self.conn) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => return other.map_err(|e| self.err(e)),
            }
        }
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        ledger_err(&self.path, e)
    }

    fn release_row(env: &EnvName, r: &Row) -> rusqlite::Result<Release> {
        let _ = env;
        let commit: Option<String> = r.get("commit_id")?;
        let state: String = r.get("state")?;
        let features: String = r.get("features")?;
        let config: String = r.get("config")?;
        Ok(Release {
            id: ReleaseId(r.get::<_, i64>("id")? as u64),
            version: r.get("version")?,
            commit: commit.and_then(|c| CommitId::parse(&c).ok()),
            state: ReleaseState::parse(&state).unwrap_or(ReleaseState::Bad),
            schema_revision: r.get("schema_revision")?,
            created_at: r.get("created_at")?,
            created_by: r.get("created_by")?,
            reason: r.get("reason")?,
            operation: r.get::<_, Option<i64>>("operation")?.map(|o| o as u64),
            features: serde_json::from_str(&features).unwrap_or_default(),
            config: serde_json::from_str(&config).unwrap_or_default(),
            artifact: r.get("artifact")?,
            deploy_commit: r.get::<_, Option<String>>("deploy_commit")?.and_then(|c| CommitId::parse(&c).ok()),
        })
    }

    fn one_release(&self, env: &EnvName, sql: &str, p: impl rusqlite::Params) -> Result<Option<Release>> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row(p, |r| Self::release_row(env, r)).optional())
            .map_err(|e| self.err(e))
    }

    fn many_releases(&self, env: &EnvName, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Release>> {
        let mut s = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = s.query_map(p, |r| Self::release_row(env, r)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    fn operation_row(r: &Row) -> rusqlite::Result<Operation> {
        let env: String = r.get("env")?;
        let kind: String = r.get("kind")?;
        let scope: String = r.get("scope")?;
        let outcome: String = r.get("outcome")?;
        Ok(Operation {
            id: r.get::<_, i64>("id")? as u64,
            // Written only by this module from a validated EnvName.
            env: EnvName::parse(&env).map_err(|e| rusqlite::Error::InvalidColumnName(e.to_string()))?,
            kind: OperationKind::parse(&kind).unwrap_or(OperationKind::Deploy),
            from: r.get::<_, Option<i64>>("from_release")?.map(|i| ReleaseId(i as u64)),
            to: ReleaseId(r.get::<_, i64>("to_release")? as u64),
            scope: Scope::parse(&scope).unwrap_or(Scope::Full),
            outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Failed),
            auto_rollback: r.get("auto_rollback")?,
            reason: r.get("reason")?,
            actor: r.get("actor")?,
            host: r.get("host")?,
            pid: r.get("pid")?,
            epoch: r.get("epoch")?,
            started_at: r.get("started_at")?,
            finished_at: r.get("finished_at")?,
            error: r.get("error")?,
            allow_data_loss: r.get("allow_data_loss")?,
        })
    }

    fn lock_row(r: &Row) -> rusqlite::Result<LockInfo> {
        Ok(LockInfo {
            holder: r.get("holder")?,
            host: r.get("host")?,
            pid: r.get("pid")?,
            pid_start: r.get::<_, Option<i64>>("pid_start")?.map(|p| p as u64),
            operation: r.get::<_, Option<i64>>("operation")?.map(|o| o as u64),
            reason: r.get("reason")?,
            epoch: r.get("epoch")?,
            acquired_at: r.get("acquired_at")?,
            expires_at: r.get("expires_at")?,
            expired: None,
            machine: r.get("machine")?,
        })
    }

    fn lock_in(conn: &Connection, env: &EnvName) -> rusqlite::Result<Option<LockInfo>> {
        conn.prepare_cached("SELECT * FROM locks WHERE env = ?1")?.query_row([env.as_str()], Self::lock_row).optional()
    }

    fn fenced<T>(&self, fence: &Fence, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.writable()?;
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let epoch: Option<i64> = tx
            .query_row("SELECT epoch FROM locks WHERE env = ?1", [fence.env.as_str()], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        if epoch != Some(fence.epoch) {
            return Err(Error::Fenced { env: fence.env.to_string(), epoch: fence.epoch });
        }
        let out = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }
}

fn ledger_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Ledger { path: path.display().to_string(), message: e.to_string() }
}

fn insert_steps(tx: &Connection, op: u64, first: u32, steps: &[(Step, Phase, String)]) -> rusqlite::Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO steps (operation, seq, name, phase, host, spec, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned')",
    )?;
    for (i, (step, phase, host)) in steps.iter().enumerate() {
        // Serialising a plain enum of ids and strings cannot fail.
        let spec = serde_json::to_string(step).unwrap_or_default();
        ins.execute(params![op as i64, first + i as u32, step.name(), phase.as_str(), host, spec])?;
    }
    Ok(())
}

impl Ledger for SqliteLedger {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn env_state(&self, env: &EnvName) -> Result<EnvState> {
        self.conn
            .prepare_cached(
                "SELECT current_release, config_release, schema_ahead, epoch FROM environments WHERE name = ?1",
            )
            .and_then(|mut s| {
                s.query_row([env.as_str()], |r| {
                    Ok(EnvState {
                        current: r.get::<_, Option<i64>>(0)?.map(|i| ReleaseId(i as u64)),
                        config_release: r.get::<_, Option<i64>>(1)?.map(|i| ReleaseId(i as u64)),
                        schema_ahead: r.get(2)?,
                        epoch: r.get(3)?,
                    })
                })
                .optional()
            })
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    fn release(&self, env: &EnvName, id: ReleaseId) -> Result<Option<Release>> {
        self.one_release(env, "SELECT * FROM releases WHERE env = ?1 AND id = ?2", params![env.as_str(), id.0 as i64])
    }

    fn releases(&self, env: &EnvName, limit: usize) -> Result<Vec<Release>> {
        self.many_releases(
            env,
            "SELECT * FROM releases WHERE env = ?1 ORDER BY id DESC LIMIT ?2",
            params![env.as_str(), limit.min(i64::MAX as usize) as i64],
        )
    }

    fn releases_page(&self, env: &EnvName, before: Option<ReleaseId>, limit: usize) -> Result<Vec<Release>> {
        self.releases_page_sql(env, before, limit)
    }

    fn operations(&self, env: Option<&EnvName>, before: Option<u64>, limit: usize) -> Result<Vec<Operation>> {
        self.operations_sql(env, before, limit)
    }

    fn operation_counts(&self) -> Result<Vec<OperationCount>> {
        self.operation_counts_sql()
    }

    fn audit_page(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditRow>> {
        self.audit_page_sql(before, limit)
    }

    fn next_release_id(&self, env: &EnvName) -> Result<ReleaseId> {
        self.conn
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM releases WHERE env = ?1", [env.as_str()], |r| {
                r.get::<_, i64>(0)
            })
            .map(|i| ReleaseId(i as u64))
            .map_err(|e| self.err(e))
    }

    fn last_good(&self, env: &EnvName, except: Option<ReleaseId>) -> Result<Option<Release>> {
        self.one_release(
            env,
            "SELECT * FROM releases WHERE env = ?1 AND state = 'good' AND id != ?2 ORDER BY id DESC LIMIT 1",
            params![env.as_str(), except.map(|r| r.0 as i64).unwrap_or(-1)],
        )
    }

    fn release_by_version(&self, env: &EnvName, version: &str) -> Result<Option<Release>> {
        self.one_release(
            env,
            "SELECT * FROM releases WHERE env = ?1 AND version = ?2 ORDER BY id DESC LIMIT 1",
            params![env.as_str(), version],
        )
    }

    fn releases_by_commit(&self, env: &EnvName, prefix: &str) -> Result<Vec<Release>> {
        // The prefix is lower-case hex (checked by the caller), so it holds no LIKE
        // wildcards; the range keeps the indexes usable.
        let (lo, hi) = (prefix.to_owned(), format!("{prefix}g"));
        self.many_releases(
            env,
            "SELECT * FROM releases WHERE env = ?1 AND ((commit_id >= ?2 AND commit_id < ?3) OR (deploy_commit >= ?2 AND deploy_commit < ?3)) ORDER BY id DESC LIMIT 20",
            params![env.as_str(), lo, hi],
        )
    }

    fn release_before(&self, env: &EnvName, before: ReleaseId) -> Result<Option<Release>> {
        self.one_release(
            env,
            "SELECT * FROM releases WHERE env = ?1 AND id < ?2 ORDER BY id DESC LIMIT 1",
            params![env.as_str(), before.0 as i64],
        )
    }

    fn releases_with_artifacts(&self, env: &EnvName) -> Result<Vec<Release>> {
        self.many_releases(
            env,
            "SELECT * FROM releases WHERE env = ?1 AND artifact = 1 ORDER BY id DESC",
            [env.as_str()],
        )
    }

    fn backups(&self, env: &EnvName, limit: usize) -> Result<Vec<BackupRecord>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT id, operation, release, path, kind, sha256, bytes, schema_revision, created_at, created_by
                 FROM backups WHERE env = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map(params![env.as_str(), limit as i64], |r| {
                let kind: String = r.get(4)?;
                Ok(BackupRecord {
                    id: r.get::<_, i64>(0)? as u64,
                    operation: r.get::<_, Option<i64>>(1)?.map(|o| o as u64),
                    release: r.get::<_, Option<i64>>(2)?.map(|o| ReleaseId(o as u64)),
                    file: BackupFile {
                        path: std::path::PathBuf::from(r.get::<_, String>(3)?),
                        kind: serde_json::from_value(serde_json::Value::String(kind))
                            .map_err(|e| rusqlite::Error::InvalidColumnName(e.to_string()))?,
                        sha256: r.get(5)?,
                        bytes: r.get::<_, i64>(6)? as u64,
                        duration_ms: 0,
                    },
                    schema_revision: r.get(7)?,
                    created_at: r.get(8)?,
                    created_by: r.get(9)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    fn audit_events(&self, operation: u64) -> Result<Vec<AuditRow>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT id, at, actor, host, env, operation, event, detail, hash FROM audit_events WHERE operation = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map([operation as i64], |r| {
                Ok(AuditRow { id: r.get(0)?, event: audit_event_row(r)?, hash: r.get(8)? })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    fn verify_audit(&self) -> Result<AuditCheck> {
        let mut s = self
            .conn
            .prepare(
                "SELECT id, at, actor, host, env, operation, event, detail, prev_hash, hash FROM audit_events ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map([], |r| {
                Ok(ChainedEvent { id: r.get(0)?, event: audit_event_row(r)?, prev_hash: r.get(8)?, hash: r.get(9)? })
            })
            .map_err(|e| self.err(e))?;
        audit::verify(rows).map_err(|e| self.err(e))
    }

    fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        crate::snapshots::Snapshots::beside(&self.path).get(sha256)
    }

    fn lock_info(&self, env: &EnvName) -> Result<Option<LockInfo>> {
        Self::lock_in(&self.conn, env).map_err(|e| self.err(e))
    }

    fn acquire(&self, req: &LockRequest, is_stale: &dyn Fn(&LockInfo) -> bool) -> Result<Acquired> {
        self.writable()?;
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let existing = Self::lock_in(&tx, &req.env).map_err(|e| self.err(e))?;
        let took_over = match existing {
            Some(l) if !is_stale(&l) => {
                return Err(Error::Locked {
                    env: req.env.to_string(),
                    holder: l.holder,
                    operation: l.operation,
                    reason: l.reason,
                    expires_at: l.expires_at.map(crate::context::rfc3339),
                });
            }
            other => other,
        };
        let env = req.env.as_str();
        let expires = req.lease.map(|l| req.now + l.as_secs() as i64);
        let epoch = (|| {
            tx.execute("INSERT OR IGNORE INTO environments (name) VALUES (?1)", [env])?;
            tx.execute("UPDATE environments SET epoch = epoch + 1 WHERE name = ?1", [env])?;
            let epoch: i64 = tx.query_row("SELECT epoch FROM environments WHERE name = ?1", [env], |r| r.get(0))?;
            tx.execute(
                "INSERT OR REPLACE INTO locks (env, holder, host, pid, pid_start, operation, reason, epoch, acquired_at, expires_at, machine)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?8, ?9, ?10)",
                params![env, req.holder, req.host, req.pid, req.pid_start.map(|p| p as i64), req.reason, epoch, req.now, expires, req.machine],
            )?;
            append_audit(&tx, &req.granted(epoch, took_over.as_ref()))?;
            Ok(epoch)
        })()
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Acquired { epoch, took_over })
    }

    fn heartbeat(&self, fence: &Fence, now: i64, lease: std::time::Duration) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE locks SET expires_at = ?3 WHERE env = ?1 AND epoch = ?2",
                params![fence.env.as_str(), fence.epoch, now + lease.as_secs() as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn release_lock(&self, fence: &Fence) -> Result<()> {
        self.conn
            .execute("DELETE FROM locks WHERE env = ?1 AND epoch = ?2", params![fence.env.as_str(), fence.epoch])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn force_unlock(&self, env: &EnvName, epoch: Option<i64>, audit: AuditEvent) -> Result<Option<LockInfo>> {
        self.writable()?;
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let old = Self::lock_in(&tx, env).map_err(|e| self.err(e))?;
        if let Some(asked) = epoch {
            if old.as_ref().map(|l| l.epoch) != Some(asked) {
                return Err(Error::LockChanged { env: env.to_string(), asked, held: old.map(|l| l.epoch) });
            }
        }
        if let Some(old) = &old {
            let mut audit = audit;
            audit.detail["released"] = serde_json::to_value(old).unwrap_or_default();
            (|| {
                tx.execute("DELETE FROM locks WHERE env = ?1", [env.as_str()])?;
                append_audit(&tx, &audit)
            })()
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(old)
    }

    fn begin_operation(&self, fence: &Fence, new: NewOperation) -> Result<u64> {
        // Config contents go to the snapshot store, never into the ledger; first, so that
        // a recorded release never names a snapshot that is not there.
        self.writable()?;
        if let Some(r) = &new.release {
            let store = crate::snapshots::Snapshots::beside(&self.path);
            for (sha, content) in &r.blobs {
                store.put(sha, content)?;
            }
        }
        self.fenced(fence, |tx| {
            let env = fence.env.as_str();
            tx.execute(
                "INSERT INTO operations (env, kind, from_release, to_release, scope, outcome, auto_rollback, reason, actor, host, pid, epoch, started_at, allow_data_loss)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    env,
                    new.kind.as_str(),
                    new.from.map(|r| r.0 as i64),
                    new.to.0 as i64,
                    new.scope.as_str(),
                    new.auto_rollback,
                    new.reason,
                    new.actor,
                    new.host,
                    new.pid,
                    fence.epoch,
                    new.started_at,
                    new.allow_data_loss
                ],
            )?;
            let op = tx.last_insert_rowid() as u64;
            if let Some(r) = &new.release {
                tx.execute(
                    "INSERT INTO releases (env, id, version, commit_id, state, created_at, created_by, reason, operation, features, config)
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        env,
                        r.id.0 as i64,
                        r.version,
                        r.commit.as_ref().map(|c| c.as_str().to_owned()),
                        new.started_at,
                        new.actor,
                        new.reason,
                        op as i64,
                        serde_json::to_string(&r.features).unwrap_or_else(|_| "[]".into()),
                        serde_json::to_string(&r.config).unwrap_or_else(|_| "{}".into()),
                    ],
                )?;
            }
            insert_steps(tx, op, 1, &new.steps)?;
            tx.execute("UPDATE locks SET operation = ?2 WHERE env = ?1", params![env, op as i64])?;
            append_audit(
                tx,
                &AuditEvent {
                    at: new.started_at,
                    actor: new.actor.clone(),
                    host: new.host.clone(),
                    env: Some(env.to_owned()),
                    operation: Some(op),
                    event: format!("{}.start", new.kind.as_str()),
                    detail: serde_json::json!({
                        "from": new.from, "to": new.to, "scope": new.scope, "reason": new.reason,
                        "steps": new.steps.iter().map(|(s, _, _)| s.name()).collect::<Vec<_>>(),
                    }),
                },
            )?;
            Ok(op)
        })
    }

    fn running_operation(&self, env: &EnvName) -> Result<Option<Operation>> {
        self.conn
            .prepare_cached("SELECT * FROM operations WHERE env = ?1 AND outcome = 'running' ORDER BY id DESC LIMIT 1")
            .and_then(|mut s| s.query_row([env.as_str()], Self::operation_row).optional())
            .map_err(|e| self.err(e))
    }

    fn operation(&self, id: u64) -> Result<Option<Operation>> {
        self.conn
            .prepare_cached("SELECT * FROM operations WHERE id = ?1")
            .and_then(|mut s| s.query_row([id as i64], Self::operation_row).optional())
            .map_err(|e| self.err(e))
    }

    fn steps(&self, op: u64) -> Result<Vec<StepRecord>> {
        let mut s = self
            .conn
            .prepare_cached("SELECT seq, phase, host, spec, state, started_at, duration_ms, detail FROM steps WHERE operation = ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map([op as i64], |r| {
                let spec: String = r.get(3)?;
                let phase: String = r.get(1)?;
                let state: String = r.get(4)?;
                Ok(StepRecord {
                    seq: r.get(0)?,
                    step: serde_json::from_str(&spec)
                        .map_err(|e| rusqlite::Error::InvalidColumnName(format!("step spec: {e}")))?,
                    phase: Phase::parse(&phase).unwrap_or(Phase::Forward),
                    host: r.get(2)?,
                    state: StepState::parse(&state).unwrap_or(StepState::Planned),
                    started_at_ms: r.get(5)?,
                    duration_ms: r.get(6)?,
                    detail: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    fn apply(&self, fence: &Fence, changes: Vec<Change>) -> Result<()> {
        self.fenced(fence, |tx| Self::write_changes(tx, &fence.env, changes))
    }

    fn apply_unfenced(&self, env: &EnvName, changes: Vec<Change>) -> Result<()> {
        if changes.iter().any(|c| matches!(c, Change::ReleaseLock)) {
            return Err(Error::Ledger {
                path: self.describe(),
                message: "only the lock's holder may free it through apply".into(),
            });
        }
        self.writable()?;
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        tx.execute("INSERT OR IGNORE INTO environments (name) VALUES (?1)", [env.as_str()]).map_err(|e| self.err(e))?;
        Self::write_changes(&tx, env, changes).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}
