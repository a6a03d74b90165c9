//! How code is switched: one trait ([`api::Runtime`]), one module per runtime, and
//! [`of`], the one place that looks at which runtime an environment configured.
//!
//! - [`api`]: the trait, the [`api::Site`] a runtime acts at, the activation request.
//! - [`releases`]: release directories and an atomic `current` symlink (Capistrano's
//!   layout, crash-safe).
//! - [`compose`], [`swarm`]: Docker Compose projects and Swarm services, through
//!   [`docker`] (the Engine API, the compose CLI, image records and keep tags).
//! - [`command`]: the user's program switches (a CI job, a parameter store).
//! - [`gitops`]: a version file in a repository a controller applies.
//! - [`tree`]: a release's source tree on disk, unpacked and removed atomically.

pub mod api;
pub mod command;
pub mod compose;
pub mod docker;
pub mod gitops;
pub mod releases;
pub mod swarm;
pub mod tree;

use crate::config::Runtime as Kind;

pub use api::{Activation, NotReady, Observed, Placement, ReleaseFacts, Runtime, Site, StepFacts};

/// The runtime a site is configured with.
pub fn of(site: &Site) -> Box<dyn Runtime + '_> {
    match &site.runtime {
        Kind::Releases => Box::new(releases::Releases { site }),
        Kind::Command { switch, current } => Box::new(command::Command { site, switch, current: current.as_deref() }),
        Kind::Gitops(g) => Box::new(gitops::GitOps { site, cfg: g }),
        Kind::Compose(c) => Box::new(compose::Compose { site, cfg: c }),
        Kind::Swarm { service } => Box::new(swarm::Swarm { site, service }),
    }
}
