//! Readiness: whether the way back to a release is proven, not only whether its
//! directory exists. A return to release T from the release C that serves is ready when
//! T's artifact is there (its directory or image, on every host), and, when the schema
//! must go down from C's revision to T's, that down path was rehearsed clean on a scratch
//! database (`lastgood db rehearse`, or `[database] rehearse = "deploy"` at deploy
//! time), and, when that path is destructive, a verified backup of C's schema exists.
//!
//! Rehearsals are recorded as audit events of the operation that created C (where a
//! release's own evidence lives, one indexed read), with the revision pair they proved:
//! a rehearsal of another pair proves nothing about this one.

use serde::Serialize;

use super::Engine;
use crate::config::Environment;
use crate::error::Result;
use crate::fleet::HostState;
use crate::ledger::Release;
use crate::runtime::{self, ReleaseFacts, Site};

/// The audit event a rehearsal of a down path leaves.
pub const REHEARSED: &str = "db.rehearsed";

/// Whether the way back to `target` is ready, and if not, what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// The release a failure would return to (None: there is none).
    pub target: Option<u64>,
    pub ready: bool,
    /// What is missing, each with what to do (empty when ready).
    pub reasons: Vec<String>,
}

/// The rehearsal recorded for one revision pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rehearsed {
    pub ok: bool,
    pub failures: usize,
    pub destructive: Vec<String>,
}

impl Engine {
    /// The readiness of a return from `current` to `target`; `hosts` is what the
    /// fleet's hosts reported (empty for `local`).
    pub fn readiness(
        &self,
        env: &Environment,
        current: Option<&Release>,
        target: Option<&Release>,
        hosts: &[HostState],
    ) -> Result<Readiness> {
        let Some(t) = target else {
            return Ok(Readiness {
                target: None,
                ready: false,
                reasons: vec!["there is no good release to return to".into()],
            });
        };
        let mut reasons = Vec::new();
        if !env.hosts.is_empty() {
            if !t.artifact {
                reasons.push(format!(
                    "the release directories of {} were removed by retention: deploy {} again to rebuild it",
                    t.id, t.version
                ));
            } else if hosts.iter().any(|h| !h.reachable) {
                reasons.push("a host cannot be reached: its copy of the release cannot be confirmed".into());
            }
        } else if let Err(e) = runtime::of(&Site::local(env)).ready(&ReleaseFacts::of(t)) {
            reasons.push(format!("{e}: deploy {} again to rebuild it", t.version));
        }
        let migrations = env.database.as_ref().is_some_and(crate::database::environment::EnvDatabase::has_migrations);
        if let (true, Some(c)) = (migrations, current) {
            let (from, to) = (c.schema_revision.as_deref(), t.schema_revision.as_deref());
            if from != to {
                let pair = format!("{} to {}", from.unwrap_or("none"), to.unwrap_or("none"));
                match self.rehearsal(c, from, to)? {
                    None => reasons.push(format!(
                        "the down path from revision {pair} was never rehearsed: run `lastgood db rehearse {}` (or set `rehearse = \"deploy\"` in [database])",
                        env.name
                    )),
                    Some(r) if !r.ok => reasons.push(format!(
                        "the last rehearsal of the down path from revision {pair} failed ({} down migration(s) failed or the schema differed): fix the down migrations, then `lastgood db rehearse {}`",
                        r.failures, env.name
                    )),
                    Some(r) if !r.destructive.is_empty() && !self.backed_up(env, c)? => reasons.push(format!(
                        "the down path from revision {pair} is destructive ({}) and no verified backup of that schema exists: run `lastgood db backup {}`",
                        r.destructive.join(", "),
                        env.name
                    )),
                    Some(_) => {}
                }
            }
        }
        Ok(Readiness { target: Some(t.id.0), ready: reasons.is_empty(), reasons })
    }

    /// The latest rehearsal of the down path `from` -> `to` recorded for release `c`.
    fn rehearsal(&self, c: &Release, from: Option<&str>, to: Option<&str>) -> Result<Option<Rehearsed>> {
        let Some(op) = c.operation else { return Ok(None) };
        let mut found = None;
        for row in self.ledger.audit_events(op)? {
            let d = &row.event.detail;
            if row.event.event == REHEARSED && d["from"].as_str() == from && d["to"].as_str() == to {
                found = Some(Rehearsed {
                    ok: d["ok"].as_bool().unwrap_or(false),
                    failures: d["failures"].as_u64().unwrap_or(0) as usize,
                    destructive: d["destructive"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(found)
    }

    /// A backup taken of release `c`'s schema since it was deployed, whose file is
    /// still there with the size recorded (a server-side copy counts as recorded).
    fn backed_up(&self, env: &Environment, c: &Release) -> Result<bool> {
        Ok(self.ledger.backups(&env.name, 20)?.iter().any(|b| {
            b.created_at >= c.created_at
                && b.schema_revision == c.schema_revision
                && match b.file.kind {
                    crate::ledger::BackupKind::PgTemplate => true,
                    _ => std::fs::metadata(&b.file.path).is_ok_and(|m| m.len() == b.file.bytes),
                }
        }))
    }

    /// Records a rehearsal of the down path `from` -> `to` with the release serving
    /// now (the evidence its readiness reads).
    pub(crate) fn record_rehearsal(
        &self,
        env: &Environment,
        operation: Option<u64>,
        r: &crate::database::rehearse::Rehearsal,
        destructive: &[String],
    ) -> Result<()> {
        let detail = serde_json::json!({
            "from": r.from, "to": r.to, "ok": r.ok, "failures": r.failures.len(),
            "differences": r.differences.len(), "destructive": destructive,
        });
        self.ledger.apply_unfenced(&env.name, vec![self.audit(&env.name, operation, REHEARSED, detail)])
    }
}
