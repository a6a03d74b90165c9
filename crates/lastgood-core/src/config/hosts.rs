//! `hosts`, `ssh_config` and the rollout keys: where an environment runs, and how a
//! fleet deploy moves through its hosts.
//!
//! `hosts = ["local"]` (or no `hosts`) is this machine; otherwise every entry is an
//! `ssh://` host, checked by [`SshHost::parse`], which refuses anything ssh could read
//! as an option. The rollout keys (`parallel`, `batch`, `canary`, `on_failure`) only
//! mean something with ssh hosts, so setting them without any is an error rather than
//! a silent no-op.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::RawEnv;
use super::types::{OnFailure, Rollout, Runtime};
use super::value::{Fail, resolve};
use crate::model::SshHost;

pub(super) fn check_hosts(
    raw: &RawEnv,
    runtime: &Runtime,
    dir: &Path,
) -> Result<(Vec<SshHost>, Option<PathBuf>, Rollout), Fail> {
    let mut hosts = Vec::new();
    if let Some(list) = &raw.hosts {
        let span = Some(list.span());
        if list.get_ref().is_empty() {
            return Err((span, "hosts: the list is empty; use [\"local\"] or ssh:// hosts".into()));
        }
        let local = list.get_ref().iter().filter(|h| h.as_str() == "local").count();
        if local > 0 && local < list.get_ref().len() {
            return Err((
                span,
                "hosts: mix of \"local\" and ssh hosts; list either [\"local\"] or ssh:// hosts".into(),
            ));
        }
        if local == 0 {
            for h in list.get_ref() {
                let host = SshHost::parse(h).map_err(|e| (span.clone(), format!("hosts: {e}")))?;
                if hosts.iter().any(|o: &SshHost| o.label() == host.label()) {
                    return Err((span, format!("hosts: {} is listed twice", host.label())));
                }
                hosts.push(host);
            }
            if matches!(runtime, Runtime::Command { .. } | Runtime::Gitops(_)) {
                return Err((
                    span,
                    format!(
                        "hosts: runtime `{}` switches from this machine (a pipeline, a repository), not on hosts",
                        runtime.name()
                    ),
                ));
            }
        }
    }
    let ssh_config = match &raw.ssh_config {
        Some(s) if hosts.is_empty() => {
            return Err((Some(s.span()), "ssh_config: applies to ssh hosts, and `hosts` lists none".into()));
        }
        Some(s) if s.get_ref().is_empty() || s.get_ref().starts_with('-') => {
            return Err((Some(s.span()), "ssh_config: must be a path to an ssh config file".into()));
        }
        Some(s) => Some(resolve(dir, s.get_ref())),
        None => None,
    };
    let count = |key: &str, v: &Option<Spanned<i64>>| -> Result<Option<usize>, Fail> {
        match v {
            None => Ok(None),
            Some(_) if hosts.is_empty() => {
                Err((v.as_ref().map(Spanned::span), format!("{key}: applies to ssh hosts, and `hosts` lists none")))
            }
            Some(n) if *n.get_ref() < 0 || *n.get_ref() > 10_000 => {
                Err((Some(n.span()), format!("{key}: must be between 0 and 10000")))
            }
            Some(n) => Ok(Some(*n.get_ref() as usize)),
        }
    };
    let parallel = count("parallel", &raw.parallel)?.unwrap_or(hosts.len().clamp(1, 16));
    if parallel == 0 {
        return Err((raw.parallel.as_ref().map(Spanned::span), "parallel: must be at least 1".into()));
    }
    let batch = count("batch", &raw.batch)?;
    if batch == Some(0) {
        return Err((raw.batch.as_ref().map(Spanned::span), "batch: must be at least 1".into()));
    }
    let canary = count("canary", &raw.canary)?.unwrap_or(0);
    if canary > 0 && canary >= hosts.len() {
        return Err((
            raw.canary.as_ref().map(Spanned::span),
            format!("canary: {canary} of {} hosts leaves none to follow; use fewer", hosts.len()),
        ));
    }
    let on_failure = match raw.on_failure.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("rollback") => OnFailure::Rollback,
        Some("halt") => OnFailure::Halt,
        Some(other) => {
            return Err((
                raw.on_failure.as_ref().map(Spanned::span),
                format!("on_failure: `{}` is not rollback or halt", other.escape_debug()),
            ));
        }
    };
    Ok((hosts, ssh_config, Rollout { parallel, batch, canary, on_failure }))
}
