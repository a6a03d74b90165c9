//! The shape of `lastgood.toml` as serde reads it, before any value is checked.
//!
//! These structs only say which keys exist and what TOML type each holds; serde turns
//! a typo into an "unknown field" error with its span. Values stay as written
//! ([`Spanned`] where a later check needs to point at them) and are checked by the
//! section files beside this one into the typed values of `types.rs`. Nothing outside
//! the config module sees these structs.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) ledger: Option<RawLedger>,
    #[serde(default)]
    pub(super) environments: BTreeMap<String, Spanned<RawEnv>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    pub(super) url: Option<Spanned<String>>,
    pub(super) url_env: Option<Spanned<String>>,
    pub(super) schema: Option<Spanned<String>>,
    pub(super) allow_superuser: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnv {
    pub(super) runtime: Option<Spanned<String>>,
    pub(super) hosts: Option<Spanned<Vec<String>>>,
    pub(super) source: Option<Spanned<String>>,
    pub(super) deploy_to: Option<Spanned<String>>,
    pub(super) build: Option<Spanned<Vec<String>>>,
    pub(super) run: Option<Spanned<Vec<String>>>,
    pub(super) restart: Option<Spanned<Vec<String>>>,
    pub(super) stop: Option<Spanned<Vec<String>>>,
    pub(super) keep_releases: Option<Spanned<i64>>,
    pub(super) ssh_config: Option<Spanned<String>>,
    pub(super) parallel: Option<Spanned<i64>>,
    pub(super) batch: Option<Spanned<i64>>,
    pub(super) canary: Option<Spanned<i64>>,
    pub(super) on_failure: Option<Spanned<String>>,
    pub(super) config_files: Option<Spanned<Vec<String>>>,
    pub(super) stop_timeout: Option<Spanned<String>>,
    pub(super) lease: Option<Spanned<String>>,
    /// Refuse a deploy or rollback that lowers the major version (default true).
    pub(super) major_guard: Option<bool>,
    #[serde(default)]
    pub(super) checks: Vec<Spanned<RawCheck>>,
    pub(super) database: Option<Spanned<RawDatabase>>,
    pub(super) notify: Option<Spanned<RawNotify>>,
    pub(super) monitor: Option<Spanned<RawMonitor>>,
    pub(super) proxy: Option<Spanned<RawProxy>>,
    // Keys of the other runtimes (SPEC.md), accepted by name so that the error says
    // which runtime they belong to instead of "unknown field".
    pub(super) compose_file: Option<Spanned<toml::Value>>,
    pub(super) project: Option<Spanned<toml::Value>>,
    pub(super) services: Option<Spanned<toml::Value>>,
    pub(super) service: Option<Spanned<toml::Value>>,
    pub(super) switch: Option<Spanned<toml::Value>>,
    pub(super) current: Option<Spanned<toml::Value>>,
    pub(super) repo: Option<Spanned<toml::Value>>,
    pub(super) branch: Option<Spanned<toml::Value>>,
    pub(super) version_file: Option<Spanned<toml::Value>>,
    pub(super) mode: Option<Spanned<toml::Value>>,
    pub(super) trigger: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    #[serde(default)]
    pub(super) webhooks: Vec<String>,
    pub(super) timeout: Option<String>,
    pub(super) attempts: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) drain: Option<Spanned<String>>,
    pub(super) ports: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) url: Option<Spanned<String>>,
    pub(super) url_env: Option<Spanned<String>>,
    pub(super) migrations: Option<Spanned<String>>,
    pub(super) adapter: Option<Spanned<String>>,
    pub(super) backup: Option<Spanned<String>>,
    pub(super) backup_dir: Option<String>,
    pub(super) backup_method: Option<Spanned<String>>,
    pub(super) backup_keep: Option<Spanned<i64>>,
    pub(super) run_in: Option<Spanned<String>>,
    pub(super) service: Option<Spanned<String>>,
    pub(super) alembic: Option<Vec<String>>,
    pub(super) current: Option<Vec<String>>,
    pub(super) up: Option<Vec<String>>,
    pub(super) down_to: Option<Vec<String>>,
    pub(super) lock_timeout: Option<Spanned<String>>,
    pub(super) statement_timeout: Option<Spanned<String>>,
    pub(super) lock_wait: Option<Spanned<String>>,
    /// `"deploy"`: rehearse each release's way back on a scratch database at deploy time.
    pub(super) rehearse: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub(super) http: Option<String>,
    pub(super) tcp: Option<String>,
    pub(super) command: Option<Vec<String>>,
    pub(super) expect_status: Option<u16>,
    pub(super) expect_body: Option<String>,
    pub(super) interval: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) retries: Option<u32>,
}

/// `[environments.X.monitor]`: the bake window after a switch (checked in `monitor.rs`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitor {
    pub(super) duration: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) failures: Option<Spanned<i64>>,
    pub(super) on_regression: Option<Spanned<String>>,
    /// `true` (as long as the window) or a duration.
    pub(super) after_rollback: Option<Spanned<toml::Value>>,
    pub(super) checks: Option<bool>,
    pub(super) process: Option<bool>,
    #[serde(default)]
    pub(super) signals: Vec<Spanned<RawSignal>>,
}

/// `[[environments.X.monitor.signals]]`: one of `prometheus`, `log`, `file` or `command`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSignal {
    pub(super) name: Option<String>,
    pub(super) prometheus: Option<String>,
    pub(super) query: Option<String>,
    pub(super) max: Option<f64>,
    pub(super) min: Option<f64>,
    pub(super) log: Option<String>,
    pub(super) file: Option<String>,
    #[serde(rename = "match")]
    pub(super) patterns: Option<Vec<String>>,
    pub(super) max_per_minute: Option<i64>,
    pub(super) command: Option<Vec<String>>,
    pub(super) timeout: Option<String>,
}
