//! Alembic, driven through its own commands: `current`, `history --verbose`,
//! `upgrade`/`downgrade` and their offline `--sql`.
//!
//! Alembic keeps its own bookkeeping (the `alembic_version` table) and its own graph of
//! revisions (each file's `down_revision`), so lastgood never guesses either: it asks
//! Alembic for the revisions in the database and for the history, and works out
//! positions in that graph. Which way a move goes follows from there: a target below
//! the current revision is a `downgrade`, one above it an `upgrade` (asking Alembic to
//! "downgrade" to a newer revision is what once failed a roll forward). Counts are
//! positions too: applied = the current revision and everything below it, pending =
//! the rest.
//!
//! The SQL lastgood shows and lints is Alembic's own offline SQL, cut per revision at
//! the `-- Running upgrade A -> B` lines Alembic writes before each step. Alembic
//! refuses `downgrade -1 --sql`, so relative moves are resolved to a revision first.
//!
//! Only a single line of revisions is moved: a database at several heads, or a move
//! across branches, is left to Alembic itself, with a message that says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dialect::Dialect;
use super::lint::{self, Lint};
use super::migrator::Direction;
use super::program::{Program, ToolError};
use super::sql;
use super::url::DbUrl;

/// One revision, as `alembic history --verbose` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    pub id: String,
    /// Its `down_revision`(s): none for a first revision, several for a merge.
    pub parents: Vec<String>,
    /// The first paragraph of its docstring (the `-m` message), maybe empty.
    pub message: String,
    pub head: bool,
}

impl Revision {
    /// `id (message)`, or the id alone: how lastgood names a revision in messages.
    pub fn label(&self) -> String {
        if self.message.is_empty() { self.id.clone() } else { format!("{} ({})", self.id, self.message) }
    }
}

/// Alembic's history: every revision, newest first (Alembic's own order).
#[derive(Debug, Clone, Default)]
pub struct History {
    revisions: Vec<Revision>,
}

/// A move along the history: which way, and the revisions it runs, in running order.
#[derive(Debug, Clone)]
pub struct Move {
    pub direction: Direction,
    pub revisions: Vec<Revision>,
}

impl History {
    /// Reads `alembic history --verbose`: blocks that start with `Rev: ID [(head)]...`,
    /// then `Parent: ID|<base>` or `Merges: A, B`, other fields, and the docstring
    /// indented by four spaces.
    pub fn parse(text: &str) -> Self {
        let mut revisions: Vec<Revision> = Vec::new();
        let mut doc: Option<Vec<String>> = None;
        let finish = |revs: &mut Vec<Revision>, doc: &mut Option<Vec<String>>| {
            if let (Some(r), Some(lines)) = (revs.last_mut(), doc.take()) {
                let text = lines.join("\n");
                r.message = text.trim().split("\n\n").next().unwrap_or("").trim().to_owned();
            }
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("Rev: ") {
                finish(&mut revisions, &mut doc);
                let id = rest.split_whitespace().next().unwrap_or("").to_owned();
                revisions.push(Revision { id, parents: vec![], message: String::new(), head: rest.contains("(head)") });
            } else if let Some(rest) = line.strip_prefix("Parent: ").or_else(|| line.strip_prefix("Merges: ")) {
                if let Some(r) = revisions.last_mut() {
                    r.parents = rest
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty() && *p != "<base>")
                        .map(str::to_owned)
                        .collect();
                }
            } else if line.starts_with("Path: ") {
                doc = Some(Vec::new());
            } else if let (Some(lines), Some(body)) = (doc.as_mut(), line.strip_prefix("    ")) {
                lines.push(body.to_owned());
            } else if let Some(lines) = doc.as_mut() {
                if line.trim().is_empty() {
                    lines.push(String::new());
                }
            }
        }
        finish(&mut revisions, &mut doc);
        revisions.retain(|r| !r.id.is_empty());
        Self { revisions }
    }

    /// Newest first.
    pub fn revisions(&self) -> &[Revision] {
        &self.revisions
    }

    pub fn get(&self, id: &str) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.id == id)
    }

    fn ids(&self) -> Vec<String> {
        self.revisions.iter().map(|r| r.id.clone()).collect()
    }

    /// A revision as a user may write it: an id, a unique prefix of one (as Alembic
    /// allows), `head`, or `base`/`0` (None: no revision at all).
    pub fn resolve(&self, rev: &str, dir: &Path) -> Result<Option<String>, ToolError> {
        let unknown = || ToolError::UnknownRevision {
            tool: "Alembic",
            rev: rev.to_owned(),
            dir: dir.to_path_buf(),
            known: self.ids(),
        };
        match rev {
            "base" | "0" => return Ok(None),
            "head" | "heads" => {
                let heads: Vec<&Revision> = self.revisions.iter().filter(|r| r.head).collect();
                return match heads.as_slice() {
                    [] => Ok(None),
                    [one] => Ok(Some(one.id.clone())),
                    several => Err(several_heads(several.iter().map(|r| r.id.clone()).collect())),
                };
            }
            _ => {}
        }
        if self.get(rev).is_some() {
            return Ok(Some(rev.to_owned()));
        }
        let matching: Vec<&Revision> = self.revisions.iter().filter(|r| r.id.starts_with(rev)).collect();
        match matching.as_slice() {
            [one] if !rev.is_empty() => Ok(Some(one.id.clone())),
            _ => Err(unknown()),
        }
    }

    /// `rev` and every revision below it (nothing for None).
    fn at_or_below(&self, rev: Option<&str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = rev.map(str::to_owned).into_iter().collect();
        while let Some(id) = todo.pop() {
            if seen.insert(id.clone()) {
                if let Some(r) = self.get(&id) {
                    todo.extend(r.parents.iter().cloned());
                }
            }
        }
        seen
    }

    /// The revisions applied when the database is at `current`.
    pub fn applied(&self, current: Option<&str>) -> BTreeSet<String> {
        self.at_or_below(current)
    }

    /// The way from `current` to `target` (None: base): a downgrade when the target is
    /// below, an upgrade when it is above, an error when it is on another branch.
    pub fn route(&self, current: Option<&str>, target: Option<&str>) -> Result<Move, ToolError> {
        let now = self.at_or_below(current);
        let then = self.at_or_below(target);
        let pick = |set: &BTreeSet<String>, other: &BTreeSet<String>| -> Vec<Revision> {
            self.revisions.iter().filter(|r| set.contains(&r.id) && !other.contains(&r.id)).cloned().collect()
        };
        if then.is_subset(&now) {
            // Newest first, the order downgrades run in.
            Ok(Move { direction: Direction::Down, revisions: pick(&now, &then) })
        } else if now.is_subset(&then) {
            let mut revisions = pick(&then, &now);
            revisions.reverse();
            Ok(Move { direction: Direction::Up, revisions })
        } else {
            Err(ToolError::Direction {
                what: format!(
                    "Alembic revision {} is on another branch than the database's {}: lastgood moves along one line of revisions; merge the branches, or move with Alembic itself",
                    target.unwrap_or("base"),
                    current.unwrap_or("base")
                ),
            })
        }
    }

    /// The revision `n` steps below `current` (None: base), for `--steps N`.
    pub fn steps_below(&self, current: Option<&str>, n: usize) -> Result<Option<String>, ToolError> {
        let mut at = current.map(str::to_owned);
        for _ in 0..n {
            let Some(id) = at else { break };
            let parents = self.get(&id).map(|r| r.parents.clone()).unwrap_or_default();
            at = match parents.as_slice() {
                [] => None,
                [one] => Some(one.clone()),
                several => {
                    return Err(ToolError::Direction {
                        what: format!(
                            "Alembic revision {id} merges {}: name the revision to go down to with --to",
                            several.join(" and ")
                        ),
                    });
                }
            };
        }
        Ok(at)
    }
}

fn several_heads(heads: Vec<String>) -> ToolError {
    ToolError::Direction {
        what: format!(
            "Alembic has several heads ({}): lastgood moves along one line of revisions; merge them (`alembic merge heads`) or name a revision",
            heads.join(", ")
        ),
    }
}

/// Reads the rows of the `alembic_version` table without Alembic, where lastgood does
/// its own database work (this machine, or the agent of the environment's first host).
/// None: it cannot (no such table, no connection, another kind of database).
pub trait VersionTable: std::fmt::Debug {
    fn rows(&self) -> Option<Vec<String>>;
}

/// Alembic in one folder against one database.
#[derive(Debug, Clone)]
pub struct Alembic {
    argv: Vec<String>,
    program: Program,
    dialect: Dialect,
    /// The database, its password masked.
    shown: String,
    /// Reads where the database is without starting Alembic ([`Alembic::read_current`]).
    table: Option<std::rc::Rc<dyn VersionTable>>,
}

impl Alembic {
    pub fn set_vars(&mut self, vars: Vec<(String, String)>) {
        self.program.set_vars(vars);
    }

    pub fn program_mut(&mut self) -> &mut Program {
        &mut self.program
    }

    /// Lets [`Alembic::read_current`] read the version table through `table`.
    pub fn set_version_table(&mut self, table: std::rc::Rc<dyn VersionTable>) {
        self.table = Some(table);
    }

    /// `argv` runs Alembic (`["alembic"]`, `["venv/bin/alembic"]`, maybe with `-c FILE`).
    pub fn new(argv: &[String], cwd: &Path, url: &DbUrl) -> Self {
        let (dialect, secret) = match url {
            DbUrl::Postgres(p) => (Dialect::Postgres, p.password().map(str::to_owned)),
            DbUrl::Sqlite(_) => (Dialect::Sqlite, None),
        };
        Self {
            argv: argv.to_vec(),
            program: Program::new(cwd, database_url(url), secret),
            dialect,
            shown: url.to_string(),
            table: None,
        }
    }

    /// The same project against another database (a scratch copy for a rehearsal).
    pub fn against(&self, url: &DbUrl) -> Self {
        Self { program: self.program.against(database_url(url)), shown: url.to_string(), table: None, ..self.clone() }
    }

    pub fn describe(&self) -> String {
        self.shown.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.program.cwd
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Refuses early, and says what to do, when Alembic would not find its config here.
    fn check(&self) -> Result<(), ToolError> {
        let names_config = self.argv.iter().any(|a| a == "-c" || a.starts_with("--config"))
            || std::env::var_os("ALEMBIC_CONFIG").is_some();
        let dir = self.dir();
        // Elsewhere (a host, a container), Alembic says itself what it cannot find.
        if !names_config && !self.program.elsewhere() && !dir.join("alembic.ini").is_file() {
            return Err(ToolError::Missing {
                file: "alembic.ini",
                dir: dir.to_path_buf(),
                what: if dir.is_dir() {
                    "Alembic runs in the release directory (for `lastgood db`, the source's working tree); pass --migrations DIR naming the folder that holds alembic.ini, or name the file with `alembic = [\"alembic\", \"-c\", \"path/alembic.ini\"]`".to_owned()
                } else {
                    "the folder does not exist; deploy a release first, or pass --migrations DIR naming the folder that holds alembic.ini".to_owned()
                },
            });
        }
        Ok(())
    }

    fn run(&self, args: &[&str]) -> Result<String, ToolError> {
        self.check()?;
        self.program.run(&self.argv_with(args), &[])
    }

    /// [`Alembic::run`] for what reads only the project's files (the history, offline
    /// SQL): once per process ([`Program::run_pure`]).
    fn run_pure(&self, args: &[&str]) -> Result<String, ToolError> {
        self.check()?;
        self.program.run_pure(&self.argv_with(args))
    }

    fn argv_with(&self, args: &[&str]) -> Vec<String> {
        let mut argv = self.argv.clone();
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// The revision the database is at (None: base, or no `alembic_version` yet).
    pub fn current(&self) -> Result<Option<String>, ToolError> {
        self.check()?;
        let out = self.program.run_state(&self.argv_with(&["current"]))?;
        // Lines look like `ae1027a6acf (head)`; logging goes to stderr, but a config may
        // log to stdout, so only lines of that shape count.
        let heads: Vec<String> = out
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let id = words.next()?;
                let id_like = id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                let rest_flags = words.all(|w| w.starts_with('(') && w.ends_with(')'));
                (id_like && rest_flags).then(|| id.to_owned())
            })
            .collect();
        match heads.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            several => Err(several_heads(several.to_vec())),
        }
    }

    /// Where the database is, read by lastgood from the `alembic_version` table instead
    /// of `alembic current` (where Alembic runs in a container, a container start and
    /// an interpreter): one row naming a revision of `history`, else None. Not proof
    /// on its own, since an env.py may keep its version table under another name or
    /// schema: a plan trusts it only when Alembic's own SQL for the move starts from
    /// that row of that table ([`moves_from`]).
    pub fn read_current(&self, history: &History) -> Option<String> {
        let rows = self.table.as_ref()?.rows()?;
        match rows.as_slice() {
            [one] if history.get(one).is_some() => Some(one.clone()),
            _ => None,
        }
    }

    /// What [`Alembic::current`] answers until something moves the database: a reading
    /// of the version table that Alembic's own SQL confirmed.
    pub fn confirm_current(&self, revision: &str) {
        self.program.remember_state(&self.argv_with(&["current"]), format!("{revision}\n"));
    }

    pub fn history(&self) -> Result<History, ToolError> {
        Ok(History::parse(&self.run_pure(&["history", "--verbose"])?))
    }

    /// Alembic's offline SQL for a move from `from` to `to` (None: base).
    pub fn offline_sql(&self, direction: Direction, from: Option<&str>, to: Option<&str>) -> Result<String, ToolError> {
        let range = format!("{}:{}", from.unwrap_or("base"), to.unwrap_or("base"));
        self.run_pure(&[verb(direction), &range, "--sql"])
    }

    /// Moves the database to `to` (None: base).
    pub fn migrate(&self, direction: Direction, to: Option<&str>) -> Result<(), ToolError> {
        self.run(&[verb(direction), to.unwrap_or("base")]).map(drop)
    }

    /// The verdict on each revision of a move, from its piece of `offline` SQL. Without
    /// Alembic's `-- Running` lines (an unusual env.py), the whole script is judged as one.
    pub fn verdicts(&self, route: &Move, offline: &str) -> Vec<super::verdict::Verdict> {
        let pieces = per_revision(offline, route.direction);
        if pieces.is_empty() {
            if route.revisions.is_empty() {
                return Vec::new();
            }
            let name = route.revisions.iter().map(Revision::label).collect::<Vec<_>>().join(", ");
            return vec![super::verdict::Verdict { name, direction: route.direction, lint: self.lint(offline) }];
        }
        route
            .revisions
            .iter()
            .map(|r| {
                let script = pieces.iter().find(|(id, _)| *id == r.id).map(|(_, s)| s.as_str()).unwrap_or("");
                super::verdict::Verdict { name: r.label(), direction: route.direction, lint: self.lint(script) }
            })
            .collect()
    }

    /// The linter's judgement of a piece of Alembic's SQL, its bookkeeping left out.
    pub fn lint(&self, script: &str) -> Lint {
        lint::classify(&without_bookkeeping(script, self.dialect), self.dialect)
    }

    /// Every revision's up and down SQL, judged (oldest first); `down` is None when
    /// a revision that changes something has nothing to undo it (`def downgrade(): pass`).
    pub fn lint_all(&self, history: &History) -> Result<Vec<(Revision, Lint, Option<Lint>)>, ToolError> {
        if history.revisions().is_empty() {
            return Ok(Vec::new());
        }
        let ups = per_revision(&self.run_pure(&["upgrade", "heads", "--sql"])?, Direction::Up);
        let downs = per_revision(&self.run_pure(&["downgrade", "heads:base", "--sql"])?, Direction::Down);
        let piece = |pieces: &[(String, String)], id: &str| {
            pieces.iter().find(|(r, _)| r == id).map(|(_, s)| without_bookkeeping(s, self.dialect)).unwrap_or_default()
        };
        Ok(history
            .revisions()
            .iter()
            .rev()
            .map(|r| {
                let (up, down) = (piece(&ups, &r.id), piece(&downs, &r.id));
                let down_lint = if down.trim().is_empty() && !up.trim().is_empty() {
                    None
                } else {
                    Some(lint::classify(&down, self.dialect))
                };
                (r.clone(), lint::classify(&up, self.dialect), down_lint)
            })
            .collect())
    }
}

fn verb(direction: Direction) -> &'static str {
    match direction {
        Direction::Up => "upgrade",
        Direction::Down => "downgrade",
    }
}

/// `DATABASE_URL` for Alembic: a PostgreSQL URL exactly as written (SQLAlchemy's
/// `postgresql+psycopg2://` included); a SQLite file as SQLAlchemy's absolute form.
fn database_url(url: &DbUrl) -> String {
    match url {
        DbUrl::Postgres(p) => p.expose().to_owned(),
        DbUrl::Sqlite(path) => format!("sqlite:///{}", path.display()),
    }
}

/// Cuts offline SQL at Alembic's `-- Running upgrade A -> B` lines: each revision's
/// piece (an upgrade's piece belongs to B, a downgrade's to A). What comes before the
/// first line (`BEGIN`, creating `alembic_version`) belongs to none.
fn per_revision(offline: &str, direction: Direction) -> Vec<(String, String)> {
    let marker = format!("-- Running {} ", verb(direction));
    let mut out: Vec<(String, String)> = Vec::new();
    for line in offline.lines() {
        if let Some(step) = line.strip_prefix(&marker) {
            let (from, to) = step.split_once("->").unwrap_or((step, ""));
            let side = if direction == Direction::Up { to } else { from };
            let id = side.split(',').next().unwrap_or("").trim().to_owned();
            out.push((id, String::new()));
        } else if let Some((_, piece)) = out.last_mut() {
            piece.push_str(line);
            piece.push('\n');
        }
    }
    out
}

/// Whether Alembic's offline SQL for a move starts by moving the row `from` of the
/// unqualified `alembic_version` table: its first bookkeeping statement is
/// `UPDATE alembic_version SET version_num='..' WHERE alembic_version.version_num = 'from'`
/// or `DELETE FROM alembic_version WHERE alembic_version.version_num = 'from'`. What
/// Alembic would move is then what lastgood read ([`Alembic::read_current`]).
pub fn moves_from(offline: &str, from: &str, dialect: Dialect) -> bool {
    let first = sql::split(offline, dialect)
        .into_iter()
        .map(|s| s.text.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|t| t.contains("version_num") && !t.to_ascii_uppercase().starts_with("CREATE "));
    let Some(text) = first else { return false };
    let text = text.trim_end_matches(';');
    let tail = format!(" WHERE alembic_version.version_num = '{from}'");
    (text.starts_with("UPDATE alembic_version SET version_num='")
        || text.starts_with("DELETE FROM alembic_version WHERE"))
        && text.ends_with(&tail)
}

/// Alembic's offline SQL without its own bookkeeping (`alembic_version`: an UPDATE
/// without WHERE, a DROP TABLE at base) and transaction control: the linter judges the
/// migrations, not those.
fn without_bookkeeping(script: &str, dialect: Dialect) -> String {
    sql::split(script, dialect)
        .into_iter()
        .filter(|s| {
            let t = s.text.trim().trim_end_matches(';').to_ascii_uppercase();
            !s.text.contains("alembic_version") && t != "BEGIN" && t != "COMMIT"
        })
        .map(|s| format!("{};\n", s.text))
        .collect()
}

/// The folder Alembic runs in for `lastgood db --migrations DIR`: DIR when it holds
/// alembic.ini, else its parent when that does (DIR named the script folder), else DIR.
pub fn project_dir(dir: &Path) -> PathBuf {
    if dir.join("alembic.ini").is_file() {
        return dir.to_path_buf();
    }
    match dir.parent() {
        Some(p) if p.join("alembic.ini").is_file() => p.to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// Where an `alembic.ini` keeps the migration scripts (`script_location` in its
/// `[alembic]` section), relative to the ini's folder; None for a package resource
/// (`myapp:migrations`) or when the file does not say.
pub fn script_location(ini: &str) -> Option<String> {
    let mut section = "";
    for line in ini.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        if section != "alembic" || key.trim() != "script_location" {
            continue;
        }
        let value = value.trim();
        let value = value.strip_prefix("%(here)s").map(|v| v.trim_start_matches('/')).unwrap_or(value);
        let value = value.trim_end_matches('/');
        if value.is_empty() || value.contains(':') || value.starts_with('/') {
            return None;
        }
        return Some(value.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_location_is_read_from_the_alembic_section() {
        let ini = "[alembic]\n# where\nscript_location = %(here)s/alembic\nsqlalchemy.url = x\n";
        assert_eq!(script_location(ini).as_deref(), Some("alembic"));
        assert_eq!(script_location("[alembic]\nscript_location=db/migrations/\n").as_deref(), Some("db/migrations"));
        assert_eq!(script_location("[other]\nscript_location = x\n"), None);
        assert_eq!(script_location("[alembic]\nscript_location = myapp:migrations\n"), None);
    }

    const VERBOSE: &str = "Rev: 0003 (head)\nParent: 0002\nPath: /x/alembic/versions/0003_x.py\n\n    email column\n    \n    Revision ID: 0003\n\nRev: 0002\nParent: 0001\nPath: /x/alembic/versions/0002_x.py\n\n    name index, for search\n\nRev: 0001\nParent: <base>\nPath: /x/alembic/versions/0001_x.py\n\n\n";

    #[test]
    fn the_verbose_history_reads_ids_parents_heads_and_messages() {
        let h = History::parse(VERBOSE);
        let ids: Vec<&str> = h.revisions().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["0003", "0002", "0001"]);
        assert!(h.revisions()[0].head && !h.revisions()[1].head);
        assert_eq!(h.revisions()[0].message, "email column");
        assert_eq!(h.revisions()[1].label(), "0002 (name index, for search)");
        assert_eq!(h.revisions()[2].label(), "0001");
        assert_eq!(h.revisions()[2].parents, Vec::<String>::new());
        assert_eq!(h.revisions()[0].parents, ["0002"]);
    }

    #[test]
    fn positions_decide_the_direction() {
        let h = History::parse(VERBOSE);
        let ids = |p: &Move| p.revisions.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        let up = h.route(Some("0001"), Some("0003")).unwrap();
        assert_eq!((up.direction, ids(&up)), (Direction::Up, vec!["0002".to_owned(), "0003".to_owned()]));
        let down = h.route(Some("0003"), Some("0001")).unwrap();
        assert_eq!((down.direction, ids(&down)), (Direction::Down, vec!["0003".to_owned(), "0002".to_owned()]));
        let all = h.route(Some("0002"), None).unwrap();
        assert_eq!(ids(&all), ["0002", "0001"]);
        assert!(h.route(Some("0002"), Some("0002")).unwrap().revisions.is_empty());
        assert_eq!(h.applied(Some("0002")).len(), 2);
        assert_eq!(h.steps_below(Some("0003"), 2).unwrap().as_deref(), Some("0001"));
        assert_eq!(h.steps_below(Some("0003"), 9).unwrap(), None);
    }

    #[test]
    fn revisions_resolve_by_id_prefix_head_and_base() {
        let h = History::parse(VERBOSE.replace("0003", "ae10f3").as_str());
        let dir = Path::new("/x");
        assert_eq!(h.resolve("ae1", dir).unwrap().as_deref(), Some("ae10f3"));
        assert_eq!(h.resolve("head", dir).unwrap().as_deref(), Some("ae10f3"));
        assert_eq!(h.resolve("base", dir).unwrap(), None);
        let err = h.resolve("0", dir).map(|_| ()).and(h.resolve("nope", dir).map(|_| ())).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("ae10f3, 0002, 0001"), "{err}");
    }

    #[test]
    fn offline_sql_is_cut_per_revision_without_bookkeeping() {
        let sql = "BEGIN;\n\n-- Running downgrade 0003 -> 0002\n\nALTER TABLE users DROP COLUMN email;\n\nUPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0003';\n\n-- Running downgrade 0002 -> 0001\n\nDROP INDEX users_name;\n\nUPDATE alembic_version SET version_num='0001';\n\nCOMMIT;\n";
        let pieces = per_revision(sql, Direction::Down);
        assert_eq!(pieces.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(), ["0003", "0002"]);
        assert_eq!(without_bookkeeping(&pieces[1].1, Dialect::Postgres), "DROP INDEX users_name;\n");
        let up = per_revision("-- Running upgrade  -> 0001\n\nCREATE TABLE t (a int);\n", Direction::Up);
        assert_eq!(up[0].0, "0001");
    }

    #[test]
    fn only_a_move_of_the_read_row_of_alembic_version_confirms_a_reading() {
        let pg = Dialect::Postgres;
        let down = "BEGIN;\n\n-- Running downgrade 0003 -> 0002\n\nALTER TABLE users DROP COLUMN email;\n\nUPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0003';\n\nCOMMIT;\n";
        assert!(moves_from(down, "0003", pg));
        assert!(!moves_from(down, "0002", pg), "the row it moves is 0003");
        let to_base = "BEGIN;\n\nDROP TABLE t;\n\nDELETE FROM alembic_version WHERE alembic_version.version_num = '0001';\n\nDROP TABLE alembic_version;\n\nCOMMIT;\n";
        assert!(moves_from(to_base, "0001", pg));
        // Another table or schema (an env.py's version_table): what lastgood read is not
        // what Alembic moves.
        let other = down.replace("alembic_version", "shop_versions");
        assert!(!moves_from(&other, "0003", pg));
        let schema = down
            .replace("UPDATE alembic_version", "UPDATE app.alembic_version")
            .replace("WHERE alembic_version", "WHERE app.alembic_version");
        assert!(!moves_from(&schema, "0003", pg));
        // From base (the table is created), or no bookkeeping at all: nothing confirmed.
        let from_base = "BEGIN;\n\nCREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);\n\nINSERT INTO alembic_version (version_num) VALUES ('0001');\n\nCOMMIT;\n";
        assert!(!moves_from(from_base, "0001", pg));
        assert!(!moves_from("SELECT 1;\n", "0001", pg));
    }
}
