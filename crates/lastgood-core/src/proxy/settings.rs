//! `[environments.ENV.proxy]` as the rest of lastgood reads it, and as it travels to a
//! host's agent inside a [`crate::runtime::Site`]. A leaf: the config module builds it,
//! the proxy module and the actions read it, and it depends on neither.

use serde::{Deserialize, Serialize};

/// How long open connections to a release that no longer receives new ones may take
/// to finish before it is stopped, when `drain` is not set.
pub const DEFAULT_DRAIN_MS: u64 = 30_000;

/// The zero-downtime switch of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySettings {
    /// The public address the proxy listens on (`host:port`, as written; `{host}`
    /// stands for the address of the host it runs on).
    pub listen: String,
    /// Milliseconds open connections to the old release get before it is stopped.
    pub drain_ms: u64,
    /// The ports releases get (`ports = "20000-20999"`, both ends included); None: a
    /// port the kernel picks from its ephemeral range.
    #[serde(default)]
    pub ports: Option<(u16, u16)>,
}

impl ProxySettings {
    /// The settings as they apply on a host reached at `host`.
    pub fn at(&self, host: &str) -> Self {
        Self { listen: self.listen.replace("{host}", host), ..self.clone() }
    }

    /// The port part of `listen`, for the checks `verify` runs through the proxy.
    pub fn listen_port(&self) -> Option<u16> {
        self.listen.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    }
}
