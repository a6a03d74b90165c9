//! Running the user's programs (`build`, `restart`) on this machine.
//!
//! Always an argv with values passed as environment variables and as placeholders
//! inside single elements ([`crate::placeholder`]), never a shell string.
//! Output goes to a log file; on failure the last lines are returned so the error
//! says what the program said.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`{program}` exited with {status}{}", if tail.is_empty() { String::new() } else { format!(":\n{tail}") })]
    Failed { program: String, status: String, tail: String, log: PathBuf },
    #[error("cannot write log {path}: {source}")]
    Log { path: PathBuf, source: std::io::Error },
    #[error("`{program}` did not answer within {after:?}")]
    Timeout { program: String, after: std::time::Duration },
    #[error("waiting for `{program}`: {source}")]
    Wait { program: String, source: std::io::Error },
}

/// Resolves a relative program with a `/` against `cwd` (the release directory), so
/// `./server` means the release's own file whatever lastgood's cwd is.
pub fn program_path(program: &str, cwd: &Path) -> PathBuf {
    let p = Path::new(program);
    if p.is_relative() && program.contains('/') { cwd.join(p) } else { p.to_path_buf() }
}

pub fn run_logged(argv: &[String], cwd: &Path, env: &[(String, String)], log: &Path) -> Result<(), ExecError> {
    let argv = &crate::placeholder::argv(argv, env);
    let program = argv.first().cloned().unwrap_or_default();
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| ExecError::Log { path: log.to_path_buf(), source })?;
    let err = out.try_clone().map_err(|source| ExecError::Log { path: log.to_path_buf(), source })?;
    let status = Command::new(program_path(&program, cwd))
        .args(&argv[1..])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|source| ExecError::Spawn { program: program.clone(), source })?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    let status = match status.code() {
        Some(c) => format!("status {c}"),
        None => "a signal".to_owned(),
    };
    Err(ExecError::Failed { program, status, tail, log: log.to_path_buf() })
}

/// Runs a program that answers a question (`current`): its stdout, or why there is
/// none. Killed after `timeout`; stderr is dropped.
pub fn output(
    argv: &[String],
    cwd: &Path,
    env: &[(String, String)],
    timeout: std::time::Duration,
) -> Result<String, ExecError> {
    use std::io::Read;
    let argv = &crate::placeholder::argv(argv, env);
    let program = argv.first().cloned().unwrap_or_default();
    let mut child = Command::new(program_path(&program, cwd))
        .args(&argv[1..])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ExecError::Spawn { program: program.clone(), source })?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.by_ref().take(64 * 1024).read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Timeout { program, after: timeout });
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(source) => return Err(ExecError::Wait { program, source }),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(ExecError::Failed {
            program,
            status: status.to_string(),
            tail: String::new(),
            log: PathBuf::new(),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
