//! Health checks: how lastgood decides that a release it just started is good.
//!
//! A [`Check`] is one [`Probe`] (an HTTP GET, a TCP connect or a command) plus the
//! patience to spend on it: how many attempts, how long each may take and how long
//! to wait between them. [`run_checks`] runs a list of them in order and reports one
//! [`CheckOutcome`] per check. It never returns an error and never panics on bad
//! input: a check that cannot even be attempted (an `https://` URL, an empty
//! command) is simply a failed check whose `detail` says why, because the caller's
//! question is always the same — "is this release good?" — and a broken check is a
//! "no" that the operator must be able to read.
//!
//! This is not a monitoring system. Checks run once, right after a deploy or a
//! rollback, so each attempt is bounded by a deadline rather than a socket option
//! alone: a server that accepts the connection and then dribbles one byte per
//! second must not hold the deploy hostage.
//!
//! The probes are small on purpose: HTTP is plain `http://` `GET` over a
//! [`std::net::TcpStream`] (health endpoints are local or on a private network), and
//! commands run without a shell, in their own process group, with [`Vars::env`] added to
//! their environment and never copied into an outcome, since it may hold secrets.
//!
//! The parts: `checks.rs` is the policy (retries, pauses, the summary line);
//! `attempt.rs` one attempt's deadline and failure; `http.rs`, `command.rs` and the TCP
//! connect in `attempt.rs` the probes. The HTTP response parser is [`crate::http1`],
//! shared with the Docker socket client.

mod attempt;
mod checks;
mod command;
mod http;

pub use checks::{Check, CheckOutcome, ChecksFailed, Probe, Vars, run_checks, summary};
