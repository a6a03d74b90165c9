//! A log signal: lines matching any of the patterns in the last minute, in the
//! section of the log that the watched release wrote.
//!
//! For the supervised app's log (`log = "app"`), the release's section starts after
//! the marker line the supervisor writes before each start (`--- lastgood: starting
//! release N at SECS ---`); for any other file (`file = PATH`), at the file's end when
//! the window starts. Lines before that belong to the release before: they are the
//! baseline (a release that logs as many errors as the one before it is not blamed).
//!
//! Reads are incremental (only what was appended since the last measurement) and
//! bounded: at most [`MAX_READ`] per measurement, a partial last line of at most
//! [`MAX_LINE`], and one count per measurement of the last minute. A file that shrank
//! was rotated or truncated: reading starts again at its beginning.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Verdict;

/// The most read per measurement; a log growing faster than this is counted in parts.
const MAX_READ: u64 = 4 * 1024 * 1024;
/// The longest partial line kept until its end arrives.
const MAX_LINE: usize = 64 * 1024;
/// How far back the marker of the release's start is looked for, and how much of the
/// log before it is the baseline.
const MARKER_SCAN: u64 = 8 * 1024 * 1024;
const BASELINE_BYTES: u64 = 64 * 1024;
const MINUTE: Duration = Duration::from_secs(60);

pub struct LogWatch {
    path: PathBuf,
    patterns: Vec<String>,
    pub max_per_minute: u64,
    offset: u64,
    /// Where the release's section starts (the baseline is before it).
    start: u64,
    carry: Vec<u8>,
    /// Matching lines per measurement, over the last minute.
    recent: VecDeque<(Instant, u64)>,
}

impl LogWatch {
    /// Watches `path` from the marker of `release`'s start (the supervised app's log),
    /// or from its end now (any other file).
    pub fn new(path: PathBuf, patterns: Vec<String>, max_per_minute: u64, marker_of: Option<u64>) -> Self {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        let start = match marker_of {
            Some(release) => find_marker(&path, len, release).unwrap_or(len),
            None => len,
        };
        Self { path, patterns, max_per_minute, offset: start, start, carry: Vec::new(), recent: VecDeque::new() }
    }

    pub fn threshold(&self) -> String {
        format!("<= {} matching line(s) per minute", self.max_per_minute)
    }

    /// Matching lines in the log before the release's section (its last 64 KiB).
    pub fn baseline(&self) -> Option<(Verdict, String)> {
        if self.start == 0 {
            return None;
        }
        let from = self.start.saturating_sub(BASELINE_BYTES);
        let bytes = read_range(&self.path, from, self.start - from).ok()?;
        let n = self.count(&bytes);
        let verdict = if n > self.max_per_minute { Verdict::Fail } else { Verdict::Pass };
        Some((verdict, format!("{n} matching line(s) in the log of the release before")))
    }

    pub fn measure(&mut self) -> (Verdict, Option<f64>, String) {
        let now = Instant::now();
        let len = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) => return (Verdict::Error, None, format!("cannot read {}: {e}", self.path.display())),
        };
        if len < self.offset {
            self.offset = 0;
            self.carry.clear();
        }
        let want = (len - self.offset).min(MAX_READ);
        let bytes = match read_range(&self.path, self.offset, want) {
            Ok(b) => b,
            Err(e) => return (Verdict::Error, None, format!("cannot read {}: {e}", self.path.display())),
        };
        self.offset += bytes.len() as u64;
        let mut text = std::mem::take(&mut self.carry);
        text.extend_from_slice(&bytes);
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let n = self.count(&text[..complete]);
        self.carry = text[complete..].to_vec();
        self.carry.truncate(MAX_LINE);
        self.recent.push_back((now, n));
        while self.recent.front().is_some_and(|(t, _)| now.duration_since(*t) > MINUTE) {
            self.recent.pop_front();
        }
        let last_minute: u64 = self.recent.iter().map(|(_, n)| n).sum();
        let verdict = if last_minute > self.max_per_minute { Verdict::Fail } else { Verdict::Pass };
        (verdict, Some(last_minute as f64), format!("{last_minute} matching line(s) in the last minute"))
    }

    fn count(&self, bytes: &[u8]) -> u64 {
        String::from_utf8_lossy(bytes).lines().filter(|l| self.patterns.iter().any(|p| l.contains(p.as_str()))).count()
            as u64
    }
}

fn read_range(path: &PathBuf, from: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut out = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut out)?;
    Ok(out)
}

/// The offset just after the last marker line of `release`'s start.
fn find_marker(path: &PathBuf, len: u64, release: u64) -> Option<u64> {
    let from = len.saturating_sub(MARKER_SCAN);
    let bytes = read_range(path, from, len - from).ok()?;
    let needle = format!("--- lastgood: starting release {release} at ");
    let at = bytes.windows(needle.len()).rposition(|w| w == needle.as_bytes())?;
    let end = bytes[at..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| at + i + 1);
    Some(from + end as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_release_section_and_the_last_minute() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "--- lastgood: starting release 1 at 1 ---\nERROR old\nERROR old\n--- lastgood: starting release 2 at 2 ---\nfine\n").unwrap();
        let mut w = LogWatch::new(log.clone(), vec!["ERROR".into()], 0, Some(2));
        assert_eq!(w.baseline().map(|b| b.0), Some(Verdict::Fail));
        assert_eq!(w.measure().0, Verdict::Pass);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        write!(f, "ERROR new\nERROR par").unwrap();
        let (v, n, _) = w.measure();
        assert_eq!((v, n), (Verdict::Fail, Some(1.0)));
        writeln!(f, "tial").unwrap();
        assert_eq!(w.measure().1, Some(2.0));
    }
}
