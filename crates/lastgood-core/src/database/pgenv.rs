//! The defaults of a PostgreSQL connection, as every libpq program finds them: the
//! `PG*` environment variables, the operating system's user and the home folder
//! (where `~/.pgpass` is).
//!
//! A snapshot taken once ([`PgEnv::from_process`]) or written by a test
//! ([`PgEnv::from_pairs`]), so that filling in a connection is a pure function of the
//! string and this value. It only reads; what the values mean, and whether they are
//! valid, is [`super::url`]'s business. `PGPASSWORD` is held as a secret.

use std::path::PathBuf;

use crate::secret::Secret;

/// The variables lastgood reads, in libpq's meaning. Others (`PGSERVICE`, `PGSSLCERT`,
/// ...) are not used by lastgood's own connections.
pub const VARS: &[&str] = &[
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGPASSFILE",
    "PGCONNECT_TIMEOUT",
];

/// Where libpq looks for the server when neither the string nor `PGHOST` names a host:
/// Debian's socket directory (upstream's default is `/tmp`).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

#[derive(Clone, Default)]
pub struct PgEnv {
    vars: Vec<(&'static str, Secret<String>)>,
    /// The name of the effective user, libpq's default role.
    pub os_user: String,
    /// `$HOME`, else the user's home from the password database.
    pub home: Option<PathBuf>,
}

impl PgEnv {
    pub fn from_process() -> Self {
        let vars = VARS.iter().filter_map(|v| std::env::var(v).ok().map(|value| (*v, Secret::new(value)))).collect();
        let (os_user, pw_home) = os_user();
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).or(pw_home);
        Self { vars, os_user, home }
    }

    /// A made-up environment (tests, and callers that must not read the process's).
    pub fn from_pairs(pairs: &[(&str, &str)], os_user: &str, home: Option<PathBuf>) -> Self {
        let vars = pairs
            .iter()
            .filter_map(|(k, v)| VARS.iter().find(|n| *n == k).map(|n| (*n, Secret::new((*v).to_owned()))))
            .collect();
        Self { vars, os_user: os_user.to_owned(), home }
    }

    /// A variable's value; an empty one counts as unset.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| *k == var).map(|(_, v)| v.expose().as_str()).filter(|v| !v.is_empty())
    }
}

impl std::fmt::Debug for PgEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.vars.iter().map(|(k, _)| *k).collect();
        f.debug_struct("PgEnv").field("set", &names).field("os_user", &self.os_user).field("home", &self.home).finish()
    }
}

/// The effective user's name and home folder, from the password database (libpq's
/// default role; `USER` may say otherwise after `su`).
fn os_user() -> (String, Option<PathBuf>) {
    // SAFETY: geteuid cannot fail; getpwuid returns NULL or a pointer to static storage
    // that we copy out of at once, before any other call could overwrite it.
    unsafe {
        let uid = libc::geteuid();
        let pw = libc::getpwuid(uid);
        if pw.is_null() || (*pw).pw_name.is_null() {
            return (format!("uid{uid}"), None);
        }
        let name = std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned();
        let home = (!(*pw).pw_dir.is_null())
            .then(|| PathBuf::from(std::ffi::CStr::from_ptr((*pw).pw_dir).to_string_lossy().into_owned()));
        (name, home)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_unset_and_the_password_never_formats() {
        let env = PgEnv::from_pairs(&[("PGHOST", ""), ("PGPASSWORD", "pw-Xy"), ("HOME", "/x")], "me", None);
        assert_eq!(env.get("PGHOST"), None);
        assert_eq!(env.get("PGPASSWORD"), Some("pw-Xy"));
        assert!(!format!("{env:?}").contains("pw-Xy"));
        assert!(!PgEnv::from_process().os_user.is_empty());
    }
}
