//! Who may ask what: the token, browser sessions, the `Host` check, and what a
//! state-changing request must carry.
//!
//! The dashboard has one secret, the token (`LASTGOOD_SERVE_TOKEN`, or random at start).
//! A program sends it as `Authorization: Bearer TOKEN`. A person opens the login URL
//! once; the server answers with a session cookie (`HttpOnly`: no script reads it;
//! `SameSite=Strict`: no other site's page makes the browser send it) and never shows
//! the token again. Each session has its own CSRF token, which every form carries.
//!
//! The incidents this answers (see docs/dashboard.md): DNS rebinding (a hostile name
//! resolving to 127.0.0.1 makes the browser a client of a loopback server; the `Host`
//! header gives it away: 421), cross-site form posts (urlencoded posts need no CORS
//! preflight, so a content-type check alone protects nothing: the CSRF token, `Origin`
//! and `Sec-Fetch-Site` do), and tokens compared in time that depends on the guess.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::http::Request;

pub const COOKIE: &str = "lastgood_session";
/// A session lasts this long after login.
const SESSION_TIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept; the oldest goes first.
const MAX_SESSIONS: usize = 1000;

/// `n` random bytes from the kernel, as hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal strings, compared in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    created: Instant,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `user`; returns its id (the cookie's value).
    pub fn open(&self, user: &str) -> std::io::Result<String> {
        let id = random_hex(32)?;
        let session = Session { user: user.to_owned(), csrf: random_hex(32)?, created: Instant::now() };
        let mut all = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, s| s.created.elapsed() < SESSION_TIME);
        if all.len() >= MAX_SESSIONS {
            if let Some(oldest) = all.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| k.clone()) {
                all.remove(&oldest);
            }
        }
        all.insert(id.clone(), session);
        Ok(id)
    }

    /// The session a request's cookie names, if it is live.
    pub fn of(&self, request: &Request) -> Option<Session> {
        let id = cookie(request, COOKIE)?;
        let all = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        // The map's lookup hashes the id; it does not compare it byte by byte.
        all.get(id).filter(|s| s.created.elapsed() < SESSION_TIME).cloned()
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_TIME.as_secs())
}

/// The `Authorization: Bearer` token, when it is the server's.
pub fn bearer_ok(request: &Request, token: &str) -> bool {
    request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .is_some_and(|given| same_secret(given.trim(), token))
}

/// The names a request's `Host` may carry: the listen address, `localhost` on a
/// loopback listener, and `--host NAME` (with or without the port).
pub struct Hosts {
    allowed: Vec<String>,
}

impl Hosts {
    pub fn new(listen: SocketAddr, host: Option<&str>) -> Self {
        let port = listen.port();
        let mut allowed = vec![listen.to_string()];
        if listen.ip().is_loopback() {
            allowed.push(format!("localhost:{port}"));
        }
        if let Some(h) = host {
            let h = h.to_ascii_lowercase();
            if h.contains(':') && !h.starts_with('[') {
                allowed.push(h);
            } else {
                allowed.push(format!("{h}:{port}"));
                allowed.push(h);
            }
        }
        Self { allowed }
    }

    pub fn ok(&self, request: &Request) -> bool {
        request.header("host").is_some_and(|h| self.allowed.iter().any(|a| a.eq_ignore_ascii_case(h)))
    }
}

/// Why a state-changing browser request was refused, or None when it may go on: the
/// page must come from this server (`Origin`, `Sec-Fetch-Site` when the browser sends
/// them) and carry the session's CSRF token.
pub fn post_refused(request: &Request, session: &Session, form_csrf: Option<&str>) -> Option<&'static str> {
    if let Some(origin) = request.header("origin") {
        let host = request.header("host").unwrap_or("");
        if origin != format!("http://{host}") && origin != format!("https://{host}") {
            return Some("the form was sent from another origin");
        }
    }
    if let Some(site) = request.header("sec-fetch-site") {
        if site != "same-origin" {
            return Some("the form was sent from another site");
        }
    }
    match form_csrf {
        Some(c) if same_secret(c, &session.csrf) => None,
        Some(_) => Some("the form's CSRF token is wrong (reload the page)"),
        None => Some("the form has no CSRF token"),
    }
}

/// A user name from the login URL: short, and plain enough to show and record.
pub fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}
