//! A fleet of real ssh hosts on loopback, for testing lastgood's ssh fleets.
//!
//! Each host is one system `sshd` (OpenSSH) listening on its own loopback address
//! (`127.0.X.Y`, a free port) with its own host key, running in its own mount
//! namespace where a private tmpfs covers the fleet's deploy folder. Every host
//! therefore sees the same path ([`Fleet::deploy_to`]) but has its own files, which the
//! test reads through `/proc/<holder>/root/...` ([`Fleet::file`]).
//!
//! A long-lived "holder" process (`unshare -m ... sleep infinity`) keeps the namespace
//! and its tmpfs alive, so [`Fleet::stop`] (kill the host's sshd and its sessions:
//! "host down") and [`Fleet::start_again`] ("host back") keep the host's files and the
//! apps started on it. Dropping the [`Fleet`] kills every process in every host's
//! namespace (sshd, sessions, apps started with `setsid`, the holder), also when a test
//! panics.
//!
//! Clients authenticate as root with one ed25519 key of the fleet; host keys are pinned
//! in the fleet's `known_hosts`, and [`Fleet::ssh_config`] ties it together for `ssh -F`.
//! Needs root (mount namespaces), `/usr/sbin/sshd` (`apt-get install openssh-server`),
//! `unshare` and `nsenter` (util-linux), `ssh` and `ssh-keygen`. A missing piece makes
//! [`Fleet::start`] panic, so tests fail rather than skip.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The sshd binary (absolute: sshd refuses to start otherwise).
pub const SSHD: &str = "/usr/sbin/sshd";
/// Where each fleet's deploy folder lives (`<FLEET_ROOT>/<pid>-<n>`).
pub const FLEET_ROOT: &str = "/var/lib/lastgood-fleet";

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// One host of a [`Fleet`].
#[derive(Debug)]
pub struct Host {
    /// `127.0.X.Y`, unique within this process.
    pub addr: String,
    pub port: u16,
    /// The holder of the host's mount namespace (`sleep infinity`).
    holder: Mutex<Option<Child>>,
    holder_pid: u32,
    /// `mnt:[inode]` of the host's namespace.
    ns: String,
    sshd: Mutex<Option<Child>>,
    config: PathBuf,
    log: PathBuf,
    /// `ssh-ed25519 AAAA...` of the host's real key.
    host_key: String,
}

impl Host {
    /// The pid of the process holding the host's mount namespace.
    pub fn holder_pid(&self) -> u32 {
        self.holder_pid
    }
    /// The host's mount namespace, as `readlink /proc/<pid>/ns/mnt` prints it.
    pub fn namespace(&self) -> &str {
        &self.ns
    }
    /// `[addr]:port`, the name ssh pins the host's key under.
    fn known_name(&self) -> String {
        format!("[{}]:{}", self.addr, self.port)
    }
}

/// Real ssh hosts on loopback addresses, sharing one deploy path with separate files.
#[derive(Debug)]
pub struct Fleet {
    dir: TempDir,
    deploy_to: PathBuf,
    hosts: Vec<Host>,
    /// Guards rewrites of known_hosts.
    known: Mutex<()>,
}

static FLEETS: AtomicU32 = AtomicU32::new(0);
static ADDRS: AtomicU32 = AtomicU32::new(0);

/// The next loopback address of this process: `127.0.<pid % 200 + 20 (+1 per 250)>.<1..=250>`.
fn next_addr() -> String {
    let n = ADDRS.fetch_add(1, Ordering::SeqCst);
    let third = (std::process::id() % 200 + 20 + n / 250) % 256;
    format!("127.0.{third}.{}", n % 250 + 1)
}

/// A free port on `addr` (bound and released).
fn free_port_on(addr: &str) -> u16 {
    let ip: Ipv4Addr = addr.parse().expect("loopback address");
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind {addr}:0 ({e}): is the loopback interface up?"))
}

fn require_tools() {
    let mut missing = Vec::new();
    if !Path::new(SSHD).exists() {
        missing.push(format!("{SSHD} (apt-get install -y openssh-server; scripts/services.sh does)"));
    }
    for (tool, package) in [
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            missing.push(format!("{tool} (apt-get install -y {package})"));
        }
    }
    assert!(missing.is_empty(), "the ssh test fleet needs: {}", missing.join(", "));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the ssh test fleet needs root (mount namespaces, sshd, root login); euid is {euid}");
}

fn keygen(path: &Path, comment: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen -f {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let public = fs::read_to_string(path.with_extension("pub")).expect("read the public key");
    // `type base64 comment` -> `type base64`
    public.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

fn ns_of(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().map(|p| p.to_string_lossy().into_owned())
}

/// Every live (not zombie) process whose mount namespace is `ns`.
pub fn pids_in_namespace(ns: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| ns_of(pid).as_deref() == Some(ns) && !is_zombie(pid))
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_none_or(|s| s == "Z" || s == "X")
}

/// (ppid, session id) of a process, from /proc/<pid>/stat.
fn ppid_sid(pid: u32) -> Option<(u32, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // state ppid pgrp session
    Some((f.get(1)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn is_sshd(pid: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/exe")).map(|p| p == Path::new(SSHD)).unwrap_or(false)
}

fn sigkill(pid: u32) {
    // SAFETY: kill has no memory preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// SIGKILLs every process in `ns` but `holder` until none is left (they may fork
/// meanwhile). The holder keeps the namespace alive while this scans: once the last
/// process of a namespace is gone the kernel may give its inode number to a new
/// namespace (another test's host), and a scan by that number would kill it.
fn kill_namespace_but(ns: &str, holder: u32) {
    for _ in 0..50 {
        if is_zombie(holder) || ns_of(holder).as_deref() != Some(ns) {
            return;
        }
        let pids: Vec<u32> = pids_in_namespace(ns).into_iter().filter(|&p| p != holder).collect();
        if pids.is_empty() {
            return;
        }
        pids.into_iter().for_each(sigkill);
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Fleet {
    /// Starts `n` hosts, all sharing the private deploy path [`Fleet::deploy_to`] (same
    /// path, separate files per host), and waits until each accepts a real
    /// `ssh ... true` login. Panics, saying what is missing, when it cannot.
    pub fn start(n: usize) -> Fleet {
        require_tools();
        let dir = tempfile::Builder::new().prefix("lastgood-fleet.").tempdir().expect("temp dir");
        let root = dir.path();
        let unique = format!("{}-{}", std::process::id(), FLEETS.fetch_add(1, Ordering::SeqCst));
        let deploy_to = Path::new(FLEET_ROOT).join(unique);
        fs::create_dir_all(&deploy_to).unwrap_or_else(|e| panic!("mkdir {}: {e}", deploy_to.display()));
        fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (sshd's privilege separation folder)");

        let client_pub = keygen(&root.join("id_ed25519"), "lastgood-fleet-client");
        fs::write(root.join("authorized_keys"), format!("{client_pub}\n")).expect("write authorized_keys");

        let mut fleet = Fleet { dir, deploy_to, hosts: Vec::with_capacity(n), known: Mutex::new(()) };
        for i in 0..n {
            // Pushed one by one, so a panic midway still cleans up the hosts started so far.
            let host = fleet.new_host(i);
            fleet.hosts.push(host);
        }
        fleet.write_known_hosts(|_, h| Some(h.host_key.clone()));
        fleet.write_ssh_config();
        for i in 0..n {
            fleet.spawn_sshd(i);
        }
        for i in 0..n {
            fleet.wait_ready(i);
        }
        fleet
    }

    fn new_host(&self, i: usize) -> Host {
        let root = self.dir.path();
        let addr = next_addr();
        let port = free_port_on(&addr);
        let key = root.join(format!("host{i}_ed25519"));
        let host_key = keygen(&key, &format!("lastgood-fleet-host{i}"));
        let config = root.join(format!("sshd{i}.conf"));
        let log = root.join(format!("sshd{i}.log"));
        let sftp = if Path::new("/usr/lib/openssh/sftp-server").exists() {
            "/usr/lib/openssh/sftp-server"
        } else {
            "internal-sftp"
        };
        fs::write(
            &config,
            format!(
                "ListenAddress {addr}:{port}\n\
                 HostKey {key}\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 AuthorizedKeysFile {auth}\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PidFile none\n\
                 UseDNS no\n\
                 PrintMotd no\n\
                 PrintLastLog no\n\
                 MaxStartups 100:30:200\n\
                 MaxSessions 100\n\
                 LogLevel ERROR\n\
                 Subsystem sftp {sftp}\n",
                key = key.display(),
                auth = root.join("authorized_keys").display(),
            ),
        )
        .expect("write sshd config");

        // The holder: a new mount namespace with a private tmpfs over deploy_to. It says
        // "ready" once mounted, then sleeps until killed.
        let d = self.deploy_to.display();
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("mount -t tmpfs -o mode=0755 lastgood-fleet '{d}' && echo ready && exec sleep infinity"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
        let mut line = String::new();
        let _ = BufReader::new(holder.stdout.take().expect("holder stdout")).read_line(&mut line);
        if line.trim() != "ready" {
            let out = holder.wait_with_output().expect("wait for unshare");
            panic!(
                "cannot make host {i}'s mount namespace (unshare -m + mount tmpfs on {d}; needs root/CAP_SYS_ADMIN): {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        drop(holder.stderr.take());
        let holder_pid = holder.id();
        let ns = ns_of(holder_pid).expect("holder's namespace");
        assert_ne!(Some(&ns), ns_of(std::process::id()).as_ref(), "the holder did not get its own mount namespace");
        Host {
            addr,
            port,
            holder: Mutex::new(Some(holder)),
            holder_pid,
            ns,
            sshd: Mutex::new(None),
            config,
            log,
            host_key,
        }
    }

    fn spawn_sshd(&self, i: usize) {
        let h = &self.hosts[i];
        let log = fs::OpenOptions::new().create(true).append(true).open(&h.log).expect("open sshd log");
        let child = Command::new("nsenter")
            .args(["-t", &h.holder_pid.to_string(), "-m", SSHD, "-D", "-e", "-f"])
            .arg(&h.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nsenter ... {SSHD}: {e}"));
        *h.sshd.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    }

    /// Waits for the port, then for a real login.
    fn wait_ready(&self, i: usize) {
        let h = &self.hosts[i];
        let start = Instant::now();
        let sa: SocketAddr = format!("{}:{}", h.addr, h.port).parse().expect("socket address");
        loop {
            if let Some(child) = h.sshd.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("sshd of host {i} ({sa}) exited ({status}):\n{}", tail(&h.log));
                }
            }
            if TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(start.elapsed() < READY_TIMEOUT, "sshd of host {i} does not listen on {sa}:\n{}", tail(&h.log));
            std::thread::sleep(Duration::from_millis(10));
        }
        loop {
            let out = self.ssh(i, "true");
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "cannot log in to host {i} ({sa}) with `ssh -F {} {} true`: {}\nsshd log:\n{}",
                self.ssh_config().display(),
                h.addr,
                String::from_utf8_lossy(&out.stderr),
                tail(&h.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Rewrites known_hosts: the key `key(i, host)` returns for each host, none for `None`.
    fn write_known_hosts(&self, key: impl Fn(usize, &Host) -> Option<String>) {
        let mut text = String::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if let Some(k) = key(i, h) {
                text.push_str(&format!("{} {k}\n", h.known_name()));
            }
        }
        let tmp = self.dir.path().join("known_hosts.tmp");
        fs::write(&tmp, text).expect("write known_hosts");
        fs::rename(&tmp, self.known_hosts()).expect("replace known_hosts");
    }

    /// Changes host `i`'s line of known_hosts (None: remove it), keeping the others.
    fn edit_known_host(&self, i: usize, line: Option<String>) {
        let _guard = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let name = self.hosts[i].known_name();
        let current = fs::read_to_string(self.known_hosts()).unwrap_or_default();
        let mut text: String = current
            .lines()
            .filter(|l| l.split_whitespace().next() != Some(name.as_str()))
            .map(|l| format!("{l}\n"))
            .collect();
        if let Some(key) = line {
            text.push_str(&format!("{name} {key}\n"));
        }
        let tmp = self.dir.path().join("known_hosts.tmp");
        fs::write(&tmp, text).expect("write known_hosts");
        fs::rename(&tmp, self.known_hosts()).expect("replace known_hosts");
    }

    fn write_ssh_config(&self) {
        let mut text = String::new();
        for h in &self.hosts {
            text.push_str(&format!(
                "Host {addr}\n    Port {port}\n    User root\n    IdentityFile {key}\n    IdentitiesOnly yes\n    UserKnownHostsFile {known}\n\n",
                addr = h.addr,
                port = h.port,
                key = self.identity().display(),
                known = self.known_hosts().display(),
            ));
        }
        text.push_str(
            "Host *\n    BatchMode yes\n    StrictHostKeyChecking yes\n    UpdateHostKeys no\n    \
             GlobalKnownHostsFile /dev/null\n    ConnectTimeout 5\n",
        );
        fs::write(self.ssh_config(), text).expect("write ssh_config");
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The deploy path every host has (privately): `/var/lib/lastgood-fleet/<pid>-<n>`.
    pub fn deploy_to(&self) -> PathBuf {
        self.deploy_to.clone()
    }

    /// The fleet's temp folder (keys, configs, sshd logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An ssh_config for `ssh -F`: per host `Host 127.0.X.Y` with Port, User root,
    /// IdentityFile, IdentitiesOnly and UserKnownHostsFile; BatchMode yes for all.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// The pinned host keys (`[127.0.X.Y]:PORT ssh-ed25519 ...`).
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The client's private key (authorized for root on every host).
    pub fn identity(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// `ssh://root@127.0.X.Y:PORT`
    pub fn url(&self, i: usize) -> String {
        let h = &self.hosts[i];
        format!("ssh://root@{}:{}", h.addr, h.port)
    }

    pub fn urls(&self) -> Vec<String> {
        (0..self.hosts.len()).map(|i| self.url(i)).collect()
    }

    /// Host `i`'s view of `<deploy_to>/<rel>`, readable from the test process.
    pub fn file(&self, i: usize, rel: &str) -> PathBuf {
        let d = self.deploy_to.strip_prefix("/").expect("deploy_to is absolute");
        Path::new(&format!("/proc/{}/root", self.hosts[i].holder_pid)).join(d).join(rel)
    }

    /// The target of the symlink `<deploy_to>/<rel>` on host `i` (None if not a link).
    pub fn read_link(&self, i: usize, rel: &str) -> Option<PathBuf> {
        fs::read_link(self.file(i, rel)).ok()
    }

    /// Host down: kills host `i`'s sshd and its ssh sessions (the commands they run,
    /// but not what was started with `setsid`). Files and apps stay.
    pub fn stop(&self, i: usize) {
        let h = &self.hosts[i];
        if let Some(mut child) = h.sshd.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for _ in 0..50 {
            let pids = pids_in_namespace(&h.ns);
            let sshds: Vec<u32> = pids.iter().copied().filter(|&p| is_sshd(p)).collect();
            // Session commands run in their own session, led by a child of an sshd.
            let leaders: Vec<u32> =
                pids.iter().copied().filter(|&p| ppid_sid(p).is_some_and(|(pp, _)| sshds.contains(&pp))).collect();
            let victims: Vec<u32> = pids
                .into_iter()
                .filter(|p| sshds.contains(p) || ppid_sid(*p).is_some_and(|(_, sid)| leaders.contains(&sid)))
                .collect();
            if victims.is_empty() {
                break;
            }
            victims.into_iter().for_each(sigkill);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Host back: starts host `i`'s sshd again (same address, port, key and files) and
    /// waits until it accepts a login.
    pub fn start_again(&self, i: usize) {
        let running = self.hosts[i]
            .sshd
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if !running {
            self.spawn_sshd(i);
        }
        self.wait_ready(i);
    }

    /// Removes host `i` from known_hosts: ssh then refuses it as an unknown host.
    pub fn forget(&self, i: usize) {
        self.edit_known_host(i, None);
    }

    /// Pins a different, freshly generated key for host `i`: ssh then refuses it for a
    /// changed host key.
    pub fn wrong_key(&self, i: usize) {
        let n = FLEETS.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.path().join(format!("wrong{i}_{n}_ed25519"));
        let key = keygen(&path, "lastgood-fleet-wrong");
        self.edit_known_host(i, Some(key));
    }

    /// Pins host `i`'s real key again (undoes [`Fleet::forget`] and [`Fleet::wrong_key`]).
    pub fn trust(&self, i: usize) {
        self.edit_known_host(i, Some(self.hosts[i].host_key.clone()));
    }

    /// Runs `command` on host `i` as root (through the fleet's ssh_config).
    pub fn ssh(&self, i: usize, command: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .arg(&self.hosts[i].addr)
            .arg("--")
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for h in &self.hosts {
            kill_namespace_but(&h.ns, h.holder_pid);
            for slot in [&h.sshd, &h.holder] {
                if let Some(mut child) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        // The tmpfs went with its namespace; this is the empty mount point.
        let _ = fs::remove_dir(&self.deploy_to);
    }
}
