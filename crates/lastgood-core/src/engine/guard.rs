//! The guards deploy and rollback share, checked when they are planned so that a
//! preview lists them and a real run refuses before anything is recorded:
//!
//! - the **major-version guard**: going from `2.x` to `1.x` crosses a major release,
//!   whose schema and data changes down migrations may not undo. The OMS runbook says
//!   not to attempt it without the developers; lastgood refuses it unless
//!   `--allow-major` (or `major_guard = false` for the environment).
//! - the **drift guard**: what the outside world says should serve (a pipeline's
//!   `current`, a GitOps version file after a fetch) is not what lastgood last set.
//!   Someone changed it by hand; overwriting it without a word loses their decision.

use super::Engine;
use crate::config::Environment;
use crate::ledger::Release;
use crate::refusal::Refusal;
use crate::runtime::{self, Site};

/// The major number of a version that reads as `[v]MAJOR.MINOR[...]` (a dot is needed:
/// build numbers like `41` are not versions with a major). An image reference
/// (`registry:5000/app:2.1.0`) is read by its tag.
pub fn major(version: &str) -> Option<u64> {
    let tag = if version.contains('/') || version.contains(':') {
        version.rsplit(':').next().unwrap_or(version)
    } else {
        version
    };
    let v = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let (major, rest) = v.split_once('.')?;
    let minor_digits = rest.chars().take_while(char::is_ascii_digit).count();
    if major.is_empty() || !major.chars().all(|c| c.is_ascii_digit()) || minor_digits == 0 {
        return None;
    }
    major.parse().ok()
}

impl Engine {
    /// The refusals of going from `from` to the version `to` (a deploy or rollback):
    /// the major-version guard and the drift guard.
    pub(crate) fn guards(
        &self,
        env: &Environment,
        from: Option<&Release>,
        to: &str,
        allow_major: bool,
        refusals: &mut Vec<Refusal>,
    ) {
        let Some(from) = from else { return };
        if env.major_guard && !allow_major {
            if let (Some(a), Some(b)) = (major(&from.version), major(to)) {
                if b < a {
                    refusals.push(Refusal::MajorVersion { from: from.version.clone(), to: to.to_owned() });
                }
            }
        }
        // On a fleet each host reports its own; after an interrupted operation the
        // world may be half way, and `resume` is what is needed (exit 5, said later).
        if !env.hosts.is_empty() || self.ledger.running_operation(&env.name).ok().flatten().is_some() {
            return;
        }
        let site = Site::local(env);
        let rt = runtime::of(&site);
        match rt.desired() {
            Ok(Some((what, running))) if running != from.version && running != to => {
                refusals.push(Refusal::Drift {
                    what,
                    running,
                    recorded: format!("{} ({})", from.id, from.version),
                    by: rt.changed_by(),
                    consent: rt.drift_consent(),
                });
            }
            Ok(_) => {}
            Err(refusal) => refusals.push(refusal),
        }
    }
}

/// Whether a refusal is answered by the flags given.
pub fn consented(r: &Refusal, yes: bool, allow_major: bool) -> bool {
    match r.consent() {
        Some("--yes") => yes,
        Some("--allow-major") => allow_major,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::major;

    #[test]
    fn majors_need_a_dot_and_read_tags() {
        assert_eq!(major("2.0.0"), Some(2));
        assert_eq!(major("v10.4"), Some(10));
        assert_eq!(major("V1.9.0-rc1"), Some(1));
        assert_eq!(major("registry.local:5000/oms:3.1.2"), Some(3));
        assert_eq!(major("41"), None);
        assert_eq!(major("v2"), None);
        assert_eq!(major("1.x"), None);
        assert_eq!(major("abc1234"), None);
        assert_eq!(major("release-2.0"), None);
    }
}
