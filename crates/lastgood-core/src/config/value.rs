//! What every section check shares: a failure that points at the key it is about, and
//! the two kinds of value several sections read the same way (durations and paths).
//!
//! A section check returns [`Fail`]: the span of the offending key (when it has one)
//! and the message after `environments.<name>.`; `Config::parse` turns it into a
//! `file:line:column` error. Keeping this apart from `mod.rs` lets each section file
//! depend on it without depending on the parser that calls them.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A section check's failure: where in the file, and what (without the
/// `environments.<name>.` prefix, which the caller adds).
pub(super) type Fail = (Option<Range<usize>>, String);

/// A duration as written in the config was not one.
#[derive(Debug, thiserror::Error)]
#[error("`{}` is not a duration ({source}); write it like \"500ms\", \"2s\" or \"1m\"", text.escape_debug())]
pub(super) struct DurationError {
    text: String,
    #[source]
    source: humantime::DurationError,
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(s).map_err(|source| DurationError { text: s.to_owned(), source })
}

/// A path from the config, against the config file's folder when relative.
pub(super) fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { dir.join(p) }
}

/// A path that stays inside the folder it is relative to: relative, without `..`,
/// and not empty.
pub(super) fn inside_release(p: &str) -> bool {
    use std::path::Component;
    let path = Path::new(p);
    path.components().next().is_some()
        && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && path.components().any(|c| matches!(c, Component::Normal(_)))
}
