//! `lastgood serve` for tests: the real binary on a free loopback port, its login URL
//! read from its stderr, and a raw HTTP/1.1 client that sends exactly the headers a
//! test names (a wrong `Host`, a foreign `Origin`, no CSRF token), which a browser or
//! a polite client library would not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestEnv;

/// The token every test server uses.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running `lastgood serve`, stopped when dropped.
pub struct Server {
    child: Child,
    /// The address it listens on, `127.0.0.1:PORT`
    pub addr: String,
    /// The login URL it printed.
    pub login_url: String,
    /// What it printed on stderr before the login URL (warnings).
    pub banner: String,
}

impl Server {
    /// Starts `lastgood serve --listen 127.0.0.1:0` with `args` added.
    pub fn start(env: &TestEnv, args: &[&str]) -> Self {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut cmd = env.cmd(&all);
        cmd.env("LASTGOOD_SERVE_TOKEN", TOKEN).stdout(Stdio::null()).stderr(Stdio::piped());
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("start lastgood serve");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let mut banner = String::new();
        let mut addr = String::new();
        let login_url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("log in: ") {
                        break url.to_owned();
                    }
                    if let Some(rest) = line.strip_prefix("lastgood dashboard on http://") {
                        addr = rest.split(' ').next().unwrap_or_default().to_owned();
                    }
                    banner.push_str(&line);
                    banner.push('\n');
                }
                _ => {
                    let _ = child.kill();
                    panic!("lastgood serve ended before printing its login URL:\n{banner}");
                }
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Self { child, addr, login_url, banner }
    }

    /// A request to this server with `Host` set to its address.
    pub fn request(&self, method: &str, path: &str) -> Req {
        Req {
            addr: self.addr.clone(),
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![("Host".into(), self.addr.clone())],
            body: Vec::new(),
        }
    }

    pub fn get(&self, path: &str) -> Req {
        self.request("GET", path)
    }

    /// GET with the bearer token.
    pub fn api(&self, path: &str) -> Resp {
        self.get(path).bearer().send()
    }

    /// Logs in as `user` and returns the session cookie (`name=value`).
    pub fn login(&self, user: &str) -> String {
        let r = self.get(&format!("/login?token={TOKEN}&user={user}")).send();
        assert_eq!(r.status, 200, "{}", r.body);
        let set = r.header("set-cookie").expect("login sets a cookie");
        set.split(';').next().unwrap_or_default().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request being described.
pub struct Req {
    addr: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    /// Sets a header (replacing one of the same name); an empty value removes it.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    pub fn bearer(self) -> Self {
        self.header("Authorization", &format!("Bearer {TOKEN}"))
    }

    pub fn cookie(self, cookie: &str) -> Self {
        self.header("Cookie", cookie)
    }

    /// A urlencoded form body.
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let mut r = self.header("Content-Type", "application/x-www-form-urlencoded");
        r.body = body.join("&").into_bytes();
        r
    }

    pub fn json(self, value: &serde_json::Value) -> Self {
        let mut r = self.header("Content-Type", "application/json");
        r.body = value.to_string().into_bytes();
        r
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Sends it on a new connection (`Connection: close`) and reads the whole answer.
    pub fn send(self) -> Resp {
        let mut s = TcpStream::connect(&self.addr).expect("connect to lastgood serve");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() || self.method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        s.write_all(head.as_bytes()).expect("send head");
        s.write_all(&self.body).expect("send body");
        read_response(&mut s)
    }
}

/// Reads a response until the server closes the connection.
pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    Resp::parse(&raw)
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A response: status, headers (names in lower case) and body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Self { status, headers, body: body.to_owned() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "expected {status}; got {}:\n{:?}\n{}", self.status, self.headers, self.body);
        self
    }

    #[track_caller]
    pub fn has(&self, text: &str) -> &Self {
        assert!(self.body.contains(text), "the response lacks {text:?}:\n{}", self.body);
        self
    }

    #[track_caller]
    pub fn lacks(&self, text: &str) -> &Self {
        assert!(!self.body.contains(text), "the response has {text:?}:\n{}", self.body);
        self
    }
}

/// Waits until `f` is true (up to `secs`).
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
