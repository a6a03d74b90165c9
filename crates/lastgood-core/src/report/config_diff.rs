//! Config file changes between two releases (or between a release's snapshot and the
//! files in place), key by key, with secrets masked.
//!
//! The ledger holds only each file's sha256; the contents come from the snapshot store.
//! A `KEY=VALUE` file (dotenv style) is compared key by key; any other format is only
//! reported as changed, with both hashes. A key whose name looks secret (`TOKEN`,
//! `PASSWORD`, ...) has both values shown as `***`: the record is pasted into tickets,
//! and a config diff must not be how a secret leaves the machine.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::Error;
use crate::ledger::{Ledger, Release};

/// A config key whose name contains one of these (any case) has its values masked.
const SECRET_WORDS: [&str; 7] = ["PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH"];

#[derive(Debug, Clone, Serialize)]
pub struct ConfigChange {
    pub file: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub from_sha256: Option<String>,
    pub to_sha256: Option<String>,
    /// Key by key, for `KEY=VALUE` files; empty for other formats (see `note`).
    pub keys: Vec<KeyChange>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyChange {
    pub key: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// `***` when the key looks secret.
    pub from: Option<String>,
    pub to: Option<String>,
    pub masked: bool,
}

/// Why a changed file is not compared key by key (the note says so, with both hashes).
#[derive(Debug, thiserror::Error)]
enum KeysUnknown {
    #[error("the snapshot {} is missing from the ledger", short_sha(sha))]
    SnapshotMissing { sha: String },
    #[error("cannot read the snapshot {}: {source}", short_sha(sha))]
    SnapshotUnreadable {
        sha: String,
        #[source]
        source: Box<Error>,
    },
    #[error("not a KEY=VALUE file")]
    NotKeyValue,
}

pub(super) fn config_changes(ledger: &dyn Ledger, from: Option<&Release>, to: &Release) -> Vec<ConfigChange> {
    let empty = BTreeMap::new();
    let old = from.map(|f| &f.config).unwrap_or(&empty);
    let names: BTreeSet<&String> = old.keys().chain(to.config.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (old.get(name), to.config.get(name));
        if a == b {
            continue;
        }
        out.push(compare(name, a, b, snapshot(ledger, a), snapshot(ledger, b)));
    }
    out
}

/// Config files in place that differ from `release`'s snapshot, key by key, from the
/// snapshot to what is in place now. `edited` holds each file's name and its content
/// here (None: the file is gone).
pub fn in_place_changes(
    ledger: &dyn Ledger,
    release: &Release,
    edited: &[(String, Option<Vec<u8>>)],
) -> Vec<ConfigChange> {
    edited
        .iter()
        .map(|(name, content)| {
            let a = release.config.get(name);
            let b = content.as_deref().map(crate::digest::sha256_hex);
            compare(name, a, b.as_ref(), snapshot(ledger, a), Ok(content.clone()))
        })
        .collect()
}

/// A snapshot's content (None: the file was not part of it).
fn snapshot(ledger: &dyn Ledger, sha: Option<&String>) -> Result<Option<Vec<u8>>, KeysUnknown> {
    match sha {
        None => Ok(None),
        Some(sha) => match ledger.blob(sha) {
            Ok(Some(b)) => Ok(Some(b)),
            Ok(None) => Err(KeysUnknown::SnapshotMissing { sha: sha.clone() }),
            Err(e) => Err(KeysUnknown::SnapshotUnreadable { sha: sha.clone(), source: Box::new(e) }),
        },
    }
}

/// One file's change from content `x` (hash `a`) to content `y` (hash `b`).
fn compare(
    name: &str,
    a: Option<&String>,
    b: Option<&String>,
    x: Result<Option<Vec<u8>>, KeysUnknown>,
    y: Result<Option<Vec<u8>>, KeysUnknown>,
) -> ConfigChange {
    let change = match (a, b) {
        (None, _) => "added",
        (_, None) => "removed",
        _ => "changed",
    };
    let mut c = ConfigChange {
        file: name.to_owned(),
        change,
        from_sha256: a.cloned(),
        to_sha256: b.cloned(),
        keys: vec![],
        note: None,
    };
    let parsed = match (x, y) {
        (Ok(x), Ok(y)) => {
            let parse = |blob: &Option<Vec<u8>>| match blob {
                None => Some(BTreeMap::new()),
                Some(bytes) => key_values(bytes),
            };
            parse(&x).zip(parse(&y)).ok_or(KeysUnknown::NotKeyValue)
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match parsed {
        Ok((x, y)) => c.keys = key_changes(&x, &y),
        Err(why) => {
            let sha = |s: Option<&String>| s.map(|s| short_sha(s).to_owned()).unwrap_or_else(|| "none".into());
            c.note = Some(format!("{why}: sha256 {} -> {}", sha(a), sha(b)));
        }
    }
    c
}

/// A `KEY=VALUE` file (blank lines, `#` comments and `export ` allowed); None for any
/// other format, which is then only reported as changed.
fn key_values(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=')?;
        let key = key.trim();
        let plain = key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if key.is_empty() || !plain {
            return None;
        }
        // The last assignment wins, as when a shell or dotenv reads the file.
        map.insert(key.to_owned(), value.trim().to_owned());
    }
    Some(map)
}

fn key_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<KeyChange> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (old.get(k), new.get(k));
            let change = match (a, b) {
                (x, y) if x == y => return None,
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            let secret = is_secret(k);
            let show = |v: Option<&String>| v.map(|v| if secret { "***".to_owned() } else { mask_passwords(v) });
            let (from, to) = (show(a), show(b));
            let masked = secret || from.as_ref() != a || to.as_ref() != b;
            Some(KeyChange { key: k.clone(), change, from, to, masked })
        })
        .collect()
}

/// A value with the password of every URL in it (`scheme://user:PASSWORD@host`)
/// shown as `***`: `DATABASE_URL` is not a secret-looking name, its password is.
pub fn mask_passwords(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => match tail[..at].find(':') {
                Some(colon) => {
                    out.push_str(&tail[..=colon]);
                    out.push_str("***");
                    out.push_str(&tail[at..authority_end]);
                }
                None => out.push_str(&tail[..authority_end]),
            },
            None => out.push_str(&tail[..authority_end]),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

pub fn is_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked_wherever_they_are() {
        assert_eq!(mask_passwords("postgres://app:s3cret@db:5432/app"), "postgres://app:***@db:5432/app");
        assert_eq!(mask_passwords("x postgres://u:p@h/d?a=http://v:w@z/"), "x postgres://u:***@h/d?a=http://v:***@z/");
        assert_eq!(mask_passwords("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(mask_passwords("plain value"), "plain value");
    }

    #[test]
    fn secret_looking_keys_are_masked() {
        for k in
            ["API_TOKEN", "db_password", "SecretThing", "AWS_ACCESS_KEY_ID", "private_pem", "AUTH_URL", "CREDENTIALS"]
        {
            assert!(is_secret(k), "{k}");
        }
        for k in ["GREETING", "HEALTH", "PORT"] {
            assert!(!is_secret(k), "{k}");
        }
        let old = key_values(b"A=1\nAPI_TOKEN=abc\nGONE=x\n").unwrap();
        let new = key_values(b"# c\nexport A=2\nAPI_TOKEN=xyz\nNEW=y\n").unwrap();
        let ch = key_changes(&old, &new);
        let shown: Vec<String> = ch.iter().map(|k| format!("{}:{}:{:?}:{:?}", k.key, k.change, k.from, k.to)).collect();
        assert_eq!(
            shown,
            [
                "A:changed:Some(\"1\"):Some(\"2\")",
                "API_TOKEN:changed:Some(\"***\"):Some(\"***\")",
                "GONE:removed:Some(\"x\"):None",
                "NEW:added:None:Some(\"y\")",
            ]
        );
    }

    #[test]
    fn other_formats_are_not_read_key_by_key() {
        assert!(key_values(b"[section]\nkey = 1\n").is_none());
        assert!(key_values(b"{\"a\": 1}").is_none());
        assert!(key_values(&[0xff, 0xfe]).is_none());
        assert_eq!(key_values(b"\n# only a comment\n").unwrap().len(), 0);
    }

    #[test]
    fn a_file_not_compared_key_by_key_says_why() {
        let sha = "0123456789abcdef".repeat(4);
        assert_eq!(
            KeysUnknown::SnapshotMissing { sha }.to_string(),
            "the snapshot 0123456789ab is missing from the ledger"
        );
        assert_eq!(KeysUnknown::NotKeyValue.to_string(), "not a KEY=VALUE file");
    }
}
