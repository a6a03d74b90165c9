//! A release's source tree on disk: unpacked from `git archive`'s tar stream so that it
//! appears only complete, removed so that it never looks half there.
//!
//! The `releases` runtime keeps its trees as release directories; the runtimes that
//! switch from the controller (a pipeline, a GitOps repository) keep one only when the
//! environment has migrations to run from it, under `<deploy_to>/.lastgood/trees/`.

use std::fs;
use std::path::{Path, PathBuf};

use super::api::{Site, trees_dir};
use crate::atomic::{fsync_dir, write_atomic};
use crate::error::{Error, Result};
use crate::model::ReleaseId;

/// Unpacks a tar stream as `<parent>/<id>/`, which appears only complete (unpacked
/// under a temporary name, then renamed), and writes `marker` (the commit it holds)
/// first. Does nothing if the directory is already there.
pub fn unpack(
    parent: &Path,
    id: ReleaseId,
    tree: &mut dyn std::io::Read,
    marker: &Path,
    commit: &str,
    links: &[(String, PathBuf)],
) -> Result<bool> {
    let dest = parent.join(id.0.to_string());
    if dest.is_dir() {
        // Drain the stream so a writer on the other end does not see a broken pipe.
        let _ = std::io::copy(tree, &mut std::io::sink());
        return Ok(false);
    }
    fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
    let tmp = parent.join(format!(".tmp-{}", id.0));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(Error::io("remove a half-written", &tmp))?;
    }
    fs::create_dir(&tmp).map_err(Error::io("create", &tmp))?;
    let mut archive = tar::Archive::new(tree);
    archive.set_preserve_permissions(true);
    archive.unpack(&tmp).map_err(Error::io("unpack the release into", &tmp))?;
    // Shared files (config snapshots) are links into the release, made before it has
    // its name: a release directory is complete when it appears, links included.
    for (name, target) in links {
        let at = tmp.join(name);
        if let Some(dir) = at.parent() {
            fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        if at.symlink_metadata().is_ok() {
            fs::remove_file(&at).map_err(Error::io("replace with a link", &at))?;
        }
        std::os::unix::fs::symlink(target, &at).map_err(Error::io("link a shared file at", &at))?;
    }
    crate::failpoint::hit("mid:export");
    write_atomic(marker, format!("{commit}\n").as_bytes())?;
    fs::rename(&tmp, &dest).map_err(Error::io("rename into place", &dest))?;
    fsync_dir(parent)?;
    Ok(true)
}

/// Removes `<parent>/<id>/` (renamed away first, so it never looks half there).
pub fn remove_under(parent: &Path, id: ReleaseId) -> Result<()> {
    let dir = parent.join(id.0.to_string());
    if !dir.exists() {
        return Ok(());
    }
    let trash = parent.join(format!(".trash-{}", id.0));
    if trash.exists() {
        fs::remove_dir_all(&trash).map_err(Error::io("remove", &trash))?;
    }
    fs::rename(&dir, &trash).map_err(Error::io("move away", &dir))?;
    fsync_dir(parent)?;
    fs::remove_dir_all(&trash).map_err(Error::io("remove", &trash))
}

/// Creates an empty file only its owner can read (mode 0600).
pub fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(Error::io("create", path))?;
    Ok(())
}

/// The links a release directory gets to the site's shared files.
pub fn shared_links(site: &Site) -> Vec<(String, PathBuf)> {
    site.shared_files.iter().map(|n| (n.clone(), site.shared(n))).collect()
}

/// Where a controller runtime keeps release `id`'s tree.
pub fn of(site: &Site, id: ReleaseId) -> PathBuf {
    trees_dir(site).join(id.0.to_string())
}

/// Exports release `id`'s tree under the site's trees folder; false when it was there.
pub fn export(site: &Site, id: ReleaseId, commit: &str, tree: &mut dyn std::io::Read) -> Result<bool> {
    let marker = trees_dir(site).join(format!("{}.commit", id.0));
    unpack(&trees_dir(site), id, tree, &marker, commit, &[])
}

/// Removes release `id`'s tree (retention).
pub fn remove(site: &Site, id: ReleaseId) -> Result<()> {
    remove_under(&trees_dir(site), id)?;
    let _ = fs::remove_file(trees_dir(site).join(format!("{}.commit", id.0)));
    Ok(())
}
