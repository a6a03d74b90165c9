//! Why lastgood refused to act: the facts behind exit code 4, as types.
//!
//! A refusal is not a failure: nothing was changed, and there is something the user
//! can do about it (consent, confirm, fix a host, pick another target). The library
//! says which refusal it is with its facts as fields; the CLI (and the dashboard)
//! turn each into a message and a hint that names the command to run next. Previews
//! (`--dry-run`, `--sql`) list the refusals a real run would meet instead of failing.
//!
//! A leaf module: the runtimes, the data-safety gate and the error type all use these
//! types, and none of them may import another to get them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::ReleaseId;

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// Destructive down migrations without what they need (see [`DataLoss`]).
    #[error(transparent)]
    DataLoss(#[from] DataLoss),
    /// The release a rollback returns to cannot be returned to.
    #[error(transparent)]
    NotReady(#[from] NotReady),
    /// The target needs a confirmation (a bad or failed release, a newer one).
    #[error("{}; confirm with --yes", reasons.join("; "))]
    Unconfirmed { reasons: Vec<String> },
    /// Hosts of a fleet that failed the preflight, each with why.
    #[error("{} of {total} host(s) failed the preflight:\n  {}", hosts.len(), hosts.iter().map(|(h, why)| format!("{h}: {why}")).collect::<Vec<_>>().join("\n  "))]
    Preflight { hosts: Vec<(String, String)>, total: usize },
    /// Something the operation needs cannot be reached or used (the database, the
    /// runtime's folder, repository or engine).
    #[error("{what} is not usable: {detail}")]
    Unusable { what: String, detail: String },
    /// The version asked for is not something the runtime has (an image not on the
    /// engine), or cannot be reached the way the runtime ships (a commit that does not
    /// fast-forward a GitOps branch).
    #[error("{detail}")]
    Version { version: String, detail: String },
    /// What the outside world says should serve is not what lastgood last set: someone
    /// changed a pipeline's parameter or a GitOps version file by hand.
    #[error("{} says {running}, but the ledger's current release is {recorded}: someone else changed it{}{}", what, by.as_ref().map(|b| format!(" ({b})")).unwrap_or_default(), if *consent { "; nothing was changed. Decide which version should run; --yes overwrites it" } else { "; lastgood does not overwrite it and nothing was pushed. Decide which version should run, then deploy it" })]
    Drift { what: String, running: String, recorded: String, by: Option<String>, consent: bool },
    /// The rollback or deploy lowers the major version.
    #[error(
        "{to} lowers the major version of the current release {from}: major releases change schemas and data that down migrations may not undo, so going back across one needs the developers; involve them, then pass --allow-major"
    )]
    MajorVersion { from: String, to: String },
    /// `deploy --require-ready`: the release a failure would return to is not ready.
    #[error("the way back is not ready{}: {}", target.map(|t| format!(" (to #{t})")).unwrap_or_default(), reasons.join("; "))]
    WayBack { target: Option<u64>, reasons: Vec<String> },
    /// A GitOps repository's history would lose someone else's work.
    #[error("{detail}")]
    Repository { detail: String },
}

impl Refusal {
    /// The flag that consents to this refusal, when one does (`--allow-data-loss`, `--yes`).
    pub fn consent(&self) -> Option<&'static str> {
        match self {
            Self::DataLoss(DataLoss::NoConsent { .. }) => Some("--allow-data-loss"),
            Self::Unconfirmed { .. } => Some("--yes"),
            Self::Drift { consent: true, .. } => Some("--yes"),
            Self::MajorVersion { .. } => Some("--allow-major"),
            _ => None,
        }
    }
}

/// Why destructive down migrations may not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum DataLoss {
    /// Nobody consented (`--allow-data-loss`).
    #[error("it would revert destructive migrations: {}", migrations.join(", "))]
    NoConsent { migrations: Vec<String> },
    /// An automatic rollback: nobody is there to consent, so it never reverts them.
    #[error("returning by itself would revert destructive migrations: {}", migrations.join(", "))]
    Automatic { migrations: Vec<String> },
    /// `backup = "never"`, and a destructive down needs a backup in the same operation.
    #[error("a destructive down migration needs a backup in the same operation, and backup = \"never\": {}", migrations.join(", "))]
    BackupNever { migrations: Vec<String> },
}

impl DataLoss {
    pub fn migrations(&self) -> &[String] {
        match self {
            Self::NoConsent { migrations } | Self::Automatic { migrations } | Self::BackupNever { migrations } => {
                migrations
            }
        }
    }
}

/// Why a release cannot be returned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotReady {
    #[error("the release directory of {release} ({version}) is gone: {} does not exist", path.display())]
    DirectoryGone { release: ReleaseId, version: String, path: PathBuf },
    #[error("release {release} on this host holds commit {found}, not {expected}")]
    OtherCommit { release: ReleaseId, found: String, expected: String },
    #[error("lastgood has no record of the images release {release} ({version}) ran: it never reached its switch step")]
    NoImageRecord { release: ReleaseId, version: String },
    #[error(
        "the image {id} ({image} of service {service}) that release {release} ran is no longer on the Docker engine; load or rebuild it (docker load, docker build) and tag it {image}"
    )]
    ImageMissing { release: ReleaseId, service: String, image: String, id: String },
    #[error("{what} cannot be reached: {detail}")]
    Unreachable { what: String, detail: String },
    #[error(
        "{what} lives on the machine `{machine}`, and this is `{here}`: an environment without `hosts` keeps its release directories and backups on the machine that wrote them, and the team ledger only knows they exist. Run this command on `{machine}`, or copy the files to the same path here, or give the environment `hosts = [\"ssh://...\"]` so every operator reaches the same files"
    )]
    Elsewhere { what: String, machine: String, here: String },
}
