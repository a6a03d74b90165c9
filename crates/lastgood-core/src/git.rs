//! The one place lastgood runs `git`.
//!
//! Every call is an argv, never a shell string; refs arrive as validated
//! [`Version`]s or [`CommitId`]s, and `--end-of-options` stands before them anyway so
//! that git's own option parser can never read a ref as an option. Prompts are
//! disabled: a deploy tool must not hang waiting for a password nobody will type.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::model::{CommitId, Version};

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir).env("GIT_TERMINAL_PROMPT", "0").env("LC_ALL", "C").stdin(Stdio::null());
    c
}

fn run(dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    git(dir)
        .args(args)
        .output()
        .map_err(|e| Error::Git { dir: dir.to_path_buf(), message: format!("cannot run git: {e}; is git installed?") })
}

fn fail(dir: &Path, out: &std::process::Output) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr);
    Error::Git { dir: dir.to_path_buf(), message: stderr.trim().lines().last().unwrap_or("failed").to_owned() }
}

/// Checks that `dir` is a git work tree (or bare repository) lastgood can read.
pub fn check_repository(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::Usage { what: format!("source {} is not a folder", dir.display()) });
    }
    let out = run(dir, &["rev-parse", "--git-dir"])?;
    if !out.status.success() {
        return Err(Error::Usage { what: format!("source {} is not a git repository", dir.display()) });
    }
    Ok(())
}

/// The commit a tag, branch or commit id names.
pub fn resolve(dir: &Path, version: &Version) -> Result<CommitId> {
    check_repository(dir)?;
    let spec = format!("{}^{{commit}}", version.as_str());
    let out = run(dir, &["rev-parse", "--verify", "--quiet", "--end-of-options", &spec])?;
    if !out.status.success() {
        return Err(Error::UnknownVersion { version: version.to_string(), source_dir: dir.to_path_buf() });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    CommitId::parse(text.trim()).map_err(|e| Error::Git { dir: dir.to_path_buf(), message: e.to_string() })
}

/// Commit subjects in `to` that are not in `from` (all of `to`'s history if None),
/// newest first, at most `limit`.
pub fn subjects(dir: &Path, from: Option<&CommitId>, to: &CommitId, limit: usize) -> Result<Vec<String>> {
    let range = match from {
        Some(f) if f != to => format!("{}..{}", f.as_str(), to.as_str()),
        Some(_) => return Ok(Vec::new()),
        None => to.as_str().to_owned(),
    };
    let max = format!("--max-count={limit}");
    let out = run(dir, &["log", "-z", "--format=%s", &max, "--end-of-options", &range])?;
    if !out.status.success() {
        return Err(fail(dir, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// One commit as an incident record shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Commit {
    pub id: CommitId,
    pub author: String,
    pub subject: String,
}

/// Commits in `to` that are not in `from` (all of `to`'s history if None), newest
/// first, at most `limit`. Fields are split on the unit separator, which neither a
/// name nor a subject line can hold.
pub fn commits(dir: &Path, from: Option<&CommitId>, to: &CommitId, limit: usize) -> Result<Vec<Commit>> {
    let range = match from {
        Some(f) if f != to => format!("{}..{}", f.as_str(), to.as_str()),
        Some(_) => return Ok(Vec::new()),
        None => to.as_str().to_owned(),
    };
    let max = format!("--max-count={limit}");
    let out = run(dir, &["log", "-z", "--format=%H%x1f%an%x1f%s", &max, "--end-of-options", &range])?;
    if !out.status.success() {
        return Err(fail(dir, &out));
    }
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|r| !r.trim().is_empty())
        .map(|record| {
            let mut fields = record.trim_start_matches('\n').splitn(3, '\x1f');
            let (id, author, subject) = (fields.next(), fields.next(), fields.next());
            let id = CommitId::parse(id.unwrap_or("").trim())
                .map_err(|e| Error::Git { dir: dir.to_path_buf(), message: e.to_string() })?;
            Ok(Commit {
                id,
                author: author.unwrap_or("").trim().to_owned(),
                subject: subject.unwrap_or("").trim().to_owned(),
            })
        })
        .collect()
}

/// Streams the commit's tree as a tar archive (`git archive`) into `f`, so a release
/// is unpacked without holding the whole tree in memory.
pub fn with_archive<T>(dir: &Path, commit: &CommitId, f: impl FnOnce(&mut dyn std::io::Read) -> T) -> Result<T> {
    let mut child = git(dir)
        .args(["archive", "--format=tar", "--end-of-options", commit.as_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Git { dir: dir.to_path_buf(), message: format!("cannot run git: {e}") })?;
    let result = child.stdout.take().map(|mut out| f(&mut out));
    let out = child.wait_with_output().map_err(|e| Error::Git { dir: dir.to_path_buf(), message: e.to_string() })?;
    if !out.status.success() {
        return Err(fail(dir, &out));
    }
    result.ok_or_else(|| Error::Git { dir: dir.to_path_buf(), message: "git archive gave no output".into() })
}

/// The commit's tree unpacked into a new temporary folder (permissions kept), for a
/// look at a release's files before it is deployed (its migrations).
pub fn unpack_to_temp(dir: &Path, commit: &CommitId) -> Result<tempfile::TempDir> {
    let tmp = tempfile::tempdir().map_err(Error::io("create a temporary folder in", std::env::temp_dir()))?;
    with_archive(dir, commit, |tar| {
        let mut archive = tar::Archive::new(tar);
        archive.set_preserve_permissions(true);
        archive.unpack(tmp.path())
    })?
    .map_err(Error::io("unpack the release into", tmp.path()))?;
    Ok(tmp)
}

/// The commit's tree as a tar archive (what fleet hosts unpack).
pub fn archive(dir: &Path, commit: &CommitId) -> Result<Vec<u8>> {
    let out = run(dir, &["archive", "--format=tar", "--end-of-options", commit.as_str()])?;
    if !out.status.success() {
        return Err(fail(dir, &out));
    }
    Ok(out.stdout)
}

/// Whether the trees of two commits differ outside the given paths (so a release that
/// only adds migrations is not taken for a code change).
pub fn differs_outside(dir: &Path, a: &CommitId, b: &CommitId, excluded: &[&str]) -> Result<bool> {
    let mut args = vec![
        "diff".to_owned(),
        "--quiet".into(),
        "--end-of-options".into(),
        a.to_string(),
        b.to_string(),
        "--".into(),
        ".".into(),
    ];
    for e in excluded {
        args.push(format!(":(exclude){e}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(dir, &args)?;
    match out.status.code() {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(fail(dir, &out)),
    }
}

/// Whether the trees of two commits differ within the given paths (none: they do not).
pub fn differs_within(dir: &Path, a: &CommitId, b: &CommitId, paths: &[&str]) -> Result<bool> {
    if paths.is_empty() {
        return Ok(false);
    }
    let mut args = vec!["diff", "--quiet", "--end-of-options", a.as_str(), b.as_str(), "--"];
    args.extend(paths);
    let out = run(dir, &args)?;
    match out.status.code() {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(fail(dir, &out)),
    }
}

/// A file's content at a commit, by its path relative to `dir`; None when the commit
/// has no such file.
pub fn file_at(dir: &Path, commit: &CommitId, path: &str) -> Result<Option<Vec<u8>>> {
    let spec = format!("{}:./{}", commit.as_str(), path.trim_start_matches("./"));
    let out = run(dir, &["cat-file", "blob", &spec])?;
    Ok(out.status.success().then_some(out.stdout))
}

/// The files under `folder` at a commit, as paths relative to `dir`.
pub fn files_at(dir: &Path, commit: &CommitId, folder: &str) -> Result<Vec<String>> {
    let out = run(dir, &["ls-tree", "-r", "--name-only", "-z", "--end-of-options", commit.as_str(), "--", folder])?;
    if !out.status.success() {
        return Err(fail(dir, &out));
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}
