//! `[environments.X.proxy]`: the zero-downtime switch (see [`crate::proxy`]), and the
//! rule that goes with it: `{port}` means the port lastgood gives each release's
//! process, so it is defined only where there is a proxy to give one.
//!
//! The proxy fronts a process lastgood supervises itself (`run`) in release
//! directories: with `restart`, the user's supervisor owns the port, and the other
//! runtimes switch containers or pipelines lastgood does not start.

use std::net::SocketAddr;

use toml::Spanned;

use super::raw::RawEnv;
use super::types::{Runtime, Start};
use super::value::{Fail, parse_duration};
use crate::proxy::settings::{DEFAULT_DRAIN_MS, ProxySettings};

pub(super) fn check_proxy(raw: &RawEnv, runtime: &Runtime, start: &Start) -> Result<Option<ProxySettings>, Fail> {
    let Some(p) = &raw.proxy else { return Ok(None) };
    let span = p.span();
    let p = p.get_ref();
    if *runtime != Runtime::Releases || !matches!(start, Start::Run(_)) {
        return Err((
            Some(span),
            format!(
                "proxy: the zero-downtime switch fronts a process lastgood runs itself: it needs runtime `releases` \
                 with `run = [argv]` (this environment has runtime `{}`{})",
                runtime.name(),
                match start {
                    Start::Restart(_) => " with `restart`",
                    Start::Nothing => " and no `run`",
                    Start::Run(_) => "",
                }
            ),
        ));
    }
    let Some(listen) = &p.listen else {
        return Err((
            Some(span),
            "proxy.listen: missing; the address the proxy listens on, like \"127.0.0.1:8080\"".into(),
        ));
    };
    // `{host}`: each host's own address (a fleet's hosts each have their proxy).
    if listen.get_ref().replace("{host}", "127.0.0.1").parse::<SocketAddr>().is_err() {
        return Err((
            Some(listen.span()),
            format!(
                "proxy.listen: `{}` is not an address; write an IP address and a port, like \"127.0.0.1:8080\", \
                 \"0.0.0.0:80\" or \"{{host}}:8080\" (each host's own address)",
                listen.get_ref().escape_debug()
            ),
        ));
    }
    let drain_ms = match &p.drain {
        None => DEFAULT_DRAIN_MS,
        Some(d) => {
            parse_duration(d.get_ref()).map_err(|m| (Some(d.span()), format!("proxy.drain: {m}")))?.as_millis() as u64
        }
    };
    let ports = match &p.ports {
        None => None,
        Some(r) => Some(parse_ports(r)?),
    };
    Ok(Some(ProxySettings { listen: listen.get_ref().clone(), drain_ms, ports }))
}

/// `"20000-20999"`: both ends included, low to high, never port 0.
fn parse_ports(r: &Spanned<String>) -> Result<(u16, u16), Fail> {
    let bad = || {
        (
            Some(r.span()),
            format!(
                "proxy.ports: `{}` is not a range of ports; write it like \"20000-20999\"",
                r.get_ref().escape_debug()
            ),
        )
    };
    let (a, b) = r.get_ref().split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// `{port}` outside an environment with a proxy names nothing: an error that says so,
/// wherever it is written (`build`, `run`, `restart`, `stop`, the runtime's programs,
/// checks).
pub(super) fn check_port_placeholder(raw: &RawEnv, proxy: bool, env: &crate::model::EnvName) -> Result<(), Fail> {
    if proxy {
        return Ok(());
    }
    let has = |s: &str| s.contains("{port}");
    let message = |key: &str| {
        format!(
            "{key}: `{{port}}` is the port lastgood gives each release's process behind its proxy, and this \
             environment has no [proxy]; add `[environments.{env}.proxy] listen = \"127.0.0.1:8080\"`, or write \
             the port itself"
        )
    };
    for (key, v) in [("build", &raw.build), ("run", &raw.run), ("restart", &raw.restart), ("stop", &raw.stop)] {
        if let Some(v) = v {
            if v.get_ref().iter().any(|a| has(a)) {
                return Err((Some(v.span()), message(key)));
            }
        }
    }
    for (key, v) in [("switch", &raw.switch), ("current", &raw.current), ("trigger", &raw.trigger)] {
        if let Some(v) = v {
            if v.get_ref().as_array().is_some_and(|a| a.iter().any(|x| x.as_str().is_some_and(has))) {
                return Err((Some(v.span()), message(key)));
            }
        }
    }
    for c in &raw.checks {
        let r = c.get_ref();
        let uses = [&r.http, &r.tcp, &r.expect_body].iter().any(|v| v.as_deref().is_some_and(has))
            || r.command.as_ref().is_some_and(|argv| argv.iter().any(|a| has(a)));
        if uses {
            return Err((Some(c.span()), message("checks")));
        }
    }
    Ok(())
}
