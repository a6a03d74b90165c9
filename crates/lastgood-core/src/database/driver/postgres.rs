//! The PostgreSQL driver: the migrator's [`Driver`] over the `postgres` crate's
//! synchronous client, connected through [`pg_client`] (TLS as the URL's `sslmode`
//! says). It migrates the application's database; lastgood's own history is the ledger's
//! (`ledger/`), not this driver's.
//!
//! Concurrent runs are kept apart by a session-level advisory lock, which PostgreSQL
//! releases by itself when the session ends, so a killed lastgood never leaves a stuck
//! lock (Liquibase's and golang-migrate's classic failure). The wait is bounded and
//! the error names the session holding it.

use std::time::{Duration, Instant};

use postgres::Client;

use super::api::{Applied, DbError, Driver, Stmt, statement_error};
use crate::database::dialect::Dialect;
use crate::database::migration_files;
use crate::database::pg_client::{self, message};
use crate::database::url::PgUrl;

/// "lastgood" in ASCII: the advisory lock key.
const LOCK_KEY: i64 = 0x6c61_7374_676f_6f64;

pub struct Pg {
    client: Client,
    url: String,
    session: Vec<String>,
}

pub struct PgSettings {
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
}

impl Pg {
    pub fn connect(url: &PgUrl, actor: &str, settings: &PgSettings) -> Result<Self, DbError> {
        let shown = url.to_string();
        let client = pg_client::connect(url, &format!("lastgood {actor}"))
            .map_err(|e| DbError::Connect { url: shown.clone(), message: e.to_string() })?;
        let mut session = Vec::new();
        if let Some(t) = settings.lock_timeout {
            session.push(format!("SET lock_timeout = '{}ms'", t.as_millis()));
        }
        if let Some(t) = settings.statement_timeout {
            session.push(format!("SET statement_timeout = '{}ms'", t.as_millis()));
        }
        let mut me = Self { client, url: shown, session };
        for s in me.session.clone() {
            me.execute(&Stmt::ours(s))?;
        }
        Ok(me)
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn holder(&mut self) -> String {
        let q = "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local socket'), \
                 coalesce(to_char(a.backend_start, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), '') \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1";
        // pg_locks splits a bigint advisory key into two oids: high and low 32 bits.
        let classid = (LOCK_KEY >> 32) as u32;
        let objid = LOCK_KEY as u32;
        let row = self.client.query_opt(q, &[&classid, &objid]);
        match row {
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
    fn session(&self) -> Vec<String> {
        self.session.clone()
    }

    fn execute(&mut self, stmt: &Stmt) -> Result<(), DbError> {
        self.client.batch_execute(&stmt.text).map_err(|e| statement_error(stmt, message(&e)))
    }

    fn applied(&mut self) -> Result<Vec<Applied>, DbError> {
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass('lastgood.migrations') IS NOT NULL", &[])
            .map_err(|e| DbError::Database { what: "read the bookkeeping".into(), message: message(&e) })?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                 duration_ms, down_sql, no_transaction, applied_by FROM lastgood.migrations",
                &[],
            )
            .map_err(|e| DbError::Database { what: "read the bookkeeping".into(), message: message(&e) })?;
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

    fn lock(&mut self, wait: Duration) -> Result<(), DbError> {
        let start = Instant::now();
        loop {
            let got: bool = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
                .map_err(|e| DbError::Database { what: "take the migration lock".into(), message: message(&e) })?
                .get(0);
            if got {
                return Ok(());
            }
            if start.elapsed() >= wait {
                let holder = self.holder();
                return Err(DbError::Locked { url: self.url.clone(), holder, waited: start.elapsed() });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        self.client
            .query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .map(|_| ())
            .map_err(|e| DbError::Database { what: "free the migration lock".into(), message: message(&e) })
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }
}
