//! The app that lastgood's demo and tests deploy: a tiny HTTP/1.1 server whose
//! behaviour is decided by files in the release directory it runs from.
//!
//! A release is a directory holding `VERSION` and, optionally, `app.env`
//! (`KEY=VALUE` lines: `HEALTH=ok|fail`, `GREETING=...`). If `SAMPLE_APP_CONFIG`
//! names a file, that file is read instead of `app.env`, so a test can make an
//! otherwise identical release unhealthy. Everything is read once, at startup,
//! like a real app reads its config; changing it means deploying again.
//!
//! Two keys make a release that passes its checks and then goes bad, for the bake
//! window's tests: `FAIL_AFTER=SECS` (from then on, `GET /work` answers 500 and the app
//! logs an `ERROR` line every 200 ms) and `EXIT_AFTER=SECS` (the process exits 3).
//! `GET /metrics` serves `sample_app_errors_total` (500s answered, plus the errors
//! logged) in Prometheus' text format.
//!
//! Routes: `GET /health` (200 `ok <version>`, or 500 `unhealthy <version>` when
//! `HEALTH=fail`), `GET /` (200 `<greeting> from <version>`), `GET /version`
//! (200 `<version>`); anything else is 404. One request per connection, one thread
//! per connection: this serves health checks and curl, not traffic.
//!
//! `GET /slow?ms=N` answers after N milliseconds (an in-flight request for drain
//! tests). `--warmup MS` waits that long before it listens, as an app that loads
//! its data first. On SIGTERM it stops accepting, finishes the requests in flight
//! (for at most 10 s), and exits 0: what a well-behaved app does.
//!
//! It is std-only (and libc for the signal) on purpose: it is built for every test
//! run and must never be the reason a deploy test fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

const USAGE: &str =
    "usage: lastgood-sample-app [--listen 127.0.0.1:8080 | --listen :8080] [--config PATH] [--warmup MS]";

/// Requests being answered now.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// SIGTERM arrived: accept no more.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// How long the requests in flight get after SIGTERM.
const FINISH: Duration = Duration::from_secs(10);

/// What the app serves, fixed at startup.
struct App {
    version: String,
    healthy: bool,
    greeting: String,
    fail_after: Option<Duration>,
    started: std::time::Instant,
    errors: std::sync::atomic::AtomicU64,
}

impl App {
    fn failing(&self) -> bool {
        self.fail_after.is_some_and(|d| self.started.elapsed() >= d)
    }
}

fn main() -> ExitCode {
    // SIGTERM is taken by a thread of its own (sigwait), so it is blocked here, before
    // any thread exists, and every thread inherits the mask.
    // SAFETY: sigset_t is plain data that sigemptyset initialises; pthread_sigmask only
    // reads it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let (listen, warmup) = match listen_addr(env::args().skip(1)) {
        Ok(addr) => addr,
        Err(msg) => {
            eprintln!("sample-app: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let app = match load() {
        Ok(app) => app,
        Err(msg) => {
            eprintln!("sample-app: {msg}");
            return ExitCode::FAILURE;
        }
    };
    thread::sleep(warmup);
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("sample-app: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The real address, so `--listen 127.0.0.1:0` tells the caller its port.
    let addr = listener.local_addr().map_or_else(|_| listen.clone(), |a| a.to_string());
    println!("sample-app {} listening on {addr}", app.version);
    if let Ok(deployed) = env::var("LASTGOOD_VERSION") {
        if deployed != app.version {
            eprintln!("sample-app: LASTGOOD_VERSION is {deployed} but VERSION says {}", app.version);
        }
    }
    let _ = std::io::stdout().flush();

    // Leaked on purpose: the app lives until it is killed, and every connection
    // thread borrows it.
    let app: &'static App = Box::leak(Box::new(app));
    if app.fail_after.is_some() {
        thread::spawn(move || {
            loop {
                thread::sleep(Duration::from_millis(200));
                if app.failing() {
                    app.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    eprintln!("sample-app {}: ERROR the work queue is failing", app.version);
                }
            }
        });
    }
    let fd = listener.as_raw_fd();
    thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: `set` is initialised above; sigwait writes the signal number to `sig`.
        unsafe { libc::sigwait(&set, &mut sig) };
        STOPPING.store(true, Ordering::SeqCst);
        // Wakes the accept below (Linux answers it with EINVAL from now on).
        // SAFETY: shutdown(2) on the listener's descriptor, which main keeps open.
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    });
    for stream in listener.incoming() {
        if STOPPING.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => {
                IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || {
                    handle(app, stream);
                    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(e) => eprintln!("sample-app: accept: {e}"),
        }
    }
    let deadline = Instant::now() + FINISH;
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    println!("sample-app {}: stopped on SIGTERM", app.version);
    ExitCode::SUCCESS
}

/// `--listen ADDR` or `--listen=ADDR`, else `SAMPLE_APP_LISTEN`, else the default;
/// and the warm-up. `--config PATH` sets `SAMPLE_APP_CONFIG` for [`load`].
fn listen_addr(mut args: impl Iterator<Item = String>) -> Result<(String, Duration), String> {
    let mut listen = None;
    let mut warmup = Duration::ZERO;
    while let Some(arg) = args.next() {
        if arg == "--warmup" {
            let ms = args.next().ok_or("--warmup needs milliseconds")?;
            warmup = Duration::from_millis(ms.parse().map_err(|_| format!("--warmup: {ms:?} is not milliseconds"))?);
            continue;
        }
        if arg == "--config" {
            let path = args.next().ok_or("--config needs a path")?;
            // SAFETY (of the call's contract): still single-threaded at this point.
            unsafe { env::set_var("SAMPLE_APP_CONFIG", path) };
        } else if arg == "--listen" {
            listen = Some(args.next().ok_or("--listen needs an address")?);
        } else if let Some(addr) = arg.strip_prefix("--listen=") {
            listen = Some(addr.to_owned());
        } else if arg == "-h" || arg == "--help" {
            return Err("help requested".to_owned());
        } else {
            return Err(format!("unexpected argument {arg:?}"));
        }
    }
    let listen = listen.or_else(|| env::var("SAMPLE_APP_LISTEN").ok()).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    // `:PORT` binds the address of the host lastgood deployed to (`LASTGOOD_HOST`), so
    // one `run` line serves a whole fleet.
    let listen = match listen.strip_prefix(':') {
        Some(port) => format!("{}:{port}", env::var("LASTGOOD_HOST").unwrap_or_else(|_| "127.0.0.1".into())),
        None => listen,
    };
    Ok((listen, warmup))
}

/// Reads `VERSION` and the env file from the working directory (the release).
fn load() -> Result<App, String> {
    let version = fs::read_to_string("VERSION")
        .map_err(|e| format!("cannot read VERSION in the working directory: {e}"))?
        .trim()
        .to_owned();
    if version.is_empty() {
        return Err("VERSION is empty".to_owned());
    }
    let (path, required) = match env::var("SAMPLE_APP_CONFIG") {
        Ok(path) if !path.is_empty() => (path, true),
        _ => ("app.env".to_owned(), false),
    };
    let vars = match fs::read_to_string(&path) {
        Ok(text) => parse_env(&text).map_err(|e| format!("{path}: {e}"))?,
        Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("cannot read {path}: {e}"));
        }
        Err(_) => HashMap::new(),
    };
    let healthy = match vars.get("HEALTH").map(String::as_str) {
        None | Some("ok") => true,
        Some("fail") => false,
        Some(other) => return Err(format!("{path}: HEALTH must be ok or fail, not {other:?}")),
    };
    let greeting = vars.get("GREETING").cloned().unwrap_or_else(|| "hello".to_owned());
    let secs = |key: &str| -> Result<Option<Duration>, String> {
        vars.get(key)
            .map(|v| {
                v.parse::<f64>().map(Duration::from_secs_f64).map_err(|_| format!("{path}: {key} must be seconds"))
            })
            .transpose()
    };
    let fail_after = secs("FAIL_AFTER")?;
    if let Some(d) = secs("EXIT_AFTER")? {
        thread::spawn(move || {
            thread::sleep(d);
            eprintln!("sample-app: EXIT_AFTER reached, exiting");
            std::process::exit(3);
        });
    }
    Ok(App {
        version,
        healthy,
        greeting,
        fail_after,
        started: std::time::Instant::now(),
        errors: std::sync::atomic::AtomicU64::new(0),
    })
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped.
fn parse_env(text: &str) -> Result<HashMap<String, String>, String> {
    let mut vars = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| format!("line {}: expected KEY=VALUE", n + 1))?;
        vars.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    Ok(vars)
}

fn handle(app: &App, mut stream: TcpStream) {
    // A client that never finishes its request must not pin a thread forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut lines = BufReader::new(reader).take(16 * 1024).lines();
    let Some(Ok(request)) = lines.next() else {
        return;
    };
    // Drain the headers; none of them matter here.
    for line in lines.by_ref() {
        match line {
            Ok(line) if !line.is_empty() => {}
            _ => break,
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == "/slow" {
        let ms = query.strip_prefix("ms=").and_then(|m| m.parse().ok()).unwrap_or(100);
        thread::sleep(Duration::from_millis(ms));
    }
    let (status, body) = match (method, path) {
        ("GET", "/health") if app.healthy => (200, format!("ok {}", app.version)),
        ("GET", "/health") => (500, format!("unhealthy {}", app.version)),
        ("GET", "/") => (200, format!("{} from {}", app.greeting, app.version)),
        ("GET", "/version" | "/slow") => (200, app.version.clone()),
        ("GET", "/work") if app.failing() => {
            app.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (500, "work failed".to_owned())
        }
        ("GET", "/work") => (200, "work done".to_owned()),
        ("GET", "/metrics") => (
            200,
            format!(
                "# TYPE sample_app_errors_total counter\nsample_app_errors_total {}\n",
                app.errors.load(std::sync::atomic::Ordering::Relaxed)
            ),
        ),
        _ => (404, "not found".to_owned()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    eprintln!("sample-app {}: {method} {target} -> {status}", app.version);
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}
