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

pub use crate::atomic::{fsync_dir, write_atomic};
use crate::error::{Error, Result};
use crate::model::{CommitId, ReleaseId};

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
    deploy_to.join(".lastgood")
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

/// Exports the commit into `releases/<id>/`; does nothing if it is already there.
pub fn export(source: &Path, commit: &CommitId, deploy_to: &Path, id: ReleaseId) -> Result<bool> {
    let dest = release_dir(deploy_to, id);
    if dest.is_dir() {
        return Ok(false);
    }
    let releases = releases_dir(deploy_to);
    fs::create_dir_all(&releases).map_err(Error::io("create", &releases))?;
    let tmp = releases.join(format!(".tmp-{}", id.0));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(Error::io("remove a half-written", &tmp))?;
    }
    fs::create_dir(&tmp).map_err(Error::io("create", &tmp))?;
    crate::git::export(source, commit, &tmp)?;
    crate::failpoint::hit("mid:export");
    fs::rename(&tmp, &dest).map_err(Error::io("rename into place", &dest))?;
    fsync_dir(&releases)?;
    Ok(true)
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
    let dir = release_dir(deploy_to, id);
    if !dir.exists() {
        return Ok(());
    }
    let trash = releases_dir(deploy_to).join(format!(".trash-{}", id.0));
    if trash.exists() {
        fs::remove_dir_all(&trash).map_err(Error::io("remove", &trash))?;
    }
    fs::rename(&dir, &trash).map_err(Error::io("move away", &dir))?;
    fsync_dir(&releases_dir(deploy_to))?;
    fs::remove_dir_all(&trash).map_err(Error::io("remove", &trash))
}

/// The runtime over these functions.
pub struct Releases<'a> {
    pub env: &'a crate::config::Environment,
}

impl super::Runtime for Releases<'_> {
    fn prepare(&self) -> Result<()> {
        prepare(&self.env.deploy_to)
    }

    fn artifacts(&self) -> bool {
        true
    }

    fn export(&self, commit: &CommitId, id: ReleaseId) -> Result<bool> {
        export(&self.env.source, commit, &self.env.deploy_to, id)
    }

    fn activate(&self, a: &super::Activation<'_>) -> Result<String> {
        let id = a.release.id;
        Ok(if switch(&self.env.deploy_to, id)? {
            format!("current -> releases/{}", id.0)
        } else {
            "current already pointed there".into()
        })
    }

    fn deactivate(&self) -> Result<Option<String>> {
        unlink(&self.env.deploy_to)?;
        Ok(Some("current removed".into()))
    }

    fn ready(&self, r: &crate::ledger::Release) -> std::result::Result<(), String> {
        if r.artifact && present(&self.env.deploy_to, r.id) {
            Ok(())
        } else {
            Err(format!(
                "the release directory of {} ({}) is gone: {} does not exist",
                r.id,
                r.version,
                release_dir(&self.env.deploy_to, r.id).display()
            ))
        }
    }

    fn workdir(&self, id: ReleaseId) -> PathBuf {
        release_dir(&self.env.deploy_to, id)
    }

    fn remove(&self, id: ReleaseId) -> Result<()> {
        remove(&self.env.deploy_to, id)
    }
}
