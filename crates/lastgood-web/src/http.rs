//! A small HTTP/1.1 server on std's sockets: one thread a connection, keep-alive,
//! and hard limits on everything a client controls.
//!
//! The dashboard serves a handful of people on loopback or behind a proxy; it needs no
//! async runtime, but it must not be held hostage by a slow or hostile client. So each
//! limit is explicit: the request head (16 KiB, 64 headers), the body (16 KiB, sized by
//! `Content-Length` only: a chunked request is refused, which also rules out request
//! smuggling through disagreeing framings), the time to send one request (10 s from its
//! first byte), an idle keep-alive connection (5 s), and the connections served at once
//! (beyond it a client gets 503 at once). Parsing is httparse's; this module only frames
//! requests and writes responses. It knows nothing of lastgood.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_BODY: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
pub const REQUEST_TIME: Duration = Duration::from_secs(10);
const IDLE_TIME: Duration = Duration::from_secs(5);
const WRITE_TIME: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 128;

/// A request as the handler sees it: the path split from its query, header names in
/// lower case, and the whole body.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Request {
    /// The first header of this name (given in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A query parameter, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// A response body: all of it, or a stream written until it ends (server-sent events),
/// after which the connection closes.
pub enum Body {
    Full(Vec<u8>),
    Stream(StreamWriter),
}

/// Writes a streamed body to the connection, once.
pub type StreamWriter = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self { status, headers: vec![("content-type", content_type.to_owned())], body: Body::Full(body.into()) }
    }

    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", text.into())
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What answers requests; it runs on the connection's thread.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Serves `listener` until the process ends.
pub fn serve(listener: TcpListener, handler: Arc<Handler>) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = write_response(&stream, Response::text(503, "too many connections\n"), false);
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (active, handler) = (active.clone(), handler.clone());
        let spawned = std::thread::Builder::new().name("lastgood-web".into()).spawn(move || {
            connection(stream, handler.as_ref());
            active.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            // The closure (and its count) never ran.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Why a request could not be read; each answers with its status, then the
/// connection closes.
enum ReadError {
    /// The client closed or went idle between requests: nothing to answer.
    Gone,
    Status(u16, &'static str),
}

fn connection(stream: TcpStream, handler: &Handler) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIME));
    let mut buf = Vec::with_capacity(4096);
    loop {
        let request = match read_request(&stream, &mut buf, peer) {
            Ok(r) => r,
            Err(ReadError::Gone) => return,
            Err(ReadError::Status(status, why)) => {
                let _ = write_response(&stream, Response::text(status, format!("{why}\n")), false);
                return;
            }
        };
        let close = wants_close(&request);
        let response = handler(&request);
        let keep = !close && matches!(response.body, Body::Full(_));
        if write_response(&stream, response, keep).is_err() || !keep {
            return;
        }
    }
}

fn wants_close(r: &Request) -> bool {
    r.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"))
}

/// Reads one request; `buf` keeps what the client sent beyond it (pipelining).
fn read_request(stream: &TcpStream, buf: &mut Vec<u8>, peer: SocketAddr) -> Result<Request, ReadError> {
    // Waiting for the first byte of the next request is idle time; once it comes,
    // the whole request must arrive within REQUEST_TIME.
    let mut deadline = None;
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(end) = find_head_end(buf) {
            if end > MAX_HEAD {
                return Err(ReadError::Status(431, "request head too large"));
            }
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Status(431, "request head too large"));
        }
        if !buf.is_empty() && deadline.is_none() {
            deadline = Some(Instant::now() + REQUEST_TIME);
        }
        let n = read_some(stream, &mut chunk, deadline)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::Status(431, "too many headers")),
        _ => return Err(ReadError::Status(400, "malformed request")),
    }
    if parsed.version != Some(1) {
        return Err(ReadError::Status(505, "HTTP/1.1 only"));
    }
    let method = parsed.method.unwrap_or("").to_owned();
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut list = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| ReadError::Status(400, "a header is not UTF-8"))?;
        list.push((h.name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let (path, query) = (path.to_owned(), query.to_owned());
    if list.iter().any(|(n, _)| n == "transfer-encoding") {
        return Err(ReadError::Status(501, "chunked requests are not accepted; send Content-Length"));
    }
    let lengths: Vec<&str> = list.iter().filter(|(n, _)| n == "content-length").map(|(_, v)| v.as_str()).collect();
    let length = match lengths.as_slice() {
        [] => 0,
        [one] => one.parse::<usize>().map_err(|_| ReadError::Status(400, "bad Content-Length"))?,
        _ => return Err(ReadError::Status(400, "more than one Content-Length")),
    };
    if length > MAX_BODY {
        return Err(ReadError::Status(413, "request body too large"));
    }
    buf.drain(..head_len);
    let deadline = deadline.unwrap_or_else(|| Instant::now() + REQUEST_TIME);
    while buf.len() < length {
        let n = read_some(stream, &mut chunk, Some(deadline))?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Vec<u8> = buf.drain(..length).collect();
    Ok(Request { method, path, query, headers: list, body, peer })
}

/// One read, bounded by the deadline (or by the idle time before a request starts).
fn read_some(mut stream: &TcpStream, chunk: &mut [u8], deadline: Option<Instant>) -> Result<usize, ReadError> {
    let wait = match deadline {
        None => IDLE_TIME,
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|w| !w.is_zero())
            .ok_or(ReadError::Status(408, "request took too long"))?,
    };
    let _ = stream.set_read_timeout(Some(wait));
    match stream.read(chunk) {
        Ok(0) => Err(ReadError::Gone),
        Ok(n) => Ok(n),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => match deadline {
            None => Err(ReadError::Gone),
            Some(_) => Err(ReadError::Status(408, "request took too long")),
        },
        Err(_) => Err(ReadError::Gone),
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn write_response(mut stream: &TcpStream, response: Response, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    for (name, value) in &response.headers {
        // Values are the server's own; a line break would split the head.
        let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match response.body {
        Body::Full(body) => {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
            head.push_str(if keep_alive { "connection: keep-alive\r\n\r\n" } else { "connection: close\r\n\r\n" });
            let mut out = head.into_bytes();
            out.extend_from_slice(&body);
            stream.write_all(&out)?;
            stream.flush()
        }
        Body::Stream(write) => {
            head.push_str("connection: close\r\n\r\n");
            stream.write_all(head.as_bytes())?;
            stream.flush()?;
            let mut w = stream;
            write(&mut w)?;
            w.flush()
        }
    }
}
