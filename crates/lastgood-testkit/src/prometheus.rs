//! A private Prometheus server for a test: Debian's `prometheus` on a loopback port,
//! scraping one target every second, with its data in a temporary folder; killed when
//! dropped. Tests that need it fail, never skip, when the program is missing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

pub const PROGRAM: &str = "/usr/bin/prometheus";

pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts a server scraping `target` (`host:port`, path `/metrics`) every second.
    pub fn scraping(target: &str) -> Self {
        assert!(
            Path::new(PROGRAM).exists(),
            "{PROGRAM} is missing: install Debian's `prometheus` package (scripts/services.sh does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(PROGRAM)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Self { child, url: format!("http://{listen}"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !p.ready() {
            assert!(Instant::now() < deadline, "prometheus on {listen} did not become ready in 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(self.url.trim_start_matches("http://")) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if write!(s, "GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.1 200")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
