//! The incident record of one operation: what ran, what changed, what the runbook's
//! checklist says was done, and room for the follow-up.
//!
//! It is not the short [`crate::engine::Report`] a deploy or rollback prints when it
//! ends; it is the document someone pastes into an incident ticket afterwards. So it
//! is built only from what was recorded (the ledger, and the source repository for
//! commit authors and subjects) and never from what is running now: the same ledger
//! always gives the same bytes, with a stable order and every time in UTC. Step start
//! times come from the real clock even when `LASTGOOD_NOW` pins the rest, so each step
//! also carries its offset from the first step, which reads better in a timeline.
//!
//! The checklist is the runbook's (issue type identified, last good state found,
//! services stopped, reverted, restarted, verified, team informed, incident
//! documented). Each item is ticked only by evidence from the operation's own steps
//! and audit events, and says which; an item with no evidence stays open, because a
//! record that claims more than happened is worse than none.
//!
//! Markdown is rendered here rather than in the CLI because it is the record itself,
//! not a view of it: the dashboard offers the same document. JSON is the same struct.
//!
//! The parts: `incident.rs` builds the record; `diff.rs` compares two releases (shared
//! with `diagnose`), with the config files key by key and secrets masked in
//! `config_diff.rs`; `checklist.rs` ticks the runbook from evidence; `bake.rs` reads the bake window's
//! and the watch's measurements; `note.rs` holds
//! the notes people add to the follow-up; `markdown.rs` renders it all.

mod bake;
mod checklist;
mod config_diff;
mod diff;
mod incident;
mod markdown;
mod note;

pub use bake::{WATCH_ENDED, WATCH_REGRESSION, WATCH_STARTED, Watching};
pub use checklist::ChecklistItem;
pub use config_diff::{ConfigChange, KeyChange, in_place_changes, is_secret};
pub use diff::{Diff, ReleaseSummary, SchemaDiff, VersionChange};
pub use incident::{
    CheckResult, FollowUp, HostResult, IncidentReport, PlannedStep, TimelineEntry, Verification, VerifyStep,
    recent_operations, unknown_operation,
};
pub use markdown::{diff_markdown, diff_markdown_in_place};
pub use note::{NOTE_EVENT, Note};
