//! Who is acting, where, and when: injectable so that tests and reports are stable.
//!
//! `LASTGOOD_USER`, `LASTGOOD_HOSTNAME` and `LASTGOOD_NOW` (unix seconds or RFC 3339) pin
//! the actor, the machine and the clock; otherwise they come from `USER`, the kernel's
//! host name and the system clock. The host name matters beyond display: lock liveness
//! ("is the holder's process still alive?") is only decidable on the holder's machine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct Context {
    pub user: String,
    pub host: String,
    pub pid: i32,
    /// `/etc/machine-id` and the pid namespace ([`machine`]).
    pub machine: Option<String>,
    pinned_now: Option<i64>,
}

impl Context {
    pub fn from_env() -> Self {
        let user = std::env::var("LASTGOOD_USER")
            .or_else(|_| std::env::var("USER"))
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(user_from_uid);
        let pinned_now = std::env::var("LASTGOOD_NOW").ok().and_then(|s| {
            s.parse::<i64>().ok().or_else(|| {
                humantime::parse_rfc3339_weak(&s)
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64)
            })
        });
        // LASTGOOD_HOSTNAME lets tests play several machines on one.
        let host = std::env::var("LASTGOOD_HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(hostname);
        Self { user, host, pid: std::process::id() as i32, machine: machine(), pinned_now }
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        self.pinned_now
            .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0))
    }

    /// `user@host`, the way lock holders and audit events name an actor.
    pub fn actor(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }
}

/// Unix milliseconds from the real clock (durations are never pinned).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub fn rfc3339(unix_secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix_secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// This machine, for same-machine liveness checks: `/etc/machine-id` and the pid
/// namespace (`/proc/self/ns/pid`). None when neither can be read.
pub fn machine() -> Option<String> {
    let id = std::fs::read_to_string("/etc/machine-id").ok().map(|s| s.trim().to_owned()).unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid").ok().map(|p| p.display().to_string()).unwrap_or_default();
    if id.is_empty() && ns.is_empty() { None } else { Some(format!("{id}/{ns}")) }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most
    // that many bytes and we read only up to the first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn user_from_uid() -> String {
    // SAFETY: getuid cannot fail; getpwuid returns NULL or a pointer to static storage
    // that we copy out of at once, before any other call could overwrite it.
    unsafe {
        let uid = libc::getuid();
        let pw = libc::getpwuid(uid);
        if pw.is_null() || (*pw).pw_name.is_null() {
            return format!("uid{uid}");
        }
        std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned()
    }
}
