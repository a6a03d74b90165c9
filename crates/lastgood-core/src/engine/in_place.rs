//! Config files edited in place: the files here compared with the snapshot a release
//! was deployed with.
//!
//! A deploy snapshots the config files it finds on this machine (for a fleet, the
//! controller's copies, which it writes on every host), and a config rollback writes a
//! snapshot back. Someone who edits a file by hand after the deploy changes what
//! serves without any release saying so: `diagnose` names those files, and a
//! `rollback --scope config` of that very release is not "nothing to do" while they
//! differ. Comparing ids of releases (which release's config was last written) cannot
//! see such an edit; only the files' hashes can.

use std::collections::BTreeMap;
use std::path::Path;

use crate::agent::Request;
use crate::config::Environment;
use crate::digest::sha256_hex;
use crate::fleet::Fleet;
use crate::ledger::Release;
use crate::runtime::Site;

/// A config file whose content here differs from a release's snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Edited {
    pub name: String,
    /// What is in place now; None when the file is gone.
    pub content: Option<Vec<u8>>,
}

/// The config files whose content here differs from `release`'s snapshot (a missing
/// file counts). A file the release has no snapshot of is left out: no rollback to it
/// could put that file back.
///
/// Where config files are shared (`<deploy_to>/shared/`, on ssh hosts or beside compose
/// releases built from source), what serves is that copy, on every host: a file that
/// differs on any host counts, with that host's content. A host that cannot be asked
/// counts as unknown, not as edited.
pub(crate) fn edited(env: &Environment, release: &Release, fleet: Option<&Fleet>) -> Vec<Edited> {
    let live = Live::of(env, fleet);
    env.config_files
        .iter()
        .filter_map(|f| {
            let snapshot = release.config.get(&f.name)?;
            let differing = live
                .copies(&f.name, &f.path)
                .into_iter()
                .find(|c| c.as_deref().map(sha256_hex).as_ref() != Some(snapshot));
            differing.map(|content| Edited { name: f.name.clone(), content })
        })
        .collect()
}

/// Where the config files that serve are.
enum Live {
    /// Where lastgood.toml names them.
    Named,
    /// In `<deploy_to>/shared/` here.
    Shared(Box<Site>),
    /// In `<deploy_to>/shared/` on each host, as the hosts that answered hold them.
    Hosts(Vec<BTreeMap<String, Option<Vec<u8>>>>),
}

impl Live {
    fn of(env: &Environment, fleet: Option<&Fleet>) -> Self {
        if !env.config_files_shared() {
            return Self::Named;
        }
        let Some(fleet) = fleet else { return Self::Shared(Box::new(Site::local(env))) };
        Self::Hosts(
            env.hosts
                .iter()
                .filter_map(|h| {
                    let answer = fleet.call(h, &Request::ConfigFiles { site: fleet.site(h) }, &[]).ok()?;
                    serde_json::from_value(answer.value?).ok()
                })
                .collect(),
        )
    }

    /// Every copy of a file (one per host): its content, None where it is missing.
    fn copies(&self, name: &str, path: &Path) -> Vec<Option<Vec<u8>>> {
        match self {
            Self::Named => vec![std::fs::read(path).ok()],
            Self::Shared(site) => vec![std::fs::read(site.shared(name)).ok()],
            Self::Hosts(answers) => answers.iter().map(|a| a.get(name).cloned().flatten()).collect(),
        }
    }
}
