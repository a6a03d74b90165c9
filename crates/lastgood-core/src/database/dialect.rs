//! Which SQL dialect a database speaks: PostgreSQL or SQLite.
//!
//! The splitter, the linter, the drivers and the schema tools each behave a little
//! differently per dialect, and they all take this one enum. It is a leaf of its own
//! (not an item of `database/mod.rs`) so that every module of the database folder can
//! name it without depending on the folder's root.

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Postgres,
    Sqlite,
}
