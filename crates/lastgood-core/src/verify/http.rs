//! The HTTP probe: `GET` a plain `http://` URL and compare the status and body.
//!
//! Deliberately tiny (plain `http://`, `GET`, `Connection: close`, a 1 MiB body cap)
//! and written over [`std::net::TcpStream`]: health endpoints are local or on a private
//! network, and a full client with TLS would be the largest dependency in the crate for
//! the least important request it makes. The response is read by [`crate::http1`], the
//! parser the Docker socket client shares; every read is bounded by what is left of the
//! attempt's deadline.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use super::attempt::{Deadline, Failure, connect};
use crate::http1;

/// The most of a response body that is read; the rest is ignored.
const MAX_BODY: usize = 1024 * 1024;

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

pub(super) fn http_attempt(
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
    let head = http1::read_head(&mut reader).map_err(|e| deadline.response(peer, e))?;
    let body_result = http1::read_body(&mut reader, &head, MAX_BODY)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| deadline.response(peer, e));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
