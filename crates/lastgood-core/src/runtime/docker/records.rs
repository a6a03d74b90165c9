//! lastgood's own record of which image each release ran, and the keep tags that
//! protect those images from cleanup.
//!
//! **Digests.** Tags move. Each release's record (`<state>/images/<release>.json`)
//! holds, per service, the reference and the image id (`sha256:...`, the content
//! digest of the image's config; registry digests too when the image has any) that it
//! ran. Returning to a release whose tag has since moved points the tag back at the
//! recorded id first. **Protection.** The image of every release lastgood may return
//! to carries an extra tag `lastgood-keep/<name>:r<release>-<n>`, so it is never
//! dangling and `docker image prune` keeps it; the tag goes when retention no longer
//! keeps the release (the newest `keep_releases` releases that came up healthy).
//!
//! Records are files lastgood writes (atomically), not state the engine holds; the
//! engine is asked only whether the recorded images are still there.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::api::{DockerApi, DockerError};
use super::reference::{Reference, short};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::refusal::NotReady;

/// The image one service of a release ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The compose service, or the Swarm service.
    pub service: String,
    /// As the compose file or the service names it (`app:v3`).
    pub reference: String,
    /// The image id (`sha256:...`): what the release ran, whatever the tag says later.
    pub id: String,
    /// Registry digests (`repo@sha256:...`), when the image came from a registry.
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

/// What a release ran, written when it is first activated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub release: u64,
    pub version: String,
    pub images: Vec<Image>,
    /// It came up healthy at least once (retention protects these).
    #[serde(default)]
    pub healthy: bool,
    /// Its images carry keep tags now.
    #[serde(default)]
    pub protected: bool,
}

/// The records of one environment, in `<state>/images/`.
pub struct Records {
    pub dir: PathBuf,
}

impl Records {
    fn path(&self, release: u64) -> PathBuf {
        self.dir.join(format!("{release}.json"))
    }

    pub fn load(&self, release: u64) -> Option<Record> {
        let text = std::fs::read(self.path(release)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn save(&self, r: &Record) -> Result<()> {
        let text = serde_json::to_vec_pretty(r)
            .map_err(|e| Error::Step { message: format!("cannot encode the image record: {e}") })?;
        write_atomic(&self.path(r.release), &text)
    }

    /// Every record, newest release first.
    pub fn all(&self) -> Vec<Record> {
        let mut out: Vec<Record> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")?.parse::<u64>().ok()
            })
            .filter_map(|id| self.load(id))
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.release));
        out
    }

    /// The newest record of a version older than `before`.
    pub fn by_version(&self, version: &str, before: u64) -> Option<Record> {
        self.all().into_iter().find(|r| r.version == version && r.release < before)
    }
}

/// The repository of keep tags for a project or service (`lastgood-keep/<name>`).
pub fn keep_repo(name: &str) -> String {
    let mut clean: String =
        name.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    clean = clean.trim_matches('-').to_owned();
    if clean.is_empty() {
        clean = "app".into();
    }
    format!("lastgood-keep/{clean}")
}

impl DockerApi {
    /// Makes every reference of the record name its recorded image again (a tag that
    /// moved is pointed back). The lines say what moved.
    pub fn restore_tags(&self, rec: &Record) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for img in &rec.images {
            let step = |e: DockerError| Error::Step { message: e.to_string() };
            let now = self.image(&img.reference).map_err(step)?.map(|(id, _)| id);
            if now.as_deref() == Some(img.id.as_str()) {
                continue;
            }
            if self.image(&img.id).map_err(step)?.is_none() {
                let (id, reference) = (img.id.clone(), img.reference.clone());
                return Err(DockerError::ImageGone { id, reference, release: rec.release }.into());
            }
            let r = Reference::parse(&img.reference).map_err(|e| Error::Step { message: e.to_string() })?;
            if r.digest.is_some() {
                // A digest reference cannot move; it names what it names.
                continue;
            }
            self.tag(&img.id, &r.repo, r.tag.as_deref().unwrap_or("latest"))?;
            notes.push(format!(
                "{} had moved to {}; pointed it back at {}",
                img.reference,
                now.as_deref().map(short).unwrap_or("nothing"),
                short(&img.id)
            ));
        }
        Ok(notes)
    }

    /// Keep tags for the newest `keep` healthy records (and `also`); removes the others'.
    pub fn protect(&self, records: &Records, name: &str, keep: usize, also: &[u64]) -> Vec<String> {
        let repo = keep_repo(name);
        let mut notes = Vec::new();
        let mut kept = 0;
        for mut rec in records.all() {
            let wanted = also.contains(&rec.release) || (rec.healthy && kept < keep);
            if rec.healthy && kept < keep {
                kept += 1;
            }
            if wanted {
                for (i, img) in rec.images.iter().enumerate() {
                    if let Err(e) = self.tag(&img.id, &repo, &format!("r{}-{i}", rec.release)) {
                        notes.push(e.to_string());
                    }
                }
                if !rec.protected {
                    rec.protected = true;
                    let _ = records.save(&rec);
                }
            } else if rec.protected {
                for i in 0..rec.images.len() {
                    if let Err(e) = self.untag(&format!("{repo}:r{}-{i}", rec.release)) {
                        notes.push(e.to_string());
                    }
                }
                rec.protected = false;
                let _ = records.save(&rec);
            }
        }
        notes
    }
}

/// Whether every image a release ran is still on the engine: what a rollback to it
/// needs, since lastgood never pulls.
pub fn present(rec: &Record) -> Result<(), NotReady> {
    let unreachable =
        |e: DockerError| NotReady::Unreachable { what: "the Docker engine".into(), detail: e.to_string() };
    let engine = DockerApi::connect().map_err(unreachable)?;
    for img in &rec.images {
        if engine.image(&img.id).map_err(unreachable)?.is_none() {
            return Err(NotReady::ImageMissing {
                release: crate::model::ReleaseId(rec.release),
                service: img.service.clone(),
                image: img.reference.clone(),
                id: img.id.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_repos_are_valid_references() {
        assert_eq!(keep_repo("My_Project.1"), "lastgood-keep/my-project-1");
        assert!(Reference::parse(&format!("{}:r3-0", keep_repo("My_Project.1"))).is_ok());
    }
}
