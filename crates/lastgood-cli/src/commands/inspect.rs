//! status, history and verify: reading, never changing.

use lastgood_core::Result;
use lastgood_core::engine::Engine;
use lastgood_core::engine::decision::command_line;
use lastgood_core::report::diff_markdown_in_place;
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
    let history = engine.history(env, limit)?;
    match cli.global.format {
        Format::Json => output::json(&view::HistoryEntry::list(&history)),
        Format::Text => output::out(&output::history_text(&history)),
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
    let mut d = engine.diagnose(env)?;
    // The command runs as printed in the shell diagnose ran in: with the same config.
    if let (Some(config), false) = (&cli.global.config, d.decision.argv.is_empty()) {
        d.decision.argv.splice(0..0, ["--config".to_owned(), config.display().to_string()]);
        d.decision.command = Some(command_line(&d.decision.argv));
    }
    match cli.global.format {
        Format::Json => output::json::<view::Diagnosis>(&d),
        Format::Text => {
            let yes = |b: bool| if b { "CHANGED" } else { "same" };
            let mut config = Vec::new();
            if d.config_between_releases {
                config.push(format!("between #{} and #{}", d.last_good.id, d.config_release));
            }
            if !d.config_edited_since_deploy.is_empty() {
                config.push(format!(
                    "edited in place since #{} was deployed: {}",
                    d.config_release,
                    d.config_edited_since_deploy.join(", ")
                ));
            }
            let detail =
                |parts: &[String]| if parts.is_empty() { String::new() } else { format!(" ({})", parts.join("; ")) };
            let database = if d.schema_ahead > 0 {
                vec![format!("schema ahead of code by {} migration(s)", d.schema_ahead)]
            } else {
                vec![]
            };
            let label =
                format!("Edited in place since #{} was deployed (its snapshot -> the files now):", d.config_release);
            let mut t = format!(
                "`{env}` now runs {}\nlast good:  {}\n\n  code:      {}\n  config:    {}{}\n  database:  {}{}\n\n{}\n\n{}\n\n",
                d.current.line(),
                d.last_good.line(),
                yes(d.code),
                yes(d.config),
                detail(&config),
                yes(d.database),
                detail(&database),
                diff_markdown_in_place(&d.diff, Some(&d.last_good), &d.current, &label, &d.config_in_place).trim_end(),
                d.decision.explanation
            );
            // The decision ends the output; its command, when there is one, is the last line.
            t.push_str(&format!("decision: {}\n", d.decision.decision));
            if let Some(c) = &d.decision.command {
                t.push_str(&format!("{c}\n"));
            }
            output::out(&t);
        }
    }
    Ok(0)
}
