//! The PostgreSQL ledger's writes, each inside a transaction that
//! [`super::postgres::PgLedger`] opened (with its timeouts, its fence and its write id):
//! the lock's grant and release, an operation's start, its changes, and the audit
//! chain.
//!
//! The lock row is locked before anything is decided about it, and the lease is
//! judged by `clock_timestamp()` read after that lock was granted. The audit chain's
//! head row is locked last in every transaction (after the lock row), so writers of
//! different environments queue on it in one order and never deadlock; the head gives
//! the next sequence number and hash, never a scan for the newest row.

use postgres::types::Type;
use postgres::{Row, Transaction};

use super::audit::{self, AuditEvent};
use super::records::{Change, Fence, LockInfo, LockRequest, NewOperation};
use crate::error::Error;
use crate::model::EnvName;
use crate::plan::{Phase, Step};

/// The columns a free lock row has: no holder, the epoch kept.
pub(super) const FREE: &str = "holder = NULL, lock_id = NULL, host = NULL, machine = NULL, pid = NULL, \
     pid_start = NULL, operation = NULL, reason = NULL, db_user = NULL, expires_at = NULL";

/// The chain every live event goes to (a migrated ledger's events keep their own).
pub(super) const MAIN_CHAIN: &str = "main";

/// Why a transaction stopped: the server or connection, or a decision of lastgood's
/// (the lock is held, the fence is stale), which is never retried.
pub(super) enum TxErr {
    Pg(postgres::Error),
    Lg(Error),
}

impl From<postgres::Error> for TxErr {
    fn from(e: postgres::Error) -> Self {
        Self::Pg(e)
    }
}

/// 128 random bits in hex: a write's id, a lock grant's id.
pub(super) fn new_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        // No /dev/urandom: time and pid are unique enough for one process's writes.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        b = (t ^ ((std::process::id() as u128) << 96)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) const LOCK: &str = "holder, host, pid, pid_start, operation, reason, epoch, acquired_at, \
     extract(epoch FROM expires_at)::bigint AS expires_at, coalesce(expires_at < clock_timestamp(), false) AS expired, machine";

pub(super) fn lock_info(r: &Row) -> Result<LockInfo, postgres::Error> {
    Ok(LockInfo {
        holder: r.try_get::<_, Option<String>>("holder")?.unwrap_or_default(),
        host: r.try_get::<_, Option<String>>("host")?.unwrap_or_default(),
        pid: r.try_get("pid")?,
        pid_start: r.try_get::<_, Option<i64>>("pid_start")?.map(|p| p as u64),
        operation: r.try_get::<_, Option<i64>>("operation")?.map(|o| o as u64),
        reason: r.try_get("reason")?,
        epoch: r.try_get("epoch")?,
        acquired_at: r.try_get::<_, Option<i64>>("acquired_at")?.unwrap_or(0),
        expires_at: r.try_get("expires_at")?,
        expired: Some(r.try_get("expired")?),
        machine: r.try_get("machine")?,
    })
}

type R<T> = Result<T, TxErr>;

fn q(qs: &str, sql: &str) -> String {
    sql.replace("{s}", qs)
}

/// The first statement of a fenced write: the lock row, `FOR SHARE`, so that a
/// takeover (`FOR UPDATE`) waits for this transaction, and an epoch that is no longer
/// the lock's refuses everything after it.
pub(super) fn check_fence(tx: &mut Transaction, qs: &str, fence: &Fence) -> R<()> {
    let rows = tx.query_typed(
        &q(qs, "SELECT epoch, holder IS NOT NULL FROM {s}.locks WHERE env = $1 FOR SHARE"),
        &[(&fence.env.as_str(), Type::TEXT)],
    )?;
    let held = rows.first().is_some_and(|r| r.get::<_, i64>(0) == fence.epoch && r.get::<_, bool>(1));
    if !held {
        return Err(TxErr::Lg(Error::Fenced { env: fence.env.to_string(), epoch: fence.epoch }));
    }
    Ok(())
}

/// Makes sure the environment and its lock row exist (rows are never deleted).
pub(super) fn ensure_env(tx: &mut Transaction, qs: &str, env: &EnvName) -> R<()> {
    tx.query_typed(
        &q(qs, "INSERT INTO {s}.environments (name) VALUES ($1) ON CONFLICT DO NOTHING"),
        &[(&env.as_str(), Type::TEXT)],
    )?;
    tx.query_typed(
        &q(qs, "INSERT INTO {s}.locks (env) VALUES ($1) ON CONFLICT DO NOTHING"),
        &[(&env.as_str(), Type::TEXT)],
    )?;
    Ok(())
}

/// Locks the lock row, then reads it with the server's judgement of its lease (after
/// the row lock, so the clock is read after any wait for it).
fn locked_row(tx: &mut Transaction, qs: &str, env: &EnvName) -> R<Option<LockInfo>> {
    tx.query_typed(&q(qs, "SELECT epoch FROM {s}.locks WHERE env = $1 FOR UPDATE"), &[(&env.as_str(), Type::TEXT)])?;
    let rows = tx.query_typed(
        &q(qs, &format!("SELECT {LOCK} FROM {{s}}.locks WHERE env = $1 AND holder IS NOT NULL")),
        &[(&env.as_str(), Type::TEXT)],
    )?;
    Ok(rows.first().map(lock_info).transpose()?)
}

/// Grants the lock: free, or held by a holder `is_stale` gives up (its lease expired on
/// the server's clock, or it is dead on this machine). Raises the epoch.
pub(super) fn acquire(
    tx: &mut Transaction,
    qs: &str,
    req: &LockRequest,
    is_stale: &dyn Fn(&LockInfo) -> bool,
) -> R<(i64, Option<LockInfo>)> {
    ensure_env(tx, qs, &req.env)?;
    let env = req.env.as_str();
    let took_over = match locked_row(tx, qs, &req.env)? {
        Some(l) if !is_stale(&l) => {
            return Err(TxErr::Lg(Error::Locked {
                env: env.to_owned(),
                holder: l.holder,
                operation: l.operation,
                reason: l.reason,
                expires_at: l.expires_at.map(crate::context::rfc3339),
            }));
        }
        other => other,
    };
    let epoch: i64 = tx
        .query_typed(
            &q(qs, "UPDATE {s}.environments SET epoch = epoch + 1 WHERE name = $1 RETURNING epoch"),
            &[(&env, Type::TEXT)],
        )?
        .first()
        .map(|r| r.get(0))
        .unwrap_or(0);
    let lease = req.lease.map(|l| l.as_secs_f64());
    tx.query_typed(
        &q(
            qs,
            "UPDATE {s}.locks SET epoch = $2, lock_id = $3, holder = $4, host = $5, machine = $6, pid = $7,
                 pid_start = $8, operation = NULL, reason = $9, db_user = session_user, acquired_at = $10,
                 granted_at = clock_timestamp(), renewed_at = clock_timestamp(),
                 expires_at = clock_timestamp() + make_interval(secs => $11)
             WHERE env = $1",
        ),
        &[
            (&env, Type::TEXT),
            (&epoch, Type::INT8),
            (&new_id(), Type::TEXT),
            (&req.holder, Type::TEXT),
            (&req.host, Type::TEXT),
            (&req.machine, Type::TEXT),
            (&req.pid, Type::INT4),
            (&req.pid_start.map(|p| p as i64), Type::INT8),
            (&req.reason, Type::TEXT),
            (&req.now, Type::INT8),
            (&lease, Type::FLOAT8),
        ],
    )?;
    append_audit(tx, qs, &req.granted(epoch, took_over.as_ref()))?;
    Ok((epoch, took_over))
}

/// Frees whatever holds the lock (only the grant at `epoch`, when given).
pub(super) fn force_unlock(
    tx: &mut Transaction,
    qs: &str,
    env: &EnvName,
    epoch: Option<i64>,
    audit: &AuditEvent,
) -> R<Option<LockInfo>> {
    ensure_env(tx, qs, env)?;
    let old = locked_row(tx, qs, env)?;
    if let Some(asked) = epoch {
        if old.as_ref().map(|l| l.epoch) != Some(asked) {
            return Err(TxErr::Lg(Error::LockChanged { env: env.to_string(), asked, held: old.map(|l| l.epoch) }));
        }
    }
    if let Some(l) = &old {
        tx.query_typed(
            &q(qs, &format!("UPDATE {{s}}.locks SET {FREE} WHERE env = $1")),
            &[(&env.as_str(), Type::TEXT)],
        )?;
        let mut audit = audit.clone();
        audit.detail["released"] = serde_json::to_value(l).unwrap_or_default();
        append_audit(tx, qs, &audit)?;
    }
    Ok(old)
}

/// Records the operation, its release (with its config snapshots' contents) and steps,
/// and binds the lock to it. Returns the operation's id.
pub(super) fn begin_operation(tx: &mut Transaction, qs: &str, fence: &Fence, new: &NewOperation) -> R<i64> {
    let env = fence.env.as_str();
    let op: i64 = tx
        .query_typed(
            &q(
                qs,
                "INSERT INTO {s}.operations (env, kind, from_release, to_release, scope, outcome, auto_rollback, reason,
                     actor, host, pid, epoch, started_at, allow_data_loss)
                 VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            ),
            &[
                (&env, Type::TEXT),
                (&new.kind.as_str(), Type::TEXT),
                (&new.from.map(|r| r.0 as i64), Type::INT8),
                (&(new.to.0 as i64), Type::INT8),
                (&new.scope.as_str(), Type::TEXT),
                (&new.auto_rollback, Type::BOOL),
                (&new.reason, Type::TEXT),
                (&new.actor, Type::TEXT),
                (&new.host, Type::TEXT),
                (&new.pid, Type::INT4),
                (&fence.epoch, Type::INT8),
                (&new.started_at, Type::INT8),
                (&new.allow_data_loss, Type::BOOL),
            ],
        )?
        .first()
        .map(|r| r.get(0))
        .unwrap_or(0);
    if let Some(r) = &new.release {
        for (sha, content) in &r.blobs {
            tx.query_typed(
                &q(qs, "INSERT INTO {s}.blobs (sha256, content) VALUES ($1, $2) ON CONFLICT DO NOTHING"),
                &[(sha, Type::TEXT), (content, Type::BYTEA)],
            )?;
        }
        tx.query_typed(
            &q(
                qs,
                "INSERT INTO {s}.releases (env, id, version, commit_id, state, created_at, created_by, reason, operation, features, config)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10)",
            ),
            &[
                (&env, Type::TEXT),
                (&(r.id.0 as i64), Type::INT8),
                (&r.version, Type::TEXT),
                (&r.commit.as_ref().map(|c| c.as_str().to_owned()), Type::TEXT),
                (&new.started_at, Type::INT8),
                (&new.actor, Type::TEXT),
                (&new.reason, Type::TEXT),
                (&op, Type::INT8),
                (&serde_json::to_string(&r.features).unwrap_or_else(|_| "[]".into()), Type::TEXT),
                (&serde_json::to_string(&r.config).unwrap_or_else(|_| "{}".into()), Type::TEXT),
            ],
        )?;
    }
    insert_steps(tx, qs, op, 1, &new.steps)?;
    tx.query_typed(
        &q(qs, "UPDATE {s}.locks SET operation = $2 WHERE env = $1"),
        &[(&env, Type::TEXT), (&op, Type::INT8)],
    )?;
    append_audit(
        tx,
        qs,
        &AuditEvent {
            at: new.started_at,
            actor: new.actor.clone(),
            host: new.host.clone(),
            env: Some(env.to_owned()),
            operation: Some(op as u64),
            event: format!("{}.start", new.kind.as_str()),
            detail: serde_json::json!({
                "from": new.from, "to": new.to, "scope": new.scope, "reason": new.reason,
                "steps": new.steps.iter().map(|(s, _, _)| s.name()).collect::<Vec<_>>(),
            }),
        },
    )?;
    Ok(op)
}

fn insert_steps(tx: &mut Transaction, qs: &str, op: i64, first: u32, steps: &[(Step, Phase, String)]) -> R<()> {
    let sql = q(
        qs,
        "INSERT INTO {s}.steps (operation, seq, name, phase, host, spec, state) VALUES ($1, $2, $3, $4, $5, $6, 'planned')",
    );
    for (i, (step, phase, host)) in steps.iter().enumerate() {
        // Serialising a plain enum of ids and strings cannot fail.
        let spec = serde_json::to_string(step).unwrap_or_default();
        let seq = (first + i as u32) as i32;
        tx.query_typed(
            &sql,
            &[
                (&op, Type::INT8),
                (&seq, Type::INT4),
                (&step.name(), Type::TEXT),
                (&phase.as_str(), Type::TEXT),
                (host, Type::TEXT),
                (&spec, Type::TEXT),
            ],
        )?;
    }
    Ok(())
}

/// Appends to the main chain: locks its head, links the event to it, inserts it with
/// the next sequence number and moves the head, all in the caller's transaction.
pub(super) fn append_audit(tx: &mut Transaction, qs: &str, e: &AuditEvent) -> R<()> {
    Ok(append(tx, qs, e)?)
}

/// [`append_audit`], for callers outside an operation's write.
pub(super) fn append(tx: &mut Transaction, qs: &str, e: &AuditEvent) -> Result<(), postgres::Error> {
    let head = tx.query_typed(
        &q(qs, "SELECT seq, hash FROM {s}.audit_heads WHERE chain = $1 FOR UPDATE"),
        &[(&MAIN_CHAIN, Type::TEXT)],
    )?;
    let (seq, prev): (i64, String) = head.first().map(|r| (r.get(0), r.get(1))).unwrap_or((0, String::new()));
    let hash = audit::link(&prev, e);
    tx.query_typed(
        &q(
            qs,
            "INSERT INTO {s}.audit_events (chain, seq, at, actor, host, env, operation, event, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        ),
        &[
            (&MAIN_CHAIN, Type::TEXT),
            (&(seq + 1), Type::INT8),
            (&e.at, Type::INT8),
            (&e.actor, Type::TEXT),
            (&e.host, Type::TEXT),
            (&e.env, Type::TEXT),
            (&e.operation.map(|o| o as i64), Type::INT8),
            (&e.event, Type::TEXT),
            (&e.detail.to_string(), Type::TEXT),
            (&prev, Type::TEXT),
            (&hash, Type::TEXT),
        ],
    )?;
    tx.query_typed(
        &q(qs, "UPDATE {s}.audit_heads SET seq = $2, hash = $3 WHERE chain = $1"),
        &[(&MAIN_CHAIN, Type::TEXT), (&(seq + 1), Type::INT8), (&hash, Type::TEXT)],
    )?;
    Ok(())
}

/// An operation's changes, in order, in the caller's (fenced) transaction.
pub(super) fn write_changes(tx: &mut Transaction, qs: &str, env: &EnvName, changes: &[Change]) -> R<()> {
    let e = env.as_str();
    let exec = |tx: &mut Transaction, sql: &str, p: &[(&(dyn postgres::types::ToSql + Sync), Type)]| {
        tx.query_typed(&q(qs, sql), p).map(|_| ())
    };
    for c in changes {
        match c {
            Change::StepIntended { op, seq, at_ms } => exec(
                tx,
                "UPDATE {s}.steps SET state = 'intended', started_at = $3 WHERE operation = $1 AND seq = $2",
                &[(&(*op as i64), Type::INT8), (&(*seq as i32), Type::INT4), (at_ms, Type::INT8)],
            )?,
            Change::StepFinished { op, seq, state, duration_ms, detail } => exec(
                tx,
                "UPDATE {s}.steps SET state = $3, duration_ms = $4, detail = $5 WHERE operation = $1 AND seq = $2",
                &[
                    (&(*op as i64), Type::INT8),
                    (&(*seq as i32), Type::INT4),
                    (&state.as_str(), Type::TEXT),
                    (duration_ms, Type::INT8),
                    (detail, Type::TEXT),
                ],
            )?,
            Change::SkipRemaining { op, from_seq } => exec(
                tx,
                "UPDATE {s}.steps SET state = 'skipped' WHERE operation = $1 AND seq >= $2 AND state NOT IN ('done', 'failed')",
                &[(&(*op as i64), Type::INT8), (&(*from_seq as i32), Type::INT4)],
            )?,
            Change::AppendSteps { op, steps } => {
                let next: i32 = tx
                    .query_typed(
                        &q(qs, "SELECT COALESCE(MAX(seq), 0) + 1 FROM {s}.steps WHERE operation = $1"),
                        &[(&(*op as i64), Type::INT8)],
                    )?
                    .first()
                    .map(|r| r.get(0))
                    .unwrap_or(1);
                insert_steps(tx, qs, *op as i64, next as u32, steps)?;
            }
            Change::SetCurrent(r) => exec(
                tx,
                "UPDATE {s}.environments SET current_release = $2 WHERE name = $1",
                &[(&e, Type::TEXT), (&r.map(|r| r.0 as i64), Type::INT8)],
            )?,
            Change::SetSchemaAhead(n) => exec(
                tx,
                "UPDATE {s}.environments SET schema_ahead = $2 WHERE name = $1",
                &[(&e, Type::TEXT), (&(*n as i32), Type::INT4)],
            )?,
            Change::SetConfigRelease(r) => exec(
                tx,
                "UPDATE {s}.environments SET config_release = $2 WHERE name = $1",
                &[(&e, Type::TEXT), (&r.map(|r| r.0 as i64), Type::INT8)],
            )?,
            Change::SetReleaseState { release, state } => exec(
                tx,
                "UPDATE {s}.releases SET state = $3 WHERE env = $1 AND id = $2",
                &[(&e, Type::TEXT), (&(release.0 as i64), Type::INT8), (&state.as_str(), Type::TEXT)],
            )?,
            Change::SetArtifact { release, present } => exec(
                tx,
                "UPDATE {s}.releases SET artifact = $3 WHERE env = $1 AND id = $2",
                &[(&e, Type::TEXT), (&(release.0 as i64), Type::INT8), (present, Type::BOOL)],
            )?,
            Change::AdoptOperation { op, pid } => {
                exec(
                    tx,
                    "UPDATE {s}.operations SET pid = $2, epoch = (SELECT epoch FROM {s}.locks WHERE env = operations.env) WHERE id = $1",
                    &[(&(*op as i64), Type::INT8), (pid, Type::INT4)],
                )?;
                exec(
                    tx,
                    "UPDATE {s}.locks SET operation = $2 WHERE env = $1",
                    &[(&e, Type::TEXT), (&(*op as i64), Type::INT8)],
                )?;
            }
            Change::FinishOperation { op, outcome, at, error } => exec(
                tx,
                "UPDATE {s}.operations SET outcome = $2, finished_at = $3, error = $4 WHERE id = $1",
                &[(&(*op as i64), Type::INT8), (&outcome.as_str(), Type::TEXT), (at, Type::INT8), (error, Type::TEXT)],
            )?,
            Change::Audit(ev) => append_audit(tx, qs, ev)?,
            Change::SetDeployCommit { release, commit } => exec(
                tx,
                "UPDATE {s}.releases SET deploy_commit = $3 WHERE env = $1 AND id = $2",
                &[(&e, Type::TEXT), (&(release.0 as i64), Type::INT8), (&commit.as_str(), Type::TEXT)],
            )?,
            Change::SetSchemaRevision { release, revision } => exec(
                tx,
                "UPDATE {s}.releases SET schema_revision = $3 WHERE env = $1 AND id = $2",
                &[(&e, Type::TEXT), (&(release.0 as i64), Type::INT8), (revision, Type::TEXT)],
            )?,
            Change::RecordBackup(b) => {
                let kind = serde_json::to_value(b.file.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                exec(
                    tx,
                    "INSERT INTO {s}.backups (env, operation, release, path, kind, sha256, bytes, schema_revision, created_at, created_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        (&e, Type::TEXT),
                        (&b.operation.map(|o| o as i64), Type::INT8),
                        (&b.release.map(|r| r.0 as i64), Type::INT8),
                        (&b.file.path.display().to_string(), Type::TEXT),
                        (&kind, Type::TEXT),
                        (&b.file.sha256, Type::TEXT),
                        (&(b.file.bytes as i64), Type::INT8),
                        (&b.schema_revision, Type::TEXT),
                        (&b.created_at, Type::INT8),
                        (&b.created_by, Type::TEXT),
                    ],
                )?;
            }
            Change::ReleaseLock => {
                exec(tx, &format!("UPDATE {{s}}.locks SET {FREE} WHERE env = $1"), &[(&e, Type::TEXT)])?
            }
        }
    }
    Ok(())
}
