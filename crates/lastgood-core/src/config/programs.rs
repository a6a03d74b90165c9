//! The programs lastgood runs from this machine for a pipeline or a GitOps repository
//! (`switch`, `current`, `trigger`), checked before anything is recorded.
//!
//! A missing or non-executable program is bad config, not a failed release: a typo
//! in `switch` used to leave a `failed` release in history. So preflight and
//! `--dry-run` look first and exit 2 naming the key, the program as written and where
//! it was looked for. Programs of release directories (`run = ["./server"]`) are not
//! checked here: they arrive with the release.

use std::path::{Path, PathBuf};

use super::types::{Environment, Runtime};
use crate::error::{Error, Result};

impl Environment {
    /// The programs this environment runs from this machine, by config key.
    pub fn controller_programs(&self) -> Vec<(&'static str, &[String])> {
        match &self.runtime {
            Runtime::Command { switch, current } => {
                let mut out = vec![("switch", switch.as_slice())];
                out.extend(current.as_deref().map(|c| ("current", c)));
                out
            }
            Runtime::Gitops(g) => g.trigger.as_deref().map(|t| vec![("trigger", t)]).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Each controller program exists and is executable (exit 2 otherwise).
    pub fn check_programs(&self) -> Result<()> {
        for (key, argv) in self.controller_programs() {
            let program = &argv[0];
            if let Err(why) = executable(program) {
                return Err(Error::Usage {
                    what: format!("environments.{}.{key}: `{program}` {why}; nothing was changed", self.name),
                });
            }
        }
        Ok(())
    }
}

/// Whether `program` (a path, or a name looked up in PATH) is an executable file.
fn executable(program: &str) -> std::result::Result<PathBuf, String> {
    if program.contains('/') {
        let path = Path::new(program);
        return if is_executable(path) {
            Ok(path.to_path_buf())
        } else if path.is_file() {
            Err("is not executable (chmod +x it)".into())
        } else {
            Err("does not exist (relative paths are relative to lastgood.toml's folder)".into())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| "is not found in PATH".into())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
