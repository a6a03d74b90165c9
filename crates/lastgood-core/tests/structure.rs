//! The shape of the library, checked by reading its source: no import cycle between
//! files, no file over 700 lines of non-test code, no branching on a runtime's name
//! outside config parsing, and the CLI's contract pinned by enough snapshot files.
//!
//! A cycle between files is how a library stops being a stack of layers you can read
//! from the bottom up; a 1,000-line file is how one module quietly comes to hold three
//! concepts. Both creep in one reasonable edit at a time, so a test watches them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 700;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The module path a file defines (`runtime/mod.rs` and `runtime.rs` are `runtime`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs").to_owned();
    if stem != "mod" && stem != "lib" {
        parts.push(stem);
    }
    parts
}

/// The source without `#[cfg(test)]` items, comments and string literals' contents.
fn code(text: &str) -> String {
    let without_tests = strip_test_items(text);
    let mut out = String::with_capacity(without_tests.len());
    let b = without_tests.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Drops each item that follows a `#[cfg(test)]` attribute (a test module or helper).
fn strip_test_items(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            let mut depth: i64 = 0;
            let mut opened = false;
            let mut j = i + 1;
            while j < lines.len() {
                let l = lines[j];
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                opened |= l.contains('{');
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        out.push(lines[i]);
        i += 1;
    }
    out.join("\n")
}

/// Paths like `crate::a::b`, `super::x`, and the leaves of `use crate::{a, b::{c, d}}`.
fn paths_in(code: &str, me: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    // `super` is the parent of the module the file defines: for `foo/mod.rs` (module
    // foo) foo's parent, for `foo/bar.rs` (module foo::bar) foo.
    let sup: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let word = &code[start..i];
        let base: Option<Vec<String>> = match word {
            "crate" => Some(vec![]),
            "super" => Some(sup.clone()),
            "self" => Some(me.to_vec()),
            w if children.contains(w) => Some({
                let mut v = me.to_vec();
                v.push(w.to_owned());
                v
            }),
            _ => None,
        };
        let Some(base) = base else { continue };
        if !code[i..].starts_with("::") {
            continue;
        }
        // Read the rest of the path, expanding one level of braces at a time.
        let (tree, end) = read_tree(code, i + 2);
        i = end;
        for leaf in tree {
            let mut p = base.clone();
            p.extend(leaf.into_iter().filter(|s| s != "self"));
            out.push(p);
        }
    }
    out
}

/// Reads `a::b::{c, d::e}` from `at`; returns the leaf paths and where it ended.
fn read_tree(code: &str, at: usize) -> (Vec<Vec<String>>, usize) {
    let b = code.as_bytes();
    let mut i = at;
    let mut prefix = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            let mut leaves = Vec::new();
            i += 1;
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    i += 1;
                    break;
                }
                let (sub, end) = read_tree(code, i);
                for s in sub {
                    let mut p = prefix.clone();
                    p.extend(s);
                    leaves.push(p);
                }
                i = end;
                // Skip `as alias` and anything up to the next separator.
                while i < b.len() && b[i] != b',' && b[i] != b'}' {
                    i += 1;
                }
            }
            return (leaves, i);
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'*') {
            i += 1;
        }
        if start == i {
            return (vec![prefix], i);
        }
        prefix.push(code[start..i].to_owned());
        if code[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

struct Library {
    files: BTreeMap<PathBuf, String>,
    modules: BTreeMap<Vec<String>, PathBuf>,
}

impl Library {
    fn read() -> Self {
        let root = src();
        let mut files = BTreeMap::new();
        let mut modules = BTreeMap::new();
        for rel in files_of(&root) {
            let text = std::fs::read_to_string(root.join(&rel)).unwrap();
            modules.insert(module_of(&rel), rel.clone());
            files.insert(rel, text);
        }
        Self { files, modules }
    }

    /// The files each file refers to.
    fn edges(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let mut edges = BTreeMap::new();
        for (rel, text) in &self.files {
            let me = module_of(rel);
            let code = code(text);
            let children: BTreeSet<String> = code
                .lines()
                .filter_map(|l| {
                    let l = l.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
                    l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')).map(str::to_owned)
                })
                .collect();
            let mut deps = BTreeSet::new();
            for path in paths_in(&code, &me, &children) {
                let found = (1..=path.len()).rev().find_map(|k| self.modules.get(&path[..k]));
                if let Some(f) = found {
                    if f != rel && f != Path::new("lib.rs") {
                        deps.insert(f.clone());
                    }
                }
            }
            edges.insert(rel.clone(), deps);
        }
        edges
    }
}

fn files_of(root: &Path) -> Vec<PathBuf> {
    files(root)
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct T<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        next: usize,
        out: Vec<Vec<PathBuf>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a PathBuf) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on.remove(w);
                    comp.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_import_cycle_between_library_files() {
    let lib = Library::read();
    let edges = lib.edges();
    let found = cycles(&edges);
    let mut report = String::new();
    for c in &found {
        report.push_str("cycle:\n");
        let set: BTreeSet<&PathBuf> = c.iter().collect();
        for f in c {
            let inner: Vec<String> =
                edges[f].iter().filter(|d| set.contains(d)).map(|d| d.display().to_string()).collect();
            report.push_str(&format!("  {} -> {}\n", f.display(), inner.join(", ")));
        }
    }
    assert!(found.is_empty(), "import cycles among the library's files:\n{report}");
}

#[test]
fn no_library_file_over_700_lines_of_non_test_code() {
    let lib = Library::read();
    let mut over: Vec<(usize, String)> = lib
        .files
        .iter()
        .map(|(rel, text)| (strip_test_items(text).lines().count(), rel.display().to_string()))
        .filter(|(n, _)| *n > MAX_LINES)
        .collect();
    over.sort_unstable_by(|a, b| b.cmp(a));
    assert!(over.is_empty(), "files over {MAX_LINES} lines (tests excluded): {over:?}");
}

/// Runtimes describe themselves; only config parsing (which reads `runtime = "..."`)
/// and the one constructor in `runtime/mod.rs` may look at which runtime it is.
#[test]
fn nothing_outside_config_branches_on_a_runtime_name() {
    let lib = Library::read();
    let names = ["releases", "command", "gitops", "compose", "swarm"];
    let variants = ["Releases", "Command", "Gitops", "Compose", "Swarm"];
    let mut found = Vec::new();
    for (rel, text) in &lib.files {
        let r = rel.display().to_string();
        if r.starts_with("config") || r == "runtime/mod.rs" {
            continue;
        }
        let without_tests = strip_test_items(text);
        for (n, line) in without_tests.lines().enumerate() {
            let t = line.trim();
            if t.starts_with("//") {
                continue;
            }
            for name in names {
                let lit = format!("\"{name}\"");
                let branches = [
                    format!("{lit} =>"),
                    format!("== {lit}"),
                    format!("!= {lit}"),
                    format!("{lit} |"),
                    format!("| {lit}"),
                    format!(", {lit})"),
                ];
                if branches.iter().any(|b| t.contains(b.as_str())) {
                    found.push(format!("{r}:{}: {t}", n + 1));
                }
            }
            for v in variants {
                for owner in ["Runtime::", "Kind::", "config::Runtime::"] {
                    let pat = format!("{owner}{v}");
                    if t.contains(&pat) && !t.contains(&format!("{pat}Mode")) {
                        found.push(format!("{r}:{}: {t}", n + 1));
                    }
                }
            }
        }
    }
    found.dedup();
    assert!(found.is_empty(), "branching on a runtime outside config:\n{}", found.join("\n"));
}

#[test]
fn the_cli_contract_is_pinned_by_at_least_20_snapshot_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lastgood-cli/tests/it/snapshots");
    let n = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "snap")).count())
        .unwrap_or(0);
    assert!(n >= 20, "{n} snapshot files in {}; the contract needs at least 20", dir.display());
}
