//! Check policy: a list of checks, each retried until it passes or its attempts run
//! out, and the one summary line a verify step records.
//!
//! This file decides *how often* and *how long*; the probes themselves (`http.rs`,
//! `command.rs`, the TCP connect in `attempt.rs`) decide what one attempt sees. A check
//! never returns an error: a check that cannot even be attempted is a failed check whose
//! detail says why.

use std::fmt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::attempt::{Deadline, Failure, connect};
use super::command::command_attempt;
use super::http::http_attempt;

/// What a check looks at. Strings may contain `{version}` and `{host}`, replaced
/// from [`Vars`] before the probe runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET url`; passes when the status is `expect_status` and, if set, the body
    /// contains `expect_body`.
    Http { url: String, expect_status: u16, expect_body: Option<String> },
    /// Passes when a TCP connection to `addr` (`host:port`) is accepted.
    Tcp { addr: String },
    /// Runs `argv` (no shell) and passes when it exits 0.
    Command { argv: Vec<String> },
}

/// A probe and the patience to spend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub probe: Probe,
    /// Pause between a failed attempt and the next one.
    pub interval: Duration,
    /// Bound on a single attempt, from connect (or spawn) to the last byte.
    pub timeout: Duration,
    /// Total number of attempts; 0 is treated as 1.
    pub retries: u32,
}

/// What is substituted: `{version}` and `{host}` in http url, expect_body, tcp addr
/// and command argv elements; `env` is extra environment for command checks
/// (LASTGOOD_VERSION etc), `cwd` the command's working directory.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub version: &'a str,
    pub host: &'a str,
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
}

impl Vars<'_> {
    /// `template` with `{version}` and `{host}` replaced, and the other placeholders
    /// (`{release}`, `{env}`, `{commit}`, `{port}`) from `env`, in one pass.
    pub fn substitute(&self, template: &str) -> String {
        let mut vars = self.env.to_vec();
        vars.push(("LASTGOOD_VERSION".into(), self.version.to_owned()));
        vars.push(("LASTGOOD_HOST".into(), self.host.to_owned()));
        crate::placeholder::expand(template, &vars)
    }
}

/// The result of one check, ready to be printed or serialized.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckOutcome {
    /// Short display of the probe after substitution, e.g.
    /// `http http://127.0.0.1:8080/health`.
    pub check: String,
    pub passed: bool,
    /// Attempts made, including the passing one.
    pub attempts: u32,
    /// Why the last attempt failed, or what the passing attempt saw.
    pub detail: String,
    /// Wall time spent on the check, pauses included.
    pub duration_ms: u64,
}

/// The line a verify step records: `N/M checks passed`; when any failed, the error
/// with each failed check.
pub fn summary(outcomes: &[CheckOutcome]) -> Result<String, ChecksFailed> {
    let failed: Vec<String> =
        outcomes.iter().filter(|o| !o.passed).map(|o| format!("{}: {}", o.check, o.detail)).collect();
    let passed = outcomes.len() - failed.len();
    let line = format!("{passed}/{} checks passed", outcomes.len());
    if failed.is_empty() { Ok(line) } else { Err(ChecksFailed { passed, total: outcomes.len(), failed }) }
}

/// Checks that did not pass: how many did, and each failed one with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{passed}/{total} checks passed; {}", failed.join("; "))]
pub struct ChecksFailed {
    pub passed: usize,
    pub total: usize,
    /// `check: why`, one per failed check.
    pub failed: Vec<String>,
}

/// Runs `checks` in order, each until its first pass or until its attempts are
/// used up, and returns one outcome per check (all of them, even after a failure,
/// so the operator sees the whole picture).
pub fn run_checks(checks: &[Check], vars: &Vars) -> Vec<CheckOutcome> {
    checks.iter().map(|check| run_check(check, vars)).collect()
}

fn run_check(check: &Check, vars: &Vars) -> CheckOutcome {
    let probe = Resolved::new(&check.probe, vars);
    let max_attempts = check.retries.max(1);
    let started = Instant::now();
    let mut attempts = 0;
    let (passed, detail) = loop {
        attempts += 1;
        match probe.attempt(check.timeout, vars) {
            Ok(seen) => break (true, seen),
            Err(failure) if attempts >= max_attempts => break (false, failure.to_string()),
            Err(_) => thread::sleep(check.interval),
        }
    };
    CheckOutcome {
        check: probe.to_string(),
        passed,
        attempts,
        detail,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// A probe with its variables substituted: what actually runs, and what is shown.
enum Resolved {
    Http { url: String, expect_status: u16, expect_body: Option<String> },
    Tcp { addr: String },
    Command { argv: Vec<String> },
}

impl Resolved {
    fn new(probe: &Probe, vars: &Vars) -> Self {
        match probe {
            Probe::Http { url, expect_status, expect_body } => Resolved::Http {
                url: vars.substitute(url),
                expect_status: *expect_status,
                expect_body: expect_body.as_deref().map(|b| vars.substitute(b)),
            },
            Probe::Tcp { addr } => Resolved::Tcp { addr: vars.substitute(addr) },
            Probe::Command { argv } => Resolved::Command { argv: argv.iter().map(|a| vars.substitute(a)).collect() },
        }
    }

    /// One attempt: `Ok` with what was seen, or the reason it failed.
    fn attempt(&self, timeout: Duration, vars: &Vars) -> Result<String, Failure> {
        let deadline = Deadline::after(timeout);
        match self {
            Resolved::Http { url, expect_status, expect_body } => {
                http_attempt(url, *expect_status, expect_body.as_deref(), deadline)
            }
            Resolved::Tcp { addr } => {
                let stream = connect(addr, deadline)?;
                let peer = stream.peer_addr().map_or_else(|_| addr.clone(), |a| a.to_string());
                Ok(format!("connected to {peer}"))
            }
            Resolved::Command { argv } => command_attempt(argv, vars.env, vars.cwd, deadline),
        }
    }
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolved::Http { url, .. } => write!(f, "http {url}"),
            Resolved::Tcp { addr } => write!(f, "tcp {addr}"),
            Resolved::Command { argv } => {
                f.write_str("command")?;
                for arg in argv {
                    if arg.is_empty() || arg.contains(char::is_whitespace) {
                        write!(f, " {arg:?}")?;
                    } else {
                        write!(f, " {arg}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    fn vars(env: &[(String, String)]) -> Vars<'_> {
        Vars { version: "v1", host: "127.0.0.1", env, cwd: Path::new("/") }
    }

    fn check(probe: Probe, retries: u32) -> Check {
        Check { probe, interval: Duration::from_millis(50), timeout: Duration::from_secs(2), retries }
    }

    fn http(url: String, status: u16, body: Option<&str>) -> Probe {
        Probe::Http { url, expect_status: status, expect_body: body.map(str::to_owned) }
    }

    /// Serves `response` to every connection on `listener`, recording each
    /// request head.
    fn serve_on(listener: TcpListener, response: &'static str) -> Arc<Mutex<Vec<String>>> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                seen.lock().unwrap().push(head);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        requests
    }

    /// A server answering every request with `response`; returns its base URL.
    fn serve(response: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        (url, serve_on(listener, response))
    }

    fn run_one(check: Check) -> CheckOutcome {
        run_checks(&[check], &vars(&[])).remove(0)
    }

    #[test]
    fn http_pass_sends_expected_request() {
        let (url, requests) = serve("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok v1");
        let outcome = run_one(check(http(format!("{url}/health"), 200, Some("v1")), 3));
        assert!(outcome.passed, "{outcome:?}");
        assert_eq!(outcome.attempts, 1);
        assert_eq!(outcome.detail, "200 OK, body contains \"v1\"");
        assert_eq!(outcome.check, format!("http {url}/health"));
        let head = requests.lock().unwrap()[0].clone();
        let authority = url.trim_start_matches("http://");
        assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("Host: {authority}\r\n")), "{head}");
        assert!(head.contains("User-Agent: lastgood\r\n"), "{head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
    }

    #[test]
    fn http_status_mismatch_fails_after_all_attempts() {
        let (url, requests) = serve("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 12\r\n\r\nunhealthy v1");
        let outcome = run_one(check(http(format!("{url}/health"), 200, None), 3));
        assert!(!outcome.passed);
        assert_eq!(outcome.attempts, 3);
        assert_eq!(requests.lock().unwrap().len(), 3);
        assert!(outcome.detail.starts_with("status 500, expected 200"), "{}", outcome.detail);
        assert!(outcome.detail.contains("unhealthy v1"), "{}", outcome.detail);
        assert!(outcome.duration_ms >= 100, "two pauses of 50ms");
    }

    #[test]
    fn http_body_mismatch_quotes_the_body() {
        let (url, _) = serve("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok v1");
        let outcome = run_one(check(http(url, 200, Some("v2")), 1));
        assert!(!outcome.passed);
        assert_eq!(outcome.detail, "body does not contain \"v2\" (got: ok v1)");
    }

    #[test]
    fn http_chunked_body_is_decoded() {
        let (url, _) =
            serve("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok \r\n2;ext=1\r\nv1\r\n0\r\n\r\n");
        let outcome = run_one(check(http(url, 200, Some("ok v1")), 1));
        assert!(outcome.passed, "{outcome:?}");
    }

    #[test]
    fn http_body_until_close_and_interim_response() {
        let (url, _) = serve("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nhello v1");
        let outcome = run_one(check(http(url, 200, Some("hello v1")), 1));
        assert!(outcome.passed, "{outcome:?}");
    }

    #[test]
    fn http_refused_then_passes_on_a_later_attempt() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let listener = TcpListener::bind(addr).unwrap();
            serve_on(listener, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            thread::sleep(Duration::from_secs(10));
        });
        let refused = run_one(check(http(format!("http://{addr}/"), 200, None), 1));
        assert!(!refused.passed);
        assert!(refused.detail.starts_with("connection refused"), "{}", refused.detail);
        let outcome = run_one(check(http(format!("http://{addr}/"), 200, None), 40));
        assert!(outcome.passed, "{outcome:?}");
        assert!(outcome.attempts > 1, "{outcome:?}");
    }

    #[test]
    fn http_times_out_on_a_silent_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let held: Vec<_> = listener.incoming().take(1).collect();
            thread::sleep(Duration::from_secs(5));
            drop(held);
        });
        let mut c = check(http(format!("http://{addr}/"), 200, None), 1);
        c.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let outcome = run_one(c);
        assert!(!outcome.passed);
        assert!(outcome.detail == "timed out after 300ms while reading the response", "{}", outcome.detail);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn http_rejects_https_and_malformed_urls() {
        for (url, want) in [
            ("https://example.com/", "only http:// is supported"),
            ("example.com/health", "malformed URL"),
            ("http:///health", "no host"),
            ("http://127.0.0.1:99999/", "invalid port"),
            ("http://user:pw@127.0.0.1/", "credentials"),
        ] {
            let outcome = run_one(check(http(url.to_owned(), 200, None), 1));
            assert!(!outcome.passed);
            assert!(outcome.detail.contains(want), "{url}: {}", outcome.detail);
        }
    }

    #[test]
    fn version_and_host_are_substituted() {
        let (url, requests) = serve("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok v1");
        let port = url.rsplit(':').next().unwrap();
        let probe = http(format!("http://{{host}}:{port}/v/{{version}}"), 200, Some("ok {version}"));
        let outcome = run_one(check(probe, 1));
        assert!(outcome.passed, "{outcome:?}");
        assert_eq!(outcome.check, format!("http http://127.0.0.1:{port}/v/v1"));
        assert!(requests.lock().unwrap()[0].starts_with("GET /v/v1 "));

        let env = [("SECRET".to_owned(), "hunter2".to_owned())];
        let probe = Probe::Command {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "test \"$1\" = v1 && test \"$SECRET\" = \"$(printf hunter%s 2)\"".into(),
                "sh".into(),
                "{version}".into(),
            ],
        };
        let outcome = run_checks(&[check(probe, 1)], &vars(&env)).remove(0);
        assert!(outcome.passed, "{outcome:?}");
        assert!(!outcome.check.contains("hunter2"));
        assert!(!outcome.detail.contains("hunter2"));
    }

    #[test]
    fn tcp_check() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let outcome = run_one(check(Probe::Tcp { addr: addr.to_string() }, 1));
        assert!(outcome.passed, "{outcome:?}");
        assert_eq!(outcome.check, format!("tcp {addr}"));
        drop(listener);
        let outcome = run_one(check(Probe::Tcp { addr: addr.to_string() }, 2));
        assert!(!outcome.passed);
        assert_eq!(outcome.attempts, 2);
        assert!(outcome.detail.starts_with("connection refused"));
    }

    #[test]
    fn command_true_and_false() {
        let pass = run_one(check(Probe::Command { argv: vec!["true".into()] }, 1));
        assert!(pass.passed, "{pass:?}");
        assert_eq!(pass.check, "command true");
        let fail = run_one(check(Probe::Command { argv: vec!["false".into()] }, 2));
        assert!(!fail.passed);
        assert_eq!(fail.attempts, 2);
        assert!(fail.detail.contains("exit status: 1"), "{}", fail.detail);
    }

    #[test]
    fn command_failure_shows_output_tail() {
        let script = "for i in $(seq 1 100); do echo line$i; done >&2; exit 3";
        let probe = Probe::Command { argv: vec!["sh".into(), "-c".into(), script.into()] };
        let outcome = run_one(check(probe, 1));
        assert!(!outcome.passed);
        assert!(outcome.detail.contains("exit status: 3"), "{}", outcome.detail);
        assert!(outcome.detail.contains("stderr: …"), "{}", outcome.detail);
        assert!(outcome.detail.ends_with("line100"), "{}", outcome.detail);
        assert!(!outcome.detail.contains("line1 "), "{}", outcome.detail);
    }

    #[test]
    fn command_timeout_kills_the_whole_group() {
        let probe = Probe::Command { argv: vec!["sh".into(), "-c".into(), "sleep 30; true".into()] };
        let mut c = check(probe, 1);
        c.timeout = Duration::from_millis(200);
        let started = Instant::now();
        let outcome = run_one(c);
        assert!(!outcome.passed);
        assert!(outcome.detail.starts_with("timed out after 200ms"), "{}", outcome.detail);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn command_errors_are_outcomes() {
        let outcome = run_one(check(Probe::Command { argv: vec![] }, 1));
        assert_eq!(outcome.detail, "empty command");
        let outcome = run_one(check(Probe::Command { argv: vec!["/nonexistent/lastgood-check".into()] }, 1));
        assert!(outcome.detail.starts_with("cannot run"), "{}", outcome.detail);
    }

    #[test]
    fn checks_run_in_order_and_all_report() {
        let checks = [
            check(Probe::Command { argv: vec!["false".into()] }, 1),
            check(Probe::Command { argv: vec!["true".into()] }, 1),
        ];
        let outcomes = run_checks(&checks, &vars(&[]));
        assert_eq!(outcomes.iter().map(|o| o.passed).collect::<Vec<_>>(), [false, true]);
    }
}
