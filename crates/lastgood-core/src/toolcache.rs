//! What a release's schema tool printed for a command that reads only the release's
//! own files (`alembic history --verbose`, offline `--sql`), kept beside the release
//! where it runs: in the state directory of the site (this machine, or the ssh host
//! whose agent ran it), `tool-cache/<release>/<key>.json`.
//!
//! A tool in a container costs a container start and an interpreter per run (about a
//! second). A release's files never change once it is built, so what they print for
//! the same command against the same database URL never changes either: a deploy asks
//! its new release for the history and the SQL of the way back while its container is
//! warm, and the rollback that later needs them, from any operator's machine, reads
//! them here instead of starting containers before it can even plan.
//!
//! Only what the preferred release (the first candidate) printed with exit 0 is kept,
//! and only looked up for that release; the key holds the release's id and commit, the
//! service, the argv and `DATABASE_URL` (offline SQL depends on the dialect). The
//! release's `LASTGOOD_*` variables are not part of it: they say what lastgood moves
//! to, not what the files hold. A release's entries go when the release is removed.

use std::fs;
use std::path::{Path, PathBuf};

use crate::database::program::Ran;
use crate::model::ReleaseId;
use crate::runtime::ReleaseFacts;

const DIR: &str = "tool-cache";

/// Where `release`'s entry for one command lives in a site's state directory.
fn entry(
    state_dir: &Path,
    release: &ReleaseFacts,
    service: Option<&str>,
    argv: &[String],
    env: &[(String, String)],
) -> PathBuf {
    let url = env.iter().find(|(k, _)| k == "DATABASE_URL").map(|(_, v)| v.as_str()).unwrap_or("");
    let key = crate::digest::sha256_parts(&[
        release.commit.as_deref().unwrap_or("").as_bytes(),
        b"\0",
        service.unwrap_or("").as_bytes(),
        b"\0",
        argv.join("\0").as_bytes(),
        b"\0",
        url.as_bytes(),
    ]);
    state_dir.join(DIR).join(release.id.0.to_string()).join(format!("{key}.json"))
}

/// What the preferred release printed for this command before, if it did.
pub fn get(
    state_dir: &Path,
    candidates: &[ReleaseFacts],
    service: Option<&str>,
    argv: &[String],
    env: &[(String, String)],
) -> Option<(ReleaseId, Ran)> {
    let first = candidates.first()?;
    let text = fs::read(entry(state_dir, first, service, argv, env)).ok()?;
    let ran: Ran = serde_json::from_slice(&text).ok()?;
    (ran.code == Some(0)).then_some((first.id, ran))
}

/// Keeps what `by` printed, when `by` is the preferred release and it exited 0. A
/// failure to write only costs the next run a container start.
pub fn put(
    state_dir: &Path,
    candidates: &[ReleaseFacts],
    service: Option<&str>,
    argv: &[String],
    env: &[(String, String)],
    by: ReleaseId,
    ran: &Ran,
) {
    let Some(first) = candidates.first().filter(|c| c.id == by && ran.code == Some(0)) else { return };
    let path = entry(state_dir, first, service, argv, env);
    let Ok(bytes) = serde_json::to_vec(ran) else { return };
    if let Some(dir) = path.parent() {
        if fs::create_dir_all(dir).is_ok() {
            let _ = crate::atomic::write_atomic(&path, &bytes);
        }
    }
}

/// Forgets a removed release's entries.
pub fn remove(state_dir: &Path, release: ReleaseId) {
    let _ = fs::remove_dir_all(state_dir.join(DIR).join(release.0.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(out: &str, code: i32) -> Ran {
        Ran { code: Some(code), stdout: out.into(), stderr: String::new() }
    }

    #[test]
    fn only_the_preferred_releases_success_is_kept_and_found_by_the_same_command() {
        let d = tempfile::tempdir().unwrap();
        let site = d.path();
        let facts = |id: u64, commit: &str| ReleaseFacts {
            id: ReleaseId(id),
            version: format!("v{id}"),
            commit: Some(commit.into()),
        };
        let both = [facts(3, "c3"), facts(2, "c2")];
        let argv: Vec<String> = vec!["alembic".into(), "history".into()];
        let env = vec![("DATABASE_URL".to_owned(), "postgres://a/b".to_owned())];
        // An older release ran it (the newest could not): not kept.
        put(site, &both, Some("app"), &argv, &env, ReleaseId(2), &ran("old", 0));
        assert!(get(site, &both, Some("app"), &argv, &env).is_none());
        // A failure is not kept.
        put(site, &both, Some("app"), &argv, &env, ReleaseId(3), &ran("boom", 1));
        assert!(get(site, &both, Some("app"), &argv, &env).is_none());
        put(site, &both, Some("app"), &argv, &env, ReleaseId(3), &ran("new", 0));
        let (by, hit) = get(site, &both, Some("app"), &argv, &env).unwrap();
        assert_eq!((by, hit.stdout.as_str()), (ReleaseId(3), "new"));
        // Another database URL, another service, another commit under the same id: no.
        let other = vec![("DATABASE_URL".to_owned(), "sqlite:////x".to_owned())];
        assert!(get(site, &both, Some("app"), &argv, &other).is_none());
        assert!(get(site, &both, Some("web"), &argv, &env).is_none());
        assert!(get(site, &[facts(3, "c9")], Some("app"), &argv, &env).is_none());
        remove(site, ReleaseId(3));
        assert!(get(site, &both, Some("app"), &argv, &env).is_none());
    }
}
