//! Database URLs: read once, completed the way every libpq program completes them, and
//! with the password kept out of every display.
//!
//! A PostgreSQL connection is written as a URL or as `key=value` pairs
//! ([`super::conninfo`] reads both). The parts left out come, in libpq's order, from
//! `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT` and
//! `PGCONNECT_TIMEOUT`, then from libpq's defaults (the socket directory, 5432, the
//! operating system's user, a database named after the user); the password from
//! `PGPASSWORD`, then the password file ([`super::pgpass`]). The result, [`PgUrl`], is
//! what every part of lastgood connects with: its own connections
//! ([`super::pg_client`]), `pg_dump`/`pg_restore` (through [`PgUrl::libpq_env`]), and
//! scratch databases ([`PgUrl::with_database`]). Adapters get the string exactly as
//! written ([`PgUrl::expose`]) and the process's own `PG*` variables, and complete it
//! themselves as libpq does.
//!
//! `Display` and `Debug` show the string as written, with any password replaced by
//! `***`, so it can go into messages, logs, the ledger and reports; a password that came
//! from the environment or the password file is in no string at all. Programs that
//! need it get it through their environment (`PGPASSWORD`, `DATABASE_URL`), never argv,
//! which any user on the machine can read in `/proc`.
//!
//! Reading and completing only: opening a connection is [`super::pg_client`]'s job.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::conninfo::{Conninfo, SSLMODES};
pub use super::conninfo::{InvalidUrl, PgHost, SslMode, redact};
use super::pgenv::{DEFAULT_SOCKET_DIR, PgEnv};
use super::pgpass::{self, Lookup};
use crate::secret::Secret;

/// lastgood's connect timeout when neither the string nor `PGCONNECT_TIMEOUT` sets one
/// (libpq would wait forever).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One per environment, and few copies: the size difference between the variants does
/// not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    Postgres(PgUrl),
    Sqlite(PathBuf),
}

/// Why a database URL cannot be used: the string, or a `PG*` variable that completes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(transparent)]
    Invalid(#[from] InvalidUrl),
    /// The value is shown: none of these variables holds a secret (`PGPASSWORD` is
    /// never judged).
    #[error("the environment variable {var}=`{value}` is not valid: {why}")]
    Variable { var: &'static str, value: String, why: String },
}

/// A PostgreSQL connection with every part filled in.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// Tried in order, as libpq does.
    pub hosts: Vec<PgHost>,
    /// One per host, or one for all.
    pub ports: Vec<u16>,
    pub user: String,
    password: Option<Secret<String>>,
    pub database: String,
    pub sslmode: SslMode,
    /// `sslrootcert`: extra trusted authorities (PEM) for the verify modes.
    pub sslrootcert: Option<PathBuf>,
    pub application_name: Option<String>,
    pub connect_timeout: Duration,
    pub options: Option<String>,
    /// What the person should hear about how this was completed (a password file
    /// ignored); the caller says it.
    pub notes: Vec<String>,
    written: Conninfo,
}

impl DbUrl {
    /// `sqlite://path` (relative to `base`), or a PostgreSQL URL or `key=value` string
    /// completed from this process's environment.
    pub fn parse(url: &str, base: &Path) -> Result<Self, UrlError> {
        Self::parse_in(url, base, &PgEnv::from_process())
    }

    /// The same, completed from `env`.
    pub fn parse_in(url: &str, base: &Path, env: &PgEnv) -> Result<Self, UrlError> {
        if let Some(path) = sqlite_path(url, base)? {
            return Ok(Self::Sqlite(path));
        }
        Ok(Self::Postgres(PgUrl::complete(Conninfo::parse(url)?, base, env)?))
    }

    /// Whether the string itself is valid, without reading the environment (a config
    /// is checked when it is loaded; the environment is read when the database is used).
    pub fn check(url: &str, base: &Path) -> Result<(), InvalidUrl> {
        if sqlite_path(url, base)?.is_none() {
            Conninfo::parse(url)?;
        }
        Ok(())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

fn sqlite_path(url: &str, base: &Path) -> Result<Option<PathBuf>, InvalidUrl> {
    let Some(rest) = url.strip_prefix("sqlite://") else { return Ok(None) };
    if rest.is_empty() {
        return Err(InvalidUrl { shown: url.into(), why: "it names no file".into() });
    }
    let p = PathBuf::from(rest);
    Ok(Some(if p.is_absolute() { p } else { base.join(p) }))
}

impl PgUrl {
    /// Fills in what `written` leaves out, in libpq's order: the string, then `PG*`,
    /// then the defaults; the password from the string, `PGPASSWORD`, then the
    /// password file.
    fn complete(written: Conninfo, base: &Path, env: &PgEnv) -> Result<Self, UrlError> {
        let bad = |var: &'static str, why: String| UrlError::Variable {
            var,
            value: env.get(var).unwrap_or_default().to_owned(),
            why,
        };
        let hosts = match (&written.hosts[..], env.get("PGHOST")) {
            ([], Some(h)) => h.split(',').filter(|h| !h.is_empty()).map(PgHost::parse).collect(),
            (written, _) => written.to_vec(),
        };
        let hosts = if hosts.is_empty() { vec![PgHost::Socket(DEFAULT_SOCKET_DIR.into())] } else { hosts };
        let ports = match (&written.ports[..], env.get("PGPORT")) {
            ([], Some(p)) => p
                .split(',')
                .map(|p| p.trim().parse::<u16>().ok().filter(|p| *p > 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    bad("PGPORT", "expected a port number (1-65535), or several separated by commas".into())
                })?,
            ([], None) => vec![5432],
            (written, _) => written.to_vec(),
        };
        let user = written.user.clone().or_else(|| env.get("PGUSER").map(str::to_owned)).unwrap_or(env.os_user.clone());
        let database =
            written.dbname.clone().or_else(|| env.get("PGDATABASE").map(str::to_owned)).unwrap_or(user.clone());
        let sslmode = match (written.sslmode, env.get("PGSSLMODE")) {
            (Some(m), _) => m,
            (None, Some(m)) => SslMode::parse(m).ok_or_else(|| bad("PGSSLMODE", format!("expected {SSLMODES}")))?,
            (None, None) => SslMode::Prefer,
        };
        let sslrootcert = match (&written.sslrootcert, env.get("PGSSLROOTCERT")) {
            (Some(p), _) => Some(base.join(p)),
            (None, p) => p.map(PathBuf::from),
        };
        let connect_timeout = match (written.connect_timeout, env.get("PGCONNECT_TIMEOUT")) {
            (Some(t), _) => t,
            (None, Some(t)) => match t.trim().parse::<i64>() {
                Ok(s) if s > 0 => Duration::from_secs(s as u64),
                Ok(_) => CONNECT_TIMEOUT,
                Err(_) => return Err(bad("PGCONNECT_TIMEOUT", "expected a number of seconds".into())),
            },
            (None, None) => CONNECT_TIMEOUT,
        };
        let mut url = Self {
            hosts,
            ports,
            user,
            password: written.password().cloned(),
            database,
            sslmode,
            sslrootcert,
            application_name: written.application_name.clone(),
            connect_timeout,
            options: written.options.clone(),
            notes: Vec::new(),
            written,
        };
        if url.password.is_none() {
            url.password = env.get("PGPASSWORD").map(|p| Secret::new(p.to_owned()));
        }
        if url.password.is_none() {
            url.password_from_file(base, env);
        }
        Ok(url)
    }

    /// The password file's password for the first host that has one.
    fn password_from_file(&mut self, base: &Path, env: &PgEnv) {
        let file = match (&self.written.passfile, env.get("PGPASSFILE")) {
            (Some(f), _) => base.join(f),
            (None, Some(f)) => PathBuf::from(f),
            (None, None) => match &env.home {
                Some(home) => home.join(".pgpass"),
                None => return,
            },
        };
        for (i, host) in self.hosts.iter().enumerate() {
            match pgpass::lookup(&file, host, self.port_of(i), &self.database, &self.user) {
                Lookup::Found(p) => {
                    self.password = Some(p);
                    return;
                }
                Lookup::NotFound => {}
                Lookup::Ignored(why) => {
                    self.notes.push(why);
                    return;
                }
            }
        }
    }

    fn port_of(&self, host: usize) -> u16 {
        self.ports.get(host).or(self.ports.first()).copied().unwrap_or(5432)
    }

    /// Another login's password (the user is `user`, a public field).
    pub fn set_password(&mut self, password: &str) {
        self.password = Some(Secret::new(password.to_owned()));
    }

    /// Whether `other` names the same database on the same server, however either is
    /// written: the same database name, and a host and port in common, where a Unix
    /// socket directory, `localhost` and the loopback addresses are all this machine.
    pub fn same_database(&self, other: &PgUrl) -> bool {
        fn servers(u: &PgUrl) -> Vec<(String, u16)> {
            u.hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let host = match h {
                        PgHost::Socket(_) => "this machine".to_owned(),
                        PgHost::Tcp(t) => match t.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase() {
                            l if l == "localhost" || l == "::1" || l.starts_with("127.") => "this machine".to_owned(),
                            other => other,
                        },
                    };
                    (host, u.port_of(i))
                })
                .collect()
        }
        let mine = servers(self);
        self.database == other.database && servers(other).iter().any(|s| mine.contains(s))
    }

    /// Whether every host is a Unix socket, where `sslmode` does not apply.
    pub fn sockets_only(&self) -> bool {
        self.hosts.iter().all(|h| matches!(h, PgHost::Socket(_)))
    }

    /// A client configuration for the `postgres` crate, the password included; an
    /// `application_name` in the string wins over `application_name`. TLS is
    /// [`super::pg_client`]'s to set.
    pub fn client_config(&self, application_name: &str) -> postgres::Config {
        let mut c = postgres::Config::new();
        for h in &self.hosts {
            match h {
                PgHost::Tcp(t) => c.host(t),
                PgHost::Socket(dir) => c.host_path(dir),
            };
        }
        for p in &self.ports {
            c.port(*p);
        }
        c.user(&self.user).dbname(&self.database).connect_timeout(self.connect_timeout);
        c.application_name(self.application_name.as_deref().unwrap_or(application_name));
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        if let Some(o) = &self.options {
            c.options(o);
        }
        c
    }

    /// Environment for libpq programs (`pg_dump`, `psql`): the whole connection travels
    /// here, none of it in argv. Set in full, so the child's own `PG*` variables cannot
    /// send it elsewhere; `LIBPQ_UNSET` names the ones to remove.
    pub fn libpq_env(&self) -> Vec<(String, String)> {
        let join = |v: Vec<String>| v.join(",");
        let mut env = vec![
            ("PGHOST".to_owned(), join(self.hosts.iter().map(ToString::to_string).collect())),
            ("PGPORT".to_owned(), join(self.ports.iter().map(ToString::to_string).collect())),
            ("PGUSER".to_owned(), self.user.clone()),
            ("PGDATABASE".to_owned(), self.database.clone()),
            ("PGCONNECT_TIMEOUT".to_owned(), self.connect_timeout.as_secs().max(1).to_string()),
            ("PGSSLMODE".to_owned(), self.sslmode.as_str().to_owned()),
        ];
        if let Some(root) = &self.sslrootcert {
            env.push(("PGSSLROOTCERT".to_owned(), root.display().to_string()));
        }
        if let Some(o) = &self.options {
            env.push(("PGOPTIONS".to_owned(), o.clone()));
        }
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD".to_owned(), p.expose().clone()));
        }
        env
    }

    /// The same server and credentials, another database (scratch copies for
    /// rehearsal, the maintenance database of template backups).
    pub fn with_database(&self, database: &str) -> Self {
        let mut u = self.clone();
        u.database = database.to_owned();
        u.written = self.written.with_dbname(database);
        u
    }

    /// The string as written, password included: only for `DATABASE_URL` of adapters.
    pub fn expose(&self) -> String {
        self.written.expose()
    }

    /// The password, from wherever it came (for tests that search output for it).
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.expose().as_str())
    }
}

/// Variables a libpq child must not inherit, because they would take it to another
/// server than [`PgUrl::libpq_env`] names (`PGSERVICE` settings win over `PGHOST`).
pub const LIBPQ_UNSET: &[&str] = &["PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE", "PGREQUIRESSL"];

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
        fmt::Display::fmt(&self.written, f)
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

    fn env(pairs: &[(&str, &str)]) -> PgEnv {
        PgEnv::from_pairs(pairs, "osuser", None)
    }

    fn pg(url: &str, e: &PgEnv) -> PgUrl {
        match DbUrl::parse_in(url, Path::new("/etc/app"), e) {
            Ok(DbUrl::Postgres(p)) => p,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn socket() -> Vec<PgHost> {
        vec![PgHost::Socket(DEFAULT_SOCKET_DIR.into())]
    }

    #[test]
    fn passwords_never_display() {
        let u =
            DbUrl::parse_in("postgres://app:s3cr%40t@db.internal:6432/app?sslmode=disable", Path::new("/"), &env(&[]))
                .unwrap();
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("app:***@db.internal:6432/app"), "{shown}");
        let DbUrl::Postgres(p) = u else { panic!() };
        assert_eq!(p.password(), Some("s3cr@t"));
        assert_eq!((p.ports.as_slice(), p.database.as_str()), (&[6432][..], "app"));
        assert!(p.libpq_env().contains(&("PGPASSWORD".into(), "s3cr@t".into())));
        assert_eq!(
            p.with_database("scratch").expose(),
            "postgres://app:s3cr%40t@db.internal:6432/scratch?sslmode=disable"
        );
        let q = pg("postgres://app@h/app?password=q-pw-1&sslmode=require", &env(&[]));
        assert_eq!(q.password(), Some("q-pw-1"));
        assert_eq!(q.to_string(), "postgres://app@h/app?password=***&sslmode=require");
        let k = pg("host=h dbname=app password='a b\\'c' user=u", &env(&[]));
        assert_eq!(k.password(), Some("a b'c"));
        assert_eq!(k.to_string(), "host=h dbname=app password=*** user=u");
        assert_eq!(k.expose(), "host=h dbname=app password='a b\\'c' user=u");
        let from_env = pg("postgres://app@h/app", &env(&[("PGPASSWORD", "env-pw-9")]));
        assert_eq!(from_env.password(), Some("env-pw-9"));
        assert!(!format!("{from_env} {from_env:?}").contains("env-pw-9"));
    }

    #[test]
    fn sqlite_paths_are_relative_to_the_config() {
        let e = env(&[]);
        assert_eq!(
            DbUrl::parse_in("sqlite://data/app.db", Path::new("/srv"), &e),
            Ok(DbUrl::Sqlite("/srv/data/app.db".into()))
        );
        for bad in ["mysql://x/y", "postgres://-oProxy@h/d", "postgresql+/h/d", "just-a-name", "sqlite://"] {
            assert!(DbUrl::parse_in(bad, Path::new("/"), &e).is_err(), "{bad}");
            assert!(DbUrl::check(bad, Path::new("/")).is_err(), "{bad}");
        }
        assert!(DbUrl::parse_in("postgresql+psycopg2://u@h/d", Path::new("/"), &e).unwrap().is_postgres());
        let p = pg("postgres://u@h/d?sslmode=verify-full&sslrootcert=ca.pem", &e);
        assert_eq!((p.sslmode, p.sslrootcert.as_deref()), (SslMode::VerifyFull, Some(Path::new("/etc/app/ca.pem"))));
    }

    #[test]
    fn unix_socket_hosts_in_every_form() {
        let e = env(&[]);
        for url in [
            "postgres:///app?host=/var/run/postgresql",
            "postgresql://%2Fvar%2Frun%2Fpostgresql/app",
            "host=/var/run/postgresql dbname=app",
            "dbname=app",
            "postgres:///app",
        ] {
            let p = pg(url, &e);
            assert_eq!(
                (&p.hosts, &p.ports[..], p.user.as_str(), p.database.as_str()),
                (&socket(), &[5432][..], "osuser", "app"),
                "{url}"
            );
            assert_eq!(p.password(), None, "{url}");
            assert!(p.sockets_only());
            let vars = p.libpq_env();
            assert!(vars.contains(&("PGHOST".into(), DEFAULT_SOCKET_DIR.into())), "{vars:?}");
            assert!(!vars.iter().any(|(k, _)| k == "PGPASSWORD"));
            assert_eq!(p.to_string(), url);
        }
        let p = pg("postgresql://app@%2Fvar%2Frun%2Fpostgresql:5433/app", &e);
        assert_eq!((&p.hosts, &p.ports[..], p.user.as_str()), (&socket(), &[5433][..], "app"));
        let p = pg("postgres://a,b:6000/d", &e);
        assert_eq!(p.hosts, vec![PgHost::Tcp("a".into()), PgHost::Tcp("b".into())]);
        assert!(p.libpq_env().contains(&("PGHOST".into(), "a,b".into())));
        let scratch = pg("host=/var/run/postgresql dbname=app", &e).with_database("my scratch");
        assert_eq!(
            (scratch.database.as_str(), scratch.expose()),
            ("my scratch", "host=/var/run/postgresql dbname='my scratch'".to_owned())
        );
        assert_eq!(pg("postgres:///app?host=/x", &e).with_database("s").expose(), "postgres:///s?host=/x");
    }

    #[test]
    fn missing_parts_come_from_pg_variables_and_written_parts_win() {
        let e = env(&[
            ("PGHOST", "db.example"),
            ("PGPORT", "6432"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/etc/ca.pem"),
            ("PGCONNECT_TIMEOUT", "3"),
        ]);
        let p = pg("postgres://", &e);
        assert_eq!(p.hosts, vec![PgHost::Tcp("db.example".into())]);
        assert_eq!((&p.ports[..], p.user.as_str(), p.database.as_str()), (&[6432][..], "envuser", "envdb"));
        assert_eq!((p.sslmode, p.sslrootcert.as_deref()), (SslMode::VerifyCa, Some(Path::new("/etc/ca.pem"))));
        assert_eq!(p.connect_timeout, Duration::from_secs(3));
        // A URL with a host and no port takes PGPORT, as libpq does.
        let p = pg("postgres://me@other/app?sslmode=disable", &e);
        assert_eq!((&p.hosts[0], &p.ports[..], p.user.as_str()), (&PgHost::Tcp("other".into()), &[6432][..], "me"));
        assert_eq!((p.database.as_str(), p.sslmode), ("app", SslMode::Disable));
        let p = pg("host=/var/run/postgresql port=5433", &e);
        assert_eq!((&p.hosts, &p.ports[..], p.database.as_str()), (&socket(), &[5433][..], "envdb"));
        // The database defaults to the user's name.
        assert_eq!(pg("user=alice", &env(&[])).database, "alice");
    }

    #[test]
    fn bad_input_names_the_key_or_variable_and_never_the_password() {
        let bad_var = |pairs: &[(&str, &str)], var: &str| {
            let err = DbUrl::parse_in("postgres://u:pw-canary@h/d", Path::new("/"), &env(pairs)).err();
            let err = DbUrl::parse_in("host=h", Path::new("/"), &env(pairs)).err().or(err).expect("an error");
            let text = err.to_string();
            assert!(matches!(&err, UrlError::Variable { var: v, .. } if *v == var), "{text}");
            assert!(text.contains(var), "{text}");
        };
        bad_var(&[("PGSSLMODE", "bogus")], "PGSSLMODE");
        bad_var(&[("PGPORT", "abc")], "PGPORT");
        bad_var(&[("PGPORT", "70000")], "PGPORT");
        bad_var(&[("PGCONNECT_TIMEOUT", "soon")], "PGCONNECT_TIMEOUT");
        for (url, says) in [
            ("postgres://u:pw-canary@h:port/d", "port"),
            ("postgres://u:pw-canary@h/d?sslmode=maybe", "sslmode"),
            ("postgres://u:pw-canary@h/d?bogus=1", "bogus"),
            ("postgres://u:pw-canary@h/d?connect_timeout=x", "connect_timeout"),
            ("host=h password=pw-canary colour=blue", "colour"),
            ("host=h password='pw-canary", "password"),
            ("host=h password=pw-canary port=x", "port"),
            ("host=h password=pw-canary dbname", "dbname"),
        ] {
            let err = DbUrl::parse_in(url, Path::new("/"), &env(&[])).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(matches!(err, UrlError::Invalid(_)), "{url}: {text}");
            assert!(text.contains(says), "{url}: {text}");
            assert!(!text.contains("pw-canary"), "{url}: {text}");
            assert!(DbUrl::check(url, Path::new("/")).is_err(), "{url}");
        }
    }

    #[test]
    fn the_password_file_fills_in_a_missing_password() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "localhost:5432:app:root:sock-pw\ndb:*:*:app:tcp-pw\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let passfile = file.display().to_string();
        let via_var = env(&[("PGPASSFILE", passfile.as_str())]);
        assert_eq!(pg("postgres:///app?user=root", &via_var).password(), Some("sock-pw"));
        assert_eq!(pg("postgres://app@db:7000/x", &via_var).password(), Some("tcp-pw"));
        // Written and PGPASSWORD win over the file.
        assert_eq!(pg("postgres://app:given@db/x", &via_var).password(), Some("given"));
        let both = env(&[("PGPASSFILE", passfile.as_str()), ("PGPASSWORD", "env")]);
        assert_eq!(pg("postgres://app@db/x", &both).password(), Some("env"));
        // ~/.pgpass, and the `passfile` key.
        std::fs::copy(&file, dir.path().join(".pgpass")).unwrap();
        let home = PgEnv::from_pairs(&[], "root", Some(dir.path().to_path_buf()));
        assert_eq!(pg("dbname=app", &home).password(), Some("sock-pw"));
        assert_eq!(pg(&format!("host=db user=app passfile={passfile}"), &env(&[])).password(), Some("tcp-pw"));
        // Too open: ignored, with a note that names the file and never the password.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = pg("postgres://app@db/x", &via_var);
        assert_eq!(p.password(), None);
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(p.notes[0].contains(&passfile) && !p.notes[0].contains("tcp-pw"), "{:?}", p.notes);
    }
}
