//! Health checks: how lastgood decides that a release it just started is good.
//!
//! A [`Check`] is one [`Probe`] (an HTTP GET, a TCP connect or a command) plus the
//! patience to spend on it: how many attempts, how long each may take and how long
//! to wait between them. [`run_checks`] runs a list of them in order and reports one
//! [`CheckOutcome`] per check. It never returns an error and never panics on bad
//! input: a check that cannot even be attempted (an `https://` URL, an empty
//! command) is simply a failed check whose `detail` says why, because the caller's
//! question is always the same — "is this release good?" — and a broken check is a
//! "no" that the operator must be able to read.
//!
//! This is not a monitoring system. Checks run once, right after a deploy or a
//! rollback, so each attempt is bounded by a deadline rather than a socket option
//! alone: a server that accepts the connection and then dribbles one byte per
//! second must not hold the deploy hostage.
//!
//! The HTTP client is deliberately tiny (plain `http://`, `GET`, `Connection:
//! close`, chunked or sized bodies, a 1 MiB cap) and written over
//! [`std::net::TcpStream`]: health endpoints are local or on a private network, and
//! a full client with TLS would be the largest dependency in the crate for the
//! least important request it makes.
//!
//! Commands run without a shell, in their own process group, so that a timeout can
//! kill the command *and* whatever it started (a `sh -c` wrapper would otherwise
//! leave its children holding our pipes open). Their environment is inherited plus
//! [`Vars::env`]; none of it is ever copied into an outcome, since it may hold
//! secrets.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The most of a response body that is read; the rest is ignored.
const MAX_BODY: usize = 1024 * 1024;
/// The longest status or header line accepted, and the most header lines.
const MAX_HEADER_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 100;
/// How much of a body is quoted in a failure detail.
const BODY_SNIPPET_CHARS: usize = 80;
/// How much of a command's output is quoted in a failure detail.
const OUTPUT_TAIL_CHARS: usize = 200;
/// How much of a command's output is kept while it runs (only the tail is shown).
const OUTPUT_KEEP_BYTES: usize = 16 * 1024;
/// How often a running command is polled for exit.
const COMMAND_POLL: Duration = Duration::from_millis(10);

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
    /// `template` with `{version}` and `{host}` replaced.
    pub fn substitute(&self, template: &str) -> String {
        template.replace("{version}", self.version).replace("{host}", self.host)
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

/// The line a verify step records: `N/M checks passed`, with each failed check after
/// it when any failed (then as the error).
pub fn summary(outcomes: &[CheckOutcome]) -> Result<String, String> {
    let failed: Vec<String> =
        outcomes.iter().filter(|o| !o.passed).map(|o| format!("{}: {}", o.check, o.detail)).collect();
    let line = format!("{}/{} checks passed", outcomes.len() - failed.len(), outcomes.len());
    if failed.is_empty() { Ok(line) } else { Err(format!("{line}; {}", failed.join("; "))) }
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
            Resolved::Command { argv } => command_attempt(argv, vars, deadline),
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

/// Why one attempt failed. Its `Display` is the outcome's `detail`.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("unsupported URL {url:?}: only http:// is supported (no TLS)")]
    UnsupportedScheme { url: String },
    #[error("malformed URL {url:?}: {reason}")]
    MalformedUrl { url: String, reason: &'static str },
    #[error("cannot resolve {addr}: {source}")]
    Resolve { addr: String, source: io::Error },
    #[error("{addr} resolved to no addresses")]
    NoAddress { addr: String },
    #[error("connection refused ({addr})")]
    Refused { addr: SocketAddr },
    #[error("timed out after {} while {during}", humantime::format_duration(*timeout))]
    TimedOut { timeout: Duration, during: &'static str },
    #[error("{during} ({peer}): {source}")]
    Io { during: &'static str, peer: String, source: io::Error },
    #[error("malformed HTTP response: {reason}")]
    BadResponse { reason: String },
    #[error("status {got}, expected {expected}{}", snippet_suffix(body))]
    Status { got: u16, expected: u16, body: String },
    #[error("body does not contain {expected:?} (got: {})", snippet(body, BODY_SNIPPET_CHARS))]
    Body { expected: String, body: String },
    #[error("empty command")]
    EmptyCommand,
    #[error("cannot run {program:?}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("waiting for {program:?}: {source}")]
    Wait { program: String, source: io::Error },
    #[error("{status}{}", output_suffix(output))]
    Exit { status: ExitStatus, output: Output },
}

fn snippet_suffix(body: &str) -> String {
    if body.trim().is_empty() { String::new() } else { format!(" (body: {})", snippet(body, BODY_SNIPPET_CHARS)) }
}

fn output_suffix(output: &Output) -> String {
    let (stream, text) = if !output.stderr.trim().is_empty() {
        ("stderr", &output.stderr)
    } else if !output.stdout.trim().is_empty() {
        ("stdout", &output.stdout)
    } else {
        return String::new();
    };
    format!("; {stream}: {}", tail(text.trim_end(), OUTPUT_TAIL_CHARS))
}

/// The first `max` characters of `text` on one line, with `…` if cut.
fn snippet(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).map(one_line).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// The last `max` characters of `text` on one line, with `…` if cut.
fn tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    let skip = count.saturating_sub(max);
    let kept: String = text.chars().skip(skip).map(one_line).collect();
    if skip > 0 { format!("…{kept}") } else { kept }
}

fn one_line(c: char) -> char {
    if c.is_control() { ' ' } else { c }
}

/// The instant an attempt must be over by.
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Deadline { at: Instant::now() + timeout, timeout }
    }

    /// Time left, or the timeout failure if none is.
    fn remaining(&self, during: &'static str) -> Result<Duration, Failure> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(self.timed_out(during)) } else { Ok(left) }
    }

    fn timed_out(&self, during: &'static str) -> Failure {
        Failure::TimedOut { timeout: self.timeout, during }
    }

    /// Maps an I/O error, turning socket timeouts (which Linux reports as
    /// `WouldBlock`) into the timeout failure.
    fn io(&self, during: &'static str, peer: &str, source: io::Error) -> Failure {
        match source.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => self.timed_out(during),
            _ => Failure::Io { during, peer: peer.to_owned(), source },
        }
    }
}

/// Connects to `addr` (`host:port`), trying each resolved address in turn within
/// the deadline.
fn connect(addr: &str, deadline: Deadline) -> Result<TcpStream, Failure> {
    // Name resolution cannot be bounded with std; health check hosts are
    // addresses or names in /etc/hosts in practice.
    let addrs: Vec<SocketAddr> =
        addr.to_socket_addrs().map_err(|source| Failure::Resolve { addr: addr.to_owned(), source })?.collect();
    let mut last = Failure::NoAddress { addr: addr.to_owned() };
    for sock in addrs {
        let left = deadline.remaining("connecting")?;
        match TcpStream::connect_timeout(&sock, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = Failure::Refused { addr: sock };
            }
            Err(e) => last = deadline.io("connecting", &sock.to_string(), e),
        }
    }
    Err(last)
}

/// An `http://` URL split into what the request needs.
#[derive(Debug, PartialEq, Eq)]
struct HttpUrl {
    /// `host:port` to connect to (IPv6 hosts keep their brackets).
    connect: String,
    /// The `Host` header: the authority as written.
    host_header: String,
    /// Path and query, starting with `/`.
    target: String,
}

fn parse_http_url(url: &str) -> Result<HttpUrl, Failure> {
    let malformed = |reason| Failure::MalformedUrl { url: url.to_owned(), reason };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(malformed("expected http://host[:port]/path"));
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(Failure::UnsupportedScheme { url: url.to_owned() });
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    if authority.contains('@') {
        return Err(malformed("credentials in URLs are not supported"));
    }
    if target.contains(|c: char| c.is_ascii_control() || c == ' ') {
        return Err(malformed("path contains spaces or control characters"));
    }
    // The port is after the last ':' unless that colon is inside an IPv6 literal.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    if host.is_empty() || host == "[]" {
        return Err(malformed("no host"));
    }
    if host.starts_with('[') != host.ends_with(']') {
        return Err(malformed("unbalanced brackets in host"));
    }
    let port: u16 = match port {
        None => 80,
        Some(p) => p.parse().map_err(|_| malformed("invalid port"))?,
    };
    Ok(HttpUrl { connect: format!("{host}:{port}"), host_header: authority.to_owned(), target })
}

fn http_attempt(
    url: &str,
    expect_status: u16,
    expect_body: Option<&str>,
    deadline: Deadline,
) -> Result<String, Failure> {
    let parsed = parse_http_url(url)?;
    let mut stream = connect(&parsed.connect, deadline)?;
    let peer = parsed.connect.as_str();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lastgood\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        parsed.target, parsed.host_header
    );
    let left = deadline.remaining("sending the request")?;
    stream
        .set_write_timeout(Some(left))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| deadline.io("sending the request", peer, e))?;

    let mut reader = BufReader::new(DeadlineReader { stream, deadline });
    let head = read_head(&mut reader, deadline, peer)?;
    let body_result = read_body(&mut reader, &head, deadline, peer);
    if head.status != expect_status {
        // The body only decorates this failure; failing to read it must not hide it.
        return Err(Failure::Status {
            got: head.status,
            expected: expect_status,
            body: body_result.unwrap_or_default(),
        });
    }
    let body = body_result?;
    let status =
        if head.reason.is_empty() { head.status.to_string() } else { format!("{} {}", head.status, head.reason) };
    match expect_body {
        None => Ok(status),
        Some(expected) if body.contains(expected) => Ok(format!("{status}, body contains {expected:?}")),
        Some(expected) => Err(Failure::Body { expected: expected.to_owned(), body }),
    }
}

/// A socket whose every read is bounded by what is left of the attempt's deadline,
/// so a slow trickle cannot stretch an attempt past its timeout.
struct DeadlineReader {
    stream: TcpStream,
    deadline: Deadline,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// The parts of a response head that decide how to read the body.
struct Head {
    status: u16,
    reason: String,
    chunked: bool,
    content_length: Option<usize>,
}

fn read_head(reader: &mut impl BufRead, deadline: Deadline, peer: &str) -> Result<Head, Failure> {
    loop {
        let line = read_line(reader, deadline, peer, "the status line")?;
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(bad(format!("status line {:?}", snippet(&line, 80))));
        }
        let status: u16 = code
            .parse()
            .ok()
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| bad(format!("status code {code:?}")))?;
        let reason = parts.next().unwrap_or_default().trim().to_owned();

        let mut chunked = false;
        let mut content_length = None;
        let mut count = 0;
        loop {
            let line = read_line(reader, deadline, peer, "the headers")?;
            if line.is_empty() {
                break;
            }
            count += 1;
            if count > MAX_HEADERS {
                return Err(bad(format!("more than {MAX_HEADERS} headers")));
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad(format!("header line {:?}", snippet(&line, 80))));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if name.eq_ignore_ascii_case("content-length") {
                let n = value.parse().map_err(|_| bad(format!("Content-Length {value:?}")))?;
                content_length = Some(n);
            }
        }
        // 1xx responses are interim; the real one follows on the same connection.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok(Head { status, reason, chunked, content_length });
    }
}

fn bad(reason: String) -> Failure {
    Failure::BadResponse { reason }
}

/// One CRLF- (or LF-) terminated line without its terminator, bounded in length.
fn read_line(reader: &mut impl BufRead, deadline: Deadline, peer: &str, what: &'static str) -> Result<String, Failure> {
    let mut buf = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_HEADER_LINE)
        .read_until(b'\n', &mut buf)
        .map_err(|e| deadline.io("reading the response", peer, e))?;
    if n == 0 {
        return Err(bad(format!("connection closed before {what}")));
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n as u64 >= MAX_HEADER_LINE {
            bad(format!("line in {what} longer than {MAX_HEADER_LINE} bytes"))
        } else {
            bad(format!("connection closed in {what}"))
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The body, decoded and capped at [`MAX_BODY`] bytes, as (lossy) UTF-8.
fn read_body(reader: &mut impl BufRead, head: &Head, deadline: Deadline, peer: &str) -> Result<String, Failure> {
    let io_err = |e| deadline.io("reading the body", peer, e);
    let mut body = Vec::new();
    if head.status == 204 || head.status == 304 {
        // No body by definition.
    } else if head.chunked {
        while body.len() < MAX_BODY {
            let line = read_line(reader, deadline, peer, "a chunk header")?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| bad(format!("chunk size {size:?}")))?;
            if size == 0 {
                // Trailers are ignored; the connection closes after them anyway.
                break;
            }
            let want = size.min(MAX_BODY - body.len());
            let got = reader.by_ref().take(want as u64).read_to_end(&mut body).map_err(io_err)?;
            if got < want {
                return Err(bad("connection closed inside a chunk".to_owned()));
            }
            if want < size {
                break;
            }
            let end = read_line(reader, deadline, peer, "a chunk")?;
            if !end.is_empty() {
                return Err(bad("chunk longer than its declared size".to_owned()));
            }
        }
    } else if let Some(len) = head.content_length {
        let want = len.min(MAX_BODY);
        let got = reader.by_ref().take(want as u64).read_to_end(&mut body).map_err(io_err)?;
        if got < want {
            return Err(bad(format!("connection closed after {got} of {len} body bytes")));
        }
    } else {
        reader.by_ref().take(MAX_BODY as u64).read_to_end(&mut body).map_err(io_err)?;
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// What a command wrote, each stream cut to its last [`OUTPUT_KEEP_BYTES`].
#[derive(Debug, Default)]
struct Output {
    stdout: String,
    stderr: String,
}

fn command_attempt(argv: &[String], vars: &Vars, deadline: Deadline) -> Result<String, Failure> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Failure::EmptyCommand);
    };
    let mut child = Command::new(crate::supervise::resolve_program(program, vars.cwd))
        .args(args)
        .current_dir(vars.cwd)
        .envs(vars.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| Failure::Spawn { program: program.clone(), source })?;
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline.at => break None,
            Ok(None) => thread::sleep(COMMAND_POLL),
            Err(source) => {
                kill_group(&mut child);
                return Err(Failure::Wait { program: program.clone(), source });
            }
        }
    };
    let Some(status) = status else {
        kill_group(&mut child);
        return Err(deadline.timed_out("waiting for the command"));
    };
    // Output still held open by a background grandchild is not waited for past
    // the deadline (plus a moment, so a quick exit's last words are not lost).
    let grace = deadline.at.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
    let output = Output {
        stdout: stdout.recv_timeout(grace).unwrap_or_default(),
        stderr: stderr.recv_timeout(grace).unwrap_or_default(),
    };
    if status.success() { Ok("exited 0".to_owned()) } else { Err(Failure::Exit { status, output }) }
}

/// Kills the command's whole process group (it was started as its leader) and
/// reaps the command itself.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions. The group id is our
        // unreaped child's pid, so it cannot have been reused by another group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Drains a pipe on its own thread (so a chatty command cannot fill the pipe and
/// block) and sends what it read, tail only, when the pipe closes.
fn collect(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut kept: Vec<u8> = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > 2 * OUTPUT_KEEP_BYTES {
                            kept.drain(..kept.len() - OUTPUT_KEEP_BYTES);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&kept).into_owned());
        });
    } else {
        let _ = tx.send(String::new());
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn url_parsing() {
        let u = parse_http_url("http://[::1]:8080/a?b=c#frag").unwrap();
        assert_eq!(u.connect, "[::1]:8080");
        assert_eq!(u.host_header, "[::1]:8080");
        assert_eq!(u.target, "/a?b=c");
        let u = parse_http_url("HTTP://localhost?x").unwrap();
        assert_eq!(u.connect, "localhost:80");
        assert_eq!(u.target, "/?x");
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
