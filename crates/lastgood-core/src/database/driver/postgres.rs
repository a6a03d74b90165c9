//! The PostgreSQL driver: the migrator's [`Driver`] over the `postgres` crate's
//! synchronous client, connected through [`pg_client`] (TLS as the URL's `sslmode`
//! says). It migrates the application's database; lastgood's own history is the ledger's
//! (`ledger/`), not this driver's.
//!
//! Nothing it relies on outlives a transaction, so it works the same directly and
//! through a pooler in transaction mode (PgBouncer's `pool_mode = transaction`), where
//! consecutive transactions of one client may run on different server connections:
//!
//! - The migration lock is a transaction-level advisory lock
//!   (`pg_try_advisory_xact_lock`), taken inside each migration's own transaction, and
//!   the same transaction checks that the migration is still to do before running it.
//!   Two runs therefore take turns migration by migration, and each migration is
//!   applied (or reverted) once, in order, whichever run gets to it. PostgreSQL drops
//!   the lock at commit, at rollback and when the session dies, so a killed lastgood
//!   never leaves it stuck. A session-level lock would not survive a pooler: taken on
//!   one server connection, released on another (or never), it stays with the pooled
//!   connection and blocks every later run.
//! - A migration that must run outside a transaction (`CREATE INDEX CONCURRENTLY`)
//!   cannot hold a transaction's lock itself: a second connection opens a
//!   transaction, takes the lock there and checks the migration is still to do, and
//!   commits once the migration and its bookkeeping are done. Its transaction holds
//!   no snapshot between statements, so `CONCURRENTLY` does not wait for it.
//! - `lock_timeout` and `statement_timeout` are `SET LOCAL` in each transaction.
//! - Statements and the lock's and checks' queries use the simple protocol, reads of
//!   the bookkeeping the extended protocol with the unnamed statement (`query_typed`):
//!   no prepared statement is ever expected to exist on a server connection after its
//!   transaction.
//!
//! The wait for the lock is bounded (`lock_wait`) and the error names the session
//! holding it.

use std::time::Duration;

use postgres::Client;

use super::api::{Applied, DbError, Driver, Stmt, statement_error};
use crate::database::dialect::Dialect;
use crate::database::migration_files;
use crate::database::pg_client::{self, message};
use crate::database::url::PgUrl;

/// "lastgood" in ASCII: the advisory lock key.
pub const LOCK_KEY: i64 = 0x6c61_7374_676f_6f64;

pub struct Pg {
    client: Client,
    /// The second connection, opened the first time a migration outside a transaction
    /// needs it.
    guard: Option<Client>,
    pg: PgUrl,
    app: String,
    url: String,
    settings: Vec<String>,
}

pub struct PgSettings {
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
}

impl Pg {
    pub fn connect(url: &PgUrl, actor: &str, settings: &PgSettings) -> Result<Self, DbError> {
        let app = format!("lastgood {actor}");
        let client = Self::open(url, &app)?;
        let mut local = Vec::new();
        if let Some(t) = settings.lock_timeout {
            local.push(format!("SET LOCAL lock_timeout = '{}ms'", t.as_millis()));
        }
        if let Some(t) = settings.statement_timeout {
            local.push(format!("SET LOCAL statement_timeout = '{}ms'", t.as_millis()));
        }
        Ok(Self { client, guard: None, pg: url.clone(), app, url: url.to_string(), settings: local })
    }

    fn open(url: &PgUrl, app: &str) -> Result<Client, DbError> {
        pg_client::connect(url, app).map_err(|e| DbError::Connect { url: url.to_string(), message: e.to_string() })
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The connection a statement runs on.
    fn on(&mut self, stmt: &Stmt) -> Result<&mut Client, DbError> {
        if !stmt.guard {
            return Ok(&mut self.client);
        }
        let guard = match self.guard.take() {
            Some(g) => g,
            None => Self::open(&self.pg, &self.app)?,
        };
        Ok(self.guard.insert(guard))
    }
}

impl Driver for Pg {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn describe(&self) -> String {
        self.url.clone()
    }
    fn table(&self) -> &'static str {
        "lastgood.migrations"
    }
    fn bookkeeping_ddl(&self) -> Vec<String> {
        vec![
            "CREATE SCHEMA IF NOT EXISTS lastgood".to_owned(),
            "CREATE TABLE IF NOT EXISTS lastgood.migrations (version text PRIMARY KEY, name text NOT NULL, \
             checksum text NOT NULL, applied_at timestamptz NOT NULL, duration_ms bigint, down_sql text, \
             no_transaction boolean NOT NULL DEFAULT false, applied_by text)"
                .to_owned(),
        ]
    }
    fn begin(&self) -> &'static str {
        "BEGIN"
    }
    fn now_expr(&self) -> &'static str {
        "clock_timestamp()"
    }
    fn elapsed_ms_expr(&self) -> &'static str {
        "(extract(epoch FROM clock_timestamp() - applied_at) * 1000)::bigint"
    }
    fn transaction_settings(&self) -> Vec<String> {
        self.settings.clone()
    }
    fn lock_sql(&self) -> Option<String> {
        Some(format!("SELECT pg_try_advisory_xact_lock({LOCK_KEY})"))
    }

    fn execute(&mut self, stmt: &Stmt) -> Result<(), DbError> {
        self.on(stmt)?.batch_execute(&stmt.text).map_err(|e| statement_error(stmt, message(&e)))
    }

    /// Through the simple protocol: an extended-protocol portal would stay open until
    /// the transaction ends, and keep the snapshot that `CREATE INDEX CONCURRENTLY` on
    /// the other connection then waits for.
    fn query_flag(&mut self, stmt: &Stmt) -> Result<bool, DbError> {
        let answer = self.on(stmt)?.simple_query(&stmt.text).map_err(|e| statement_error(stmt, message(&e)))?;
        let value = answer.iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        });
        match value.flatten().as_deref() {
            Some("t") => Ok(true),
            Some("f") => Ok(false),
            other => Err(statement_error(stmt, format!("expected true or false, got {other:?}"))),
        }
    }

    fn applied(&mut self) -> Result<Vec<Applied>, DbError> {
        let read = |e: postgres::Error| DbError::Database { what: "read the bookkeeping".into(), message: message(&e) };
        let exists: bool = self
            .client
            .query_typed_one("SELECT to_regclass('lastgood.migrations') IS NOT NULL", &[])
            .map_err(read)?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query_typed(
                "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                 duration_ms, down_sql, no_transaction, applied_by FROM lastgood.migrations",
                &[],
            )
            .map_err(read)?;
        let mut out: Vec<Applied> = rows
            .iter()
            .map(|r| Applied {
                version: r.get(0),
                name: r.get(1),
                checksum: r.get(2),
                applied_at: r.get(3),
                duration_ms: r.get(4),
                down_sql: r.get(5),
                no_transaction: r.get(6),
                applied_by: r.get(7),
            })
            .collect();
        out.sort_by(|a, b| migration_files::compare_versions(&a.version, &b.version));
        Ok(out)
    }

    /// The lock lives in each transaction ([`Driver::lock_sql`]); a run takes none.
    fn lock(&mut self, _wait: Duration) -> Result<(), DbError> {
        Ok(())
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        Ok(())
    }

    fn holder(&mut self) -> String {
        // pg_locks splits a bigint advisory key into two oids: high and low 32 bits.
        let q = format!(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local socket'), \
             coalesce(to_char(a.backend_start, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), '') \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {} AND l.objid = {} AND l.objsubid = 1 \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
            (LOCK_KEY >> 32) as u32,
            LOCK_KEY as u32
        );
        match self.client.query_typed_opt(&q, &[]) {
            Ok(Some(r)) => {
                let pid: i32 = r.get(0);
                let app: String = r.get(1);
                let addr: String = r.get(2);
                let since: String = r.get(3);
                format!("session {pid} ({app}, from {addr}, since {since})")
            }
            _ => "another session".to_owned(),
        }
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
        if let Some(g) = &mut self.guard {
            let _ = g.batch_execute("ROLLBACK");
        }
    }
}
