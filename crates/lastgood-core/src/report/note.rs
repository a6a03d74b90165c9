//! Notes on an incident record's follow-up: what people learned afterwards, added with
//! `lastgood report OPERATION --note TEXT`.
//!
//! A note is an audit event of the operation (`report.note`), not a column of it: the
//! audit log is append-only and hash-chained, which is what a record of who said what,
//! and when, should be. The record reads them back in order, and a note is what ticks
//! "incident documented".

use serde::Serialize;

/// The audit event a note is stored as; its detail is `{"text": ...}`.
pub const NOTE_EVENT: &str = "report.note";

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// UTC.
    pub at: String,
    /// `user@host`, as every audit event names its actor.
    pub actor: String,
    pub text: String,
}
