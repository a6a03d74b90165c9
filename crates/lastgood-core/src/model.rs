//! The nouns of lastgood: environments, versions, releases, their states and scopes.
//!
//! Every value that arrives from a user (an environment name, a version, a rollback
//! target) is checked here, once, and carried afterwards as a type that cannot hold a
//! bad value. That is what keeps hostile input (`--upload-pack=x`, `$(x)`, `;`,
//! newlines) away from git and every other program: by the time a string reaches an
//! argv it has already been proven to be a plain name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A problem with one user-given value; the caller knows which flag or key it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not valid: {why}")]
pub struct InvalidValue {
    pub what: &'static str,
    pub value: String,
    pub why: String,
}

fn invalid(what: &'static str, value: &str, why: impl Into<String>) -> InvalidValue {
    InvalidValue { what, value: value.escape_debug().to_string(), why: why.into() }
}

/// An environment's name: lower-case letters, digits, `-` and `_`, at most 63.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if s.is_empty() || s.len() > 63 || !ok_first || !ok_rest {
            return Err(invalid(
                "environment name",
                s,
                "use lower-case letters, digits, `-` and `_` (at most 63, starting with a letter or digit)",
            ));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvName {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        Self::parse(&s)
    }
}
impl From<EnvName> for String {
    fn from(e: EnvName) -> String {
        e.0
    }
}
impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version as a user names it: a tag, a branch or a commit id.
///
/// The rules are stricter than git's own `check-ref-format`: an allowlist of
/// characters, so that nothing a shell, ssh or git's option parser treats specially
/// can get through even if some later code path forgot to quote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version(String);

impl Version {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let what = "version";
        Self::one_word(s)?;
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+'))) {
            let shown = if c.is_control() || c.is_whitespace() { c.escape_debug().to_string() } else { c.to_string() };
            return Err(invalid(
                what,
                s,
                format!("it contains `{shown}`; a version may hold only letters, digits and . _ - / +"),
            ));
        }
        if s.starts_with('.') || s.starts_with('/') || s.ends_with('/') || s.ends_with('.') {
            return Err(invalid(what, s, "it starts or ends with `.` or `/`"));
        }
        if s.contains("..") || s.contains("//") || s.contains("/.") || s.ends_with(".lock") {
            return Err(invalid(
                what,
                s,
                "it contains `..`, `//`, `/.` or ends in `.lock`, which git refuses in names",
            ));
        }
        Ok(Self(s.to_owned()))
    }
    /// The rules every version follows: not empty, at most 255 bytes, and not
    /// something a program would read as an option.
    fn one_word(s: &str) -> Result<(), InvalidValue> {
        let what = "version";
        if s.is_empty() {
            return Err(invalid(what, s, "it is empty"));
        }
        if s.len() > 255 {
            return Err(invalid(what, s, "it is longer than 255 bytes"));
        }
        if s.starts_with('-') {
            return Err(invalid(what, s, "it starts with `-`, so programs would read it as an option"));
        }
        Ok(())
    }

    /// A version that is never resolved in git (runtimes other than `releases`): an
    /// image tag, a build number, a digest. It still travels only as an argv element
    /// or an environment variable, so the rules are those that keep it one word that
    /// no program can read as an option.
    pub fn opaque(s: &str) -> Result<Self, InvalidValue> {
        let what = "version";
        Self::one_word(s)?;
        if let Some(c) = s.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(
                what,
                s,
                format!("it contains `{}`; a version may not hold control characters or whitespace", c.escape_debug()),
            ));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Version {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        Self::parse(&s)
    }
}
impl From<Version> for String {
    fn from(v: Version) -> String {
        v.0
    }
}
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full commit id as git printed it (40 or 64 lower-case hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitId(String);

impl CommitId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let hex = s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !(hex && (s.len() == 40 || s.len() == 64)) {
            return Err(invalid("commit id", s, "expected 40 or 64 lower-case hex digits"));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}
impl TryFrom<String> for CommitId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        Self::parse(&s)
    }
}
impl From<CommitId> for String {
    fn from(c: CommitId) -> String {
        c.0
    }
}
impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A release's number within its environment: 1, 2, 3..., shown as `#3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseId(pub u64);

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where a release stands. See SPEC.md "Release states".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseState {
    /// Its deploy is still running.
    Pending,
    /// Its checks passed.
    Good,
    /// Its deploy or its checks failed.
    Failed,
    /// A rollback moved away from it, or someone marked it by hand.
    Bad,
}

impl ReleaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Good => "good",
            Self::Failed => "failed",
            Self::Bad => "bad",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "good" => Self::Good,
            "failed" => Self::Failed,
            "bad" => Self::Bad,
            _ => return None,
        })
    }
}
impl fmt::Display for ReleaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a release; the state machine below says where each event leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseEvent {
    /// Its checks passed (after a deploy, or after a rollback to it).
    ChecksPassed,
    /// Its deploy failed: build, switch, start or checks.
    DeployFailed,
    /// A rollback moved the environment away from it.
    MovedAwayFrom,
    /// An operator set the state with `lastgood mark`.
    Marked(ReleaseState),
}

/// The release state machine. Pure, so it is property-tested.
///
/// A `failed` release stays `failed` when a rollback moves away from it: that it never
/// passed its checks is the more useful fact. `pending` can only be left, never entered
/// again, and marking by hand accepts only `good` and `bad`.
pub fn next_state(state: ReleaseState, event: ReleaseEvent) -> Result<ReleaseState, BadTransition> {
    use ReleaseEvent as E;
    use ReleaseState as S;
    match (state, event) {
        (_, E::ChecksPassed) => Ok(S::Good),
        (S::Pending, E::DeployFailed) => Ok(S::Failed),
        (s, E::DeployFailed) => Ok(s),
        (S::Failed, E::MovedAwayFrom) => Ok(S::Failed),
        (_, E::MovedAwayFrom) => Ok(S::Bad),
        (S::Pending, E::Marked(_)) => Err(BadTransition::StillRunning),
        (_, E::Marked(m @ (S::Good | S::Bad))) => Ok(m),
        (_, E::Marked(m)) => Err(BadTransition::NotMarkable(m)),
    }
}

/// Why a release cannot take a state by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadTransition {
    #[error("its deploy is still running")]
    StillRunning,
    #[error("a release can be marked good or bad, not {0}")]
    NotMarkable(ReleaseState),
}

/// Which parts of the system a rollback restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Full,
    Code,
    Config,
    Db,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "full" => Self::Full,
            "code" => Self::Code,
            "config" => Self::Config,
            "db" => Self::Db,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Code => "code",
            Self::Config => "config",
            Self::Db => "db",
        }
    }
    pub fn includes_code(self) -> bool {
        matches!(self, Self::Full | Self::Code)
    }
    pub fn includes_config(self) -> bool {
        matches!(self, Self::Full | Self::Config)
    }
    pub fn includes_db(self) -> bool {
        matches!(self, Self::Full | Self::Db)
    }
}
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rollback goes back to, as the user said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    LastGood,
    Previous,
    /// `#N`: a release id and nothing else.
    Id(ReleaseId),
    /// `N` (all digits, as written): a release id, else a version, else a commit
    /// prefix; more than one release matching is an error, never a guess.
    Number(String),
    /// `version:TEXT`: a version and nothing else.
    ExactVersion(String),
    /// Anything else: a version, else a unique commit prefix (>= 7 hex digits) of a
    /// release's source or deploy commit.
    Version(String),
}

impl Target {
    /// `last-good`, `previous`, `#3`, `3`, `version:TEXT`, or anything else as a
    /// version or commit.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        Self::parse_with(s, Version::parse)
    }

    /// The same, for runtimes whose versions are opaque strings.
    pub fn parse_opaque(s: &str) -> Result<Self, InvalidValue> {
        Self::parse_with(s, |v| Version::parse(v).or_else(|_| Version::opaque(v)))
    }

    fn parse_with(s: &str, version: impl Fn(&str) -> Result<Version, InvalidValue>) -> Result<Self, InvalidValue> {
        match s {
            "last-good" => return Ok(Self::LastGood),
            "previous" => return Ok(Self::Previous),
            _ => {}
        }
        let digits = |d: &str| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit());
        if let Some(d) = s.strip_prefix('#') {
            if !digits(d) {
                return Err(invalid("release id", s, "`#` is followed by the release's number, like #3"));
            }
            return d
                .parse()
                .map(|n| Self::Id(ReleaseId(n)))
                .map_err(|_| invalid("release id", s, "the number is too large"));
        }
        if let Some(v) = s.strip_prefix("version:") {
            return version(v).map(|v| Self::ExactVersion(v.0));
        }
        if digits(s) {
            return Ok(Self::Number(s.to_owned()));
        }
        version(s).map(|v| Self::Version(v.0))
    }

    /// As the user wrote it, for messages.
    pub fn text(&self) -> String {
        match self {
            Self::LastGood => "last-good".into(),
            Self::Previous => "previous".into(),
            Self::Id(id) => id.to_string(),
            Self::Number(n) => n.clone(),
            Self::ExactVersion(v) => format!("version:{v}"),
            Self::Version(v) => v.clone(),
        }
    }
}

/// Whether `s` can be a commit prefix a target names: 7 to 64 hex digits.
pub fn commit_prefix(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    ((7..=64).contains(&s.len()) && lower.chars().all(|c| c.is_ascii_hexdigit())).then_some(lower)
}

/// The kind of an operation, as recorded in the ledger and shown in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    Deploy,
    Rollback,
    /// `lastgood db restore`: the database from a backup or a dump, under the lock.
    Restore,
    /// `lastgood restart`: what serves the current release, restarted and checked.
    Restart,
}
impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Rollback => "rollback",
            Self::Restore => "restore",
            Self::Restart => "restart",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deploy" => Some(Self::Deploy),
            "rollback" => Some(Self::Rollback),
            "restore" => Some(Self::Restore),
            "restart" => Some(Self::Restart),
            _ => None,
        }
    }
}

/// How an operation ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Succeeded,
    Failed,
    /// A deploy whose checks failed and that returned to the last good release.
    RolledBack,
    /// Undone by `resume --abort`.
    Aborted,
}
impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Aborted => "aborted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "rolled_back" => Self::RolledBack,
            "aborted" => Self::Aborted,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_versions_are_refused() {
        for bad in [
            "--upload-pack=x",
            "-x",
            "$(x)",
            "a;b",
            "a\nb",
            "a b",
            "`x`",
            "a|b",
            "a&&b",
            "v1..v2",
            "a@{1}",
            "x^{}",
            "HEAD~1",
            "a\0b",
            "",
            ".hidden",
            "a.lock",
            "a//b",
            "zzz\";echo${IFS}\"hello\";#",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["v1", "v1.2.3", "release/2024-01", "main", "0123abc", "v1+build.5"] {
            assert!(Version::parse(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("#3").unwrap(), Target::Id(ReleaseId(3)));
        assert_eq!(Target::parse("3").unwrap(), Target::Number("3".into()));
        assert_eq!(Target::parse("version:3").unwrap(), Target::ExactVersion("3".into()));
        assert!(Target::parse("#x").is_err());
        assert_eq!(Target::parse("last-good").unwrap(), Target::LastGood);
        assert_eq!(Target::parse("v2").unwrap(), Target::Version("v2".into()));
        assert!(Target::parse("--x").is_err());
    }

    fn any_state() -> impl Strategy<Value = ReleaseState> {
        prop_oneof![
            Just(ReleaseState::Pending),
            Just(ReleaseState::Good),
            Just(ReleaseState::Failed),
            Just(ReleaseState::Bad)
        ]
    }
    fn any_event() -> impl Strategy<Value = ReleaseEvent> {
        prop_oneof![
            Just(ReleaseEvent::ChecksPassed),
            Just(ReleaseEvent::DeployFailed),
            Just(ReleaseEvent::MovedAwayFrom),
            any_state().prop_map(ReleaseEvent::Marked),
        ]
    }

    proptest! {
        #[test]
        fn no_event_leads_back_to_pending(s in any_state(), e in any_event()) {
            if let Ok(n) = next_state(s, e) {
                prop_assert!(n != ReleaseState::Pending, "{s:?} + {e:?} gave pending");
            }
        }

        #[test]
        fn a_failed_release_never_becomes_good_without_passing(events in proptest::collection::vec(any_event(), 0..20)) {
            let mut s = ReleaseState::Failed;
            for e in events {
                let before = s;
                if let Ok(n) = next_state(s, e) { s = n; }
                if before != ReleaseState::Good && s == ReleaseState::Good {
                    prop_assert!(matches!(e, ReleaseEvent::ChecksPassed | ReleaseEvent::Marked(ReleaseState::Good)));
                }
            }
        }

        #[test]
        fn moving_away_never_leaves_a_release_good(s in any_state()) {
            let n = next_state(s, ReleaseEvent::MovedAwayFrom).unwrap();
            prop_assert!(n == ReleaseState::Bad || n == ReleaseState::Failed);
        }

        #[test]
        fn versions_that_parse_are_safe_in_argv(s in "\\PC{0,40}") {
            if let Ok(v) = Version::parse(&s) {
                prop_assert!(!v.as_str().starts_with('-'));
                prop_assert!(v.as_str().chars().all(|c| c.is_ascii_alphanumeric() || "._-/+".contains(c)));
            }
        }
    }
}

/// A host of a fleet, from `ssh://[user@]host[:port]`.
///
/// The smart constructor is the defence against option injection (git CVE-2017-1000117,
/// gitoxide RUSTSEC-2023-0064): a host or user that could be read as an ssh option
/// (`-oProxyCommand=...`) or that holds anything but the characters of a name or an
/// address is refused here, and ssh still gets `--` before the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SshHost {
    pub user: Option<String>,
    /// A DNS name, an IPv4 address or an IPv6 address (without brackets).
    pub host: String,
    pub port: Option<u16>,
}

impl SshHost {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let what = "host";
        let Some(rest) = s.strip_prefix("ssh://") else {
            return Err(invalid(what, s, "expected ssh://[user@]host[:port]"));
        };
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(invalid(what, s, "a host has no path; write ssh://user@host:port"));
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if let Some(u) = user {
            let ok = !u.is_empty()
                && !u.starts_with('-')
                && u.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(invalid(
                    what,
                    s,
                    "the user may hold only letters, digits, `.`, `_` and `-`, and not start with `-`",
                ));
            }
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some((addr, after)) = v6.split_once(']') else {
                return Err(invalid(what, s, "an IPv6 address needs its closing `]`"));
            };
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid(what, s, "not an IPv6 address inside `[...]`"));
            }
            (addr, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(invalid(what, s, "the port must be a number from 1 to 65535")),
            },
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && !host.starts_with('-')
            && !host.starts_with('.')
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !name_ok {
            return Err(invalid(
                what,
                s,
                "the host must be a name or an address (letters, digits, `.`, `-`), not starting with `-` or `.`",
            ));
        }
        Ok(Self { user: user.map(str::to_owned), host: host.to_owned(), port })
    }

    /// How the host is named in records and plans: `host` or `host:port`.
    pub fn label(&self) -> String {
        match self.port {
            Some(p) if self.host.contains(':') => format!("[{}]:{p}", self.host),
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ssh://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod ssh_host_tests {
    use super::SshHost;

    #[test]
    fn hosts_parse_and_hostile_ones_are_refused() {
        let h = SshHost::parse("ssh://deploy@web-1.example.com:2222").unwrap();
        assert_eq!((h.user.as_deref(), h.host.as_str(), h.port), (Some("deploy"), "web-1.example.com", Some(2222)));
        assert_eq!(h.to_string(), "ssh://deploy@web-1.example.com:2222");
        assert_eq!(SshHost::parse("ssh://[::1]:22").unwrap().host, "::1");
        assert_eq!(SshHost::parse("ssh://10.0.0.7").unwrap().label(), "10.0.0.7");
        for bad in [
            "ssh://-oProxyCommand=touch${IFS}x",
            "ssh://-oProxyCommand=x@host",
            "ssh://host;id",
            "ssh://host/path",
            "ssh://$(id)",
            "ssh://a b",
            "ssh://host:0",
            "ssh://host:99999",
            "ssh://",
            "ssh://@host",
            "host",
            "ssh://ho\nst",
            "ssh://[zz]:1",
        ] {
            assert!(SshHost::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}

/// A compose project, compose service or Swarm service name.
///
/// Docker's own rule, checked once when the config is read: such a name ends up in an
/// Engine API path (`/services/<name>`), a label filter and compose's argv, where a `/`,
/// a `?` or a leading `-` would make it mean more than a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerName(String);

/// Why a string cannot be a [`ContainerName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a valid name: use at most 63 letters, digits, `_`, `-` or `.`, starting with a letter or digit",
    name.escape_debug()
)]
pub struct InvalidName {
    pub name: String,
}

impl ContainerName {
    pub fn parse(name: &str) -> Result<Self, InvalidName> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok { Ok(Self(name.to_owned())) } else { Err(InvalidName { name: name.to_owned() }) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod container_name_tests {
    use super::ContainerName;

    #[test]
    fn names_follow_dockers_rule() {
        assert!(ContainerName::parse("web_1.x").is_ok());
        assert!(ContainerName::parse("-web").is_err());
        assert!(ContainerName::parse("we b").is_err());
    }

    #[test]
    fn a_bad_name_says_what_a_name_may_hold() {
        assert_eq!(
            ContainerName::parse("we/b").unwrap_err().to_string(),
            "`we/b` is not a valid name: use at most 63 letters, digits, `_`, `-` or `.`, starting with a letter or digit"
        );
    }
}
