//! The proxy process: `lastgood __proxy DIR`, started detached by the first operation
//! that needs it and left running between lastgood's commands.
//!
//! It is a TCP proxy, not an HTTP one: each accepted connection is joined to one new
//! connection to the routed release, and bytes are copied both ways as they come
//! (through a 16 KiB buffer per direction, never a whole request), so HTTP, WebSocket
//! and anything else over TCP pass through alike. One thread per direction of a
//! connection keeps it simple and its latency low (threads are reused, see
//! [`Workers`]); an open connection costs two threads and two small buffers. Half-closes are passed on (a client that shuts its sending side
//! down still reads the reply).
//!
//! The route is read from `route.json` when the proxy starts and when lastgood says so
//! over the control socket (`control.sock`, a Unix socket in a folder only its owner
//! can open). A new route applies to connections accepted after it; connections
//! already open stay with the release they were joined to until they end, which is
//! what lets lastgood drain the old release: it asks how many connections each
//! backend still has. The control protocol is one line each way: `route` (read the
//! route file again) or `status`, answered by one line of JSON ([`Status`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state;

/// Bound on connecting to a release; a release that accepts no connection in this
/// long is not serving anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BUFFER: usize = 16 * 1024;

/// What the control socket answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub listen: String,
    pub release: Option<u64>,
    pub backend: Option<String>,
    /// Open connections per backend (`host:port`), including ones no longer routed.
    pub connections: BTreeMap<String, usize>,
    /// Set when a `route` command could not be applied.
    #[serde(default)]
    pub error: Option<String>,
}

/// The release new connections go to.
#[derive(Clone)]
struct Backend {
    release: u64,
    name: String,
    addr: SocketAddr,
}

struct Shared {
    /// The folder `state` (the proxy folder's parent) the route file lives in.
    state: PathBuf,
    listen: String,
    route: RwLock<Option<Backend>>,
    open: Mutex<BTreeMap<String, Arc<AtomicUsize>>>,
}

impl Shared {
    fn load(&self) -> Result<(), String> {
        let route = state::read_route(&self.state).map_err(|e| e.to_string())?.unwrap_or_default();
        let backend = match (route.release, route.backend) {
            (Some(release), Some(name)) => {
                let addr = name
                    .to_socket_addrs()
                    .map_err(|e| format!("backend {name}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("backend {name}: no address"))?;
                Some(Backend { release, name, addr })
            }
            _ => None,
        };
        let line = match &backend {
            Some(b) => format!("routing new connections to release #{} at {}", b.release, b.name),
            None => "no release is routed: connections are closed".to_owned(),
        };
        *self.route.write().unwrap_or_else(|e| e.into_inner()) = backend;
        println!("proxy: {line}");
        let _ = std::io::stdout().flush();
        Ok(())
    }

    fn status(&self, error: Option<String>) -> Status {
        let route = self.route.read().unwrap_or_else(|e| e.into_inner()).clone();
        let connections = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::SeqCst)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Status {
            pid: std::process::id(),
            listen: self.listen.clone(),
            release: route.as_ref().map(|b| b.release),
            backend: route.map(|b| b.name),
            connections,
            error,
        }
    }

    fn counter(&self, backend: &str) -> Arc<AtomicUsize> {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).entry(backend.to_owned()).or_default().clone()
    }
}

/// Counts a connection as open for as long as it lives.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the proxy whose state lives in `state` (`<deploy_to>/.lastgood`); returns the
/// exit code when it cannot start. It does not return otherwise.
pub fn serve(state: &Path) -> i32 {
    let route = match state::read_route(state) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!(
                "proxy: {} is missing: lastgood writes it before it starts the proxy",
                state::route_file(state).display()
            );
            return 2;
        }
        Err(e) => {
            eprintln!("proxy: {e}");
            return 2;
        }
    };
    let listener = match TcpListener::bind(&route.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("proxy: cannot listen on {}: {e}", route.listen);
            return 1;
        }
    };
    let shared = Arc::new(Shared {
        state: state.to_owned(),
        listen: route.listen.clone(),
        route: RwLock::new(None),
        open: Mutex::new(BTreeMap::new()),
    });
    if let Err(e) = shared.load() {
        eprintln!("proxy: {e}");
        return 2;
    }
    let socket = state::control_socket(state);
    let _ = std::fs::remove_file(&socket);
    let control = match UnixListener::bind(&socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("proxy: cannot open its control socket {}: {e}", socket.display());
            return 1;
        }
    };
    println!("proxy: pid {} listening on {}", std::process::id(), route.listen);
    let _ = std::io::stdout().flush();
    {
        let shared = shared.clone();
        thread::spawn(move || {
            for conn in control.incoming().flatten() {
                control_one(&shared, conn);
            }
        });
    }
    let workers = Workers::new();
    for conn in listener.incoming() {
        match conn {
            Ok(client) => {
                let backend = shared.route.read().unwrap_or_else(|e| e.into_inner()).clone();
                let Some(backend) = backend else {
                    drop(client);
                    continue;
                };
                let counter = shared.counter(&backend.name);
                counter.fetch_add(1, Ordering::SeqCst);
                let open = Open(counter);
                workers.run(Box::new(move |workers: &Workers| join(client, &backend, open, workers)));
            }
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(e) => {
                eprintln!("proxy: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    0
}

fn control_one(shared: &Shared, conn: UnixStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(writer) = conn.try_clone() else { return };
    let mut line = String::new();
    if BufReader::new(conn).take(1024).read_line(&mut line).is_err() {
        return;
    }
    let status = match line.trim() {
        "route" => {
            let error = shared.load().err();
            shared.status(error)
        }
        "status" => shared.status(None),
        other => shared.status(Some(format!("unknown command {other:?}"))),
    };
    let mut writer = writer;
    if let Ok(mut text) = serde_json::to_string(&status) {
        text.push('\n');
        let _ = writer.write_all(text.as_bytes());
    }
}

/// A job of the proxy's threads: one direction of one connection, or joining one.
type Job = Box<dyn FnOnce(&Workers) + Send>;

/// The threads that copy bytes, kept for reuse: a connection needs two blocking copies
/// at once, and starting two threads for each short connection costs more than the
/// copying. A job waits for no one: with no idle thread, a new one starts. A thread
/// idle for a minute ends.
#[derive(Clone)]
struct Workers {
    shared: Arc<(Mutex<WorkQueue>, std::sync::Condvar)>,
}

#[derive(Default)]
struct WorkQueue {
    jobs: std::collections::VecDeque<Job>,
    idle: usize,
}

const IDLE_EXIT: Duration = Duration::from_secs(60);
const STACK: usize = 256 * 1024;

impl Workers {
    fn new() -> Self {
        Self { shared: Arc::new((Mutex::new(WorkQueue::default()), std::sync::Condvar::new())) }
    }

    fn run(&self, job: Job) {
        let (lock, wake) = &*self.shared;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        q.jobs.push_back(job);
        if q.idle >= q.jobs.len() {
            wake.notify_one();
            return;
        }
        drop(q);
        let me = self.clone();
        let spawned = thread::Builder::new().stack_size(STACK).spawn(move || me.work());
        if let Err(e) = spawned {
            // Out of threads: the job waits in the queue for one to be free.
            eprintln!("proxy: cannot start a thread: {e}");
        }
    }

    fn work(&self) {
        let (lock, wake) = &*self.shared;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(job) = q.jobs.pop_front() {
                drop(q);
                job(self);
                q = lock.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            q.idle += 1;
            let (next, timeout) = wake.wait_timeout(q, IDLE_EXIT).unwrap_or_else(|e| e.into_inner());
            q = next;
            q.idle -= 1;
            if timeout.timed_out() && q.jobs.is_empty() {
                return;
            }
        }
    }
}

/// Joins a client to the backend and copies both ways until both sides are done.
fn join(client: TcpStream, backend: &Backend, _open: Open, workers: &Workers) {
    let server = match TcpStream::connect_timeout(&backend.addr, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("proxy: cannot connect to release #{} at {}: {e}", backend.release, backend.name);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { return };
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    workers.run(Box::new(move |_: &Workers| {
        pipe(client2, server2);
        let _ = done_tx.send(());
    }));
    pipe(server, client);
    // The connection counts as open until both directions are done.
    let _ = done_rx.recv();
}

/// Copies `from` to `to` until `from` ends, then passes the end on (a half-close); on
/// an error both are shut down, which also ends the copy the other way.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend that prefixes every byte stream it echoes with its name, and closes
    /// its side when the client closes its own: any protocol over TCP.
    fn echo(name: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        thread::spawn(move || {
            for c in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut c = c;
                    let _ = c.write_all(name.as_bytes());
                    let mut r = c.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut c);
                    let _ = c.shutdown(Shutdown::Write);
                });
            }
        });
        port
    }

    fn ask(state: &Path, command: &str) -> Status {
        let mut c = UnixStream::connect(state::control_socket(state)).unwrap();
        writeln!(c, "{command}").unwrap();
        let mut line = String::new();
        BufReader::new(c).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn bytes_go_both_ways_half_closes_pass_and_a_new_route_takes_only_new_connections() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_owned();
        let (a, b) = (echo("A:"), echo("B:"));
        let listen = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let route = |release: u64, port: u16| state::Route {
            listen: listen.clone(),
            release: Some(release),
            backend: Some(format!("127.0.0.1:{port}")),
            port: Some(port),
        };
        state::write_route(&state, &route(1, a)).unwrap();
        let s = state.clone();
        thread::spawn(move || serve(&s));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while UnixStream::connect(state::control_socket(&state)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the proxy did not start");
            thread::sleep(Duration::from_millis(10));
        }

        // A long-lived connection on A, still open across the switch.
        let mut old = TcpStream::connect(&listen).unwrap();
        old.write_all(b"one ").unwrap();
        state::write_route(&state, &route(2, b)).unwrap();
        let applied = ask(&state, "route");
        assert_eq!((applied.release, applied.error.as_deref()), (Some(2), None));
        assert_eq!(applied.connections.get(&format!("127.0.0.1:{a}")), Some(&1), "{applied:?}");

        let mut new = TcpStream::connect(&listen).unwrap();
        new.write_all(b"x").unwrap();
        new.shutdown(Shutdown::Write).unwrap();
        let mut got = String::new();
        new.read_to_string(&mut got).unwrap();
        assert_eq!(got, "B:x", "a new connection goes to the new route, and its half-close passes");

        old.write_all(b"two").unwrap();
        old.shutdown(Shutdown::Write).unwrap();
        let mut got = String::new();
        old.read_to_string(&mut got).unwrap();
        assert_eq!(got, "A:one two", "an open connection stays with its release");
        // Both connections ended: none is counted any more.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !ask(&state, "status").connections.is_empty() {
            assert!(std::time::Instant::now() < deadline, "{:?}", ask(&state, "status"));
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(ask(&state, "nonsense").error.as_deref(), Some("unknown command \"nonsense\""));
    }
}
