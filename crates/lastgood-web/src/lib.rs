//! lastgood's dashboard and JSON API (`lastgood serve`): every environment's
//! timeline, what is good and ready, live operations, and a guarded rollback.
//!
//! It is a view over the same library calls the CLI makes: `Engine::status`,
//! `history`, `plan_rollback`, `rollback`, the incident report. Nothing here decides
//! anything the CLI would decide differently; the JSON documents are the Serialize of
//! `lastgood_core::view`'s types, the CLI's `--format json`.
//!
//! The parts: [`http`] (a small HTTP/1.1 server with limits), [`guard`] (token,
//! sessions, Host, CSRF), `routes` (which request goes where, and the headers every
//! response carries), `pages` (server-rendered HTML with maud, which escapes by
//! default), `api` and `events` (JSON and server-sent events), `metrics` (Prometheus
//! text), `rollback` (the one write: form and API). A separate crate from the library
//! because only the dashboard needs an HTTP server and templates.
//!
//! Each request opens its own [`Engine`] (one SQLite connection): the engine is not
//! shared between threads, and opening it costs a fraction of a millisecond.

pub mod guard;
pub mod http;

mod api;
mod events;
mod metrics;
mod pages;
mod rollback;
mod routes;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use lastgood_core::config::Config;
use lastgood_core::context::Context;
use lastgood_core::engine::Engine;
use lastgood_core::{Error, Result};

/// `lastgood serve`'s flags.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: String,
    pub host: Option<String>,
    pub allow_writes: bool,
    /// `LASTGOOD_SERVE_TOKEN`; None: one is generated.
    pub token: Option<String>,
}

/// The server's state, shared by every connection's thread.
pub struct App {
    config: Config,
    ctx: Context,
    token: String,
    sessions: guard::Sessions,
    hosts: guard::Hosts,
    listen: SocketAddr,
    writes: bool,
}

impl App {
    fn engine(&self) -> Result<Engine> {
        Engine::open(self.config.clone(), self.ctx.clone())
    }

    /// The engine of a change made from the dashboard: the actor is `web:<user>`.
    fn engine_for(&self, user: &str) -> Result<Engine> {
        let mut ctx = self.ctx.clone();
        ctx.user = format!("web:{user}");
        Engine::open(self.config.clone(), ctx)
    }

    /// Whether the server listens on a loopback address only.
    fn loopback(&self) -> bool {
        self.listen.ip().is_loopback()
    }
}

/// A bound server, not yet serving: its address and the login URL to print.
pub struct Bound {
    listener: TcpListener,
    app: Arc<App>,
    pub addr: SocketAddr,
    pub login_url: String,
    /// The address is not loopback: anyone who can reach it may try the token.
    pub exposed: bool,
}

/// Binds the address (port 0 picks a free one) and makes the token.
pub fn bind(opts: &Options, config: Config, ctx: Context) -> Result<Bound> {
    let usage = |what: String| Error::Usage { what };
    let listener =
        TcpListener::bind(opts.listen.as_str()).map_err(|e| usage(format!("--listen {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(|e| usage(format!("--listen {}: {e}", opts.listen)))?;
    let token = match &opts.token {
        Some(t) if t.len() < 16 || !t.chars().all(|c| c.is_ascii_graphic()) => {
            return Err(usage("LASTGOOD_SERVE_TOKEN must be at least 16 printable characters without spaces".into()));
        }
        Some(t) => t.clone(),
        None => guard::random_hex(24).map_err(|e| usage(format!("reading /dev/urandom for a token: {e}")))?,
    };
    if let Some(h) = &opts.host {
        if h.is_empty() || !h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')) {
            return Err(usage(format!("--host {h:?}: a host name, optionally with :PORT")));
        }
    }
    let shown = match &opts.host {
        Some(h) if h.contains(':') && !h.starts_with('[') => h.clone(),
        Some(h) => format!("{h}:{}", addr.port()),
        None => addr.to_string(),
    };
    let login_url = format!("http://{shown}/login?token={token}");
    let app = App {
        config,
        ctx,
        token,
        sessions: guard::Sessions::default(),
        hosts: guard::Hosts::new(addr, opts.host.as_deref()),
        listen: addr,
        writes: opts.allow_writes,
    };
    Ok(Bound { listener, app: Arc::new(app), addr, login_url, exposed: !addr.ip().is_loopback() })
}

impl Bound {
    /// Serves until the process ends.
    pub fn run(self) -> Result<()> {
        let app = self.app;
        let handler: Arc<http::Handler> = Arc::new(move |r: &http::Request| routes::handle(&app, r));
        http::serve(self.listener, handler).map_err(|e| Error::Usage { what: format!("serving: {e}") })
    }
}
