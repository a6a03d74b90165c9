//! The load generator; see the crate's documentation.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Per request: connect, then the whole answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Failed requests whose error is kept, for the message of a failing test.
const ERRORS_KEPT: usize = 10;

/// What the load saw.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    /// Body of each successful answer -> how many.
    pub bodies: BTreeMap<String, u64>,
    /// The first failures, with when (since the start) and why.
    pub errors: Vec<String>,
    /// The longest time without a successful answer, across all threads, while the
    /// load ran (from its start to its end).
    pub longest_gap: Duration,
    /// Latency of each successful request, in microseconds.
    pub latencies_us: Vec<u64>,
    pub elapsed: Duration,
}

impl Tally {
    /// The latency at quantile `q` (0.5, 0.99), in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        if v.is_empty() {
            return 0;
        }
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i.min(v.len() - 1)]
    }
}

/// A load running in the background.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    started: Instant,
    threads: Vec<JoinHandle<(Tally, Vec<Instant>)>>,
}

impl Load {
    /// Starts `threads` clients sending `GET path` to `addr`; each stops by itself
    /// after `limit` at the latest.
    pub fn start(addr: SocketAddr, path: &str, threads: usize, limit: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let threads = (0..threads.max(1))
            .map(|_| {
                let (stop, ok, path) = (stop.clone(), ok.clone(), path.to_owned());
                thread::spawn(move || client(addr, &path, &stop, &ok, started, started + limit))
            })
            .collect();
        Self { stop, ok, started, threads }
    }

    /// Successful answers so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` more answers succeeded than now, or `timeout` passed;
    /// whether they did.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let target = self.ok() + n;
        let deadline = Instant::now() + timeout;
        while self.ok() < target {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Stops the clients and adds up what they saw.
    pub fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let ended = Instant::now();
        let mut total = Tally::default();
        let mut successes: Vec<Instant> = vec![self.started];
        for t in self.threads {
            let Ok((tally, times)) = t.join() else { continue };
            total.ok += tally.ok;
            total.failed += tally.failed;
            for (k, v) in tally.bodies {
                *total.bodies.entry(k).or_default() += v;
            }
            for e in tally.errors {
                if total.errors.len() < ERRORS_KEPT {
                    total.errors.push(e);
                }
            }
            total.latencies_us.extend(tally.latencies_us);
            successes.extend(times);
        }
        successes.push(ended);
        successes.sort();
        total.longest_gap = successes.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        total.elapsed = ended - self.started;
        total
    }
}

fn client(
    addr: SocketAddr,
    path: &str,
    stop: &AtomicBool,
    ok: &AtomicU64,
    started: Instant,
    deadline: Instant,
) -> (Tally, Vec<Instant>) {
    let mut tally = Tally::default();
    let mut times = Vec::new();
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let t = Instant::now();
        match request(addr, path) {
            Ok(body) => {
                let done = Instant::now();
                tally.ok += 1;
                ok.fetch_add(1, Ordering::SeqCst);
                tally.latencies_us.push((done - t).as_micros() as u64);
                *tally.bodies.entry(body).or_default() += 1;
                times.push(done);
            }
            Err(why) => {
                tally.failed += 1;
                if tally.errors.len() < ERRORS_KEPT {
                    tally.errors.push(format!("at {:?}: {why}", t - started));
                }
                // A refused connection fails at once: do not spin on it.
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    (tally, times)
}

/// One `GET` on a new connection; the body when the status is 200.
pub fn request(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no answer ({} bytes)", answer.len()))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("status {status}: {}", body.trim()));
    }
    Ok(body.trim().to_owned())
}
