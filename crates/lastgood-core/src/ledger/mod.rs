//! The ledger: the durable record of releases, operations, their journals, locks and
//! the audit trail.
//!
//! It is a trait because two stores implement it: SQLite, the embedded default, and
//! PostgreSQL, for teams that share history and the lock. The interface is shaped by
//! one rule: **every write an operation makes is fenced by its lock epoch**. Rather than
//! trusting each caller to check, writes go through [`Ledger::apply`], which takes a
//! [`Fence`] and a batch of [`Change`]s and commits them in one transaction only if the
//! environment's lock still carries that epoch. An operation whose lease was taken over
//! cannot change anything afterwards, whatever it believes.
//!
//! Reads are plain and cheap: `status` and `history` must stay in single-digit
//! milliseconds with 100,000 releases, so every read is an index lookup.
//!
//! The parts: [`records`] holds the values (releases, operations, steps, locks, the
//! writes), [`backup`] the backup records, [`audit`] the hash chain every store keeps
//! the same way, [`store`] the trait, [`sqlite`] (with its schema in
//! `sqlite_schema`) the embedded store, and [`postgres`] (with [`postgres_schema`] and
//! `postgres_write`) the team ledger. This file only re-exports them: a store depends
//! on the leaves it uses, never on the module that gathers them.

pub mod audit;
pub mod backup;
pub mod migrate;
pub mod postgres;
mod postgres_meta;
mod postgres_pages;
pub mod postgres_schema;
mod postgres_write;
pub mod records;
pub mod sqlite;
mod sqlite_schema;
pub mod store;

pub use audit::{AuditCheck, AuditEvent, AuditRow};
pub use backup::{BackupFile, BackupKind, BackupRecord};
pub use postgres::PgLedger;
pub use postgres_meta::Meta;
pub use records::{
    Acquired, Change, EnvState, Fence, LockInfo, LockRequest, NewOperation, NewRelease, Operation, OperationCount,
    Release, StepRecord, StepState,
};
pub use sqlite::SqliteLedger;
pub use store::Ledger;

#[cfg(test)]
mod tests;
