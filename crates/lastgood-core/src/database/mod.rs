//! The database: migrations that know which release was good, previews of the exact
//! SQL, protection for data, and proof that the way back works.
//!
//! From the bottom up (a module uses only modules above it in this list):
//!
//! - [`dialect`]: which SQL dialect a database speaks.
//! - [`conninfo`]: what a PostgreSQL connection string says (a URL or `key=value`).
//! - [`pgenv`]: the `PG*` variables, the OS user and home: a connection's defaults.
//! - [`pgpass`]: the password file, read as libpq reads it.
//! - [`url`]: database URLs completed as libpq completes them, the password kept out
//!   of displays and argv.
//! - [`pg_client`]: connecting to PostgreSQL as `sslmode` says; its errors as one line.
//! - [`sql`]: splitting scripts into statements, quoting literals.
//! - [`lint`]: classifying SQL as safe, blocking or destructive with a real parser.
//! - [`migration_files`]: reading a migrations folder (diesel and sqlx layouts).
//! - [`driver`]: the trait the migrator runs statements through, and its PostgreSQL and
//!   SQLite implementations for application databases.
//! - [`migrator`]: the builtin engine: what is applied, what `up`/`down` would run, running it.
//! - [`verdict`]: the linter's verdict on each migration of a plan; the destructive ones.
//! - [`program`]: running a team's own schema tool (argv, `DATABASE_URL`), its typed failures.
//! - [`alembic`]: Alembic through its own commands: its revisions, positions in its
//!   history, its offline SQL per revision.
//! - [`tool`]: the builtin engine, Alembic or a team's own commands, behind one interface.
//! - [`backup`]: `pg_dump -Fc` / `pg_restore`, template copies, SQLite's online backup.
//! - [`restore`]: an emergency restore in resumable phases: a fresh database loaded
//!   beside the live one, swapped in, the old one kept aside until verified.
//! - [`schema`]: introspecting a schema and comparing two semantically.
//! - [`rehearse`]: `lastgood db rehearse`, a rollback path proven on scratch databases.
//! - [`environment`]: one environment's database, where the engine, the journal and
//!   `lastgood db` meet all of the above.
//!
//! This file only lists the modules: none of them uses an item defined here, so the
//! folder has no import cycle through its root.

pub mod alembic;
pub mod backup;
pub mod conninfo;
pub mod dialect;
pub mod driver;
pub mod environment;
pub mod lint;
pub mod migration_files;
pub mod migrator;
pub mod pg_client;
pub mod pgenv;
pub mod pgpass;
pub mod program;
pub mod rehearse;
pub mod restore;
pub mod schema;
pub mod sql;
#[cfg(test)]
pub(crate) mod test_pg;
pub mod tool;
pub mod url;
pub mod verdict;
pub mod work;
