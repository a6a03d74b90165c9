//! A database schema as data, and a semantic comparison of two of them.
//!
//! `lastgood db rehearse` proves a rollback path by comparing the schema left by the
//! down scripts with a fresh apply of the target revision. A textual comparison of two
//! dumps would drown that proof in noise: the server names unnamed indexes and
//! constraints, a column dropped and added back lands at the end of the table, and
//! whitespace differs between two spellings of the same view. So the schema is read into
//! a [`Schema`] of canonical definitions (the server's own `pg_get_*def` output on
//! PostgreSQL, `sqlite_master` text with whitespace, spacing and keyword case normalised
//! on SQLite), and [`diff`] sorts what differs into two kinds:
//!
//! - [`Severity::Semantic`]: something a program could notice, such as a missing table,
//!   column, index, view, function, sequence, type or constraint, or a column whose type,
//!   nullability or default changed. These fail a rehearsal.
//! - [`Severity::Cosmetic`]: the same objects under another name (an index or constraint
//!   with an identical definition) or the same columns in another order (one difference
//!   per table). These are reported but do not fail it.
//!
//! This is not a migration generator: it says what differs, never how to fix it, and it
//! reads only what a rollback can get wrong (no grants, comments, statistics or
//! ownership). lastgood's own bookkeeping (the `lastgood` schema on PostgreSQL,
//! `lastgood_*` tables on SQLite) is left out, since it differs by design.
//!
//! The parts, one file each:
//!
//! - `model.rs`: [`Schema`] and what it holds, as plain data.
//! - `postgres.rs`: [`introspect_postgres`], from the server's catalogs.
//! - `sqlite.rs`: [`introspect_sqlite`], from `sqlite_master`, the pragmas and a small
//!   tokenizer that normalises SQLite's stored `CREATE` text.
//! - `diff.rs`: [`diff`], into [`Difference`]s of a [`Severity`].
//! - `error.rs`: [`SchemaError`], why a schema could not be read.
//!
//! Callers use the items re-exported here; the files below do not use this one, so the
//! folder reads from the model up.

mod diff;
mod error;
mod model;
mod postgres;
mod sqlite;

pub use diff::{Difference, Severity, diff};
pub use error::SchemaError;
pub use model::{Column, Index, Schema, Table};
pub use postgres::introspect_postgres;
pub use sqlite::introspect_sqlite;
