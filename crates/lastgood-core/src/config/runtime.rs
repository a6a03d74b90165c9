//! The `runtime` key and the keys that belong to each runtime: which one switches the
//! code, and what it needs to do so.
//!
//! Each runtime owns a set of keys; a key of another runtime is an error that names the
//! runtime it belongs to, not "unknown field" (the raw struct accepts them all by name
//! for that reason). Names that reach Docker (compose project and services, the Swarm
//! service) are checked as [`ContainerName`]s here, so the runtimes receive only valid
//! ones. This is the one place besides `runtime/mod.rs` that looks at a runtime's name.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::RawEnv;
use super::types::{Compose, Gitops, GitopsMode, Runtime};
use super::value::{Fail, resolve};
use crate::model::{ContainerName, Version};

pub(super) fn check_runtime(raw: &RawEnv, dir: &Path, env: &crate::model::EnvName) -> Result<Runtime, Fail> {
    let span = raw.runtime.as_ref().map(Spanned::span);
    let name = raw.runtime.as_ref().map(|r| r.get_ref().as_str()).unwrap_or("releases");
    let keys: [(&str, &[&str]); 5] = [
        ("releases", &[]),
        ("command", &["switch", "current"]),
        ("gitops", &["repo", "branch", "version_file", "mode", "trigger"]),
        ("compose", &["compose_file", "project", "services"]),
        ("swarm", &["service"]),
    ];
    let own: &[&str] = match keys.iter().find(|(k, _)| *k == name) {
        Some((_, own)) => own,
        None if name == "kubernetes" => {
            return Err((
                span,
                format!(
                    "runtime: `{name}` is planned but not available in this version of lastgood; use releases, compose, swarm, command or gitops"
                ),
            ));
        }
        None => {
            return Err((
                span,
                format!("runtime: unknown runtime `{name}`; expected releases, compose, swarm, command or gitops"),
            ));
        }
    };
    for (key, value) in [
        ("compose_file", &raw.compose_file),
        ("project", &raw.project),
        ("services", &raw.services),
        ("service", &raw.service),
        ("switch", &raw.switch),
        ("current", &raw.current),
        ("repo", &raw.repo),
        ("branch", &raw.branch),
        ("version_file", &raw.version_file),
        ("mode", &raw.mode),
        ("trigger", &raw.trigger),
    ] {
        if let Some(v) = value {
            if !own.contains(&key) {
                return Err((Some(v.span()), format!("{key}: applies to another runtime, not `{name}`")));
            }
        }
    }
    let string = |key: &str, v: &Option<Spanned<toml::Value>>| -> Result<Option<String>, Fail> {
        match v {
            None => Ok(None),
            Some(s) => match s.get_ref() {
                toml::Value::String(text) if !text.is_empty() => Ok(Some(text.clone())),
                _ => Err((Some(s.span()), format!("{key}: expected a non-empty string"))),
            },
        }
    };
    let argv = |key: &str, v: &Option<Spanned<toml::Value>>| -> Result<Option<Vec<String>>, Fail> {
        let Some(s) = v else { return Ok(None) };
        let bad = || {
            (Some(s.span()), format!("{key}: needs a program and its arguments, like [\"./pipeline.sh\", \"--wait\"]"))
        };
        let toml::Value::Array(items) = s.get_ref() else { return Err(bad()) };
        let words: Option<Vec<String>> = items.iter().map(|i| i.as_str().map(str::to_owned)).collect();
        match words {
            // A program named by a relative path is the config folder's file: these
            // run from lastgood's own working folder, which nobody writes scripts into.
            Some(mut w) if !w.is_empty() && !w[0].is_empty() => {
                if w[0].contains('/') && Path::new(&w[0]).is_relative() {
                    let relative: PathBuf = Path::new(&w[0]).components().filter(|c| c.as_os_str() != ".").collect();
                    w[0] = resolve(dir, &relative.to_string_lossy()).to_string_lossy().into_owned();
                }
                Ok(Some(w))
            }
            _ => Err(bad()),
        }
    };
    match name {
        "command" => {
            let Some(switch) = argv("switch", &raw.switch)? else {
                return Err((span, "switch: missing; runtime `command` needs `switch = [argv]`".into()));
            };
            Ok(Runtime::Command { switch, current: argv("current", &raw.current)? })
        }
        "gitops" => {
            let Some(repo) = string("repo", &raw.repo)? else {
                return Err((span, "repo: missing; runtime `gitops` needs the repository the controller syncs".into()));
            };
            let repo_span = raw.repo.as_ref().map(Spanned::span);
            if repo.starts_with('-') || repo.chars().any(char::is_control) {
                return Err((repo_span, "repo: must not start with `-` or hold control characters".into()));
            }
            // A URL as written; anything else is a path relative to this file's folder.
            let is_url =
                repo.contains("://") || (repo.contains(':') && !repo.starts_with('/') && !repo.starts_with('.'));
            let repo = if is_url { repo } else { resolve(dir, &repo).to_string_lossy().into_owned() };
            let branch = string("branch", &raw.branch)?.unwrap_or_else(|| "main".into());
            if let Err(e) = Version::parse(&branch) {
                return Err((raw.branch.as_ref().map(Spanned::span), format!("branch: {e}")));
            }
            // Without a version file, the branch's commits are the releases.
            let version_file = string("version_file", &raw.version_file)?;
            let vf_span = raw.version_file.as_ref().map(Spanned::span);
            if let Some(version_file) = &version_file {
                check_version_file(version_file, vf_span)?;
            }
            let mode = match string("mode", &raw.mode)?.as_deref() {
                None | Some("revert") => GitopsMode::Revert,
                Some("reset") => GitopsMode::Reset,
                Some(other) => {
                    return Err((
                        raw.mode.as_ref().map(Spanned::span),
                        format!("mode: `{}` is not revert or reset", other.escape_debug()),
                    ));
                }
            };
            let trigger = argv("trigger", &raw.trigger)?;
            Ok(Runtime::Gitops(Gitops { repo, branch, version_file, mode, trigger }))
        }
        "compose" => {
            let Some(file) = string("compose_file", &raw.compose_file)? else {
                return Err((
                    span,
                    "compose_file: missing; runtime `compose` needs the compose file to bring up".into(),
                ));
            };
            if file.starts_with('-') || file.chars().any(char::is_control) {
                return Err((
                    raw.compose_file.as_ref().map(Spanned::span),
                    "compose_file: must not start with `-` or hold control characters".into(),
                ));
            }
            // The environment's name unless told otherwise: lastgood passes -p, so every
            // release directory is the same project.
            let project = string("project", &raw.project)?.unwrap_or_else(|| env.as_str().to_owned());
            let why = match ContainerName::parse(&project) {
                Err(e) => Some(e.to_string()),
                Ok(_) if project.chars().any(|c| c.is_ascii_uppercase()) => {
                    Some("compose project names are lowercase".to_owned())
                }
                Ok(_) => None,
            };
            if let Some(why) = why {
                return Err((raw.project.as_ref().map(Spanned::span), format!("project: {why}")));
            }
            let services = match &raw.services {
                None => Vec::new(),
                Some(s) => {
                    let bad = || {
                        (
                            Some(s.span()),
                            "services: expected a list of service names, like [\"web\", \"worker\"]".into(),
                        )
                    };
                    let toml::Value::Array(items) = s.get_ref() else { return Err(bad()) };
                    let mut names = Vec::new();
                    for item in items {
                        let Some(name) = item.as_str() else { return Err(bad()) };
                        if let Err(why) = ContainerName::parse(name) {
                            return Err((Some(s.span()), format!("services: `{}`: {why}", name.escape_debug())));
                        }
                        names.push(name.to_owned());
                    }
                    names
                }
            };
            let from_source = raw.source.is_some();
            let file = if from_source { PathBuf::from(&file) } else { resolve(dir, &file) };
            Ok(Runtime::Compose(Compose { file, project, services, from_source }))
        }
        "swarm" => {
            let Some(service) = string("service", &raw.service)? else {
                return Err((span, "service: missing; runtime `swarm` needs the name of the Swarm service".into()));
            };
            if let Err(why) = ContainerName::parse(&service) {
                return Err((raw.service.as_ref().map(Spanned::span), format!("service: {why}")));
            }
            Ok(Runtime::Swarm { service })
        }
        _ => Ok(Runtime::Releases),
    }
}

/// `version_file` must be a plain relative path inside the repository.
fn check_version_file(version_file: &str, span: Option<std::ops::Range<usize>>) -> Result<(), Fail> {
    let path = Path::new(version_file);
    if path.is_absolute()
        || version_file.starts_with('-')
        || version_file.chars().any(char::is_control)
        || path.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err((
            span,
            "version_file: must be a plain relative path inside the repository (no `..`, no leading `-` or `/`)".into(),
        ));
    }
    Ok(())
}
