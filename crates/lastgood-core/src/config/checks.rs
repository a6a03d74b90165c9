//! `[[environments.X.checks]]`: the health checks that decide whether a release is good.
//!
//! Each check has exactly one probe (`http`, `tcp` or `command`) and the patience to
//! spend on it. Only plain `http://` is accepted: the checks run against a health
//! endpoint on loopback or a private network, and [`crate::verify`] has no TLS. What a
//! check does when it runs is `verify`'s business; this file only builds the value.

use std::time::Duration;

use toml::Spanned;

use super::raw::RawCheck;
use super::value::{Fail, parse_duration};
use crate::verify::{Check, Probe};

pub(super) fn check_check(c: Spanned<RawCheck>) -> Result<Check, Fail> {
    let span = c.span();
    let c = c.into_inner();
    let fail = |m: &str| (Some(span.clone()), format!("checks: {m}"));
    let probe = match (c.http, c.tcp, c.command) {
        (Some(url), None, None) => {
            if !url.starts_with("http://") {
                return Err(fail(
                    "http: only http:// URLs are supported (check a plain-HTTP health endpoint, for example on loopback)",
                ));
            }
            Probe::Http { url, expect_status: c.expect_status.unwrap_or(200), expect_body: c.expect_body }
        }
        (None, Some(addr), None) => {
            if c.expect_status.is_some() || c.expect_body.is_some() {
                return Err(fail("expect_status and expect_body apply to http checks only"));
            }
            Probe::Tcp { addr }
        }
        (None, None, Some(argv)) => {
            if argv.is_empty() || argv[0].is_empty() {
                return Err(fail("command: needs a program"));
            }
            if c.expect_status.is_some() || c.expect_body.is_some() {
                return Err(fail("expect_status and expect_body apply to http checks only"));
            }
            Probe::Command { argv }
        }
        _ => {
            return Err(fail("each check needs exactly one of `http`, `tcp` or `command`"));
        }
    };
    let d = |v: Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(s) => parse_duration(&s).map_err(|m| fail(&m.to_string())),
    };
    let retries = c.retries.unwrap_or(20);
    if retries == 0 {
        return Err(fail("retries: must be at least 1 (it counts attempts)"));
    }
    Ok(Check {
        probe,
        interval: d(c.interval, Duration::from_millis(500))?,
        timeout: d(c.timeout, Duration::from_secs(2))?,
        retries,
    })
}
