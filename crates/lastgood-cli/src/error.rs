//! Library errors, explained: a message, what caused it, a hint, and the exit code.

use lastgood_core::Error;

use crate::args::Cli;

pub fn report(e: &Error, cli: &Cli) -> i32 {
    let mut text = format!("error: {e}\n");
    for (label, line) in details(e) {
        text.push_str(&format!("  {label}: {line}\n"));
    }
    if let Some(h) = hint(e, cli) {
        text.push_str(&format!("\nhint: {h}\n"));
    }
    eprint!("{text}");
    e.exit_code()
}

fn details(e: &Error) -> Vec<(&'static str, String)> {
    match e {
        Error::UnknownEnvironment { known, .. } => {
            vec![("configured", if known.is_empty() { "none".into() } else { known.join(", ") })]
        }
        Error::UnknownTarget { candidates, .. } => {
            if candidates.is_empty() {
                vec![("releases", "none yet".into())]
            } else {
                candidates.iter().map(|c| ("candidate", c.clone())).collect()
            }
        }
        Error::Locked { reason, expires_at, .. } => {
            let mut d = Vec::new();
            if let Some(r) = reason {
                d.push(("reason", r.clone()));
            }
            d.push((
                "lease",
                expires_at.as_ref().map(|e| format!("expires at {e}")).unwrap_or_else(|| "held until unlocked".into()),
            ));
            d
        }
        _ => vec![],
    }
}

fn hint(e: &Error, cli: &Cli) -> Option<String> {
    let env = env_of(cli);
    Some(match e {
        Error::ConfigNotFound { .. } => "run `lastgood init` to write one, or pass --config PATH".into(),
        Error::Config { .. } => "fix the file and run the command again; nothing was changed".into(),
        Error::UnknownEnvironment { .. } => "use one of the environments configured in lastgood.toml".into(),
        Error::UnknownVersion { .. } => {
            "versions are tags, branches or commits of the source repository; fetch or tag it first".into()
        }
        Error::UnknownTarget { .. } => {
            format!("use last-good, previous, a release id or a version from `lastgood history {env}`")
        }
        Error::Invalid(_) => "nothing was changed".into(),
        Error::Locked { operation: Some(_), .. } => format!(
            "wait for it to finish; if its holder is gone on another machine, the lock frees itself when the lease expires, or run `lastgood unlock {env} --force`"
        ),
        Error::Locked { .. } => {
            format!("it was locked by hand; `lastgood unlock {env}` frees it when the environment may change again")
        }
        Error::Halted { .. } => format!(
            "fix the host, then `lastgood resume {env}` retries the step, or `lastgood resume {env} --abort` returns every host to where it started"
        ),
        Error::Interrupted { .. } => format!(
            "run `lastgood resume {env}` to finish it, or `lastgood resume {env} --abort` to return to where it started"
        ),
        Error::Fenced { .. } => {
            format!("another process took over this environment's lock; see `lastgood status {env}`")
        }
        Error::Refused { .. } => "nothing was changed".into(),
        Error::Step { .. } | Error::Supervise(_) | Error::Io { .. } => {
            format!(
                "see `lastgood status {env}`; if an operation was left running, `lastgood resume {env}` finishes it"
            )
        }
        _ => return None,
    })
}

fn env_of(cli: &Cli) -> String {
    use crate::args::Command as C;
    match &cli.command {
        C::Deploy { env, .. }
        | C::Rollback { env, .. }
        | C::History { env, .. }
        | C::Verify { env }
        | C::Mark { env, .. }
        | C::Resume { env, .. }
        | C::Lock { env, .. }
        | C::Unlock { env, .. } => env.clone(),
        C::Status { env: Some(env) } => env.clone(),
        _ => "ENV".into(),
    }
}
