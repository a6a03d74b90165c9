//! The Prometheus instant query: `GET <url>/api/v1/query?query=..&time=..`, read as
//! one number, with every way it can fail to be one kept apart from a fail.
//!
//! The answer is `{status, data: {resultType, result}, warnings}`; an instant vector's
//! values are quoted strings, `"NaN"` and `"+Inf"` included. An empty vector, NaN or an
//! infinity is *no data*; an error status, a `warnings` field, a connection refused or
//! a timeout is a *source error*; more than one series is an error too (the query must
//! say which number it means). Only a finite number is compared with the threshold,
//! and comparisons are written so that NaN can never pass or fail silently.
//!
//! The client is plain HTTP/1.1 over [`std::net::TcpStream`] with `Connection: close`,
//! every read bounded by the measurement's deadline and the body by [`MAX_BODY`], the
//! same shape as the health checks' probe; the response is read by [`crate::http1`].

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::Verdict;
use crate::http1;

/// The most of an answer read: one number needs far less.
const MAX_BODY: usize = 256 * 1024;

/// What a query returned, before the threshold.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Value(f64),
    NoData(String),
    Error(String),
}

/// Compares a value with `min`/`max`: NaN never reaches here ([`Answer::NoData`]).
pub fn judge(value: f64, min: Option<f64>, max: Option<f64>) -> Verdict {
    let above = max.is_some_and(|m| value > m);
    let below = min.is_some_and(|m| value < m);
    if above || below { Verdict::Fail } else { Verdict::Pass }
}

/// `max`/`min` in words.
pub fn threshold(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
        (None, Some(hi)) => format!("<= {hi}"),
        (Some(lo), None) => format!(">= {lo}"),
        (None, None) => "any".into(),
    }
}

/// Asks `base` (`http://host:port[/prefix]`) for `query` at `time` (unix seconds, now
/// when None), within `timeout`.
pub fn query(base: &str, query: &str, time: Option<f64>, timeout: Duration) -> Answer {
    let mut target = format!("/api/v1/query?query={}", encode(query));
    if let Some(t) = time {
        target.push_str(&format!("&time={t:.3}"));
    }
    match get(base, &target, timeout) {
        Err(e) => Answer::Error(e),
        Ok((status, body)) => parse(status, &body),
    }
}

/// Reads an answer (any status: Prometheus explains its 400/422/503 in the body).
pub fn parse(status: u16, body: &[u8]) -> Answer {
    let doc: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if status != 200 => return Answer::Error(format!("HTTP status {status}")),
        Err(e) => return Answer::Error(format!("the answer is not JSON: {e}")),
    };
    if doc["status"] != "success" || status != 200 {
        let why = doc["error"].as_str().unwrap_or("no reason given");
        return Answer::Error(format!(
            "query failed (HTTP {status}, {}): {why}",
            doc["errorType"].as_str().unwrap_or("error")
        ));
    }
    if let Some(w) = doc["warnings"].as_array().filter(|w| !w.is_empty()) {
        let text: Vec<&str> = w.iter().filter_map(|x| x.as_str()).collect();
        return Answer::Error(format!("the server warned: {}", text.join("; ")));
    }
    let data = &doc["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([]) => return Answer::NoData("the query returned an empty vector".into()),
            Some([one]) => &one["value"],
            Some(many) => {
                return Answer::Error(format!(
                    "the query returned {} series; aggregate it to one number (sum, max, ...)",
                    many.len()
                ));
            }
            None => return Answer::Error("the answer has no result".into()),
        },
        Some(other) => return Answer::Error(format!("the query returned a {other}, not one number")),
        None => return Answer::Error("the answer has no resultType".into()),
    };
    let Some(text) = sample.get(1).and_then(|v| v.as_str()) else {
        return Answer::Error("the sample has no value".into());
    };
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Answer::Value(v),
        Ok(v) => Answer::NoData(format!("the query returned {v}")),
        Err(_) => Answer::Error(format!("the value {text:?} is not a number")),
    }
}

/// Percent-encodes a query parameter (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One GET, bounded by `timeout` from connect to the last byte.
fn get(base: &str, target: &str, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    let deadline = Instant::now() + timeout;
    let rest = base.strip_prefix("http://").ok_or("only http:// is supported")?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let addr = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolved to no address"))?;
    let left = |during: &str| {
        let l = deadline.saturating_duration_since(Instant::now());
        if l.is_zero() {
            Err(format!("timed out after {} while {during}", humantime::format_duration(timeout)))
        } else {
            Ok(l)
        }
    };
    let mut stream = TcpStream::connect_timeout(&sock, left("connecting")?)
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let request = format!(
        "GET {prefix}{target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: lastgood\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .set_write_timeout(Some(left("sending the query")?))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| format!("sending the query to {authority}: {e}"))?;
    let mut reader = BufReader::new(Bounded { stream, deadline });
    let head = http1::read_head(&mut reader).map_err(|e| format!("reading the answer of {authority}: {e}"))?;
    let body = http1::read_body(&mut reader, &head, MAX_BODY)
        .map_err(|e| format!("reading the answer of {authority}: {e}"))?;
    Ok((head.status, body))
}

/// A socket whose reads end at the deadline.
struct Bounded {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(v: &str) -> Vec<u8> {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{v}"]}}]}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn nan_infinities_and_empty_vectors_are_no_data_never_a_fail() {
        assert!(matches!(parse(200, &vector("NaN")), Answer::NoData(_)));
        assert!(matches!(parse(200, &vector("+Inf")), Answer::NoData(_)));
        assert!(matches!(parse(200, &vector("-Inf")), Answer::NoData(_)));
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(matches!(parse(200, empty), Answer::NoData(_)));
        assert_eq!(parse(200, &vector("2.5")), Answer::Value(2.5));
    }

    #[test]
    fn error_statuses_warnings_and_many_series_are_source_errors() {
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(matches!(parse(400, bad), Answer::Error(e) if e.contains("parse error")));
        assert!(matches!(parse(503, b"unavailable"), Answer::Error(_)));
        let warned = br#"{"status":"success","warnings":["partial"],"data":{"resultType":"scalar","result":[1,"3"]}}"#;
        assert!(matches!(parse(200, warned), Answer::Error(e) if e.contains("partial")));
        let two =
            br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(matches!(parse(200, two), Answer::Error(_)));
    }

    #[test]
    fn thresholds_compare_finite_values_only() {
        assert_eq!(judge(5.0, None, Some(5.0)), Verdict::Pass);
        assert_eq!(judge(5.1, None, Some(5.0)), Verdict::Fail);
        assert_eq!(judge(0.9, Some(1.0), None), Verdict::Fail);
        assert_eq!(encode("rate(x[1m]) > 0"), "rate%28x%5B1m%5D%29%20%3E%200");
    }

    #[test]
    fn a_slow_server_is_a_source_error_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let t = Instant::now();
        let a = query(&url, "up", None, Duration::from_millis(300));
        assert!(matches!(&a, Answer::Error(e) if e.contains("timed out") || e.contains("reading")), "{a:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        drop(held);
    }

    #[test]
    fn a_server_that_is_down_is_a_source_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let a = query(&format!("http://127.0.0.1:{port}"), "up", None, Duration::from_millis(500));
        assert!(matches!(a, Answer::Error(_)), "{a:?}");
    }
}
