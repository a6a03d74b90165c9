//! lastgood's own process supervisor, for apps deployed with `run = [argv]`.
//!
//! When there is no systemd unit or container to restart, lastgood starts the app
//! itself. The app must outlive the `lastgood deploy` that started it, so it is
//! started *detached*: in its own session and process group (`setsid`), with stdin
//! from `/dev/null` and stdout and stderr appended to a log file. What lastgood
//! remembers about it is a pid file, `app.pid`, holding a [`Running`] as JSON.
//!
//! A pid alone is a weak name — the kernel reuses pids — so the pid file also
//! records the process's start time (field 22 of `/proc/<pid>/stat`, in clock ticks
//! since boot). A process only counts as ours if both match and it is not a zombie;
//! a pid file naming anything else is stale, which is the normal state after a
//! crash or a reboot and therefore not an error.
//!
//! Stopping follows the usual contract: SIGTERM to the whole process group (so a
//! `sh -c` wrapper's children hear it too), a grace period, then SIGKILL to the
//! group. Stopping waits until no live member of the group is left, because the
//! next release wants the same port.
//!
//! This is not a restart-on-crash supervisor: nothing watches the app between
//! lastgood runs. [`Supervisor::start`] also never stops the previous process; the
//! caller decides the order (stop-then-start is the only order that works for apps
//! that bind a fixed port). Linux-only, like the `/proc` it reads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often `stop` looks whether the process is gone.
const POLL: Duration = Duration::from_millis(20);
/// How long `stop` waits for the kernel to finish off a SIGKILLed group. Longer
/// than this means a process stuck in uninterruptible sleep (a dead NFS mount).
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Lines of the log quoted when a process exits right after its start.
const LOG_TAIL_LINES: usize = 20;
/// Bytes of the log read to find those lines.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// Starts, finds and stops the app process whose pid file lives in a state
/// directory.
#[derive(Debug, Clone)]
pub struct Supervisor {
    state_dir: PathBuf,
    pid_file: PathBuf,
    log_file: PathBuf,
    /// Start the process with only the variables given, not lastgood's own
    /// environment (the proxy needs none, and secrets in it must not linger there).
    clean_env: bool,
}

/// The process a pid file names: the contents of `app.pid`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Running {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`; guards against pid reuse.
    pub start_time: u64,
    /// The release the process was started for.
    pub release: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("nothing to run: the command is empty")]
    EmptyArgv,
    #[error("cannot start {program:?}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("pid file {} is not valid: {source}", path.display())]
    CorruptPidFile { path: PathBuf, source: serde_json::Error },
    #[error("cannot send signal {signal} to process {pid}: {source}")]
    Signal { pid: i32, signal: i32, source: io::Error },
    #[error("process {pid} is still running {} after SIGKILL", humantime::format_duration(*waited))]
    StillRunning { pid: i32, waited: Duration },
    #[error("process {pid} exited right after it was started ({})", describe_exit(*code))]
    ExitedAtStart {
        pid: i32,
        code: Option<i32>,
        /// The last lines the process wrote to the log file.
        log_tail: String,
    },
}

fn describe_exit(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SuperviseError + '_ {
    move |source| SuperviseError::Io { path: path.to_owned(), source }
}

impl Supervisor {
    /// state_dir holds `app.pid` (JSON of Running) and `app.log` (appended; a line
    /// `--- lastgood: starting release N at <unix secs> ---` before each start)
    pub fn new(state_dir: &Path) -> Self {
        Supervisor {
            state_dir: state_dir.to_owned(),
            pid_file: state_dir.join("app.pid"),
            log_file: state_dir.join("app.log"),
            clean_env: false,
        }
    }

    /// A process with a pid file and a log of its own (a release run beside another
    /// behind the proxy, the proxy itself); the pid file's folder is its state
    /// directory.
    pub fn at(pid_file: PathBuf, log_file: PathBuf) -> Self {
        let state_dir = pid_file.parent().map(Path::to_path_buf).unwrap_or_default();
        Supervisor { state_dir, pid_file, log_file, clean_env: false }
    }

    /// The process gets only the variables `start` is given.
    pub fn clean_env(mut self) -> Self {
        self.clean_env = true;
        self
    }

    pub fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The process named by the pid file, if it is alive (exists in /proc, state
    /// not 'Z' zombie, start_time matches). A stale pid file is not an error:
    /// Ok(None).
    pub fn running(&self) -> Result<Option<Running>, SuperviseError> {
        let text = match fs::read(&self.pid_file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_at(&self.pid_file)(source)),
        };
        let recorded: Running = serde_json::from_slice(&text)
            .map_err(|source| SuperviseError::CorruptPidFile { path: self.pid_file.clone(), source })?;
        Ok(is_alive(&recorded).then_some(recorded))
    }

    /// Stops the running process (SIGTERM to its process group, poll every 20ms up
    /// to `grace`, then SIGKILL to the group and wait until gone), removes the pid
    /// file, returns what was stopped. Nothing running: Ok(None). Reap with
    /// waitpid(WNOHANG) in case it is our own child.
    pub fn stop(&self, grace: Duration) -> Result<Option<Running>, SuperviseError> {
        let Some(running) = self.running()? else {
            self.remove_pid_file()?;
            return Ok(None);
        };
        signal_group(running.pid, libc::SIGTERM)?;
        if !wait_until_gone(&running, Instant::now() + grace) {
            signal_group(running.pid, libc::SIGKILL)?;
            if !wait_until_gone(&running, Instant::now() + KILL_WAIT) {
                return Err(SuperviseError::StillRunning { pid: running.pid, waited: KILL_WAIT });
            }
        }
        self.remove_pid_file()?;
        Ok(Some(running))
    }

    /// Starts argv detached: setsid() in pre_exec (own session and process group),
    /// stdin /dev/null, stdout+stderr appended to the log file, cwd = `cwd`, env =
    /// inherited + `env`. A relative argv[0] that contains a '/' is resolved against
    /// `cwd`. Writes the pid file atomically (write tmp, fsync, rename, fsync dir).
    /// Then waits `settle` and if the process already exited, returns ExitedAtStart
    /// with the last 20 lines of the log. Does NOT stop anything itself.
    pub fn start(
        &self,
        argv: &[String],
        cwd: &Path,
        env: &[(String, String)],
        release: u64,
        settle: Duration,
    ) -> Result<Running, SuperviseError> {
        let argv = crate::placeholder::argv(argv, env);
        let (program, args) = argv.split_first().ok_or(SuperviseError::EmptyArgv)?;
        fs::create_dir_all(&self.state_dir).map_err(io_at(&self.state_dir))?;
        let (log, output_starts_at) = self.open_log(release)?;
        let log_for_stderr = log.try_clone().map_err(io_at(&self.log_file))?;

        let mut command = Command::new(resolve_program(program, cwd));
        if self.clean_env {
            command.env_clear();
        }
        command
            .args(args)
            .current_dir(cwd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr);
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed; it calls setsid(2), which is, and
        // allocates nothing. setsid cannot fail here: a freshly forked child is
        // never a process group leader.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| SuperviseError::Spawn { program: program.clone(), source })?;
        // Invariant: Linux pids are at most PID_MAX_LIMIT (2^22), so they fit in i32.
        let pid = libc::pid_t::try_from(child.id()).expect("Linux pids fit in pid_t");

        // The child is not reaped yet, so its /proc entry exists even if it died.
        let stat_path = PathBuf::from(format!("/proc/{pid}/stat"));
        let start_time = match proc_stat(pid) {
            Ok(Some(stat)) => stat.start_time,
            Ok(None) => {
                kill_child(&mut child);
                return Err(io_at(&stat_path)(io::ErrorKind::NotFound.into()));
            }
            Err(source) => {
                kill_child(&mut child);
                return Err(io_at(&stat_path)(source));
            }
        };
        let running = Running { pid, start_time, release };
        if let Err(e) = self.write_pid_file(&running) {
            // A process no pid file names could never be stopped by lastgood.
            kill_child(&mut child);
            return Err(e);
        }

        thread::sleep(settle);
        // Some(exit code) if it is gone already.
        let exited: Option<Option<i32>> = match child.try_wait() {
            Ok(status) => status.map(|s| s.code()),
            // Only if something else reaped it (SIGCHLD ignored): ask /proc.
            Err(_) if is_alive(&running) => None,
            Err(_) => Some(None),
        };
        // `child` is dropped without waiting: the app is meant to outlive us.
        if let Some(code) = exited {
            self.remove_pid_file()?;
            return Err(SuperviseError::ExitedAtStart { pid, code, log_tail: self.log_tail(output_starts_at) });
        }
        Ok(running)
    }

    /// Opens the log for appending, writes the start marker, and returns the file
    /// and the offset where this start's output begins.
    fn open_log(&self, release: u64) -> Result<(File, u64), SuperviseError> {
        let mut log =
            OpenOptions::new().create(true).append(true).open(&self.log_file).map_err(io_at(&self.log_file))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        writeln!(log, "--- lastgood: starting release {release} at {now} ---").map_err(io_at(&self.log_file))?;
        let offset = log.metadata().map_err(io_at(&self.log_file))?.len();
        Ok((log, offset))
    }

    /// The last [`LOG_TAIL_LINES`] lines written to the log since `from`. Best
    /// effort: it decorates an error and must not replace it.
    fn log_tail(&self, from: u64) -> String {
        let read = || -> io::Result<String> {
            let mut file = File::open(&self.log_file)?;
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(from.max(len.saturating_sub(LOG_TAIL_BYTES))))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        let text = read().unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Replaces the pid file so that a reader sees the old contents or the new,
    /// never a torn write, even across a power cut.
    fn write_pid_file(&self, running: &Running) -> Result<(), SuperviseError> {
        let name = self.pid_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = self.state_dir.join(format!("{name}.tmp"));
        // Invariant: `Running` is plain integers, which always serialize.
        let json = serde_json::to_vec(running).expect("Running serializes");
        let mut file = File::create(&tmp).map_err(io_at(&tmp))?;
        file.write_all(&json).and_then(|()| file.sync_all()).map_err(io_at(&tmp))?;
        drop(file);
        fs::rename(&tmp, &self.pid_file).map_err(io_at(&self.pid_file))?;
        File::open(&self.state_dir).and_then(|dir| dir.sync_all()).map_err(io_at(&self.state_dir))
    }

    fn remove_pid_file(&self) -> Result<(), SuperviseError> {
        match fs::remove_file(&self.pid_file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_at(&self.pid_file)(e)),
            _ => Ok(()),
        }
    }
}

/// `program` as `Command::new` should see it: relative paths with a directory
/// part (`bin/app`, `./run.sh`) are taken relative to `cwd` rather than to
/// lastgood's own working directory; bare names are left for the `PATH` search.
pub(crate) fn resolve_program(program: &str, cwd: &Path) -> PathBuf {
    let path = Path::new(program);
    if program.contains('/') && path.is_relative() { cwd.join(path) } else { path.to_owned() }
}

/// The fields of `/proc/<pid>/stat` lastgood cares about.
struct ProcStat {
    state: char,
    pgrp: i32,
    start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` if there is no such process.
fn proc_stat(pid: i32) -> io::Result<Option<ProcStat>> {
    // pid 0 and negatives name no process; 1 is init, never ours. Refusing them
    // here also keeps them away from kill(2), where they mean "everyone".
    if pid <= 1 {
        return Ok(None);
    }
    let text = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        // ESRCH: the process vanished between open and read.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    parse_stat(&text)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat format"))
}

/// Parses a stat line. The command name (field 2) is in parentheses and may
/// itself contain spaces and parentheses, so fields are counted from the last ')'.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // Fields 3 onwards: state is field 3, pgrp field 5, starttime field 22.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(5 - 3)?.parse().ok()?,
        start_time: fields.get(22 - 3)?.parse().ok()?,
    })
}

fn is_dead_state(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// Whether the process a pid file names is the one alive under that pid.
fn is_alive(running: &Running) -> bool {
    matches!(
        proc_stat(running.pid),
        Ok(Some(stat)) if !is_dead_state(stat.state) && stat.start_time == running.start_time
    )
}

/// Whether any live process is in process group `pgid`. Zombies do not count:
/// they hold no port and no file, and reaping them is their parent's business.
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(|pid| proc_stat(pid).ok().flatten())
            .is_some_and(|stat| stat.pgrp == pgid && !is_dead_state(stat.state))
    })
}

/// Polls until neither the process nor any member of its group is alive, or
/// until `deadline`; true if they are gone.
fn wait_until_gone(running: &Running, deadline: Instant) -> bool {
    loop {
        reap(running.pid);
        // The leader is checked first because it is one file; the /proc scan for
        // stragglers only runs once the leader is gone.
        if !is_alive(running) && !group_alive(running.pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Reaps `pid` if it is our own child and has exited (when the same lastgood
/// process started it); otherwise does nothing.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    // WNOHANG makes it non-blocking; for a pid that is not our child it fails with
    // ECHILD and changes nothing. `pid` was checked against /proc (start time
    // included) before stopping began, and a zombie's pid is not reused until it is
    // reaped, so this cannot reap an unrelated child.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

/// Sends `signal` to the process group led by `pid` (every start makes the
/// process a group leader), or to the process alone if it leads no group.
fn signal_group(pid: i32, signal: i32) -> Result<(), SuperviseError> {
    if pid <= 1 {
        // Guarded by proc_stat already; -1 and 0 would signal far too much.
        return Ok(());
    }
    for target in [-pid, pid] {
        // SAFETY: kill(2) has no memory-safety preconditions; `target` is never 0
        // or -1, which would address our own group or every process.
        if unsafe { libc::kill(target, signal) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(SuperviseError::Signal { pid, signal, source: err });
        }
    }
    // ESRCH both ways: it died on its own in the meantime.
    Ok(())
}

/// Kills and reaps a child we just started but cannot keep track of.
fn kill_child(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        let _ = signal_group(pid, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    const SETTLE: Duration = Duration::from_millis(200);

    #[test]
    fn start_then_stop() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(&dir.path().join("state"));
        assert_eq!(sup.running().unwrap(), None);

        let started = sup.start(&argv(&["sleep", "30"]), dir.path(), &[], 7, SETTLE).unwrap();
        assert_eq!(started.release, 7);
        assert_eq!(sup.running().unwrap(), Some(started.clone()));
        let on_disk: Running = serde_json::from_slice(&fs::read(sup.pid_file()).unwrap()).unwrap();
        assert_eq!(on_disk, started);
        let log = fs::read_to_string(sup.log_file()).unwrap();
        assert!(log.starts_with("--- lastgood: starting release 7 at "), "{log}");

        let stopped = sup.stop(Duration::from_secs(5)).unwrap();
        assert_eq!(stopped, Some(started.clone()));
        assert_eq!(sup.running().unwrap(), None);
        assert!(!sup.pid_file().exists());
        assert!(!Path::new(&format!("/proc/{}", started.pid)).exists());
        assert_eq!(sup.stop(Duration::from_secs(1)).unwrap(), None);
    }

    #[test]
    fn process_ignoring_sigterm_is_killed_after_grace() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path());
        let script = "trap '' TERM; sleep 30; true";
        let started = sup.start(&argv(&["sh", "-c", script]), dir.path(), &[], 1, SETTLE).unwrap();
        let grace = Duration::from_millis(300);
        let begun = Instant::now();
        assert_eq!(sup.stop(grace).unwrap(), Some(started.clone()));
        assert!(begun.elapsed() >= grace);
        assert!(!is_alive(&started));
        assert!(!group_alive(started.pid), "the sleep child is gone too");
    }

    #[test]
    fn stale_pid_file_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path());
        let mut exited = Command::new("true").spawn().unwrap();
        let pid = exited.id() as i32;
        exited.wait().unwrap();
        let stale = Running { pid, start_time: 1, release: 3 };
        fs::write(sup.pid_file(), serde_json::to_vec(&stale).unwrap()).unwrap();
        assert_eq!(sup.running().unwrap(), None);

        // Alive, but not the process that was recorded: pid reuse.
        let reused = Running { pid: std::process::id() as i32, start_time: 1, release: 3 };
        fs::write(sup.pid_file(), serde_json::to_vec(&reused).unwrap()).unwrap();
        assert_eq!(sup.running().unwrap(), None);
        assert_eq!(sup.stop(Duration::from_millis(100)).unwrap(), None);
        assert!(!sup.pid_file().exists(), "stop clears a stale pid file");
    }

    #[test]
    fn corrupt_pid_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path());
        fs::write(sup.pid_file(), "not json").unwrap();
        assert!(matches!(sup.running(), Err(SuperviseError::CorruptPidFile { .. })));
    }

    #[test]
    fn program_that_exits_at_once_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path());
        fs::write(sup.log_file(), "old release output\n").unwrap();
        let script = "echo starting; echo boom >&2; exit 3";
        let err = sup.start(&argv(&["sh", "-c", script]), dir.path(), &[], 2, SETTLE).unwrap_err();
        let SuperviseError::ExitedAtStart { code, log_tail, .. } = &err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(*code, Some(3));
        assert_eq!(log_tail, "starting\nboom");
        assert!(!sup.pid_file().exists());
        assert_eq!(sup.running().unwrap(), None);
    }

    #[test]
    fn env_cwd_and_relative_program() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let app = bin.join("app");
        fs::write(&app, "#!/bin/sh\necho \"greeting=$GREETING in $(pwd)\"\nexec sleep 30\n").unwrap();
        fs::set_permissions(&app, fs::Permissions::from_mode(0o755)).unwrap();
        let state = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(state.path());
        let env = [("GREETING".to_owned(), "hi".to_owned())];
        sup.start(&argv(&["bin/app"]), dir.path(), &env, 1, SETTLE).unwrap();
        let log = fs::read_to_string(sup.log_file()).unwrap();
        let cwd = fs::canonicalize(dir.path()).unwrap();
        assert!(log.contains(&format!("greeting=hi in {}", cwd.display())), "{log}");
        assert!(sup.stop(Duration::from_secs(5)).unwrap().is_some());
    }

    #[test]
    fn started_process_leads_its_own_session() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path());
        let started = sup.start(&argv(&["sleep", "30"]), dir.path(), &[], 1, SETTLE).unwrap();
        let stat = proc_stat(started.pid).unwrap().unwrap();
        assert_eq!(stat.pgrp, started.pid);
        sup.stop(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn spawn_failures_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path());
        assert!(matches!(sup.start(&[], dir.path(), &[], 1, SETTLE), Err(SuperviseError::EmptyArgv)));
        let err = sup.start(&argv(&["./no-such-app"]), dir.path(), &[], 1, SETTLE).unwrap_err();
        assert!(matches!(&err, SuperviseError::Spawn { program, .. } if program == "./no-such-app"), "{err:?}");
        assert!(!sup.pid_file().exists());
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 100";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 1234);
        assert_eq!(stat.start_time, 98765);
    }
}
