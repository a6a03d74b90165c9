//! The database: migrations that know which release was good, previews of the exact
//! SQL, protection for data, and proof that the way back works.
//!
//! - [`url`]: database URLs with the password kept out of displays and argv.
//! - [`migrations`]: reading a migrations folder (diesel and sqlx layouts).
//! - [`sql`]: splitting scripts into statements, quoting literals.
//! - [`lint`]: classifying SQL as safe, blocking or destructive with a real parser.
//! - [`schema`]: introspecting a schema and comparing two semantically.
//! - [`backup`]: `pg_dump -Fc` / `pg_restore`, SQLite's online backup.

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
