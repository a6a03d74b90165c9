//! Talking to fleet hosts through the system OpenSSH.
//!
//! lastgood drives `ssh` rather than a library so that the user's ssh config, agent,
//! `known_hosts` and jump hosts all work as they do for a person. Every call is
//!
//! ```text
//! ssh [-F ssh_config] -o BatchMode=yes -o StrictHostKeyChecking=yes \
//!     -o ControlMaster=auto -o ControlPath=... -o ControlPersist=60 \
//!     [-p PORT] [-l USER] -- HOST <remote command>
//! ```
//!
//! `BatchMode` so nothing ever waits for a password; `StrictHostKeyChecking=yes` given
//! on the command line, which wins over any config file, so an unknown host is refused
//! (the error says how to trust it) and a changed key always is; connection
//! multiplexing so the many small calls of an operation share one TCP and key exchange.
//!
//! ssh joins its remote arguments with spaces and hands the result to the remote
//! user's shell, so argv is not preserved (BashFAQ/096). The remote command is
//! therefore always built by [`command_line`], which quotes every word with [`quote`]:
//! the one audited quoting function, property-tested for the round trip through a
//! real `sh`. Parameters that are not paths (versions, environment values, argv of
//! `build`) do not even go there: they travel as JSON on stdin to lastgood's own
//! agent on the host (`agent.rs`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::model::SshHost;

/// Quotes a word for a POSIX shell: `'...'`, with each `'` written as `'\''`.
/// Safe for every string without a NUL (which no argv can hold anyway).
pub fn quote(word: &str) -> String {
    let mut q = String::with_capacity(word.len() + 2);
    q.push('\'');
    for c in word.chars() {
        if c == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(c);
        }
    }
    q.push('\'');
    q
}

/// A remote command line whose words the remote shell splits back into exactly `argv`.
pub fn command_line(argv: &[&str]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "the host key of {host} is not known; check its fingerprint, then trust it with `ssh-keyscan {scan} >> ~/.ssh/known_hosts` (or the UserKnownHostsFile of your ssh_config)"
    )]
    UnknownKey { host: String, scan: String },
    #[error(
        "THE HOST KEY OF {host} HAS CHANGED from the one pinned in known_hosts: refusing to connect (someone may be intercepting, or the host was reinstalled; verify, then fix known_hosts)"
    )]
    ChangedKey { host: String },
    #[error("cannot connect: {said}")]
    Connect { host: String, said: String },
    #[error("cannot run ssh: {source}")]
    Spawn { host: String, source: std::io::Error },
}

/// How to reach the hosts of one environment.
#[derive(Debug, Clone)]
pub struct Ssh {
    pub config: Option<PathBuf>,
    /// Where the multiplexing sockets live (short: a socket path has ~100 bytes).
    pub control_dir: PathBuf,
    pub connect_timeout: Duration,
}

/// What a remote command did.
#[derive(Debug)]
pub struct Reply {
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Ssh {
    pub fn new(config: Option<PathBuf>) -> Self {
        // Per user, so two users' sockets never meet; %C is a hash of the connection.
        let uid = unsafe { libc::getuid() };
        let control_dir = std::env::temp_dir().join(format!("lastgood-ssh-{uid}"));
        Self { config, control_dir, connect_timeout: Duration::from_secs(5) }
    }

    fn base(&self, host: &SshHost) -> Command {
        let _ = std::fs::create_dir_all(&self.control_dir);
        let _ = std::fs::set_permissions(&self.control_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let mut c = Command::new("ssh");
        if let Some(cfg) = &self.config {
            c.arg("-F").arg(cfg);
        }
        c.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=auto"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.control_dir.join("%C").display()))
            .args(["-o", "ControlPersist=60"]);
        c.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"])
            .arg("-o")
            .arg(format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)));
        if let Some(p) = host.port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &host.user {
            c.arg("-l").arg(u);
        }
        c.arg("--").arg(&host.host);
        c.env("LC_ALL", "C");
        c
    }

    /// Runs `argv` on the host (quoted by [`command_line`]), feeding `input` on stdin,
    /// over the host's multiplexed connection (made, and its key checked against
    /// known_hosts, by the first call; kept ControlPersist = 60 s after the last).
    pub fn run(
        &self,
        host: &SshHost,
        argv: &[&str],
        input: &mut (dyn std::io::Read + Send),
    ) -> Result<Reply, SshError> {
        let mut c = self.base(host);
        c.arg(command_line(argv)).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|source| SshError::Spawn { host: host.label(), source })?;
        let mut stdin = child.stdin.take().expect("piped");
        let feeder = std::thread::scope(|scope| {
            let feed = scope.spawn(move || {
                let r = std::io::copy(input, &mut stdin);
                drop(stdin);
                r
            });
            let out = child.wait_with_output();
            (feed.join(), out)
        });
        let (_, out) = feeder;
        let out = out.map_err(|source| SshError::Spawn { host: host.label(), source })?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let status = out.status.code();
        if status == Some(255) {
            return Err(self.classify(host, &stderr));
        }
        Ok(Reply { status, stdout: out.stdout, stderr })
    }

    /// Starts `argv` on the host with stdin, stdout and stderr piped, for a session
    /// that lives as long as the caller keeps it.
    pub fn spawn(&self, host: &SshHost, argv: &[&str]) -> Result<std::process::Child, SshError> {
        let mut c = self.base(host);
        c.arg(command_line(argv)).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().map_err(|source| SshError::Spawn { host: host.label(), source })
    }

    /// ssh's own failures (exit 255), named for what they mean.
    pub fn classify(&self, host: &SshHost, stderr: &str) -> SshError {
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || stderr.contains("key for this host has changed")
        {
            return SshError::ChangedKey { host: host.label() };
        }
        if stderr.contains("No ") && stderr.contains("host key is known")
            || stderr.contains("Host key verification failed")
        {
            let scan = match host.port {
                Some(p) => format!("-p {p} {}", host.host),
                None => host.host.clone(),
            };
            return SshError::UnknownKey { host: host.label(), scan };
        }
        let said = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
            .unwrap_or("the connection closed without a word (the host or its sshd went away)")
            .to_owned();
        SshError::Connect { host: host.label(), said }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The round trip through a real shell: `sh -c 'printf "%s\0" <quoted words>'`
    /// prints exactly the words.
    fn through_sh(words: &[String]) -> Vec<String> {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let script = format!("printf '%s\\0' {}", command_line(&refs));
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{script}");
        let text = String::from_utf8(out.stdout).unwrap();
        text.split('\0').map(str::to_owned).collect::<Vec<_>>()[..words.len()].to_vec()
    }

    #[test]
    fn hostile_words_survive_the_shell() {
        let words: Vec<String> = [
            "$(touch /tmp/x)",
            "`id`",
            "a'b",
            "'",
            "''",
            "\\",
            "; rm -rf /",
            "a\nb",
            "-oProxyCommand=x",
            "*",
            "~",
            "$HOME",
            "",
            " spaced ",
            "\"q\"",
            "!",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(through_sh(&words), words);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn quoting_round_trips(words in proptest::collection::vec("[^\u{0}]{0,12}", 1..5)) {
            prop_assert_eq!(through_sh(&words), words);
        }
    }
}
