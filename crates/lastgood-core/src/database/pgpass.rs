//! The password file (`~/.pgpass`, or `PGPASSFILE`, or the `passfile` key), read as
//! libpq reads it.
//!
//! Each line is `host:port:database:user:password`; `*` matches anything in the first
//! four fields, `\` escapes a `:` or a `\`, lines starting with `#` are comments, and
//! the first line that matches wins. `localhost` matches a connection through the
//! default socket directory, as it does in libpq. A file that others may read or write
//! (any group or other permission bit) is ignored, as libpq ignores it: the caller is
//! told why, so that it can say so (a silent fall back to no password is the
//! hardest kind of "password authentication failed" to explain). A missing or
//! unreadable file is simply no password, again as in libpq.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::conninfo::PgHost;
use super::pgenv::DEFAULT_SOCKET_DIR;
use crate::secret::Secret;

/// What the file says about one connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Secret<String>),
    NotFound,
    /// The file exists and was not read; the reason, for a note.
    Ignored(String),
}

/// The password for the first line matching the connection.
pub fn lookup(file: &Path, host: &PgHost, port: u16, database: &str, user: &str) -> Lookup {
    let Ok(meta) = std::fs::metadata(file) else { return Lookup::NotFound };
    if !meta.is_file() {
        return Lookup::Ignored(format!("password file {} is not a plain file; it is ignored", file.display()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Lookup::Ignored(format!(
            "password file {} has group or world access (mode {mode:04o}); it is ignored, as libpq ignores it: `chmod 0600 {}`",
            file.display(),
            file.display()
        ));
    }
    let Ok(text) = std::fs::read_to_string(file) else { return Lookup::NotFound };
    let host = match host {
        PgHost::Tcp(h) => h.clone(),
        PgHost::Socket(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_owned(),
        PgHost::Socket(dir) => dir.display().to_string(),
    };
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| matches(line.trim_end_matches('\r'), [&host, &port, database, user]))
        .map_or(Lookup::NotFound, |p| Lookup::Found(Secret::new(p)))
}

/// The password of `line` when its four first fields match `want`.
fn matches(line: &str, want: [&str; 4]) -> Option<String> {
    let mut rest = line;
    for w in want {
        // A field that is exactly `*` matches anything; `\*` is a literal star.
        if let Some(after) = rest.strip_prefix("*:") {
            rest = after;
            continue;
        }
        let (field, after) = field(rest)?;
        if field != w {
            return None;
        }
        rest = after;
    }
    let password = unescape(rest);
    (!password.is_empty()).then_some(password)
}

/// One `:`-terminated field, unescaped, and what follows its `:`.
fn field(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => out.push(it.next()?.1),
            ':' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn file(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        fs::write(f.path(), text).unwrap();
        fs::set_permissions(f.path(), fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    fn found(s: &str) -> Lookup {
        Lookup::Found(Secret::new(s.to_owned()))
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let f = file(
            "# comment\n\
             db.internal:5432:other:app:nope\n\
             db.internal:5432:app:app:first\\:pw\\\\x\n\
             *:*:*:app:fallback\n\
             localhost:5432:*:root:via-socket\n",
            0o600,
        );
        let tcp = PgHost::Tcp("db.internal".into());
        assert_eq!(lookup(f.path(), &tcp, 5432, "app", "app"), found("first:pw\\x"));
        assert_eq!(lookup(f.path(), &tcp, 6432, "app", "app"), found("fallback"));
        assert_eq!(lookup(f.path(), &tcp, 5432, "app", "bob"), Lookup::NotFound);
        let socket = PgHost::Socket(DEFAULT_SOCKET_DIR.into());
        assert_eq!(lookup(f.path(), &socket, 5432, "x", "root"), found("via-socket"));
        let elsewhere = PgHost::Socket("/tmp".into());
        assert_eq!(lookup(f.path(), &elsewhere, 5432, "x", "root"), Lookup::NotFound);
        assert_eq!(lookup(Path::new("/nonexistent/pgpass"), &tcp, 5432, "a", "b"), Lookup::NotFound);
    }

    #[test]
    fn a_file_others_can_read_is_ignored_with_the_reason() {
        let f = file("*:*:*:*:secret-pw\n", 0o644);
        let Lookup::Ignored(why) = lookup(f.path(), &PgHost::Tcp("h".into()), 5432, "d", "u") else { panic!() };
        assert!(why.contains("0644") && why.contains("chmod 0600"), "{why}");
        assert!(!why.contains("secret-pw"));
        let f = file("h\\*:*:*:*:x\n*:*:*:*:y\n", 0o600);
        assert_eq!(lookup(f.path(), &PgHost::Tcp("h*".into()), 1, "d", "u"), found("x"));
        assert_eq!(lookup(f.path(), &PgHost::Tcp("hh".into()), 1, "d", "u"), found("y"));
    }
}
