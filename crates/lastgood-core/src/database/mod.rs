//! The database: migrations that know which release was good, previews of the exact
//! SQL, protection for data, and proof that the way back works.
//!
//! From the bottom up (a module uses only modules above it in this list):
//!
//! - [`dialect`]: which SQL dialect a database speaks.
//! - [`url`]: database URLs with the password kept out of displays and argv.
//! - [`pg_client`]: connecting to PostgreSQL as `sslmode` says; its errors as one line.
//! - [`sql`]: splitting scripts into statements, quoting literals.
//! - [`lint`]: classifying SQL as safe, blocking or destructive with a real parser.
//! - [`migration_files`]: reading a migrations folder (diesel and sqlx layouts).
//! - [`driver`]: the trait the migrator runs statements through, and its PostgreSQL and
//!   SQLite implementations for application databases.
//! - [`migrator`]: the builtin engine: what is applied, what `up`/`down` would run, running it.
//! - [`verdict`]: the linter's verdict on each migration of a plan; the destructive ones.
//! - [`tool`]: the builtin engine, Alembic or a team's own commands, behind one interface.
//! - [`backup`]: `pg_dump -Fc` / `pg_restore`, template copies, SQLite's online backup.
//! - [`schema`]: introspecting a schema and comparing two semantically.
//! - [`rehearse`]: `lastgood db rehearse`, a rollback path proven on scratch databases.
//! - [`environment`]: one environment's database, where the engine, the journal and
//!   `lastgood db` meet all of the above.
//!
//! This file only lists the modules: none of them uses an item defined here, so the
//! folder has no import cycle through its root.

pub mod backup;
pub mod dialect;
pub mod driver;
pub mod environment;
pub mod lint;
pub mod migration_files;
pub mod migrator;
pub mod pg_client;
pub mod rehearse;
pub mod schema;
pub mod sql;
#[cfg(test)]
mod test_pg;
pub mod tool;
pub mod url;
pub mod verdict;
