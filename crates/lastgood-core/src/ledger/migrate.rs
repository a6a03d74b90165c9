//! `lastgood ledger migrate --to URL`: an SQLite ledger moved into an empty
//! PostgreSQL ledger, checked, and the SQLite ledger marked as moved.
//!
//! The order is what makes a crash at any point safe to rerun:
//!
//! 1. Under the SQLite write lock (held to the end, so nothing writes meanwhile):
//!    refuse while an operation runs or a lock is held, and verify the audit chain.
//! 2. One PostgreSQL transaction copies everything: environments with their epoch + 1
//!    (hosts remember the highest epoch they saw, so the new ledger's grants must be
//!    above them), releases and operations with their ids and times, steps, backups,
//!    config snapshots' contents, and the audit events verbatim as a chain of their own
//!    (`sqlite`), with a `ledger.migrate` event on the main chain that holds the
//!    imported head's hash. `meta.migrated_from` records the source and that head.
//! 3. The copy is checked (counts, the imported chain verifies to the same head).
//! 4. The SQLite ledger records where it went (`moved`): it refuses every write from
//!    then on and names the URL.
//!
//! A rerun after a crash in 2 finds nothing copied (one transaction) and starts again;
//! after 3, finds `migrated_from` naming this ledger's head and only marks it; after 4,
//! says it was already migrated.

use postgres::types::{ToSql, Type};
use rusqlite::OptionalExtension;

use super::postgres::PgLedger;
use super::postgres_write::append;
use super::sqlite::SqliteLedger;
use super::store::Ledger;
use super::{AuditCheck, AuditEvent};
use crate::error::{Error, Result};
use crate::failpoint;

/// The imported chain's name on the team ledger.
pub const IMPORTED_CHAIN: &str = "sqlite";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Migrated {
    pub to: String,
    pub releases: u64,
    pub operations: u64,
    pub audit_events: u64,
    /// The imported chain's last hash.
    pub head: String,
    /// True when an earlier run had finished (or finished all but marking the SQLite
    /// ledger, which this run did).
    pub already: bool,
}

fn fail(to: &PgLedger, message: String) -> Error {
    Error::Ledger { path: to.describe(), message }
}

/// Moves `from` into `to` (whose schema may not exist yet, or must hold no ledger
/// data). `shown` is the target URL without its password, for the moved marker.
pub fn migrate(from: &SqliteLedger, to_url: &crate::database::url::PgUrl, schema: &str, at: i64) -> Result<Migrated> {
    let shown = to_url.to_string();
    let src = from.connection();
    let sq = |e: rusqlite::Error| Error::Ledger { path: from.describe(), message: e.to_string() };
    let moved: Option<(String, String)> =
        src.query_row("SELECT url, head FROM moved", [], |r| Ok((r.get(0)?, r.get(1)?))).optional().map_err(sq)?;
    let count = |sql: &str| src.query_row(sql, [], |r| r.get::<_, i64>(0)).map_err(sq);
    if let Some((url, head)) = moved {
        return Ok(Migrated {
            to: url,
            releases: count("SELECT count(*) FROM releases")? as u64,
            operations: count("SELECT count(*) FROM operations")? as u64,
            audit_events: count("SELECT count(*) FROM audit_events")? as u64,
            head,
            already: true,
        });
    }
    src.execute_batch("BEGIN IMMEDIATE").map_err(sq)?;
    let result = copy(from, to_url, schema, at);
    let done = match result {
        Ok(m) => src
            .execute(
                "INSERT INTO moved (id, url, schema, at, head) VALUES (1, ?1, ?2, ?3, ?4)",
                rusqlite::params![shown, schema, at, m.head],
            )
            .and_then(|_| src.execute_batch("COMMIT"))
            .map(|_| m)
            .map_err(sq),
        Err(e) => Err(e),
    };
    if done.is_err() {
        let _ = src.execute_batch("ROLLBACK");
    }
    done
}

fn copy(from: &SqliteLedger, to_url: &crate::database::url::PgUrl, schema: &str, at: i64) -> Result<Migrated> {
    let src = from.connection();
    let sq = |e: rusqlite::Error| Error::Ledger { path: from.describe(), message: e.to_string() };
    let count = |sql: &str| src.query_row(sql, [], |r| r.get::<_, i64>(0)).map_err(sq);
    let busy =
        count("SELECT count(*) FROM operations WHERE outcome = 'running'")? + count("SELECT count(*) FROM locks")?;
    if busy > 0 {
        return Err(Error::Usage {
            what: "ledger migrate: an operation is running or a lock is held; finish it (`lastgood resume`) or unlock first".into(),
        });
    }
    let events = match from.verify_audit()? {
        AuditCheck::Intact { events } => events as u64,
        AuditCheck::Broken { id, event } => {
            return Err(Error::Usage {
                what: format!("ledger migrate: the audit chain is broken at event {id} ({event}); nothing was copied"),
            });
        }
    };
    let head: String = src
        .query_row("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
        .optional()
        .map_err(sq)?
        .unwrap_or_default();
    let releases = count("SELECT count(*) FROM releases")? as u64;
    let operations = count("SELECT count(*) FROM operations")? as u64;
    let source = format!("{} {head}", from.describe());
    let mine = Migrated { to: to_url.to_string(), releases, operations, audit_events: events, head, already: false };

    PgLedger::init(to_url, schema)?;
    let to = PgLedger::open(to_url, schema)?;
    let q = |s: &str| to.sql(s);
    let previous = to.query("SELECT value FROM {s}.meta WHERE key = 'migrated_from'", &[])?;
    if let Some(r) = previous.first() {
        let v: String = r.get(0);
        if v == source {
            return Ok(Migrated { already: true, ..mine });
        }
        return Err(fail(&to, format!("it already holds a ledger migrated from {v}")));
    }
    let used = to.query(
        "SELECT (SELECT count(*) FROM {s}.releases) + (SELECT count(*) FROM {s}.operations)
              + (SELECT count(*) FROM {s}.audit_events)",
        &[],
    )?;
    if used.first().is_some_and(|r| r.get::<_, i64>(0) > 0) {
        return Err(fail(&to, "it is not empty: migrate into a ledger that holds no history yet".into()));
    }

    // Read everything first (under the SQLite write lock), then write in one transaction.
    let tables: Vec<Table> = vec![
        (
            "environments",
            "SELECT name, current_release, config_release, schema_ahead, epoch + 1 FROM environments",
            vec![
                ("name", Type::TEXT),
                ("current_release", Type::INT8),
                ("config_release", Type::INT8),
                ("schema_ahead", Type::INT4),
                ("epoch", Type::INT8),
            ],
        ),
        (
            "releases",
            "SELECT env, id, version, commit_id, state, schema_revision, created_at, created_by, reason, operation, features, config, artifact, deploy_commit FROM releases",
            vec![
                ("env", Type::TEXT),
                ("id", Type::INT8),
                ("version", Type::TEXT),
                ("commit_id", Type::TEXT),
                ("state", Type::TEXT),
                ("schema_revision", Type::TEXT),
                ("created_at", Type::INT8),
                ("created_by", Type::TEXT),
                ("reason", Type::TEXT),
                ("operation", Type::INT8),
                ("features", Type::TEXT),
                ("config", Type::TEXT),
                ("artifact", Type::BOOL),
                ("deploy_commit", Type::TEXT),
            ],
        ),
        (
            "operations",
            "SELECT id, env, kind, from_release, to_release, scope, outcome, auto_rollback, reason, actor, host, pid, epoch, started_at, finished_at, error, allow_data_loss FROM operations",
            vec![
                ("id", Type::INT8),
                ("env", Type::TEXT),
                ("kind", Type::TEXT),
                ("from_release", Type::INT8),
                ("to_release", Type::INT8),
                ("scope", Type::TEXT),
                ("outcome", Type::TEXT),
                ("auto_rollback", Type::BOOL),
                ("reason", Type::TEXT),
                ("actor", Type::TEXT),
                ("host", Type::TEXT),
                ("pid", Type::INT4),
                ("epoch", Type::INT8),
                ("started_at", Type::INT8),
                ("finished_at", Type::INT8),
                ("error", Type::TEXT),
                ("allow_data_loss", Type::BOOL),
            ],
        ),
        (
            "steps",
            "SELECT operation, seq, name, phase, host, spec, state, started_at, duration_ms, detail FROM steps",
            vec![
                ("operation", Type::INT8),
                ("seq", Type::INT4),
                ("name", Type::TEXT),
                ("phase", Type::TEXT),
                ("host", Type::TEXT),
                ("spec", Type::TEXT),
                ("state", Type::TEXT),
                ("started_at", Type::INT8),
                ("duration_ms", Type::INT8),
                ("detail", Type::TEXT),
            ],
        ),
        (
            "backups",
            "SELECT id, env, operation, release, path, kind, sha256, bytes, schema_revision, created_at, created_by FROM backups",
            vec![
                ("id", Type::INT8),
                ("env", Type::TEXT),
                ("operation", Type::INT8),
                ("release", Type::INT8),
                ("path", Type::TEXT),
                ("kind", Type::TEXT),
                ("sha256", Type::TEXT),
                ("bytes", Type::INT8),
                ("schema_revision", Type::TEXT),
                ("created_at", Type::INT8),
                ("created_by", Type::TEXT),
            ],
        ),
        (
            "audit_events",
            "SELECT ?1, row_number() OVER (ORDER BY id), at, actor, host, env, operation, event, detail, prev_hash, hash FROM audit_events ORDER BY id",
            vec![
                ("chain", Type::TEXT),
                ("seq", Type::INT8),
                ("at", Type::INT8),
                ("actor", Type::TEXT),
                ("host", Type::TEXT),
                ("env", Type::TEXT),
                ("operation", Type::INT8),
                ("event", Type::TEXT),
                ("detail", Type::TEXT),
                ("prev_hash", Type::TEXT),
                ("hash", Type::TEXT),
            ],
        ),
    ];
    let mut read = Vec::new();
    for (table, select, cols) in &tables {
        let mut st = src.prepare(select).map_err(sq)?;
        let n = st.parameter_count();
        let args: Vec<&dyn rusqlite::ToSql> = if n == 1 { vec![&IMPORTED_CHAIN] } else { vec![] };
        let rows = st
            .query_map(args.as_slice(), |r| {
                (0..cols.len()).map(|i| value(r, i, &cols[i].1)).collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(sq)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sq)?;
        read.push((*table, cols, rows));
    }
    let mut shas = std::collections::BTreeSet::new();
    let mut st = src.prepare("SELECT config FROM releases").map_err(sq)?;
    for config in st.query_map([], |r| r.get::<_, String>(0)).map_err(sq)? {
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&config.map_err(sq)?).unwrap_or_default();
        shas.extend(map.into_values());
    }
    let mut blobs = Vec::new();
    for sha in shas {
        if let Some(content) = from.blob(&sha)? {
            blobs.push((sha, content));
        }
    }
    failpoint::hit("migrate:read");

    let migrate_event = AuditEvent {
        at,
        actor: "lastgood".into(),
        host: String::new(),
        env: None,
        operation: None,
        event: "ledger.migrate".into(),
        detail: serde_json::json!({ "from": from.describe(), "chain": IMPORTED_CHAIN, "head": mine.head, "events": events }),
    };
    let qs_head = mine.head.clone();
    to.with_client(|c| {
        let mut tx = c.transaction()?;
        tx.query_typed(&q("INSERT INTO {s}.audit_heads (chain, seq, hash) VALUES ($1, $2, $3)"), &[
            (&IMPORTED_CHAIN, Type::TEXT),
            (&(events as i64), Type::INT8),
            (&qs_head, Type::TEXT),
        ])?;
        for (table, cols, rows) in &read {
            let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
            let sql = q(&format!("INSERT INTO {{s}}.{table} ({}) VALUES ({})", names.join(", "), marks.join(", ")));
            for row in rows {
                let params: Vec<(&(dyn ToSql + Sync), Type)> =
                    row.iter().zip(cols.iter()).map(|(v, c)| (v.as_sql(), c.1.clone())).collect();
                tx.query_typed(&sql, &params)?;
            }
        }
        tx.batch_execute(&q("INSERT INTO {s}.locks (env, epoch) SELECT name, epoch FROM {s}.environments"))?;
        for (sha, content) in &blobs {
            tx.query_typed(&q("INSERT INTO {s}.blobs (sha256, content) VALUES ($1, $2) ON CONFLICT DO NOTHING"), &[
                (sha, Type::TEXT),
                (content, Type::BYTEA),
            ])?;
        }
        for table in ["operations", "backups"] {
            tx.batch_execute(&q(&format!(
                "SELECT setval(pg_get_serial_sequence('{{s}}.{table}', 'id'), GREATEST((SELECT max(id) FROM {{s}}.{table}), 1))"
            )))?;
        }
        tx.query_typed(&q("INSERT INTO {s}.meta (key, value) VALUES ('migrated_from', $1)"), &[(&source, Type::TEXT)])?;
        append(&mut tx, to.quoted_schema(), &migrate_event)?;
        tx.commit()
    })?;
    failpoint::hit("migrate:copied");

    // The copy, checked.
    let n = |sql: &str| -> Result<i64> { Ok(to.query(sql, &[])?.first().map(|r| r.get::<_, i64>(0)).unwrap_or(-1)) };
    let copied = (
        n("SELECT count(*) FROM {s}.releases")? as u64,
        n("SELECT count(*) FROM {s}.operations")? as u64,
        n("SELECT count(*) FROM {s}.audit_events WHERE chain = 'sqlite'")? as u64,
    );
    if copied != (releases, operations, events) || !matches!(to.verify_audit()?, AuditCheck::Intact { .. }) {
        return Err(fail(
            &to,
            format!("the copy does not match: {copied:?} against {:?}", (releases, operations, events)),
        ));
    }
    Ok(mine)
}

/// A table to copy: its name, the SQLite select, and each column with its type.
type Table<'a> = (&'a str, &'a str, Vec<(&'a str, Type)>);

/// A value read from SQLite, typed for its PostgreSQL column.
enum Value {
    I8(Option<i64>),
    I4(Option<i32>),
    Bool(Option<bool>),
    Text(Option<String>),
}

impl Value {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::I8(v) => v,
            Self::I4(v) => v,
            Self::Bool(v) => v,
            Self::Text(v) => v,
        }
    }
}

fn value(r: &rusqlite::Row, i: usize, t: &Type) -> rusqlite::Result<Value> {
    Ok(match *t {
        Type::INT8 => Value::I8(r.get(i)?),
        Type::INT4 => Value::I4(r.get(i)?),
        Type::BOOL => Value::Bool(r.get::<_, Option<i64>>(i)?.map(|v| v != 0)),
        _ => Value::Text(r.get(i)?),
    })
}
