//! Telling people: webhook notifications at the start of an operation, on a failed
//! step, when an automatic rollback begins, and at the end.
//!
//! A slow or dead webhook must never delay or fail a rollback, so nothing is sent from
//! the operation itself. Each notification is written to a spool file beside the
//! ledger, and a detached `lastgood` process (its own session, outliving the command)
//! delivers it: POST with a JSON body whose `text` field chat tools show as is, a
//! timeout per attempt, retries with backoff, then an audit event saying whether it
//! was delivered. HTTP goes through the `curl` program (wrapped here, once), so HTTPS
//! webhooks work; the URL travels on curl's stdin, never in argv, since webhook URLs
//! often carry a token. Messages and audit events name a webhook by its host only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Notify;

/// One notification waiting for delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spooled {
    pub env: String,
    pub operation: u64,
    /// The webhooks are not in the spool (their URLs carry tokens): the deliverer reads
    /// them from the config, as the operation did.
    pub timeout_ms: u64,
    pub attempts: u32,
    pub payload: serde_json::Value,
}

/// The outcome of delivering to one webhook.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub webhook: String,
    pub delivered: bool,
    pub attempts: u32,
    pub error: Option<String>,
}

/// A webhook as it may be shown: its host, never its path or query (tokens live there).
pub fn shown(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("webhook at {host}")
}

/// Where spooled notifications wait, beside the ledger.
pub fn spool_dir(config_dir: &Path) -> PathBuf {
    config_dir.join(".lastgood/outbox")
}

/// Writes the notification to the spool and starts a detached deliverer for it.
/// Errors are returned for the caller to record; they never stop an operation.
pub fn send(spool: &Path, config_path: &Path, item: &Spooled) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(spool)?;
    let name = format!("{}-{}-{}.json", item.operation, std::process::id(), crate::context::now_ms());
    let path = spool.join(&name);
    let tmp = spool.join(format!(".{name}"));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&serde_json::to_vec(item).unwrap_or_default())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config")
        .arg(config_path)
        .arg("__deliver")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_remove("LASTGOOD_FAILPOINT");
    // SAFETY: setsid in the child between fork and exec touches no memory of ours; it
    // detaches the deliverer so that it outlives this command and its terminal.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()?;
    Ok(path)
}

/// What an operation needs to notify: the environment's webhooks and where to spool.
#[derive(Debug, Clone)]
pub struct Notifier {
    pub notify: Notify,
    pub spool: PathBuf,
    pub config_path: PathBuf,
}

impl Notifier {
    /// Spools `text` (and facts) for the webhooks. A failure to spool is returned as a
    /// sentence for the audit log; it never stops the operation.
    pub fn send(
        &self,
        env: &str,
        operation: u64,
        event: &str,
        text: String,
        facts: serde_json::Value,
    ) -> Result<(), NotifyError> {
        if self.notify.webhooks.is_empty() {
            return Ok(());
        }
        let mut payload = serde_json::json!({
            "text": text,
            "event": event,
            "environment": env,
            "operation": operation,
            "at": crate::context::rfc3339(crate::context::now_ms() / 1000),
        });
        if let (Some(p), serde_json::Value::Object(f)) = (payload.as_object_mut(), facts) {
            p.extend(f);
        }
        let item = Spooled {
            env: env.to_owned(),
            operation,
            timeout_ms: self.notify.timeout.as_millis() as u64,
            attempts: self.notify.attempts,
            payload,
        };
        send(&self.spool, &self.config_path, &item).map(drop).map_err(|source| NotifyError::Queue { source })
    }
}

/// Delivers one spooled notification to each webhook, in parallel (a hanging webhook
/// must not hold up the others), with retries after 0.5 s, 1 s, 2 s...
pub fn deliver(item: &Spooled, webhooks: &[crate::secret::Secret<String>]) -> Vec<Delivery> {
    let body = serde_json::to_string(&item.payload).unwrap_or_default();
    let timeout = Duration::from_millis(item.timeout_ms.max(100));
    let attempts = item.attempts.max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = webhooks
            .iter()
            .map(|url| url.expose())
            .map(|url| {
                let body = &body;
                scope.spawn(move || {
                    let mut error = None;
                    for attempt in 1..=attempts {
                        match post(url, body, timeout) {
                            Ok(()) => {
                                return Delivery {
                                    webhook: shown(url),
                                    delivered: true,
                                    attempts: attempt,
                                    error: None,
                                };
                            }
                            Err(e) => error = Some(e.to_string()),
                        }
                        if attempt < attempts {
                            std::thread::sleep(Duration::from_millis(500 << (attempt - 1).min(5)));
                        }
                    }
                    Delivery { webhook: shown(url), delivered: false, attempts, error }
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(webhooks.iter().map(|w| w.expose()))
            .map(|(h, url)| {
                h.join().unwrap_or_else(|_| Delivery {
                    webhook: shown(url),
                    delivered: false,
                    attempts: 0,
                    error: Some("the delivery thread panicked".into()),
                })
            })
            .collect()
    })
}

/// One POST through curl: URL and headers on stdin (`--config -`), body from a file
/// descriptor-free temporary file, `--fail` so HTTP errors count as failures.
fn post(url: &str, body: &str, timeout: Duration) -> Result<(), NotifyError> {
    let dir = tempfile::tempdir().map_err(|source| NotifyError::Body { source })?;
    let body_path = dir.path().join("body.json");
    std::fs::write(&body_path, body).map_err(|source| NotifyError::Body { source })?;
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let config = format!(
        "url = \"{}\"\nrequest = \"POST\"\nheader = \"Content-Type: application/json\"\ndata-binary = \"@{}\"\n",
        quote(url),
        quote(&body_path.to_string_lossy())
    );
    let secs = format!("{:.3}", timeout.as_secs_f64());
    let mut child = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", &secs, "--config", "-", "--output", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NotifyError::Curl { source })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(config.as_bytes()).map_err(|source| NotifyError::Curl { source })?;
    }
    let out = child.wait_with_output().map_err(|source| NotifyError::Curl { source })?;
    if out.status.success() {
        return Ok(());
    }
    // curl's message may echo the URL: keep only what follows it.
    let msg = String::from_utf8_lossy(&out.stderr).replace(url, "<webhook>");
    Err(NotifyError::Rejected { said: msg.trim().lines().last().unwrap_or("curl failed").to_owned() })
}

/// Why a notification was not queued or not delivered. Never raised out of an
/// operation: it is recorded in the audit log.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("could not queue a notification: {source}")]
    Queue { source: std::io::Error },
    #[error("cannot write the message to send: {source}")]
    Body { source: std::io::Error },
    #[error("cannot run curl: {source}")]
    Curl { source: std::io::Error },
    /// The webhook answered with an error, or could not be reached (curl's words,
    /// with the URL masked).
    #[error("{said}")]
    Rejected { said: String },
}
