//! `lastgood db ...`.

use lastgood_core::Result;
use lastgood_core::database::migrator::DownTarget;
use lastgood_core::database::tool::ToolHistory;
use lastgood_core::engine::Engine;
use lastgood_core::engine::restore::{RestoreFrom, RestoreOptions};
use lastgood_core::view;

use crate::args::{Cli, DbCommand, Format};
use crate::output::{self, StderrProgress};

pub fn run(cli: &Cli, engine: &Engine, command: &DbCommand) -> Result<i32> {
    let json = cli.global.format == Format::Json;
    let mut progress = StderrProgress::new(&cli.global);
    match command {
        DbCommand::Status { env, dir } => {
            let (db, st) = engine.db_status(env, dir.migrations.as_deref())?;
            if json {
                output::json(&view::DbStatus::new(db, &st));
            } else {
                let mut t = format!(
                    "{db}\n  current: {}\n  applied: {}, pending: {}\n",
                    st.current.as_ref().map(|(_, n)| n.as_str()).unwrap_or("none"),
                    st.applied,
                    st.pending
                );
                for m in &st.migrations {
                    t.push_str(&format!(
                        "  {:<22} {}{}\n",
                        m.state,
                        m.name,
                        if m.has_down { "" } else { "  (no down script)" }
                    ));
                }
                output::out(&t);
            }
            Ok(0)
        }
        DbCommand::History { env, dir } => {
            let (db, history) = engine.db_history(env, dir.migrations.as_deref())?;
            if json {
                output::json(&view::DbHistory { database: db, migrations: history });
            } else {
                let mut t = format!("{db}\n");
                match &history {
                    ToolHistory::Applied(applied) => {
                        for a in applied {
                            t.push_str(&format!(
                                "  {}  {:<40} {:>6} ms  {}{}\n",
                                a.applied_at,
                                a.name,
                                a.duration_ms.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
                                a.applied_by.as_deref().unwrap_or("-"),
                                if a.down_sql.is_some() { "" } else { "  (no stored down)" }
                            ));
                        }
                    }
                    // Alembic's own `history` line, with whether the database has it.
                    ToolHistory::Revisions(revisions) => {
                        for r in revisions {
                            let parents = if r.parents.is_empty() { "<base>".to_owned() } else { r.parents.join(", ") };
                            t.push_str(&format!(
                                "  {:<8} {parents} -> {}{}, {}\n",
                                if r.applied { "applied" } else { "pending" },
                                r.version,
                                if r.head { " (head)" } else { "" },
                                r.message
                            ));
                        }
                        if revisions.is_empty() {
                            t.push_str("  no revisions found\n");
                        }
                    }
                }
                output::out(&t);
            }
            Ok(0)
        }
        DbCommand::Up { env, to, sql, dir } => {
            let up = Some(to.as_deref());
            if *sql {
                let plan = engine.db_plan(env, dir.migrations.as_deref(), up, None)?;
                print_plan(json, &plan);
                return Ok(0);
            }
            let run = engine.db_run(env, dir.migrations.as_deref(), up, None, false, &mut progress)?;
            print_run(json, &run, "applied");
            Ok(0)
        }
        DbCommand::Down { env, to, steps, sql, allow_data_loss, dir } => {
            let target = match (to, steps) {
                (Some(t), _) => DownTarget::To(t.clone()),
                (None, Some(n)) => DownTarget::Steps(*n),
                (None, None) => DownTarget::Steps(1),
            };
            if *sql {
                let plan = engine.db_plan(env, dir.migrations.as_deref(), None, Some(&target))?;
                let refusals = engine.db_refusals(env, &plan, *allow_data_loss)?;
                if json {
                    output::json(&view::DbPreview::new(&plan, &refusals));
                } else {
                    let mut t = plan.sql.clone();
                    for r in &refusals {
                        t.push_str(&format!(
                            "-- a real run would be refused{}: {r}\n",
                            r.consent().map(|c| format!(" without {c}")).unwrap_or_default()
                        ));
                    }
                    output::out(&t);
                }
                return Ok(0);
            }
            let run =
                engine.db_run(env, dir.migrations.as_deref(), None, Some(&target), *allow_data_loss, &mut progress)?;
            print_run(json, &run, "reverted");
            Ok(0)
        }
        DbCommand::Lint { env, dir } => {
            let entries = engine.db_lint(env, dir.migrations.as_deref())?;
            if json {
                output::json::<Vec<view::LintEntry>>(&entries);
            } else {
                let mut t = String::new();
                for e in &entries {
                    let down = match &e.down {
                        Some(l) => output::lint_class(l.class),
                        None => "missing",
                    };
                    t.push_str(&format!("{:<40} up: {:<11} down: {}\n", e.name, output::lint_class(e.up.class), down));
                    for (dir, l) in [("up", Some(&e.up)), ("down", e.down.as_ref())] {
                        for f in l.map(|l| l.findings.as_slice()).unwrap_or_default() {
                            t.push_str(&format!(
                                "    {dir}:{} {}: {} ({})\n",
                                f.line,
                                output::lint_class(f.class),
                                f.reason,
                                f.statement
                            ));
                        }
                    }
                }
                if entries.is_empty() {
                    t.push_str("no migrations found\n");
                }
                output::out(&t);
            }
            Ok(0)
        }
        DbCommand::Rehearse { env, to, dir } => {
            let r = engine.db_rehearse(env, to.as_deref(), dir.migrations.as_deref())?;
            if json {
                output::json::<view::Rehearsal>(&r);
            } else {
                let mut t = format!(
                    "rehearsed {} -> {} on scratch databases: {}\n",
                    r.from.as_deref().unwrap_or("none"),
                    r.to.as_deref().unwrap_or("none"),
                    if r.ok { "the way back works" } else { "the way back is BROKEN" }
                );
                t.push_str(&format!(
                    "  reverted: {}\n",
                    if r.reverted.is_empty() { "nothing".into() } else { r.reverted.join(", ") }
                ));
                for f in &r.failures {
                    t.push_str(&format!("  FAILED down of {}: {}\n", f.migration, f.error));
                }
                for d in &r.differences {
                    t.push_str(
                        &format!("  {:?} difference, {}: {}\n", d.severity, d.object, d.what)
                            .replace("Semantic", "SEMANTIC"),
                    );
                }
                if r.differences.is_empty() {
                    t.push_str("  the rolled-back schema equals a fresh apply of the target\n");
                }
                output::out(&t);
            }
            Ok(if r.ok { 0 } else { 1 })
        }
        DbCommand::Backup { env } => {
            let b = engine.db_backup(env, &mut progress)?;
            if json {
                output::json(&view::Backup::new(&b, false));
            } else {
                output::out(&format!(
                    "backup {}: {} ({} bytes, sha256 {})\n",
                    b.id,
                    b.file.path.display(),
                    b.file.bytes,
                    b.file.sha256
                ));
            }
            Ok(0)
        }
        DbCommand::Backups { env } => {
            let list = engine.db_backups(env)?;
            if json {
                output::json(&list.iter().map(view::Backup::from).collect::<Vec<_>>());
            } else {
                let mut t = String::new();
                for l in &list {
                    let b = &l.record;
                    t.push_str(&format!(
                        "{:>4}  {}  {:>12} bytes  {}{}{}\n",
                        b.id,
                        lastgood_core::context::rfc3339(b.created_at),
                        b.file.bytes,
                        l.place,
                        b.operation.map(|o| format!("  (operation {o})")).unwrap_or_default(),
                        if l.missing { "  MISSING: its data is gone" } else { "" }
                    ));
                }
                if list.is_empty() {
                    t.push_str("no backups recorded\n");
                }
                output::out(&t);
            }
            Ok(0)
        }
        DbCommand::Restore { env, id, from, reason, dry_run } => {
            let from = match (id, from) {
                (_, Some(file)) => RestoreFrom::File(file.clone()),
                (Some(id), None) => RestoreFrom::Backup(*id),
                (None, None) => RestoreFrom::Newest,
            };
            let opts = RestoreOptions { from, reason: reason.clone() };
            crate::commands::operate::restore(cli, engine, env, opts, *dry_run)
        }
    }
}

fn print_plan(json: bool, plan: &lastgood_core::engine::db::DbPlan) {
    if json {
        output::json::<view::DbPlan>(plan);
    } else {
        output::out(&plan.sql);
    }
}

fn print_run(json: bool, run: &lastgood_core::engine::db::DbRun, verb: &str) {
    if json {
        output::json::<view::DbRun>(run);
    } else {
        let mut t = format!("{verb} {} migration(s)", run.ran.len());
        if let Some(b) = &run.backup {
            t.push_str(&format!(" after backup {} ({})", b.id, b.file.path.display()));
        }
        t.push_str(&format!("; schema now at {}\n", run.current.as_deref().unwrap_or("none")));
        output::out(&t);
    }
}
