//! Replacing a file so that a crash leaves either the old content or the new, never a
//! mix: write a temporary file beside it, fsync it, `rename(2)` it over the old one,
//! then fsync the folder so the rename itself survives a power loss.
//!
//! It is not a general file utility: only the two steps that make a replacement
//! durable live here. They used to live in the `releases` runtime, which made the
//! config snapshot store (and so the ledger) import a runtime just to fsync a folder.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Makes the entries of `dir` (a rename, a new file) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|f| f.sync_all()).map_err(Error::io("fsync", dir))
}

/// Replaces a file's content atomically (write, fsync, rename, fsync the folder).
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.lastgood-{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(Error::io("write", &tmp))?;
    // Keep the old file's permissions: config files often hold secrets (0600).
    if let Ok(meta) = fs::metadata(path) {
        let _ = f.set_permissions(meta.permissions());
    }
    f.write_all(content).and_then(|_| f.sync_all()).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("replace", path))?;
    fsync_dir(dir)
}
