//! status, history and verify: reading, never changing.

use lastgood_core::Result;
use lastgood_core::engine::Engine;
use lastgood_core::view;

use crate::args::{Cli, Format};
use crate::output;

pub fn status(cli: &Cli, engine: &Engine, env: Option<&str>) -> Result<i32> {
    let names: Vec<String> = match env {
        Some(e) => vec![e.to_owned()],
        None => engine.config.environments.keys().map(|k| k.to_string()).collect(),
    };
    let mut all = Vec::new();
    for n in &names {
        all.push(engine.status(n)?);
    }
    match cli.global.format {
        Format::Json if env.is_some() => output::json(&view::Status::from(&all[0])),
        Format::Json => output::json(&all.iter().map(view::Status::from).collect::<Vec<_>>()),
        Format::Text => output::out(&all.iter().map(output::status_text).collect::<Vec<_>>().join("\n")),
    }
    Ok(0)
}

pub fn history(cli: &Cli, engine: &Engine, env: &str, limit: usize) -> Result<i32> {
    let releases = engine.history(env, limit)?;
    match cli.global.format {
        Format::Json => output::json(&releases.iter().map(view::HistoryEntry::from).collect::<Vec<_>>()),
        Format::Text => output::out(&output::history_text(&releases)),
    }
    Ok(0)
}

pub fn verify(cli: &Cli, engine: &Engine, env: &str) -> Result<i32> {
    let (release, outcomes) = engine.verify(env)?;
    let passed = outcomes.iter().all(|o| o.passed);
    match cli.global.format {
        Format::Json => output::json(&view::Verification::new(env, &release, &outcomes)),
        Format::Text => output::out(&format!(
            "{} on `{env}`: {}\n{}",
            output::release_line(&release),
            if passed { "healthy" } else { "UNHEALTHY" },
            output::checks_text(&outcomes)
        )),
    }
    Ok(if passed { 0 } else { 1 })
}

pub fn diff(cli: &Cli, engine: &Engine, env: &str, from: &str, to: &str) -> Result<i32> {
    let c = engine.diff(env, from, to)?;
    match cli.global.format {
        Format::Json => output::json::<view::Comparison>(&c),
        Format::Text => output::out(&format!(
            "## `{env}`: {} -> {}\n\n{}",
            c.from.line(),
            c.to.line(),
            lastgood_core::report::diff_markdown(&c.diff, Some(&c.from), &c.to)
        )),
    }
    Ok(0)
}

pub fn diagnose(cli: &Cli, engine: &Engine, env: &str) -> Result<i32> {
    let d = engine.diagnose(env)?;
    match cli.global.format {
        Format::Json => output::json::<view::Diagnosis>(&d),
        Format::Text => {
            let yes = |b: bool| if b { "CHANGED" } else { "same" };
            let mut t = format!(
                "`{env}` now runs {}\nlast good:  {}\n\n  code:      {}\n  config:    {}\n  database:  {}\n\n{}\n",
                d.current.line(),
                d.last_good.line(),
                yes(d.code),
                yes(d.config),
                yes(d.database),
                d.explanation
            );
            match (&d.scope, &d.command) {
                (Some(s), Some(c)) => t.push_str(&format!("\nrecommended scope: {s}\n  {c}\n")),
                _ => t.push_str("\nno rollback recommended\n"),
            }
            t.push_str(&format!("\n{}", lastgood_core::report::diff_markdown(&d.diff, Some(&d.last_good), &d.current)));
            output::out(&t);
        }
    }
    Ok(0)
}
