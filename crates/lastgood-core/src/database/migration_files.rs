//! Reading a migrations folder, in the two layouts teams already have: the files, not
//! the database. What is applied, and running it, is the migrator's
//! ([`super::migrator`]); this module only turns a folder into an ordered list of
//! [`Migration`]s, so that the migrator, the rehearsal and the incident report all see
//! the same versions in the same order.
//!
//! - diesel: a folder per migration, `<version>_<name>/up.sql` and `down.sql`; the
//!   version is the part of the folder name before the first `_`
//!   (`2021-02-02-153240_create_users`). `metadata.toml` with
//!   `run_in_transaction = false` marks a migration that must run outside a transaction.
//! - sqlx: files `<version>_<name>.up.sql` and `.down.sql` (or a plain
//!   `<version>_<name>.sql`, which cannot be reverted); the version is the leading number.
//!
//! A first line `-- no-transaction` (sqlx's marker) or `-- lastgood:no-transaction`
//! marks a migration that runs outside a transaction (`CREATE INDEX CONCURRENTLY`).
//! Checksums cover the up script after normalising line endings and trailing
//! whitespace, so a file re-saved on Windows is not reported as edited.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: String,
    /// The full name: the folder or file name without `.up.sql` (`2021-..._create_users`).
    pub name: String,
    pub up: String,
    pub down: Option<String>,
    pub up_path: PathBuf,
    pub down_path: Option<PathBuf>,
    pub no_transaction: bool,
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationsError {
    #[error("cannot read migrations folder {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("two migrations have version {version}: {first} and {second}")]
    Duplicate { version: String, first: String, second: String },
    #[error("{path}: {why}")]
    Malformed { path: PathBuf, why: String },
}

/// Whether a migration runs outside a transaction, from its first line.
pub fn no_transaction_marker(sql: &str) -> bool {
    let first = sql.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    matches!(first, "-- no-transaction" | "-- lastgood:no-transaction")
}

/// Line endings to `\n`, trailing whitespace and trailing blank lines removed.
pub fn normalise(sql: &str) -> String {
    let lines: Vec<&str> = sql.split('\n').map(|l| l.trim_end()).collect();
    let mut text = lines.join("\n");
    while text.ends_with('\n') {
        text.pop();
    }
    text
}

pub fn checksum(sql: &str) -> String {
    crate::digest::sha256_hex(normalise(sql).as_bytes())
}

/// Versions compare as numbers when both are all digits, else as text (diesel's
/// timestamps sort correctly as text).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if digits(a) && digits(b) {
        let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

fn read(path: &Path) -> Result<String, MigrationsError> {
    std::fs::read_to_string(path).map_err(|source| MigrationsError::Read { path: path.to_path_buf(), source })
}

/// All migrations in `dir`, sorted by version. A folder that does not exist has none.
pub fn discover(dir: &Path) -> Result<Vec<Migration>, MigrationsError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(MigrationsError::Read { path: dir.to_path_buf(), source }),
    };
    let mut out: Vec<Migration> = Vec::new();
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for e in entries {
        let e = e.map_err(|source| MigrationsError::Read { path: dir.to_path_buf(), source })?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else { continue };
        names.push((name, e.path()));
    }
    names.sort();
    for (file, path) in &names {
        if file.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            let up_path = path.join("up.sql");
            if !up_path.exists() {
                continue;
            }
            let (version, _) = file.split_once('_').unwrap_or((file.as_str(), ""));
            let up = read(&up_path)?;
            let down_path = Some(path.join("down.sql")).filter(|p| p.exists());
            let down = down_path.as_deref().map(read).transpose()?;
            let metadata = path.join("metadata.toml");
            let in_tx = if metadata.exists() {
                let text = read(&metadata)?;
                !text.lines().any(|l| l.replace(' ', "") == "run_in_transaction=false")
            } else {
                true
            };
            out.push(Migration {
                version: version.to_owned(),
                name: file.clone(),
                checksum: checksum(&up),
                no_transaction: !in_tx || no_transaction_marker(&up),
                up,
                down,
                up_path,
                down_path,
            });
        } else if let Some(stem) = file.strip_suffix(".up.sql") {
            let down_path = dir.join(format!("{stem}.down.sql"));
            out.push(sqlx_migration(stem, path, down_path.exists().then_some(down_path))?);
        } else if file.ends_with(".down.sql") {
            let stem = file.trim_end_matches(".down.sql");
            if !dir.join(format!("{stem}.up.sql")).exists() {
                return Err(MigrationsError::Malformed {
                    path: path.clone(),
                    why: "a down script without its up script".into(),
                });
            }
        } else if let Some(stem) = file.strip_suffix(".sql") {
            out.push(sqlx_migration(stem, path, None)?);
        }
    }
    out.sort_by(|a, b| compare_versions(&a.version, &b.version));
    for w in out.windows(2) {
        if w[0].version == w[1].version {
            return Err(MigrationsError::Duplicate {
                version: w[0].version.clone(),
                first: w[0].name.clone(),
                second: w[1].name.clone(),
            });
        }
    }
    Ok(out)
}

/// The migrations a folder holds, as `(version, name)` sorted by version, from its
/// files' paths alone (`folder/<name>/up.sql`, `folder/<name>.up.sql`,
/// `folder/<name>.sql`): what a release's commit says when its directory is not on
/// this machine (a fleet host's, or one retention removed).
pub fn names(paths: &[String], folder: &str) -> Vec<(String, String)> {
    let prefix = format!("{}/", folder.trim_end_matches('/'));
    let mut out: Vec<(String, String)> = paths
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix))
        .filter_map(|rel| match rel.split_once('/') {
            Some((dir, "up.sql")) => Some((dir.split_once('_').map_or(dir, |(v, _)| v).to_owned(), dir.to_owned())),
            Some(_) => None,
            None if rel.ends_with(".down.sql") || rel.starts_with('.') => None,
            None => {
                let stem = rel.strip_suffix(".up.sql").or_else(|| rel.strip_suffix(".sql"))?;
                let version: String = stem.chars().take_while(char::is_ascii_digit).collect();
                (!version.is_empty()).then(|| (version, stem.to_owned()))
            }
        })
        .collect();
    out.sort_by(|a, b| compare_versions(&a.0, &b.0));
    out.dedup();
    out
}

fn sqlx_migration(stem: &str, up_path: &Path, down_path: Option<PathBuf>) -> Result<Migration, MigrationsError> {
    let version: String = stem.chars().take_while(char::is_ascii_digit).collect();
    if version.is_empty() {
        return Err(MigrationsError::Malformed {
            path: up_path.to_path_buf(),
            why: "a sqlx migration's name must start with its version number (<version>_<name>.up.sql)".into(),
        });
    }
    let up = read(up_path)?;
    let down = down_path.as_deref().map(read).transpose()?;
    Ok(Migration {
        version,
        name: stem.to_owned(),
        checksum: checksum(&up),
        no_transaction: no_transaction_marker(&up),
        up,
        down,
        up_path: up_path.to_path_buf(),
        down_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_paths_in_both_layouts() {
        let paths: Vec<String> = [
            "m/2_index/up.sql",
            "m/2_index/down.sql",
            "m/10_more.up.sql",
            "m/10_more.down.sql",
            "m/1_t/up.sql",
            "m/3_plain.sql",
            "m/README.md",
            "other/4_x/up.sql",
        ]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
        let got: Vec<String> = names(&paths, "m/").into_iter().map(|(v, n)| format!("{v}:{n}")).collect();
        assert_eq!(got, ["1:1_t", "2:2_index", "3:3_plain", "10:10_more"]);
    }

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_the_diesel_layout() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "2021-02-02-153240_create_users/up.sql", "CREATE TABLE users (id int);\n");
        write(d.path(), "2021-02-02-153240_create_users/down.sql", "DROP TABLE users;\n");
        write(d.path(), "2021-03-01-000000_index/up.sql", "CREATE INDEX CONCURRENTLY i ON users (id);");
        write(d.path(), "2021-03-01-000000_index/metadata.toml", "run_in_transaction = false\n");
        write(d.path(), "2021-01-01-000000_no_down/up.sql", "SELECT 1;");
        let m = discover(d.path()).unwrap();
        let names: Vec<_> = m.iter().map(|m| (m.version.as_str(), m.down.is_some(), m.no_transaction)).collect();
        assert_eq!(
            names,
            [
                ("2021-01-01-000000", false, false),
                ("2021-02-02-153240", true, false),
                ("2021-03-01-000000", false, true)
            ]
        );
        assert_eq!(m[1].name, "2021-02-02-153240_create_users");
    }

    #[test]
    fn reads_the_sqlx_layout_in_numeric_order() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "9_b.up.sql", "-- no-transaction\nCREATE INDEX CONCURRENTLY x ON t (a);");
        write(d.path(), "9_b.down.sql", "DROP INDEX x;");
        write(d.path(), "10_c.up.sql", "SELECT 1;");
        write(d.path(), "10_c.down.sql", "SELECT 2;");
        write(d.path(), "20240101000000_plain.sql", "SELECT 3;");
        let m = discover(d.path()).unwrap();
        let v: Vec<_> = m.iter().map(|m| m.version.as_str()).collect();
        assert_eq!(v, ["9", "10", "20240101000000"]);
        assert!(m[0].no_transaction);
        assert!(m[2].down.is_none());
    }

    #[test]
    fn duplicates_and_missing_folders() {
        let d = tempfile::tempdir().unwrap();
        assert!(discover(&d.path().join("nope")).unwrap().is_empty());
        write(d.path(), "1_a.up.sql", "SELECT 1;");
        write(d.path(), "01_b.up.sql", "SELECT 1;");
        assert!(discover(d.path()).is_ok(), "1 and 01 differ as text");
        write(d.path(), "1_c.sql", "SELECT 1;");
        assert!(matches!(discover(d.path()), Err(MigrationsError::Duplicate { .. })));
    }

    #[test]
    fn checksums_ignore_line_endings_and_trailing_space() {
        assert_eq!(checksum("SELECT 1;  \r\nSELECT 2;\r\n\r\n"), checksum("SELECT 1;\nSELECT 2;"));
        assert_ne!(checksum("SELECT 1;"), checksum("SELECT 2;"));
    }
}
