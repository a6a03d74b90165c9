//! A database schema as data: tables with their columns and constraints, indexes,
//! views, functions, sequences, types, triggers, extensions and namespaces, each keyed
//! by name and held as a canonical definition.
//!
//! The introspectors (`postgres.rs`, `sqlite.rs`) fill it and `diff.rs` compares two of
//! them. It does no I/O and holds no SQL of its own, so the comparison is tested on
//! plain values. It is not a full catalog: only what a rollback can get wrong is kept
//! (no grants, comments, statistics or ownership).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One database's schema, keyed by object name. On PostgreSQL, names outside `public`
/// are qualified as `schema.name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
    pub indexes: BTreeMap<String, Index>,
    /// View name to normalised definition (materialized views start with `MATERIALIZED `).
    pub views: BTreeMap<String, String>,
    /// `name(argtypes)` to normalised definition (`pg_get_functiondef`).
    pub functions: BTreeMap<String, String>,
    pub sequences: BTreeSet<String>,
    /// Enums, domains, composite and range types (PostgreSQL) to a canonical definition.
    pub types: BTreeMap<String, String>,
    /// `table.trigger` to normalised definition.
    pub triggers: BTreeMap<String, String>,
    /// Extension name to installed version (PostgreSQL). Objects that belong to an
    /// extension are not listed elsewhere: the extension stands for them.
    pub extensions: BTreeMap<String, String>,
    /// Namespaces other than the excluded system ones (PostgreSQL), so a schema left
    /// empty by a rollback still shows.
    pub schemas: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Table {
    /// In ordinal order.
    pub columns: Vec<Column>,
    /// Constraint name to normalised definition (`pg_get_constraintdef` on PostgreSQL).
    /// SQLite constraints are mostly unnamed, so there the key is the definition itself.
    pub constraints: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    /// The default expression; identity and generated columns show their generation
    /// clause here (`GENERATED ALWAYS AS IDENTITY`, `GENERATED ALWAYS AS (...) STORED`).
    pub default: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Index {
    pub table: String,
    /// The normalised `CREATE INDEX` statement with the index's own name removed, so two
    /// indexes that differ only by name have equal definitions.
    pub definition: String,
    pub unique: bool,
}
