//! `lastgood ledger ...`: the ledger itself rather than an environment. `init` creates
//! a team ledger's schema (never done by opening one), `status` says where the ledger
//! is, its schema version, and each environment's lock with its epoch (the number
//! `unlock --force --epoch N` names). `migrate` moves an SQLite ledger into a team
//! ledger ([`crate::ledger::migrate`]).

use serde::Serialize;

use super::{Engine, team_url};
use crate::config::{Config, LedgerUrl};
use crate::context::rfc3339;
use crate::database::url::DbUrl;
use crate::error::{Error, Result};
use crate::ledger::migrate::{self, Migrated};
use crate::ledger::postgres::Init;
use crate::ledger::{PgLedger, SqliteLedger, postgres_schema};

/// What `ledger init` did, and the grants to run for the two roles.
#[derive(Debug, Clone, Serialize)]
pub struct Initialised {
    pub ledger: String,
    pub schema: String,
    /// False when the schema was already there (nothing was changed).
    pub created: bool,
    pub schema_version: i64,
    pub grants: String,
}

/// Creates the team ledger's schema in one transaction, unless it exists.
pub fn init(config: &Config) -> Result<Initialised> {
    let LedgerUrl::Postgres(team) = &config.ledger else {
        return Err(Error::Usage {
            what: "ledger init creates a PostgreSQL ledger; set [ledger] url or url_env to one (the SQLite ledger is created when first used)".into(),
        });
    };
    let url = team_url(team)?;
    let (created, version) = match PgLedger::init(&url, &team.schema)? {
        Init::Created => (true, postgres_schema::SCHEMA_VERSION),
        Init::AlreadyThere { version } => (false, version),
    };
    Ok(Initialised {
        ledger: url.to_string(),
        schema: team.schema.clone(),
        created,
        schema_version: version,
        grants: postgres_schema::grants(&team.schema),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerStatus {
    pub ledger: String,
    /// `sqlite` or `postgresql`.
    pub kind: &'static str,
    pub schema: Option<String>,
    pub schema_version: Option<i64>,
    /// Whether this lastgood may write to it (a newer schema is read-only to it, and so
    /// is a team ledger reached as a superuser unless `[ledger] allow_superuser`).
    pub writable: bool,
    /// Why not, when it may not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<String>,
    pub environments: Vec<EnvLock>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvLock {
    pub environment: String,
    pub current: Option<u64>,
    pub lock: Option<LockView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockView {
    pub holder: String,
    pub host: String,
    pub epoch: i64,
    pub operation: Option<u64>,
    pub reason: Option<String>,
    pub expires_at: Option<String>,
    /// Judged by the server's clock on a team ledger.
    pub expired: Option<bool>,
}

impl Engine {
    pub fn ledger_status(&self) -> Result<LedgerStatus> {
        let (kind, schema, version, read_only) = match &self.config.ledger {
            LedgerUrl::Sqlite(_) => ("sqlite", None, None, None),
            LedgerUrl::Postgres(team) => {
                let meta = PgLedger::open(&team_url(team)?, &team.schema)?.meta()?;
                let read_only = if meta.min_writer > postgres_schema::SCHEMA_VERSION {
                    Some("newer than this lastgood".to_owned())
                } else {
                    meta.superuser
                        .filter(|_| !team.allow_superuser)
                        .map(|role| format!("connected as `{role}`, a superuser; see [ledger] allow_superuser"))
                };
                ("postgresql", Some(team.schema.clone()), meta.version, read_only)
            }
        };
        let mut environments = Vec::new();
        for name in self.config.environments.keys() {
            let lock = self.ledger.lock_info(name)?.map(|l| LockView {
                holder: l.holder,
                host: l.host,
                epoch: l.epoch,
                operation: l.operation,
                reason: l.reason,
                expires_at: l.expires_at.map(rfc3339),
                expired: l.expired,
            });
            let current = self.ledger.env_state(name)?.current.map(|c| c.0);
            environments.push(EnvLock { environment: name.to_string(), current, lock });
        }
        Ok(LedgerStatus {
            ledger: self.ledger.describe(),
            kind,
            schema,
            schema_version: version,
            writable: read_only.is_none(),
            read_only,
            environments,
        })
    }
}

/// `ledger migrate --to URL`: this config's SQLite ledger into the PostgreSQL database
/// at `to`, in `[ledger] schema`.
pub fn migrate(config: &Config, to: &str, now: i64) -> Result<Migrated> {
    let LedgerUrl::Sqlite(path) = &config.ledger else {
        return Err(Error::Usage {
            what: "ledger migrate moves an SQLite ledger; this config's ledger is already a PostgreSQL one".into(),
        });
    };
    let url = match DbUrl::parse(to, &config.dir).map_err(|e| Error::Usage { what: format!("--to: {e}") })? {
        DbUrl::Postgres(pg) => pg,
        DbUrl::Sqlite(_) => return Err(Error::Usage { what: "--to: expected a postgres:// URL".into() }),
    };
    for env in config.environments.values() {
        if let Some(Ok(DbUrl::Postgres(app))) = env.database.as_ref().map(|d| d.url.resolve()) {
            if app.same_database(&url) {
                return Err(Error::Usage {
                    what: format!(
                        "--to: {url} is the application database of `{}`; the ledger needs a database of its own",
                        env.name
                    ),
                });
            }
        }
    }
    let ledger = SqliteLedger::open(path)?;
    migrate::migrate(&ledger, &url, &config.ledger_schema, now)
}
