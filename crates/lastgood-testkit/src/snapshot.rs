//! Whole outputs as snapshots: the exit code, stdout and stderr of one run as one text
//! ([`Run::whole_output`]), and the filters that make it the same on every run and every
//! machine ([`TestEnv::filters`]).
//!
//! What varies is replaced by a placeholder in brackets, never dropped, so a snapshot
//! still shows that a pid, a time or a commit is printed and where:
//!
//! | what | example | placeholder |
//! |---|---|---|
//! | the workspace's temp folder | `/tmp/lastgood-testAbC12/srv/releases/2` | `[TEMP]/srv/releases/2` |
//! | the folder of the built binaries | `.../target/debug/lastgood-sample-app` | `[BIN]/lastgood-sample-app` |
//! | the app's port | `127.0.0.1:41234` | `127.0.0.1:[PORT]` |
//! | a time other than the pinned clock | `2026-12-06T13:21:38Z` | `[TIME]` |
//! | durations | `   907ms`, `"duration_ms": 3`, `+0.051s` | `  [MS]ms`, `"duration_ms": [MS]`, `+[S]s` |
//! | check attempts | `(2 attempts, 60ms)`, `"attempts": 2` | `([N] attempt(s), [MS]ms)`, `"attempts": [N]` |
//! | pids | `pid 13763`, `"pid": 13763` | `pid [PID]`, `"pid": [PID]` |
//! | hashes | 64, 40 and 12 hex digits | `[SHA256]`, `[COMMIT]`, `[SHORT-HASH]` |
//!
//! Times are pinned where lastgood lets them be (`LASTGOOD_NOW`, see
//! [`TestEnv::pin_context`]): the pinned time, [`PINNED_NOW`], is left as it is, so a
//! snapshot shows the format and which times come from the clock a test controls; step
//! times come from the real clock and end up as `[TIME]`.

use crate::{Run, TestEnv};

/// The clock [`TestEnv::pin_context`] pins.
pub const PINNED_NOW: &str = "2026-01-01T00:00:00Z";
/// The machine name [`TestEnv::pin_context`] pins.
pub const PINNED_HOST: &str = "test-host";

const NOW_TOKEN: &str = "<<pinned now>>";

impl Run {
    /// Exit code, stdout and stderr as one text, the way a snapshot shows a run.
    pub fn whole_output(&self) -> String {
        let status = match (self.code, self.signal) {
            (Some(c), _) => format!("exit code: {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "no exit code".to_owned(),
        };
        format!("{status}\n----- stdout -----\n{}----- stderr -----\n{}", self.stdout, self.stderr)
    }
}

impl TestEnv {
    /// `(regex, replacement)` pairs for insta's filters, in the order they must apply.
    pub fn filters(&self) -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = Vec::new();
        let mut path = |p: &std::path::Path, with: &str| {
            f.push((escape(&p.display().to_string()), with.to_owned()));
            if let Ok(real) = p.canonicalize() {
                if real != p {
                    f.push((escape(&real.display().to_string()), with.to_owned()));
                }
            }
        };
        path(self.path(), "[TEMP]");
        if let Some(bin) = self.bin.parent() {
            path(bin, "[BIN]");
        }
        let port = self.port;
        let fixed: &[(&str, &str)] = &[
            (&format!(r"127\.0\.0\.1:{port}\b"), "127.0.0.1:[PORT]"),
            // The pinned clock stays as it is (it shows the format); any other time is
            // filtered, so the pinned one hides behind a token meanwhile.
            (&escape(PINNED_NOW), NOW_TOKEN),
            (r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", "[TIME]"),
            (NOW_TOKEN, PINNED_NOW),
            // How many attempts a passing check needed depends on how fast the app started.
            (r"\(\d+ attempts?, \d+ms\)", "([N] attempt(s), [MS]ms)"),
            (r#""attempts": \d+"#, r#""attempts": [N]"#),
            (r"\| (passed|FAILED) \| \d+ \|", "| $1 | [N] |"),
            (r#""(\w+_ms)": \d+"#, r#""$1": [MS]"#),
            // Right-aligned in six columns (step progress, `db history`): keep the width.
            (r"[ \d]{5}\d( ?)ms\b", "  [MS]${1}ms"),
            (r"\b\d+ ?ms\b", "[MS]ms"),
            (r"\b\d+\.\d{3}s\b", "[S]s"),
            (r"\bpid \d+", "pid [PID]"),
            (r#""pid": \d+"#, r#""pid": [PID]"#),
            (r"\b[0-9a-f]{64}\b", "[SHA256]"),
            (r"\b[0-9a-f]{40}\b", "[COMMIT]"),
            // As wide as what it replaces, so that tables stay aligned.
            (r"\b[0-9a-f]{12}\b", "[SHORT-HASH]"),
        ];
        f.extend(fixed.iter().map(|(re, with)| ((*re).to_owned(), (*with).to_owned())));
        f
    }
}

/// `s` as a regex that matches it literally.
fn escape(s: &str) -> String {
    let mut e = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            e.push('\\');
        }
        e.push(c);
    }
    e
}
