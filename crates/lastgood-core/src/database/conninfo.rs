//! What a PostgreSQL connection string says, in either of libpq's two syntaxes: a URL
//! (`postgresql://app@%2Fvar%2Frun%2Fpostgresql/app`, `postgres:///app?host=/var/run/postgresql`)
//! or `key=value` pairs (`host=/var/run/postgresql dbname='my app'`, values quoted with
//! `'...'`, `\` escaping the next character).
//!
//! Only what is written: the parts left out stay `None`, and [`super::url`] fills them
//! from `PG*` variables, `.pgpass` and libpq's defaults. Keeping the two apart is what
//! lets a config be checked when it is loaded (its text) while the environment is read
//! when the database is used.
//!
//! The `postgres` crate's own parser (`postgres::Config: FromStr`) reads the parts both
//! syntaxes share: user, password, hosts (a host starting with `/`, percent-encoded or
//! not, is a socket directory), ports, database, `application_name`, `connect_timeout`,
//! `options`, with their percent-decoding and quoting. Around it, this module adds what
//! that parser does not do as libpq does: `sslmode`'s `allow`, `verify-ca` and
//! `verify-full`, `sslrootcert` and `passfile`, which it refuses as unknown; a URL that
//! names no port, to which it gives 5432 where libpq would look at `PGPORT`; and a
//! `postgresql+driver://` scheme (SQLAlchemy's), which adapters need as written. A key
//! lastgood does not carry through to `pg_dump` is refused by name, not ignored.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database url `{shown}` is not valid: {why}")]
pub struct InvalidUrl {
    /// The text with any password replaced by `***`.
    pub shown: String,
    pub why: String,
}

/// libpq's `sslmode`, with libpq's meanings and default (`prefer`). It is ignored for
/// Unix sockets, as libpq ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// Encrypt when the server offers it, certificate not checked (also `allow`).
    Prefer,
    /// Encrypt, certificate not checked.
    Require,
    /// Encrypt, certificate signed by a trusted authority, any host name.
    VerifyCa,
    /// Encrypt, certificate trusted and naming the host.
    VerifyFull,
}

pub const SSLMODES: &str = "disable, allow, prefer, require, verify-ca or verify-full";

impl SslMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where a server listens: a TCP host name or address, or the directory of its Unix
/// socket (`/var/run/postgresql`, where the socket is `.s.PGSQL.<port>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgHost {
    Tcp(String),
    Socket(PathBuf),
}

impl PgHost {
    /// libpq's reading of a host: a value starting with `/` is a socket directory.
    pub fn parse(s: &str) -> Self {
        if s.starts_with('/') { Self::Socket(PathBuf::from(s)) } else { Self::Tcp(s.to_owned()) }
    }
}

impl fmt::Display for PgHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(h) => f.write_str(h),
            Self::Socket(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The keys lastgood understands, in a URL's query or as `key=value`. Each reaches
/// both lastgood's own connections and `pg_dump`/`pg_restore` (see `PgUrl::libpq_env`).
const KEYS: &[&str] = &[
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "passfile",
    "application_name",
    "connect_timeout",
    "options",
];

/// A connection string as written, and what it says.
#[derive(Clone, PartialEq, Eq)]
pub struct Conninfo {
    pub hosts: Vec<PgHost>,
    /// Empty when the string names no port.
    pub ports: Vec<u16>,
    pub user: Option<String>,
    password: Option<Secret<String>>,
    pub dbname: Option<String>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<String>,
    pub passfile: Option<String>,
    pub application_name: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub options: Option<String>,
    text: Text,
}

/// The string itself, kept to be shown (redacted) and handed to adapters unchanged.
#[derive(Clone, PartialEq, Eq)]
enum Text {
    Url(String),
    /// The pairs as read, so the string can be written again with another database,
    /// and the string.
    Pairs(Vec<(String, String)>, String),
}

impl Conninfo {
    /// Reads a URL (`postgres://`, `postgresql://`, `postgresql+driver://`) or a
    /// `key=value` string.
    pub fn parse(text: &str) -> Result<Self, InvalidUrl> {
        if let Some(rest) = url_rest(text) {
            return parse_url(text, rest);
        }
        if text.contains("://") {
            return Err(invalid(text, "expected postgres://..., key=value pairs or sqlite://...".into()));
        }
        if !text.contains('=') {
            return Err(invalid(
                text,
                "expected postgres://..., key=value pairs (host=/var/run/postgresql dbname=app) or sqlite://...".into(),
            ));
        }
        let pairs = tokenize(text).map_err(|why| invalid(text, why))?;
        parse_pairs(text, pairs)
    }

    pub fn password(&self) -> Option<&Secret<String>> {
        self.password.as_ref()
    }

    /// The string exactly as written, password included: only for adapters'
    /// `DATABASE_URL`.
    pub fn expose(&self) -> String {
        match &self.text {
            Text::Url(raw) => raw.clone(),
            Text::Pairs(_, raw) => raw.clone(),
        }
    }

    /// The same string naming another database (scratch copies, the maintenance
    /// database).
    pub fn with_dbname(&self, name: &str) -> Self {
        let mut c = self.clone();
        c.dbname = Some(name.to_owned());
        c.text = match &self.text {
            Text::Url(raw) => Text::Url(url_with_path(raw, name)),
            Text::Pairs(pairs, _) => {
                let mut pairs: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "dbname").cloned().collect();
                pairs.push(("dbname".to_owned(), name.to_owned()));
                let raw = render_pairs(&pairs, false);
                Text::Pairs(pairs, raw)
            }
        };
        c
    }
}

/// The text after `scheme://` when the scheme is PostgreSQL's (or SQLAlchemy's
/// `postgresql+driver`, whose driver name adapters need).
fn url_rest(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once("://")?;
    let ok = matches!(scheme, "postgres" | "postgresql")
        || scheme
            .strip_prefix("postgresql+")
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric()));
    ok.then_some(rest)
}

fn invalid(text: &str, why: String) -> InvalidUrl {
    InvalidUrl { shown: redact(text), why }
}

fn parse_url(text: &str, rest: &str) -> Result<Conninfo, InvalidUrl> {
    let bad = |why: String| invalid(text, why);
    let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut ours = Ours::default();
    let mut kept = Vec::new();
    let mut port_in_query = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(bad(format!("query parameter `{}` has no value", percent_decode(pair))));
        };
        let key = percent_decode(k);
        if !ours.take(&key, &percent_decode(v)).map_err(&bad)? {
            check_key(&key).map_err(&bad)?;
            port_in_query |= key == "port";
            // The crate looks for the user info up to the first `@` anywhere, query
            // included; an `@` in a value is the same once encoded.
            kept.push(pair.replace('@', "%40"));
        }
    }
    // The crate reads the authority, the path and the keys it knows.
    let mut crate_text = format!("postgresql://{head}");
    if !kept.is_empty() {
        crate_text.push('?');
        crate_text.push_str(&kept.join("&"));
    }
    let config = postgres::Config::from_str(&crate_text).map_err(|e| bad(crate_message(&e)))?;
    let authority = head.split('/').next().unwrap_or("");
    let authority = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    // The crate gives every host without a port 5432; libpq would look at PGPORT.
    let port_written = port_in_query || authority.split(',').any(has_port);
    Conninfo::from_config(&config, port_written, ours, Text::Url(text.to_owned())).map_err(bad)
}

fn parse_pairs(text: &str, pairs: Vec<(String, String)>) -> Result<Conninfo, InvalidUrl> {
    let bad = |why: String| invalid(text, why);
    let mut ours = Ours::default();
    let mut kept = Vec::new();
    for (k, v) in &pairs {
        if !ours.take(k, v).map_err(&bad)? {
            check_key(k).map_err(&bad)?;
            kept.push((k.clone(), v.clone()));
        }
    }
    let config = postgres::Config::from_str(&render_pairs(&kept, false)).map_err(|e| bad(crate_message(&e)))?;
    Conninfo::from_config(&config, true, ours, Text::Pairs(pairs, text.to_owned())).map_err(bad)
}

impl Conninfo {
    fn from_config(c: &postgres::Config, port_written: bool, ours: Ours, text: Text) -> Result<Self, String> {
        let hosts = c
            .get_hosts()
            .iter()
            .filter_map(|h| match h {
                postgres::config::Host::Tcp(t) if t.is_empty() => None,
                postgres::config::Host::Tcp(t) => Some(PgHost::Tcp(t.clone())),
                postgres::config::Host::Unix(p) => Some(PgHost::Socket(p.clone())),
            })
            .collect::<Vec<_>>();
        let password = match c.get_password() {
            Some(p) => {
                Some(Secret::new(String::from_utf8(p.to_vec()).map_err(|_| "the password is not UTF-8".to_owned())?))
            }
            None => None,
        };
        let empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        if let Some(h) = hosts.iter().find(|h| h.to_string().starts_with('-')) {
            return Err(format!("the host `{h}` starts with `-`"));
        }
        for (what, v) in [("user", c.get_user()), ("database", c.get_dbname())] {
            if v.is_some_and(|v| v.starts_with('-')) {
                return Err(format!("the {what} starts with `-`"));
            }
        }
        Ok(Self {
            hosts,
            ports: if port_written { c.get_ports().to_vec() } else { Vec::new() },
            user: empty(c.get_user()),
            password,
            dbname: empty(c.get_dbname()),
            sslmode: ours.sslmode,
            sslrootcert: ours.sslrootcert,
            passfile: ours.passfile,
            application_name: empty(c.get_application_name()),
            connect_timeout: c.get_connect_timeout().copied(),
            options: empty(c.get_options()),
            text,
        })
    }
}

/// The keys the crate refuses or reads otherwise than libpq.
#[derive(Default)]
struct Ours {
    sslmode: Option<SslMode>,
    sslrootcert: Option<String>,
    passfile: Option<String>,
}

impl Ours {
    /// Whether `key` was one of ours (and its value good).
    fn take(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "sslmode" => {
                self.sslmode =
                    Some(SslMode::parse(value).ok_or_else(|| format!("sslmode `{value}` is not one of {SSLMODES}"))?);
            }
            "sslrootcert" => self.sslrootcert = Some(value.to_owned()),
            "passfile" => self.passfile = Some(value.to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn check_key(key: &str) -> Result<(), String> {
    if KEYS.contains(&key) {
        Ok(())
    } else {
        Err(format!("unknown connection parameter `{key}` (lastgood understands {})", KEYS.join(", ")))
    }
}

/// The crate's parse error without its "invalid configuration:" prefix. It names the
/// key and never the value.
fn crate_message(e: &postgres::Error) -> String {
    let mut m = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        m = s.to_string();
        src = s.source();
    }
    m
}

/// Whether one `host[:port]` of a URL's authority names a port.
fn has_port(chunk: &str) -> bool {
    match chunk.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(_, rest)| rest.starts_with(':')),
        None => chunk.contains(':'),
    }
}

/// libpq's `key = value` syntax: whitespace between pairs and around `=`, a value
/// either bare (up to whitespace) or in single quotes, `\` escaping the next character
/// in both.
fn tokenize(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = text.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(format!("`{key}` is not followed by `=` (key=value pairs, separated by spaces)"));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    None => return Err(format!("the quoted value of `{key}` is not closed")),
                    Some('\'') => break,
                    Some('\\') => value.extend(it.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// Pairs written back as `key=value`, quoted when needed; passwords as `***` when
/// `redacted`.
fn render_pairs(pairs: &[(String, String)], redacted: bool) -> String {
    let quote = |v: &str| {
        if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\') {
            v.to_owned()
        } else {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        }
    };
    pairs
        .iter()
        .map(|(k, v)| if redacted && k == "password" { format!("{k}=***") } else { format!("{k}={}", quote(v)) })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A URL with its path (the database) replaced.
fn url_with_path(raw: &str, db: &str) -> String {
    let (scheme, rest) = raw.split_once("://").unwrap_or(("postgresql", raw));
    let (head, query) = match rest.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = head.split('/').next().unwrap_or("");
    format!("{scheme}://{authority}/{}{query}", percent_encode(db))
}

/// A connection string with any password replaced by `***`: the URL's user info and
/// `password=` parameter, or a `password` pair.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return match tokenize(text) {
            Ok(pairs) if pairs.iter().any(|(k, _)| k == "password") => render_pairs(&pairs, true),
            Ok(_) => text.to_owned(),
            // Unreadable: show the keys only, never a value that may be a password.
            Err(_) => "(unreadable key=value string)".to_owned(),
        };
    };
    let (head, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match head.find('/') {
        Some(i) => (&head[..i], &head[i..]),
        None => (head, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let query = query.map(|q| {
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if percent_decode(k) == "password" => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        format!("?{}", pairs.join("&"))
    });
    format!("{scheme}://{authority}{path}{}", query.unwrap_or_default())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl fmt::Display for Conninfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Text::Url(raw) => f.write_str(&redact(raw)),
            Text::Pairs(pairs, _) => f.write_str(&render_pairs(pairs, true)),
        }
    }
}

impl fmt::Debug for Conninfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_strings_read_as_libpq_reads_them() {
        let pairs = tokenize(" host = /tmp  dbname='my db' user=a\\ b password='it\\'s' ").unwrap();
        let want = [("host", "/tmp"), ("dbname", "my db"), ("user", "a b"), ("password", "it's")];
        assert_eq!(pairs, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(render_pairs(&pairs, true), "host=/tmp dbname='my db' user='a b' password=***");
        assert!(tokenize("host").is_err() && tokenize("dbname='open").is_err());
    }

    #[test]
    fn redaction_and_ports_in_urls() {
        assert_eq!(
            redact("postgres://u:p@h/d?password=x&sslmode=disable"),
            "postgres://u:***@h/d?password=***&sslmode=disable"
        );
        assert_eq!(redact("host=h password=x"), "host=h password=***");
        assert_eq!(redact("host=h password='x"), "(unreadable key=value string)");
        assert!(has_port("h:5432") && has_port("[::1]:5432") && !has_port("[::1]") && !has_port("%2Ftmp"));
        let c = Conninfo::parse("postgres://[::1]/d?application_name=me@home").unwrap();
        assert_eq!(
            (c.hosts, c.ports, c.application_name.as_deref()),
            (vec![PgHost::Tcp("::1".into())], vec![], Some("me@home"))
        );
    }
}
