//! Reading an HTTP/1.1 response: the status line, the headers that decide how the body
//! is framed, and the body (sized, chunked, or up to the close).
//!
//! lastgood speaks HTTP to two peers, and both requests are sent with
//! `Connection: close`: health-check endpoints ([`crate::verify`], over TCP) and the
//! Docker engine's socket for the one call bollard's models get wrong
//! ([`crate::runtime::docker`]). This is the one parser both use. It is not a client:
//! the caller connects, writes the request and bounds each read (a deadline, a socket
//! timeout); this module only reads what comes back, with limits on line length, header
//! count and body size so that a hostile or broken peer cannot make it hold unbounded
//! memory. It has no dependency on the rest of lastgood.

use std::io::{self, BufRead, Read};

/// The longest status or header line accepted, and the most header lines.
const MAX_HEADER_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 100;
/// How much of an offending line a message quotes.
const LINE_SNIPPET_CHARS: usize = 80;

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// The connection failed (or timed out) while reading.
    #[error("{during}: {source}")]
    Io {
        during: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

/// What is wrong with a response that arrived.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    #[error("status line {:?}", snippet(line, LINE_SNIPPET_CHARS))]
    StatusLine { line: String },
    #[error("status code {code:?}")]
    StatusCode { code: String },
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("header line {:?}", snippet(line, LINE_SNIPPET_CHARS))]
    HeaderLine { line: String },
    #[error("Content-Length {value:?}")]
    ContentLength { value: String },
    #[error("connection closed before {what}")]
    ClosedBefore { what: &'static str },
    #[error("line in {what} longer than {MAX_HEADER_LINE} bytes")]
    LineTooLong { what: &'static str },
    #[error("connection closed in {what}")]
    ClosedIn { what: &'static str },
    #[error("chunk size {size:?}")]
    ChunkSize { size: String },
    #[error("connection closed inside a chunk")]
    ClosedInChunk,
    #[error("chunk longer than its declared size")]
    ChunkTooLong,
    #[error("connection closed after {got} of {len} body bytes")]
    ClosedInBody { got: usize, len: usize },
}

/// The parts of a response head that decide how to read the body.
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub chunked: bool,
    pub content_length: Option<usize>,
}

/// The head of the final response: interim `1xx` responses before it are skipped.
pub fn read_head(reader: &mut impl BufRead) -> Result<Head, ResponseError> {
    loop {
        let line = read_line(reader, "the status line")?;
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(Malformed::StatusLine { line }.into());
        }
        let status: u16 = code
            .parse()
            .ok()
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| Malformed::StatusCode { code: code.to_owned() })?;
        let reason = parts.next().unwrap_or_default().trim().to_owned();

        let mut chunked = false;
        let mut content_length = None;
        let mut count = 0;
        loop {
            let line = read_line(reader, "the headers")?;
            if line.is_empty() {
                break;
            }
            count += 1;
            if count > MAX_HEADERS {
                return Err(Malformed::TooManyHeaders.into());
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(Malformed::HeaderLine { line }.into());
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if name.eq_ignore_ascii_case("content-length") {
                let n = value.parse().map_err(|_| Malformed::ContentLength { value: value.to_owned() })?;
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

/// One CRLF- (or LF-) terminated line without its terminator, bounded in length.
fn read_line(reader: &mut impl BufRead, what: &'static str) -> Result<String, ResponseError> {
    let mut buf = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_HEADER_LINE)
        .read_until(b'\n', &mut buf)
        .map_err(|source| ResponseError::Io { during: "reading the response", source })?;
    if n == 0 {
        return Err(Malformed::ClosedBefore { what }.into());
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n as u64 >= MAX_HEADER_LINE {
            Malformed::LineTooLong { what }.into()
        } else {
            Malformed::ClosedIn { what }.into()
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The body, decoded (chunked, sized or until the connection closes) and cut at
/// `max` bytes (the rest is not read).
pub fn read_body(reader: &mut impl BufRead, head: &Head, max: usize) -> Result<Vec<u8>, ResponseError> {
    let io_err = |source| ResponseError::Io { during: "reading the body", source };
    let mut body = Vec::new();
    if head.status == 204 || head.status == 304 {
        // No body by definition.
    } else if head.chunked {
        while body.len() < max {
            let line = read_line(reader, "a chunk header")?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| Malformed::ChunkSize { size: size.to_owned() })?;
            if size == 0 {
                // Trailers are ignored; the connection closes after them anyway.
                break;
            }
            let want = size.min(max - body.len());
            let got = reader.by_ref().take(want as u64).read_to_end(&mut body).map_err(io_err)?;
            if got < want {
                return Err(Malformed::ClosedInChunk.into());
            }
            if want < size {
                break;
            }
            let end = read_line(reader, "a chunk")?;
            if !end.is_empty() {
                return Err(Malformed::ChunkTooLong.into());
            }
        }
    } else if let Some(len) = head.content_length {
        let want = len.min(max);
        let got = reader.by_ref().take(want as u64).read_to_end(&mut body).map_err(io_err)?;
        if got < want {
            return Err(Malformed::ClosedInBody { got, len }.into());
        }
    } else {
        reader.by_ref().take(max as u64).read_to_end(&mut body).map_err(io_err)?;
    }
    Ok(body)
}

/// The first `max` characters of `text` on one line, with `…` if cut.
pub fn snippet(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(response: &str, max: usize) -> Result<(Head, String), ResponseError> {
        let mut reader = response.as_bytes();
        let head = read_head(&mut reader)?;
        let body = read_body(&mut reader, &head, max)?;
        Ok((head, String::from_utf8_lossy(&body).into_owned()))
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let (head, body) =
            read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n", 100)
                .unwrap();
        assert_eq!((head.status, head.reason.as_str(), body.as_str()), (200, "OK", "hello, world"));
    }

    #[test]
    fn sized_bodies_interim_responses_and_the_cap() {
        let (head, body) =
            read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!extra", 100)
                .unwrap();
        assert_eq!((head.status, body.as_str()), (404, "nope!"));
        let (_, body) = read("HTTP/1.0 200 OK\r\n\r\nuntil the close", 5).unwrap();
        assert_eq!(body, "until");
    }

    #[test]
    fn malformed_responses_say_what_is_wrong() {
        let err = |r: &str| read(r, 100).map(drop).unwrap_err().to_string();
        assert_eq!(err("SSH-2.0-OpenSSH\r\n"), "status line \"SSH-2.0-OpenSSH\"");
        assert_eq!(err("HTTP/1.1 20x OK\r\n\r\n"), "status code \"20x\"");
        assert_eq!(
            err("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"),
            "connection closed after 5 of 9 body bytes"
        );
        assert_eq!(err("HTTP/1.1 200 OK\r\n"), "connection closed before the headers");
        assert_eq!(err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), "chunk size \"zz\"");
    }
}
