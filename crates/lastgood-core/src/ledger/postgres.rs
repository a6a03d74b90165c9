//! The PostgreSQL ledger: one history, one lock and one audit chain per environment
//! for every operator, CI runner and the dashboard of a team.
//!
//! The rules it is built on (see docs/team-ledger.md for the whole protocol):
//!
//! - **The server's clock only.** A lease expires at `clock_timestamp() + lease`, and
//!   whether it has expired is asked of the server, after the lock row is locked (a
//!   value computed before a lock wait is stale). No client's clock is ever compared
//!   with another's; `LASTGOOD_NOW` only changes the times written for display.
//! - **Every write is fenced in its own transaction.** A write transaction starts with
//!   `SELECT epoch ... FROM locks WHERE env = $1 FOR SHARE`: a takeover's `FOR UPDATE`
//!   waits for it to commit, and an old holder's write finds a newer epoch and changes
//!   nothing ([`Error::Fenced`], exit 5). Lock rows are never deleted, so an epoch never
//!   goes back.
//! - **Safe to retry.** Each write carries an id that it inserts into `applied_txns`
//!   in the same transaction; a write whose connection died around its COMMIT looks
//!   for its id before doing anything again. Lost connections are reopened with bounded
//!   retries; the lease lives in the table, not in the session, so it survives them.
//! - **Nothing outlives a transaction.** No advisory locks, no session `SET`, no named
//!   prepared statements: statements go through the unnamed statement (`query_typed`)
//!   or the simple protocol, and timeouts are `SET LOCAL`. The ledger therefore works
//!   the same directly and through PgBouncer in transaction mode.
//! - **Fail closed.** When the server cannot be reached, every call fails with
//!   [`Error::Ledger`] (exit 1); nothing is half-written, since each write is one
//!   transaction.
//!
//! The tables and grants are in [`super::postgres_schema`]; the writes of an
//! operation's changes and the audit chain in [`super::postgres_write`].

use std::cell::RefCell;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, Row, Transaction};

use super::audit::{self, AuditCheck, AuditEvent, AuditRow, ChainedEvent};
use super::backup::{BackupFile, BackupRecord};
use super::postgres_schema::{self, SCHEMA_VERSION};
use super::postgres_write::{self as w, LOCK, TxErr, lock_info, new_id};
use super::records::{
    Acquired, Change, EnvState, Fence, LockInfo, LockRequest, NewOperation, Operation, OperationCount, Release,
    StepRecord, StepState,
};
use super::store::Ledger;
use crate::database::pg_client;
use crate::database::url::PgUrl;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::model::{CommitId, EnvName, OperationKind, Outcome, ReleaseId, ReleaseState, Scope};
use crate::plan::Phase;

/// How many times a write or read is tried when the connection fails under it.
const ATTEMPTS: u32 = 5;

/// Parameters of `query_typed`: each value with its type, so no statement is prepared.
pub(super) type Params<'a> = &'a [(&'a (dyn ToSql + Sync), Type)];

pub struct PgLedger {
    url: PgUrl,
    schema: String,
    /// The quoted schema name that replaces `{s}` in statements.
    qs: String,
    client: RefCell<Option<Client>>,
    /// Why writes are refused (a schema newer than this lastgood may write to).
    pub(super) read_only: Option<String>,
    /// The session's role when it is a superuser (read with `meta` at open).
    pub(super) superuser: Option<String>,
}

/// What `ledger init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    Created,
    AlreadyThere { version: i64 },
}

impl PgLedger {
    /// Opens the ledger in `schema`; refuses one that `ledger init` has not created, or
    /// that an older lastgood would have to upgrade (never silently).
    pub fn open(url: &PgUrl, schema: &str) -> Result<Self> {
        let mut me = Self::unchecked(url, schema);
        let meta = me.meta()?;
        let version = meta.version.ok_or_else(|| me.fail(me.missing()))?;
        if version < SCHEMA_VERSION {
            return Err(me.fail(format!(
                "its schema version {version} is older than this lastgood's ({SCHEMA_VERSION}); upgrade it with `lastgood ledger init` (one transaction)"
            )));
        }
        if meta.min_writer > SCHEMA_VERSION {
            me.read_only = Some(format!(
                "its schema version {version} needs lastgood writing version {} or newer; this lastgood writes {SCHEMA_VERSION}, so it may read but not write: upgrade lastgood",
                meta.min_writer
            ));
        }
        me.superuser = meta.superuser;
        Ok(me)
    }

    fn unchecked(url: &PgUrl, schema: &str) -> Self {
        Self {
            url: url.clone(),
            schema: schema.to_owned(),
            qs: postgres_schema::quoted(schema),
            client: RefCell::new(None),
            read_only: None,
            superuser: None,
        }
    }

    /// Creates the schema and its tables in one transaction, unless they exist.
    pub fn init(url: &PgUrl, schema: &str) -> Result<Init> {
        let me = Self::unchecked(url, schema);
        if let Some(version) = me.meta()?.version {
            return Ok(Init::AlreadyThere { version });
        }
        let ddl = postgres_schema::create(schema);
        me.with_client(|c| {
            let mut tx = c.transaction()?;
            tx.batch_execute(&ddl)?;
            tx.commit()
        })?;
        Ok(Init::Created)
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn missing(&self) -> String {
        format!("there is no ledger in schema `{}` yet; create it with `lastgood ledger init`", self.schema)
    }

    pub(super) fn quoted_schema(&self) -> &str {
        &self.qs
    }

    pub(super) fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.qs)
    }

    pub(super) fn fail(&self, message: String) -> Error {
        Error::Ledger { path: self.describe(), message }
    }

    pub(super) fn pg_fail(&self, e: &postgres::Error) -> Error {
        self.fail(pg_client::message(e))
    }

    fn connect(&self) -> Result<Client> {
        let mut config = self.url.client_config("lastgood-ledger");
        // A cut network must fail a query, not hang it: keepalives find a dead peer
        // while idle, the user timeout while data waits to be acknowledged.
        config.keepalives(true).keepalives_idle(Duration::from_secs(10)).tcp_user_timeout(Duration::from_secs(10));
        pg_client::connect_with(&self.url, config)
            .map_err(|e| self.fail(format!("cannot reach the ledger's server: {e}")))
    }

    /// The connection in `slot`, opened first when there is none (or it was lost).
    fn connected<'a>(&self, slot: &'a mut Option<Client>) -> Result<&'a mut Client> {
        if slot.is_none() {
            *slot = Some(self.connect()?);
        }
        slot.as_mut().ok_or_else(|| self.fail("no connection".into()))
    }

    /// Runs `f` on the connection, reopening it and trying again (a bounded number of
    /// times) when the connection is lost. For reads and idempotent writes.
    pub(super) fn with_client<T>(&self, mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>) -> Result<T> {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            backoff(attempt);
            let mut slot = self.client.borrow_mut();
            let client = match self.connected(&mut slot) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match f(client) {
                Ok(v) => return Ok(v),
                Err(e) if retryable(&e) => {
                    last = Some(self.pg_fail(&e));
                    *slot = None;
                }
                Err(e) => return Err(self.pg_fail(&e)),
            }
        }
        Err(last.unwrap_or_else(|| self.fail("no connection".into())))
    }

    pub(super) fn query(&self, sql: &str, params: Params) -> Result<Vec<Row>> {
        let sql = self.sql(sql);
        self.with_client(|c| c.query_typed(&sql, params))
    }

    fn writable(&self) -> Result<()> {
        match &self.read_only {
            Some(why) => Err(self.fail(why.clone())),
            None => Ok(()),
        }
    }

    /// One write: a transaction with bounded timeouts, fenced when `fence` is given,
    /// that records its id in `applied_txns` with what it returns. When the connection
    /// dies under it (the COMMIT's answer included), it reconnects and, if the id is
    /// there, returns what was recorded instead of writing twice.
    pub(super) fn write(
        &self,
        env: &EnvName,
        fence: Option<&Fence>,
        mut f: impl FnMut(&mut Transaction) -> Result<i64, TxErr>,
    ) -> Result<i64> {
        self.writable()?;
        let txn = new_id();
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            backoff(attempt);
            let mut slot = self.client.borrow_mut();
            let client = match self.connected(&mut slot) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            if attempt > 0 {
                match client.query_typed(
                    &self.sql("SELECT result FROM {s}.applied_txns WHERE txn_id = $1"),
                    &[(&txn, Type::TEXT)],
                ) {
                    Ok(rows) if !rows.is_empty() => return Ok(rows[0].get::<_, Option<i64>>(0).unwrap_or(0)),
                    Ok(_) => {}
                    Err(e) => {
                        last = Some(self.pg_fail(&e));
                        *slot = None;
                        continue;
                    }
                }
            }
            let mut run = |client: &mut Client| -> Result<i64, TxErr> {
                let mut tx = client.transaction()?;
                tx.batch_execute(
                    "SET LOCAL lock_timeout = '10s'; SET LOCAL statement_timeout = '30s'; \
                     SET LOCAL idle_in_transaction_session_timeout = '60s'",
                )?;
                if let Some(fence) = fence {
                    w::check_fence(&mut tx, &self.qs, fence)?;
                }
                let out = f(&mut tx)?;
                tx.query_typed(
                    &self.sql("INSERT INTO {s}.applied_txns (txn_id, env, epoch, result) VALUES ($1, $2, $3, $4)"),
                    &[
                        (&txn, Type::TEXT),
                        (&env.as_str(), Type::TEXT),
                        (&fence.map(|f| f.epoch), Type::INT8),
                        (&out, Type::INT8),
                    ],
                )?;
                tx.commit()?;
                Ok(out)
            };
            match run(client) {
                Ok(v) if failpoint::fires("ledger:ack-lost") => {
                    // As if the COMMIT's answer never came back: the next attempt
                    // must find the write done, not do it again.
                    *slot = None;
                    last = Some(self.fail("the connection was lost after COMMIT".into()));
                    let _ = v;
                }
                Ok(v) => return Ok(v),
                Err(TxErr::Lg(e)) => return Err(e),
                Err(TxErr::Pg(e)) if retryable(&e) => {
                    last = Some(self.pg_fail(&e));
                    *slot = None;
                }
                Err(TxErr::Pg(e)) => return Err(self.pg_fail(&e)),
            }
        }
        Err(last.unwrap_or_else(|| self.fail("no connection".into())))
    }

    fn one_release(&self, sql: &str, params: Params) -> Result<Option<Release>> {
        Ok(self.many_releases(sql, params)?.into_iter().next())
    }

    pub(super) fn many_releases(&self, sql: &str, params: Params) -> Result<Vec<Release>> {
        let sql = format!("SELECT {RELEASE} FROM {{s}}.releases WHERE {sql}");
        self.query(&sql, params)?.iter().map(|r| release_row(r).map_err(|e| self.pg_fail(&e))).collect()
    }

    fn lock_row(&self, env: &EnvName) -> Result<Option<LockInfo>> {
        let rows = self.query(
            &format!("SELECT {LOCK} FROM {{s}}.locks WHERE env = $1 AND holder IS NOT NULL"),
            &[(&env.as_str(), Type::TEXT)],
        )?;
        rows.first().map(lock_info).transpose().map_err(|e| self.pg_fail(&e))
    }
}

fn backoff(attempt: u32) {
    if attempt > 0 {
        std::thread::sleep(Duration::from_millis([0, 100, 400, 1000, 2000][attempt.min(4) as usize]));
    }
}

/// Whether the connection failed (rather than the statement): worth a fresh
/// connection and another try. A read-only standby (25006), a terminated backend
/// (57P01) and a serialization failure or deadlock are in doubt too.
fn retryable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(c) => {
            matches!(c.code(), "40001" | "40P01" | "25006" | "57P01" | "57P02" | "57P03") || c.code().starts_with("08")
        }
        None => std::error::Error::source(e).is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()),
    }
}

pub(super) const RELEASE: &str = "id, version, commit_id, state, schema_revision, created_at, created_by, reason, operation, features, config, artifact, deploy_commit";

pub(super) const OPERATION: &str = "id, env, kind, from_release, to_release, scope, outcome, auto_rollback, reason, actor, host, \
     pid, epoch, started_at, finished_at, error, allow_data_loss";

fn release_row(r: &Row) -> Result<Release, postgres::Error> {
    let commit: Option<String> = r.try_get("commit_id")?;
    let deploy_commit: Option<String> = r.try_get("deploy_commit")?;
    let state: String = r.try_get("state")?;
    let features: String = r.try_get("features")?;
    let config: String = r.try_get("config")?;
    Ok(Release {
        id: ReleaseId(r.try_get::<_, i64>("id")? as u64),
        version: r.try_get("version")?,
        commit: commit.and_then(|c| CommitId::parse(&c).ok()),
        state: ReleaseState::parse(&state).unwrap_or(ReleaseState::Bad),
        schema_revision: r.try_get("schema_revision")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        reason: r.try_get("reason")?,
        operation: r.try_get::<_, Option<i64>>("operation")?.map(|o| o as u64),
        features: serde_json::from_str(&features).unwrap_or_default(),
        config: serde_json::from_str(&config).unwrap_or_default(),
        artifact: r.try_get("artifact")?,
        deploy_commit: deploy_commit.and_then(|c| CommitId::parse(&c).ok()),
    })
}

pub(super) fn operation_row(r: &Row) -> Result<Operation, String> {
    let g = |e: postgres::Error| e.to_string();
    let env: String = r.try_get("env").map_err(g)?;
    let kind: String = r.try_get("kind").map_err(g)?;
    let scope: String = r.try_get("scope").map_err(g)?;
    let outcome: String = r.try_get("outcome").map_err(g)?;
    Ok(Operation {
        id: r.try_get::<_, i64>("id").map_err(g)? as u64,
        env: EnvName::parse(&env).map_err(|e| e.to_string())?,
        kind: OperationKind::parse(&kind).unwrap_or(OperationKind::Deploy),
        from: r.try_get::<_, Option<i64>>("from_release").map_err(g)?.map(|i| ReleaseId(i as u64)),
        to: ReleaseId(r.try_get::<_, i64>("to_release").map_err(g)? as u64),
        scope: Scope::parse(&scope).unwrap_or(Scope::Full),
        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Failed),
        auto_rollback: r.try_get("auto_rollback").map_err(g)?,
        reason: r.try_get("reason").map_err(g)?,
        actor: r.try_get("actor").map_err(g)?,
        host: r.try_get("host").map_err(g)?,
        pid: r.try_get("pid").map_err(g)?,
        epoch: r.try_get("epoch").map_err(g)?,
        started_at: r.try_get("started_at").map_err(g)?,
        finished_at: r.try_get("finished_at").map_err(g)?,
        error: r.try_get("error").map_err(g)?,
        allow_data_loss: r.try_get("allow_data_loss").map_err(g)?,
    })
}

pub(super) fn audit_row(r: &Row) -> Result<ChainedEvent, postgres::Error> {
    let detail: String = r.try_get("detail")?;
    Ok(ChainedEvent {
        id: r.try_get("id")?,
        event: AuditEvent {
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            host: r.try_get("host")?,
            env: r.try_get("env")?,
            operation: r.try_get::<_, Option<i64>>("operation")?.map(|o| o as u64),
            event: r.try_get("event")?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        },
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

pub(super) const AUDIT: &str = "id, chain, seq, at, actor, host, env, operation, event, detail, prev_hash, hash";

impl Ledger for PgLedger {
    fn describe(&self) -> String {
        format!("{} (schema {})", self.url, self.schema)
    }

    fn env_state(&self, env: &EnvName) -> Result<EnvState> {
        let rows = self.query(
            "SELECT current_release, config_release, schema_ahead, epoch FROM {s}.environments WHERE name = $1",
            &[(&env.as_str(), Type::TEXT)],
        )?;
        Ok(rows
            .first()
            .map(|r| EnvState {
                current: r.get::<_, Option<i64>>(0).map(|i| ReleaseId(i as u64)),
                config_release: r.get::<_, Option<i64>>(1).map(|i| ReleaseId(i as u64)),
                schema_ahead: r.get::<_, i32>(2) as u32,
                epoch: r.get(3),
            })
            .unwrap_or_default())
    }

    fn release(&self, env: &EnvName, id: ReleaseId) -> Result<Option<Release>> {
        self.one_release("env = $1 AND id = $2", &[(&env.as_str(), Type::TEXT), (&(id.0 as i64), Type::INT8)])
    }

    fn releases(&self, env: &EnvName, limit: usize) -> Result<Vec<Release>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.many_releases("env = $1 ORDER BY id DESC LIMIT $2", &[(&env.as_str(), Type::TEXT), (&limit, Type::INT8)])
    }

    fn next_release_id(&self, env: &EnvName) -> Result<ReleaseId> {
        let rows = self.query(
            "SELECT COALESCE(MAX(id), 0) + 1 FROM {s}.releases WHERE env = $1",
            &[(&env.as_str(), Type::TEXT)],
        )?;
        Ok(ReleaseId(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(1) as u64))
    }

    fn last_good(&self, env: &EnvName, except: Option<ReleaseId>) -> Result<Option<Release>> {
        let except = except.map(|r| r.0 as i64).unwrap_or(-1);
        self.one_release(
            "env = $1 AND state = 'good' AND id <> $2 ORDER BY id DESC LIMIT 1",
            &[(&env.as_str(), Type::TEXT), (&except, Type::INT8)],
        )
    }

    fn releases_page(&self, env: &EnvName, before: Option<ReleaseId>, limit: usize) -> Result<Vec<Release>> {
        self.releases_page_pg(env, before, limit)
    }

    fn operations(&self, env: Option<&EnvName>, before: Option<u64>, limit: usize) -> Result<Vec<Operation>> {
        self.operations_pg(env, before, limit)
    }

    fn operation_counts(&self) -> Result<Vec<OperationCount>> {
        self.operation_counts_pg()
    }

    fn audit_page(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditRow>> {
        self.audit_page_pg(before, limit)
    }

    fn releases_by_commit(&self, env: &EnvName, prefix: &str) -> Result<Vec<Release>> {
        self.releases_by_commit_pg(env, prefix)
    }

    fn release_by_version(&self, env: &EnvName, version: &str) -> Result<Option<Release>> {
        self.one_release(
            "env = $1 AND version = $2 ORDER BY id DESC LIMIT 1",
            &[(&env.as_str(), Type::TEXT), (&version, Type::TEXT)],
        )
    }

    fn release_before(&self, env: &EnvName, before: ReleaseId) -> Result<Option<Release>> {
        self.one_release(
            "env = $1 AND id < $2 ORDER BY id DESC LIMIT 1",
            &[(&env.as_str(), Type::TEXT), (&(before.0 as i64), Type::INT8)],
        )
    }

    fn releases_with_artifacts(&self, env: &EnvName) -> Result<Vec<Release>> {
        self.many_releases("env = $1 AND artifact ORDER BY id DESC", &[(&env.as_str(), Type::TEXT)])
    }

    fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.query("SELECT content FROM {s}.blobs WHERE sha256 = $1", &[(&sha256, Type::TEXT)])?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    fn backups(&self, env: &EnvName, limit: usize) -> Result<Vec<BackupRecord>> {
        let rows = self.query(
            "SELECT id, operation, release, path, kind, sha256, bytes, schema_revision, created_at, created_by
             FROM {s}.backups WHERE env = $1 ORDER BY id DESC LIMIT $2",
            &[(&env.as_str(), Type::TEXT), (&(limit as i64), Type::INT8)],
        )?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get(4);
                Ok(BackupRecord {
                    id: r.get::<_, i64>(0) as u64,
                    operation: r.get::<_, Option<i64>>(1).map(|o| o as u64),
                    release: r.get::<_, Option<i64>>(2).map(|o| ReleaseId(o as u64)),
                    file: BackupFile {
                        path: std::path::PathBuf::from(r.get::<_, String>(3)),
                        kind: serde_json::from_value(serde_json::Value::String(kind))
                            .map_err(|e| self.fail(format!("backup kind: {e}")))?,
                        sha256: r.get(5),
                        bytes: r.get::<_, i64>(6) as u64,
                        duration_ms: 0,
                    },
                    schema_revision: r.get(7),
                    created_at: r.get(8),
                    created_by: r.get(9),
                })
            })
            .collect()
    }

    fn audit_events(&self, operation: u64) -> Result<Vec<AuditRow>> {
        let rows = self.query(
            &format!("SELECT {AUDIT} FROM {{s}}.audit_events WHERE operation = $1 ORDER BY id"),
            &[(&(operation as i64), Type::INT8)],
        )?;
        self.audit_rows(&rows)
    }

    fn verify_audit(&self) -> Result<AuditCheck> {
        // Each chain on its own: gapless from 1, every link right, ending at its head.
        let heads = self.query("SELECT chain, seq, hash FROM {s}.audit_heads ORDER BY chain", &[])?;
        let mut total = 0;
        for head in &heads {
            let chain: String = head.get(0);
            let rows = self.query(
                &format!("SELECT {AUDIT} FROM {{s}}.audit_events WHERE chain = $1 ORDER BY seq"),
                &[(&chain, Type::TEXT)],
            )?;
            for (i, r) in rows.iter().enumerate() {
                if r.get::<_, i64>("seq") != i as i64 + 1 {
                    return Ok(AuditCheck::Broken { id: r.get("id"), event: r.get("event") });
                }
            }
            let walked = audit::verify(rows.iter().map(audit_row)).map_err(|e| self.pg_fail(&e))?;
            match walked {
                AuditCheck::Intact { events } => {
                    let (seq, hash): (i64, String) = (head.get(1), head.get(2));
                    let last = rows.last().map(|r| r.get::<_, String>("hash")).unwrap_or_default();
                    if seq != events as i64 || hash != last {
                        // The head says more was appended than is there: a tail is gone.
                        return Ok(AuditCheck::Broken { id: seq, event: format!("head of chain {chain}") });
                    }
                    total += events;
                }
                broken => return Ok(broken),
            }
        }
        Ok(AuditCheck::Intact { events: total })
    }

    fn lock_info(&self, env: &EnvName) -> Result<Option<LockInfo>> {
        self.lock_row(env)
    }

    fn acquire(&self, req: &LockRequest, is_stale: &dyn Fn(&LockInfo) -> bool) -> Result<Acquired> {
        let took = RefCell::new(None);
        let epoch = self.write(&req.env, None, |tx| {
            let (epoch, old) = w::acquire(tx, &self.qs, req, is_stale)?;
            *took.borrow_mut() = old;
            Ok(epoch)
        })?;
        Ok(Acquired { epoch, took_over: took.into_inner() })
    }

    fn heartbeat(&self, fence: &Fence, _now: i64, lease: Duration) -> Result<bool> {
        self.writable()?;
        let sql = self.sql(
            "UPDATE {s}.locks SET expires_at = clock_timestamp() + make_interval(secs => $3), renewed_at = clock_timestamp()
             WHERE env = $1 AND epoch = $2 AND holder IS NOT NULL AND expires_at IS NOT NULL RETURNING epoch",
        );
        let secs = lease.as_secs_f64();
        let rows = self.with_client(|c| {
            c.query_typed(&sql, &[(&fence.env.as_str(), Type::TEXT), (&fence.epoch, Type::INT8), (&secs, Type::FLOAT8)])
        })?;
        Ok(rows.len() == 1)
    }

    fn release_lock(&self, fence: &Fence) -> Result<()> {
        self.writable()?;
        let sql = self.sql(&format!("UPDATE {{s}}.locks SET {} WHERE env = $1 AND epoch = $2", w::FREE));
        self.with_client(|c| c.query_typed(&sql, &[(&fence.env.as_str(), Type::TEXT), (&fence.epoch, Type::INT8)]))?;
        Ok(())
    }

    fn force_unlock(&self, env: &EnvName, epoch: Option<i64>, audit: AuditEvent) -> Result<Option<LockInfo>> {
        let old = RefCell::new(None);
        self.write(env, None, |tx| {
            *old.borrow_mut() = w::force_unlock(tx, &self.qs, env, epoch, &audit)?;
            Ok(0)
        })?;
        Ok(old.into_inner())
    }

    fn begin_operation(&self, fence: &Fence, new: NewOperation) -> Result<u64> {
        let op = self.write(&fence.env, Some(fence), |tx| w::begin_operation(tx, &self.qs, fence, &new))?;
        Ok(op as u64)
    }

    fn running_operation(&self, env: &EnvName) -> Result<Option<Operation>> {
        let rows = self.query(
            &format!(
                "SELECT {OPERATION} FROM {{s}}.operations WHERE env = $1 AND outcome = 'running' ORDER BY id DESC LIMIT 1"
            ),
            &[(&env.as_str(), Type::TEXT)],
        )?;
        rows.first().map(operation_row).transpose().map_err(|e| self.fail(e))
    }

    fn operation(&self, id: u64) -> Result<Option<Operation>> {
        let rows = self
            .query(&format!("SELECT {OPERATION} FROM {{s}}.operations WHERE id = $1"), &[(&(id as i64), Type::INT8)])?;
        rows.first().map(operation_row).transpose().map_err(|e| self.fail(e))
    }

    fn steps(&self, op: u64) -> Result<Vec<StepRecord>> {
        let rows = self.query(
            "SELECT seq, phase, host, spec, state, started_at, duration_ms, detail FROM {s}.steps
             WHERE operation = $1 ORDER BY seq",
            &[(&(op as i64), Type::INT8)],
        )?;
        rows.iter()
            .map(|r| {
                let spec: String = r.get(3);
                Ok(StepRecord {
                    seq: r.get::<_, i32>(0) as u32,
                    step: serde_json::from_str(&spec).map_err(|e| self.fail(format!("step spec: {e}")))?,
                    phase: Phase::parse(&r.get::<_, String>(1)).unwrap_or(Phase::Forward),
                    host: r.get(2),
                    state: StepState::parse(&r.get::<_, String>(4)).unwrap_or(StepState::Planned),
                    started_at_ms: r.get(5),
                    duration_ms: r.get(6),
                    detail: r.get(7),
                })
            })
            .collect()
    }

    fn apply(&self, fence: &Fence, changes: Vec<Change>) -> Result<()> {
        self.write(&fence.env, Some(fence), |tx| {
            w::write_changes(tx, &self.qs, &fence.env, &changes)?;
            Ok(0)
        })?;
        Ok(())
    }

    fn apply_unfenced(&self, env: &EnvName, changes: Vec<Change>) -> Result<()> {
        if changes.iter().any(|c| matches!(c, Change::ReleaseLock)) {
            return Err(self.fail("only the lock's holder may free it through apply".into()));
        }
        self.write(env, None, |tx| {
            w::ensure_env(tx, &self.qs, env)?;
            w::write_changes(tx, &self.qs, env, &changes)?;
            Ok(0)
        })?;
        Ok(())
    }
}
