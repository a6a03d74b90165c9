//! Config file snapshots: the content each release was deployed with, kept so that a
//! rollback can put it back.
//!
//! Config files hold secrets (tokens, passwords), so their contents stay out of the
//! ledger, which is read by `status`, reports, backups of the ledger and anyone
//! debugging it. They live in a content-addressed store beside it instead
//! (`.lastgood/snapshots/<sha256>`, 0600 files in a 0700 folder), written atomically
//! before the release that names them is recorded; the ledger holds only the hashes.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// The store beside a ledger file.
    pub fn beside(ledger: &Path) -> Self {
        Self { dir: ledger.parent().unwrap_or(Path::new(".")).join("snapshots") }
    }

    fn path(&self, sha256: &str) -> Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Usage { what: format!("`{sha256}` is not a sha256") });
        }
        Ok(self.dir.join(sha256))
    }

    /// Stores `content` under its hash (already there: nothing to do).
    pub fn put(&self, sha256: &str, content: &[u8]) -> Result<()> {
        let path = self.path(sha256)?;
        if path.exists() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(Error::io("create", &self.dir))?;
        let tmp = self.dir.join(format!(".{sha256}.{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(Error::io("write", &tmp))?;
        f.write_all(content).and_then(|_| f.sync_all()).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("store", &path))?;
        crate::atomic::fsync_dir(&self.dir)
    }

    pub fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(sha256)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { action: "read", path, source }),
        }
    }
}
