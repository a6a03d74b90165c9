//! init, mark, lock, unlock and audit verify.

use std::path::Path;

use lastgood_core::Result;
use lastgood_core::config::{self, Config};
use lastgood_core::engine::Engine;
use lastgood_core::ledger::AuditCheck;
use lastgood_core::model::ReleaseState;
use lastgood_core::view;

use super::usage;
use crate::args::{Cli, Format, MarkState};
use crate::output;

pub fn init(cli: &Cli, force: bool, runtime: crate::args::RuntimeArg) -> Result<i32> {
    let path = Config::locate(cli.global.config.as_deref());
    if path.exists() && !force {
        return Err(usage(format!("{} already exists; pass --force to overwrite it", path.display())));
    }
    let dir = std::path::absolute(&path).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default();
    let name = dir
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "app".into());
    let runtime = match runtime {
        crate::args::RuntimeArg::Releases => "releases",
        crate::args::RuntimeArg::Command => "command",
        crate::args::RuntimeArg::Gitops => "gitops",
        crate::args::RuntimeArg::Compose => "compose",
        crate::args::RuntimeArg::Swarm => "swarm",
    };
    std::fs::write(&path, config::template_for(&name, runtime)).map_err(lastgood_core::Error::io("write", &path))?;
    if !cli.global.quiet {
        eprintln!(
            "wrote {} for runtime `{runtime}`; edit it (every key is explained there), then `lastgood deploy production <version>`",
            path.display()
        );
    }
    Ok(0)
}

pub fn mark(
    cli: &Cli,
    engine: &Engine,
    env: &str,
    release: &str,
    state: MarkState,
    reason: Option<&str>,
) -> Result<i32> {
    let state = match state {
        MarkState::Good => ReleaseState::Good,
        MarkState::Bad => ReleaseState::Bad,
    };
    let r = engine.mark(env, release, state, reason)?;
    match cli.global.format {
        Format::Json => output::json(&view::Release::from(&r)),
        Format::Text => output::out(&format!("{} is now {}\n", output::release_line(&r), r.state)),
    }
    Ok(0)
}

pub fn lock(cli: &Cli, engine: &Engine, env: &str, reason: &str) -> Result<i32> {
    let l = engine.lock(env, reason)?;
    match cli.global.format {
        Format::Json => output::json(&view::Locked::new(env, &l)),
        Format::Text => output::out(&format!("`{env}` is locked by {} until `lastgood unlock {env}`\n", l.holder)),
    }
    Ok(0)
}

pub fn unlock(cli: &Cli, engine: &Engine, env: &str, force: bool, epoch: Option<i64>) -> Result<i32> {
    let freed = engine.unlock(env, force, epoch)?;
    match cli.global.format {
        Format::Json => output::json(&view::Unlocked::new(env, freed.as_ref())),
        Format::Text => output::out(&match freed {
            Some(l) => format!("`{env}` unlocked (was held by {})\n", l.holder),
            None => format!("`{env}` was not locked\n"),
        }),
    }
    Ok(0)
}

pub fn audit_verify(cli: &Cli, engine: &Engine) -> Result<i32> {
    let check = engine.ledger().verify_audit()?;
    match (&check, cli.global.format) {
        (_, Format::Json) => output::json(&view::AuditChain::from(&check)),
        (AuditCheck::Intact { events }, Format::Text) => output::out(&format!("audit chain ok: {events} events\n")),
        (AuditCheck::Broken { id, event }, Format::Text) => {
            output::out(&format!("audit chain BROKEN at event {id} ({event}): it does not match the hash chain\n"))
        }
    }
    Ok(if matches!(check, AuditCheck::Intact { .. }) { 0 } else { 1 })
}

/// The detached deliverer of one spooled notification: deliver, record, remove.
pub fn deliver(engine: &Engine, file: &Path) -> Result<i32> {
    use lastgood_core::ledger::{AuditEvent, Change};
    let text = std::fs::read(file).map_err(lastgood_core::Error::io("read", file))?;
    let item: lastgood_core::notify::Spooled = serde_json::from_slice(&text)
        .map_err(|e| usage(format!("{} is not a spooled notification: {e}", file.display())))?;
    let webhooks =
        engine.config.environment(&item.env)?.notify.as_ref().map(|n| n.webhooks.clone()).unwrap_or_default();
    let deliveries = lastgood_core::notify::deliver(&item, &webhooks);
    let env = lastgood_core::model::EnvName::parse(&item.env)?;
    let changes = deliveries
        .iter()
        .map(|d| {
            Change::Audit(AuditEvent::by(
                &engine.ctx,
                &item.env,
                Some(item.operation),
                if d.delivered { "notify.delivered" } else { "notify.failed" },
                serde_json::json!({ "event": item.payload["event"], "delivery": d }),
            ))
        })
        .collect();
    engine.ledger().apply_unfenced(&env, changes)?;
    let _ = std::fs::remove_file(file);
    Ok(if deliveries.iter().all(|d| d.delivered) { 0 } else { 1 })
}

pub fn ledger_init(cli: &Cli, config: &Config) -> Result<i32> {
    let done = lastgood_core::engine::team::init(config)?;
    match cli.global.format {
        Format::Json => output::json(&done),
        Format::Text => {
            if !cli.global.quiet {
                eprintln!(
                    "{} the ledger in schema `{}` of {} (schema version {}); run these grants as its owner:",
                    if done.created { "created" } else { "found" },
                    done.schema,
                    done.ledger,
                    done.schema_version
                );
            }
            output::out(&done.grants);
        }
    }
    Ok(0)
}

pub fn ledger_status(cli: &Cli, engine: &Engine) -> Result<i32> {
    let s = engine.ledger_status()?;
    match cli.global.format {
        Format::Json => output::json(&s),
        Format::Text => {
            let mut text = format!("ledger: {} ({})\n", s.ledger, s.kind);
            if let Some(v) = s.schema_version {
                text.push_str(&format!(
                    "schema version: {v}{}\n",
                    s.read_only.as_ref().map(|why| format!(" ({why}: read-only)")).unwrap_or_default()
                ));
            }
            for e in &s.environments {
                let current = e.current.map(|c| format!("release {c}")).unwrap_or_else(|| "no release".into());
                let lock = match &e.lock {
                    None => "unlocked".to_owned(),
                    Some(l) => format!(
                        "locked by {} on {} at epoch {}{}{}",
                        l.holder,
                        l.host,
                        l.epoch,
                        l.expires_at.as_ref().map(|x| format!(", lease until {x}")).unwrap_or_default(),
                        if l.expired == Some(true) { " (expired)" } else { "" }
                    ),
                };
                text.push_str(&format!("{}: {current}, {lock}\n", e.environment));
            }
            output::out(&text);
        }
    }
    Ok(0)
}

pub fn ledger_migrate(cli: &Cli, config: &Config, to: &str) -> Result<i32> {
    let ctx = lastgood_core::context::Context::from_env();
    let m = lastgood_core::engine::team::migrate(config, to, ctx.now())?;
    match cli.global.format {
        Format::Json => output::json(&m),
        Format::Text => output::out(&if m.already {
            format!("already migrated to {}: set [ledger] url to it\n", m.to)
        } else {
            format!(
                "moved {} releases, {} operations and {} audit events to {} (schema {}); the imported chain ends at {}\nset [ledger] url to it: this SQLite ledger now refuses writes\n",
                m.releases, m.operations, m.audit_events, m.to, config.ledger_schema, m.head
            )
        }),
    }
    Ok(0)
}
