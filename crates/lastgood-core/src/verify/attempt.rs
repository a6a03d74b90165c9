//! One attempt of a probe: the deadline it must finish by, and why it failed.
//!
//! Every probe (HTTP, TCP, command) shares these: an attempt is bounded by a
//! [`Deadline`] rather than by socket options alone, and its failure is a [`Failure`]
//! whose `Display` is the detail an operator reads in the check's outcome. The TCP
//! connect lives here too, since both the TCP and the HTTP probe start with it.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::http1::{Malformed, ResponseError, snippet};

/// How much of a body is quoted in a failure detail.
const BODY_SNIPPET_CHARS: usize = 80;
/// How much of a command's output is quoted in a failure detail.
const OUTPUT_TAIL_CHARS: usize = 200;

/// Why one attempt failed. Its `Display` is the outcome's `detail`.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
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
    #[error("malformed HTTP response: {0}")]
    BadResponse(#[source] Malformed),
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

/// What a command wrote, each stream cut to its tail (`command.rs` keeps the last 16 KiB).
#[derive(Debug, Default)]
pub(super) struct Output {
    pub(super) stdout: String,
    pub(super) stderr: String,
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
pub(super) struct Deadline {
    pub(super) at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub(super) fn after(timeout: Duration) -> Self {
        Deadline { at: Instant::now() + timeout, timeout }
    }

    /// Time left, or the timeout failure if none is.
    pub(super) fn remaining(&self, during: &'static str) -> Result<Duration, Failure> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(self.timed_out(during)) } else { Ok(left) }
    }

    pub(super) fn timed_out(&self, during: &'static str) -> Failure {
        Failure::TimedOut { timeout: self.timeout, during }
    }

    /// Maps an I/O error, turning socket timeouts (which Linux reports as
    /// `WouldBlock`) into the timeout failure.
    pub(super) fn io(&self, during: &'static str, peer: &str, source: io::Error) -> Failure {
        match source.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => self.timed_out(during),
            _ => Failure::Io { during, peer: peer.to_owned(), source },
        }
    }

    /// Maps a failure to read a response from `peer`.
    pub(super) fn response(&self, peer: &str, e: ResponseError) -> Failure {
        match e {
            ResponseError::Io { during, source } => self.io(during, peer, source),
            ResponseError::Malformed(m) => Failure::BadResponse(m),
        }
    }
}

/// Connects to `addr` (`host:port`), trying each resolved address in turn within
/// the deadline.
pub(super) fn connect(addr: &str, deadline: Deadline) -> Result<TcpStream, Failure> {
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
