//! serve: the dashboard and JSON API (crates/lastgood-web), until the process ends.

use lastgood_core::Result;
use lastgood_core::config::Config;
use lastgood_core::context::Context;

use crate::args::Cli;

pub fn serve(cli: &Cli, listen: &str, host: Option<&str>, allow_writes: bool) -> Result<i32> {
    let config = Config::load(&Config::locate(cli.global.config.as_deref()))?;
    // The ledger opens (and its schema is checked) before anyone is told to log in.
    lastgood_core::engine::Engine::open(config.clone(), Context::from_env())?;
    let opts = lastgood_web::Options {
        listen: listen.to_owned(),
        host: host.map(str::to_owned),
        allow_writes,
        token: std::env::var("LASTGOOD_SERVE_TOKEN").ok().filter(|t| !t.is_empty()),
    };
    let bound = lastgood_web::bind(&opts, config, Context::from_env())?;
    if bound.exposed {
        eprintln!(
            "warning: listening on {}, which is not a loopback address: anyone who can reach it may try the \
             token; put TLS in front of it",
            bound.addr
        );
    }
    eprintln!(
        "lastgood dashboard on http://{} ({})",
        bound.addr,
        if allow_writes { "rollbacks enabled" } else { "read-only" }
    );
    eprintln!("log in: {}", bound.login_url);
    bound.run()?;
    Ok(0)
}
