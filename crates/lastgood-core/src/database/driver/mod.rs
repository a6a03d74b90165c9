//! Drivers: how the migrator talks to the application's database, one per dialect.
//!
//! - [`api`]: the [`Driver`] trait, the statements it runs ([`Stmt`]), the bookkeeping
//!   rows it reads ([`Applied`]) and its errors ([`DbError`]).
//! - [`postgres`]: PostgreSQL, with a transaction-level advisory lock (pooler-safe).
//! - [`sqlite`]: SQLite, with an `flock` beside the database file.
//!
//! A driver runs the strings the migrator built and reports what is applied; it decides
//! nothing about which migrations run. Neither driver is the ledger: lastgood's own
//! history lives in `ledger/`, whichever database the application uses. The trait sits
//! in its own file so the drivers do not depend on this list of them; its items are
//! re-exported here, where callers look for them.

pub mod api;
pub mod postgres;
pub mod sqlite;

pub use api::{Applied, DbError, Driver, Role, Stmt};
