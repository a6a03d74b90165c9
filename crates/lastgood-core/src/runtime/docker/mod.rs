//! Docker, wrapped once: the Engine API through `bollard`, the compose CLI, image
//! references, and lastgood's own record of which image each release ran.
//!
//! The Engine API answers what the world holds (image ids, container state and health,
//! a Swarm service's `UpdateStatus` and tasks); lastgood never trusts an exit code alone.
//! The client negotiates the API version, since engines differ (20.10 stops at 1.41).
//! Calls are blocking from the caller's side: one small current-thread tokio runtime
//! per [`DockerApi`], each request `block_on`'d.
//!
//! The compose CLI (`docker compose`, v2, else `docker-compose`, v1) is only used for
//! what the API has no notion of: rendering a compose file and `up`. It gets an argv,
//! never a shell string; the version reaches the compose file through the
//! `LASTGOOD_VERSION` variable, never through the command line.
//!
//! **Digests and protection**: see `records.rs`.
//!
//! The parts: `reference.rs` (tags and image references, pure), `api.rs` (the Engine
//! API through bollard, and the one raw request it needs), `compose_cli.rs` (the compose
//! program), `records.rs` (what each release ran, and the keep tags). Container and
//! service names are [`crate::model::ContainerName`]s, checked when the config is read.

mod api;
mod compose_cli;
mod records;
mod reference;

pub use api::{Container, DockerApi, DockerError, POLL, SETTLE_TIMEOUT, SwarmService, SwarmTask};
pub use compose_cli::{ComposeCli, ComposeError};
pub use records::{Image, Record, Records, keep_repo, present};
pub use reference::{InvalidReference, InvalidTag, Reference, check_tag, short};
