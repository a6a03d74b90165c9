//! The command probe: run a program (no shell) and pass when it exits 0.
//!
//! Commands run in their own process group, so that a timeout can kill the command
//! *and* whatever it started (a `sh -c` wrapper would otherwise leave its children
//! holding our pipes open). Their environment is inherited plus the check's variables;
//! none of it is ever copied into an outcome, since it may hold secrets. Output is
//! drained on threads (a chatty command cannot block on a full pipe) and only its tail
//! is kept, for the failure detail.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::attempt::{Deadline, Failure, Output};
use crate::supervise::resolve_program;

/// How much of a command's output is kept while it runs (only the tail is shown).
const OUTPUT_KEEP_BYTES: usize = 16 * 1024;
/// How often a running command is polled for exit.
const COMMAND_POLL: Duration = Duration::from_millis(10);

/// Runs `argv` in `cwd` with `env` added to the inherited environment; exit 0 passes.
pub(super) fn command_attempt(
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    deadline: Deadline,
) -> Result<String, Failure> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Failure::EmptyCommand);
    };
    let mut child = Command::new(resolve_program(program, cwd))
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| Failure::Spawn { program: program.clone(), source })?;
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline.at => break None,
            Ok(None) => thread::sleep(COMMAND_POLL),
            Err(source) => {
                kill_group(&mut child);
                return Err(Failure::Wait { program: program.clone(), source });
            }
        }
    };
    let Some(status) = status else {
        kill_group(&mut child);
        return Err(deadline.timed_out("waiting for the command"));
    };
    // Output still held open by a background grandchild is not waited for past
    // the deadline (plus a moment, so a quick exit's last words are not lost).
    let grace = deadline.at.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
    let output = Output {
        stdout: stdout.recv_timeout(grace).unwrap_or_default(),
        stderr: stderr.recv_timeout(grace).unwrap_or_default(),
    };
    if status.success() { Ok("exited 0".to_owned()) } else { Err(Failure::Exit { status, output }) }
}

/// Kills the command's whole process group (it was started as its leader) and
/// reaps the command itself.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions. The group id is our
        // unreaped child's pid, so it cannot have been reused by another group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Drains a pipe on its own thread (so a chatty command cannot fill the pipe and
/// block) and sends what it read, tail only, when the pipe closes.
fn collect(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut kept: Vec<u8> = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > 2 * OUTPUT_KEEP_BYTES {
                            kept.drain(..kept.len() - OUTPUT_KEEP_BYTES);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&kept).into_owned());
        });
    } else {
        let _ = tx.send(String::new());
    }
    rx
}
