//! Database URLs, with the password kept out of every display.
//!
//! A URL is parsed once into its parts. `Display` and `Debug` print it with the
//! password replaced by `***`, so it can go into messages, logs, the ledger and
//! reports. Programs that need the password (`pg_dump`, `pg_restore`, adapters) get it
//! through the environment (`PGPASSWORD`, `DATABASE_URL`), never through argv, which
//! any user on the machine can read in `/proc`.
//!
//! Parsing and showing only: opening a connection is [`super::pg_client`]'s job.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database url `{shown}` is not valid: {why}")]
pub struct InvalidUrl {
    pub shown: String,
    pub why: String,
}

#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    Postgres(PgUrl),
    Sqlite(PathBuf),
}

/// libpq's `sslmode`, with libpq's meanings and default (`prefer`).
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

#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    pub user: Option<String>,
    password: Option<crate::secret::Secret<String>>,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub sslmode: SslMode,
    /// `sslrootcert`: extra trusted authorities (PEM) for the verify modes.
    pub sslrootcert: Option<PathBuf>,
    /// The URL exactly as written (adapters get it unchanged through DATABASE_URL).
    raw: String,
}

impl DbUrl {
    /// `postgres://user:pass@host:port/db` or `sqlite://path` (relative to `base`).
    pub fn parse(url: &str, base: &std::path::Path) -> Result<Self, InvalidUrl> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            if rest.is_empty() {
                return Err(InvalidUrl { shown: url.into(), why: "it names no file".into() });
            }
            let p = PathBuf::from(rest);
            return Ok(Self::Sqlite(if p.is_absolute() { p } else { base.join(p) }));
        }
        // `postgresql+psycopg2://` is SQLAlchemy's way of naming a driver; adapters get
        // the URL exactly as written, the builtin engine only needs its parts.
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let scheme_ok = matches!(scheme, "postgres" | "postgresql")
            || scheme
                .strip_prefix("postgresql+")
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric()));
        if !scheme_ok {
            return Err(InvalidUrl { shown: redact(url), why: "expected postgres://... or sqlite://...".into() });
        }
        let bad = |why: &str| InvalidUrl { shown: redact(url), why: why.into() };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let database = path.split('?').next().unwrap_or("").to_owned();
        let mut sslmode = SslMode::Prefer;
        let mut sslrootcert = None;
        for pair in path.split_once('?').map(|(_, q)| q).unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    sslmode = match v {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        _ => {
                            return Err(bad(
                                "sslmode must be disable, allow, prefer, require, verify-ca or verify-full",
                            ));
                        }
                    }
                }
                "sslrootcert" => sslrootcert = Some(base.join(percent_decode(v))),
                _ => {}
            }
        }
        if database.is_empty() {
            return Err(bad("it names no database (postgres://user@host/DATABASE)"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(percent_decode(u)), Some(crate::secret::Secret::new(percent_decode(p)))),
                None => (Some(percent_decode(u)), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad("the port is not a number"))?),
            None => (hostport.to_owned(), 5432),
        };
        let host = if host.is_empty() { "localhost".to_owned() } else { host };
        if host.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) || database.starts_with('-') {
            return Err(bad("a part starts with `-`"));
        }
        Ok(Self::Postgres(PgUrl { user, password, host, port, database, sslmode, sslrootcert, raw: url.to_owned() }))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

impl PgUrl {
    /// A client configuration for the `postgres` crate (the password included).
    pub fn client_config(&self, application_name: &str) -> postgres::Config {
        let mut c = postgres::Config::new();
        c.host(&self.host).port(self.port).dbname(&self.database).application_name(application_name);
        if let Some(u) = &self.user {
            c.user(u);
        }
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        c.connect_timeout(std::time::Duration::from_secs(10));
        c
    }

    /// Environment for libpq programs (`pg_dump`, `psql`): the connection travels here,
    /// not in argv.
    pub fn libpq_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PGHOST".to_owned(), self.host.clone()),
            ("PGPORT".to_owned(), self.port.to_string()),
            ("PGDATABASE".to_owned(), self.database.clone()),
            ("PGCONNECT_TIMEOUT".to_owned(), "10".to_owned()),
            (
                "PGSSLMODE".to_owned(),
                match self.sslmode {
                    SslMode::Disable => "disable",
                    SslMode::Prefer => "prefer",
                    SslMode::Require => "require",
                    SslMode::VerifyCa => "verify-ca",
                    SslMode::VerifyFull => "verify-full",
                }
                .to_owned(),
            ),
        ];
        if let Some(root) = &self.sslrootcert {
            env.push(("PGSSLROOTCERT".to_owned(), root.display().to_string()));
        }
        if let Some(u) = &self.user {
            env.push(("PGUSER".to_owned(), u.clone()));
        }
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD".to_owned(), p.expose().clone()));
        }
        env
    }

    /// The same server and credentials, another database (scratch copies for rehearsal).
    pub fn with_database(&self, database: &str) -> Self {
        let mut u = self.clone();
        u.database = database.to_owned();
        u.raw = match self.raw.rsplit_once('/') {
            Some((head, tail)) => {
                let query = tail.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
                format!("{head}/{database}{query}")
            }
            None => self.raw.clone(),
        };
        u
    }

    /// The URL as written, password included: only for `DATABASE_URL` of adapters.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// Whether `text` contains the password (for tests that search output for it).
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.expose().as_str())
    }
}

/// A URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(p) => write!(f, "{p}"),
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}
impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.raw))
    }
}
impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn passwords_never_display() {
        let u = DbUrl::parse("postgres://app:s3cr%40t@db.internal:6432/app?sslmode=disable", Path::new("/")).unwrap();
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("app:***@db.internal:6432/app"), "{shown}");
        let DbUrl::Postgres(p) = u else { panic!() };
        assert_eq!(p.password(), Some("s3cr@t"));
        assert_eq!(p.port, 6432);
        assert_eq!(p.database, "app");
        assert!(p.libpq_env().contains(&("PGPASSWORD".into(), "s3cr@t".into())));
        assert_eq!(
            p.with_database("scratch").expose(),
            "postgres://app:s3cr%40t@db.internal:6432/scratch?sslmode=disable"
        );
    }

    #[test]
    fn sqlite_paths_are_relative_to_the_config() {
        assert_eq!(
            DbUrl::parse("sqlite://data/app.db", Path::new("/srv")).unwrap(),
            DbUrl::Sqlite("/srv/data/app.db".into())
        );
        assert!(DbUrl::parse("mysql://x/y", Path::new("/")).is_err());
        assert!(DbUrl::parse("postgres://host", Path::new("/")).is_err());
        assert!(DbUrl::parse("postgres://-oProxy@h/d", Path::new("/")).is_err());
        assert!(DbUrl::parse("postgresql+psycopg2://u@h/d", Path::new("/")).unwrap().is_postgres());
        assert!(DbUrl::parse("postgresql+/h/d", Path::new("/")).is_err());
        let DbUrl::Postgres(p) =
            DbUrl::parse("postgres://u@h/d?sslmode=verify-full&sslrootcert=ca.pem", Path::new("/etc")).unwrap()
        else {
            panic!()
        };
        assert_eq!((p.sslmode, p.sslrootcert.as_deref()), (SslMode::VerifyFull, Some(Path::new("/etc/ca.pem"))));
        assert!(DbUrl::parse("postgres://u@h/d?sslmode=maybe", Path::new("/")).is_err());
    }
}
