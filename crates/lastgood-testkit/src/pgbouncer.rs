//! A private PgBouncer (Debian's, `scripts/services.sh` installs it) in transaction
//! pooling mode, in front of the test server that `LASTGOOD_TEST_PG` names, on a free
//! loopback port, with its config, password file and log in a temporary folder. It is
//! stopped (its own process, by pid) when dropped.
//!
//! In transaction mode consecutive transactions of one client may run on different
//! server connections, and a session's state (a `SET`, a session-level advisory lock, a
//! prepared statement) stays behind on the server connection: tests drive lastgood
//! through it to show that nothing it relies on outlives a transaction. The pool is
//! small (4 server connections per database and user) so that clients do share them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port};

pub struct PgBouncer {
    pub port: u16,
    user: String,
    password: String,
    dir: TempDir,
    child: Child,
}

impl PgBouncer {
    pub fn start() -> Self {
        let server = std::env::var("LASTGOOD_TEST_PG")
            .expect("LASTGOOD_TEST_PG is not set: run `eval \"$(scripts/services.sh)\"` first");
        // postgres://user:password@host:port/db
        let rest = server.split_once("://").map(|(_, r)| r).unwrap_or(&server);
        let (userinfo, hostport) =
            rest.split('/').next().and_then(|a| a.rsplit_once('@')).expect("user@host in LASTGOOD_TEST_PG");
        let (user, password) = userinfo.split_once(':').expect("a password in LASTGOOD_TEST_PG");
        let (host, server_port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        let program = Path::new("/usr/sbin/pgbouncer");
        assert!(
            program.exists(),
            "{} is missing: run scripts/services.sh, which installs pgbouncer",
            program.display()
        );

        let dir = tempfile::Builder::new().prefix("lastgood-pgbouncer").tempdir().expect("temp dir");
        let port = free_port();
        let d = dir.path().display();
        let ini = format!(
            "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = md5\nauth_file = {d}/users.txt\npool_mode = transaction\n\
             default_pool_size = 4\nmax_client_conn = 100\nlogfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n\
             ignore_startup_parameters = extra_float_digits\n"
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");
        std::fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"{password}\"\n")).expect("write users.txt");
        let mut cmd = Command::new(program);
        // PgBouncer refuses to run as root; as root, it switches to the postgres user,
        // which must own its folder.
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).status().expect("chown");
            assert!(status.success(), "chown the pgbouncer folder to postgres");
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(dir.path().join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let me = Self { port, user: user.to_owned(), password: password.to_owned(), dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "pgbouncer did not listen on {port}:\n{}", me.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    /// `postgres://user:password@127.0.0.1:<port>/<database>`, through the pooler.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{}:{}@127.0.0.1:{}/{database}", self.user, self.password, self.port)
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
