//! The compose CLI: `docker compose` (v2), else `docker-compose` (v1).
//!
//! It is only used for what the Engine API has no notion of: rendering a compose file
//! (`config`) and bringing a project `up`. It gets an argv, never a shell string; the
//! version reaches the compose file through the `LASTGOOD_VERSION` variable, never
//! through the command line. What came up is then judged through the Engine API
//! (`api.rs`), not by the CLI's exit code.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// A compose command that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("neither `docker compose` (v2) nor `docker-compose` (v1) is installed; install one of them")]
    NotInstalled,
    #[error("cannot run {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `tail`: the last lines of its stderr.
    #[error("{what} failed ({status}): {tail}")]
    Failed { what: String, status: ExitStatus, tail: String },
    #[error("cannot read the rendered compose file: {source}")]
    Rendered {
        #[source]
        source: serde_json::Error,
    },
}

/// `docker compose` (v2) or `docker-compose` (v1), whichever this machine has.
pub struct ComposeCli {
    argv: Vec<String>,
    v2: bool,
}

impl ComposeCli {
    /// Finds the compose CLI: `docker compose version` first, then `docker-compose` on PATH.
    pub fn detect() -> Result<Self, ComposeError> {
        let v2 = Command::new("docker")
            .args(["compose", "version"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if v2 {
            return Ok(Self { argv: vec!["docker".into(), "compose".into()], v2: true });
        }
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("docker-compose").is_file()))
            .unwrap_or(false);
        if on_path {
            return Ok(Self { argv: vec!["docker-compose".into()], v2: false });
        }
        Err(ComposeError::NotInstalled)
    }

    pub fn is_v2(&self) -> bool {
        self.v2
    }

    pub fn name(&self) -> String {
        self.argv.join(" ")
    }

    fn command(&self, file: &Path, project: &str, vars: &[(String, String)]) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]).arg("--file").arg(file).args(["--project-name", project]);
        if let Some(dir) = file.parent() {
            c.current_dir(dir);
        }
        c.envs(vars.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        c
    }

    /// Runs a compose command and returns what it did, whatever its exit code (a
    /// program run in a one-off container: its failure is the caller's to judge).
    pub fn output(
        &self,
        file: &Path,
        project: &str,
        vars: &[(String, String)],
        args: &[String],
    ) -> Result<std::process::Output, ComposeError> {
        let what = format!("{} {}", self.name(), args.first().map(String::as_str).unwrap_or(""));
        self.command(file, project, vars).args(args).output().map_err(|source| ComposeError::Spawn { what, source })
    }

    /// Runs a compose command; its stdout, or what it said when it failed. Its output
    /// is appended to `log` when given.
    pub fn run(
        &self,
        file: &Path,
        project: &str,
        vars: &[(String, String)],
        args: &[&str],
        log: Option<&Path>,
    ) -> Result<String, ComposeError> {
        let what = format!("{} {}", self.name(), args.join(" "));
        let out = match self.command(file, project, vars).args(args).output() {
            Ok(out) => out,
            Err(source) => return Err(ComposeError::Spawn { what, source }),
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if let Some(log) = log {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(f, "$ {what}\n{stdout}{stderr}");
            }
        }
        if out.status.success() {
            Ok(stdout)
        } else {
            let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = tail[tail.len().saturating_sub(5)..].join("\n");
            Err(ComposeError::Failed { what, status: out.status, tail })
        }
    }

    /// Each service's image once the file is rendered with `vars` (`LASTGOOD_VERSION`).
    /// A service with `build:` and no `image:` gets the name compose gives what it
    /// builds (`<project>_<service>` for v1, `<project>-<service>` for v2).
    pub fn images(
        &self,
        file: &Path,
        project: &str,
        vars: &[(String, String)],
    ) -> Result<Vec<(String, String)>, ComposeError> {
        if self.v2 {
            let json = self.run(file, project, vars, &["config", "--format", "json"], None)?;
            let doc: serde_json::Value =
                serde_json::from_str(&json).map_err(|source| ComposeError::Rendered { source })?;
            let mut out = Vec::new();
            if let Some(services) = doc.get("services").and_then(|s| s.as_object()) {
                for (name, s) in services {
                    if let Some(image) = s.get("image").and_then(|i| i.as_str()) {
                        out.push((name.clone(), image.to_owned()));
                    } else if s.get("build").is_some() {
                        out.push((name.clone(), format!("{project}-{name}")));
                    }
                }
            }
            Ok(out)
        } else {
            let yaml = self.run(file, project, vars, &["config"], None)?;
            Ok(rendered_images(&yaml, project))
        }
    }
}

/// The `image:` of each service in `docker-compose config`'s output (for one with only
/// a `build:`, `<project>_<service>`, as v1 names what it builds). That output is
/// compose's own normalized YAML (two-space indents, one key per line), not a file a
/// person wrote, so reading these two levels is enough.
fn rendered_images(yaml: &str, project: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut built = Vec::new();
    let mut in_services = false;
    let mut service: Option<String> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if indent == 0 {
            in_services = text == "services:";
            service = None;
            continue;
        }
        if !in_services {
            continue;
        }
        if indent == 2 && text.ends_with(':') {
            service = Some(unquote(text.trim_end_matches(':')).to_owned());
        } else if indent == 4 {
            if let (Some(s), Some(image)) = (&service, text.strip_prefix("image:")) {
                out.push((s.clone(), unquote(image.trim()).to_owned()));
            } else if let (Some(s), true) = (&service, text.starts_with("build:")) {
                built.push(s.clone());
            }
        }
    }
    for s in built {
        if !out.iter().any(|(name, _)| *name == s) {
            out.push((s.clone(), format!("{project}_{s}")));
        }
    }
    out
}

fn unquote(s: &str) -> &str {
    s.trim_matches(|c| c == '\'' || c == '"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_images_from_compose_v1_config_output() {
        let yaml = "services:\n  web:\n    healthcheck:\n      test:\n      - CMD\n    image: lastgood-test/app:v2\n    network_mode: host\n  'worker':\n    image: 'other:v2'\nversion: '3.8'\n";
        assert_eq!(
            rendered_images(yaml, "p"),
            vec![("web".into(), "lastgood-test/app:v2".into()), ("worker".into(), "other:v2".into())]
        );
    }

    #[test]
    fn a_service_that_is_only_built_gets_the_name_compose_v1_gives_it() {
        let yaml = "services:\n  app:\n    build:\n      context: /srv/app/releases/3\n    network_mode: host\n  \
                    web:\n    build:\n      context: /srv/app/releases/3\n    image: web:v3\nversion: '3.8'\n";
        assert_eq!(
            rendered_images(yaml, "shop"),
            vec![("web".into(), "web:v3".into()), ("app".into(), "shop_app".into())]
        );
    }
}
