//! The `releases` runtime: `<deploy_to>/releases/<id>/` and an atomic `current` link.
//!
//! Capistrano's layout, with the crash-safety details it leaves to chance:
//! - a release directory appears under its final name only when complete (it is
//!   unpacked into a temporary name and renamed), so a crash mid-export can never
//!   leave something that looks like a release;
//! - `current` is switched by creating a new symlink and `rename(2)`-ing it over the
//!   old one, then fsyncing the folder, so `current` always names a whole release,
//!   before or after a crash (`ln -sfn` is not atomic);
//! - removal renames a release to a `.trash-` name first, for the same reason.
//!
//! The link is relative (`releases/7`), so the whole tree can be moved or mounted.

use std::fs;
use std::path::{Path, PathBuf};

use super::api::{Activation, NotReady, Observed, Refusal, ReleaseFacts, Runtime, Site, StepFacts, generic, unusable};
pub use crate::atomic::{fsync_dir, write_atomic};
use crate::error::{Error, Result};
use crate::model::ReleaseId;
use crate::plan::Step;

pub fn releases_dir(deploy_to: &Path) -> PathBuf {
    deploy_to.join("releases")
}

pub fn release_dir(deploy_to: &Path, id: ReleaseId) -> PathBuf {
    releases_dir(deploy_to).join(id.0.to_string())
}

pub fn current_link(deploy_to: &Path) -> PathBuf {
    deploy_to.join("current")
}

/// Where lastgood keeps the supervised app's pid and log files.
pub fn state_dir(deploy_to: &Path) -> PathBuf {
    super::api::state_dir(deploy_to)
}

/// Where a host records which commit a release directory holds (outside the tree,
/// so the app cannot change it).
pub fn marker(deploy_to: &Path, id: ReleaseId) -> PathBuf {
    state_dir(deploy_to).join("releases").join(format!("{}.commit", id.0))
}

/// The release `current` points at, if it points at one.
pub fn current(deploy_to: &Path) -> Option<ReleaseId> {
    let target = fs::read_link(current_link(deploy_to)).ok()?;
    let rest = target.strip_prefix("releases").ok()?;
    rest.to_str()?.parse().ok().map(ReleaseId)
}

pub fn present(deploy_to: &Path, id: ReleaseId) -> bool {
    release_dir(deploy_to, id).is_dir()
}

/// Creates `deploy_to` and its `releases` folder, and proves it is writable.
pub fn prepare(deploy_to: &Path) -> Result<()> {
    let releases = releases_dir(deploy_to);
    fs::create_dir_all(&releases).map_err(Error::io("create", &releases))?;
    let probe = deploy_to.join(format!(".lastgood-write-test-{}", std::process::id()));
    fs::write(&probe, b"").map_err(Error::io("write to", deploy_to))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Unpacks a release's tree (a tar stream, as `git archive` writes it) into
/// `releases/<id>/` and records its commit; does nothing if it is already there.
pub fn export(
    deploy_to: &Path,
    id: ReleaseId,
    commit: &str,
    tree: &mut dyn std::io::Read,
    links: &[(String, PathBuf)],
) -> Result<bool> {
    super::tree::unpack(&releases_dir(deploy_to), id, tree, &marker(deploy_to, id), commit, links)
}

/// Points `current` at the release. Returns false when it already did.
pub fn switch(deploy_to: &Path, id: ReleaseId) -> Result<bool> {
    if current(deploy_to) == Some(id) {
        return Ok(false);
    }
    let dir = release_dir(deploy_to, id);
    if !dir.is_dir() {
        return Err(Error::Io {
            action: "switch to",
            path: dir,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the release directory is gone"),
        });
    }
    let link = current_link(deploy_to);
    let tmp = deploy_to.join(format!(".current-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(Path::new("releases").join(id.0.to_string()), &tmp)
        .map_err(Error::io("create link", &tmp))?;
    crate::failpoint::hit("mid:switch");
    fs::rename(&tmp, &link).map_err(Error::io("rename link over", &link))?;
    fsync_dir(deploy_to)?;
    Ok(true)
}

/// Removes `current`. Returns false when there was none.
pub fn unlink(deploy_to: &Path) -> Result<bool> {
    let link = current_link(deploy_to);
    match fs::remove_file(&link) {
        Ok(()) => {
            fsync_dir(deploy_to)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io { action: "remove", path: link, source: e }),
    }
}

/// Removes a release directory (renamed away first, so it never looks half there).
pub fn remove(deploy_to: &Path, id: ReleaseId) -> Result<()> {
    super::tree::remove_under(&releases_dir(deploy_to), id)?;
    let _ = fs::remove_file(marker(deploy_to, id));
    Ok(())
}

/// Makes every release directory's `name` a link to `target` again where it is not
/// (an edit in place replaced it with a file); names the releases it repaired.
pub fn relink(site: &Site, name: &str, target: &Path) -> Result<Vec<String>> {
    let releases = releases_dir(&site.deploy_to);
    let Ok(entries) = fs::read_dir(&releases) else { return Ok(Vec::new()) };
    let mut repaired = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let numbered = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.parse::<u64>().is_ok());
        if !numbered || !dir.is_dir() {
            continue;
        }
        let at = dir.join(name);
        if fs::read_link(&at).is_ok_and(|t| t == target) {
            continue;
        }
        let tmp = at.with_file_name(format!(
            ".{}.lastgood-link",
            at.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ));
        let _ = fs::remove_file(&tmp);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        std::os::unix::fs::symlink(target, &tmp).map_err(Error::io("link a shared file at", &tmp))?;
        fs::rename(&tmp, &at).map_err(Error::io("replace with a link", &at))?;
        repaired.push(format!(
            "{name} in releases/{} linked to shared/ again",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    Ok(repaired)
}

/// The runtime over these functions.
pub struct Releases<'a> {
    pub site: &'a Site,
}

impl Runtime for Releases<'_> {
    fn prepare(&self) -> std::result::Result<(), Refusal> {
        prepare(&self.site.deploy_to).map_err(|e| unusable("deploy_to", e))
    }

    fn artifacts(&self) -> bool {
        true
    }

    fn atomic(&self) -> bool {
        // `current` is renamed into place: it names the old release or the new one.
        true
    }

    fn export(&self, id: ReleaseId, commit: &str, tree: &mut dyn std::io::Read) -> Result<bool> {
        export(&self.site.deploy_to, id, commit, tree, &super::tree::shared_links(self.site))
    }

    fn activate(&self, a: &Activation) -> Result<String> {
        let id = a.release.id;
        Ok(if switch(&self.site.deploy_to, id)? {
            format!("current -> releases/{}", id.0)
        } else {
            "current already pointed there".into()
        })
    }

    fn deactivate(&self) -> Result<Option<String>> {
        unlink(&self.site.deploy_to)?;
        Ok(Some("current removed".into()))
    }

    fn ready(&self, r: &ReleaseFacts) -> std::result::Result<(), NotReady> {
        let deploy_to = &self.site.deploy_to;
        if !present(deploy_to, r.id) {
            return Err(NotReady::DirectoryGone {
                release: r.id,
                version: r.version.clone(),
                path: release_dir(deploy_to, r.id),
            });
        }
        // Directories written before lastgood recorded commits have no marker; one
        // that names another commit is a different release under a reused id.
        if let (Some(expected), Ok(found)) = (&r.commit, fs::read_to_string(marker(deploy_to, r.id))) {
            if found.trim() != expected {
                return Err(NotReady::OtherCommit {
                    release: r.id,
                    found: found.trim().to_owned(),
                    expected: expected.clone(),
                });
            }
        }
        Ok(())
    }

    fn workdir(&self, id: ReleaseId) -> PathBuf {
        release_dir(&self.site.deploy_to, id)
    }

    fn tree(&self, id: ReleaseId) -> Option<PathBuf> {
        Some(release_dir(&self.site.deploy_to, id))
    }

    fn remove(&self, id: ReleaseId) -> Result<()> {
        remove(&self.site.deploy_to, id)
    }

    fn observe(&self) -> Observed {
        Observed { release: current(&self.site.deploy_to), version: None }
    }

    fn describe(&self, step: &Step, facts: &StepFacts) -> String {
        match step {
            Step::Export { release, commit } => format!("export {} into releases/{}", commit.short(), release.0),
            Step::Build { release } => format!("build in releases/{}", release.0),
            Step::Switch { release } => format!("point current at releases/{}", release.0),
            Step::Restart { release, .. } if self.site.proxy.is_some() => {
                format!("start releases/{} beside the one serving, on a port of its own ({{port}})", release.0)
            }
            Step::Unlink => "remove current".into(),
            Step::Cleanup => "remove release directories retention no longer keeps".into(),
            other => generic(other, facts),
        }
    }
}
