//! `lastgood __proxy DIR`: the process lastgood starts and records as the proxy. It
//! serves nothing itself: it runs the serving process (`__proxy DIR --worker`,
//! [`super::server::serve`]) and starts it again at once when it dies, so traffic
//! comes back within a fraction of a second without waiting for the next lastgood
//! command (an OOM kill, a crash). The keeper is small, holds no connection and does
//! no I/O but waiting, so it is what is left running.
//!
//! The worker dies with its keeper (`PR_SET_PDEATHSIG`): stopping the proxy (lastgood
//! signals the keeper's process group) or killing the keeper never leaves a worker
//! holding the address with nobody to restart it; the next lastgood command then finds
//! the proxy gone, records the outage and starts it again, as before.
//!
//! A worker that fails at start (its address taken, a route file it cannot read: exit
//! 1 or 2 within its first seconds) is not restarted: the keeper exits with its code,
//! so the lastgood that started it sees the failure and its log. One that dies later,
//! or by a signal, is restarted after a pause that grows while it keeps dying
//! (100 ms, doubling to 2 s, back to 100 ms once a worker has served for a minute).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A worker that exits by itself sooner than this failed at start.
const START: Duration = Duration::from_secs(3);
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// A worker that served this long resets the pause.
const STEADY: Duration = Duration::from_secs(60);

/// Runs the worker until it fails at start; returns that exit code.
pub fn keep(state: &Path) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("proxy: cannot find lastgood's own program to start the proxy: {e}");
            return 1;
        }
    };
    let keeper = std::process::id() as libc::pid_t;
    let mut pause = FIRST_PAUSE;
    let mut restarts = 0u64;
    loop {
        let began = Instant::now();
        let mut worker = Command::new(&exe);
        worker.arg("__proxy").arg(state).arg("--worker").stdin(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls: prctl(2) and
        // getppid(2), and _exit(2) when the keeper died before the prctl took effect.
        unsafe {
            worker.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != keeper {
                    libc::_exit(0);
                }
                Ok(())
            });
        }
        let status = match worker.status() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("proxy: cannot start its serving process ({}): {e}", exe.display());
                return 1;
            }
        };
        let served = began.elapsed();
        match (status.code(), status.signal()) {
            (Some(code), _) if code != 0 && served < START => return code,
            (Some(code), _) => {
                eprintln!("proxy: the serving process exited ({code}) after {served:?}: starting it again")
            }
            (None, Some(sig)) => {
                eprintln!("proxy: the serving process was killed (signal {sig}) after {served:?}: starting it again")
            }
            (None, None) => eprintln!("proxy: the serving process ended after {served:?}: starting it again"),
        }
        restarts += 1;
        pause = if served >= STEADY { FIRST_PAUSE } else { pause };
        std::thread::sleep(pause);
        eprintln!("proxy: restart {restarts}");
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
