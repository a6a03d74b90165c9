//! Classifying migration SQL as safe, blocking or destructive, with a real SQL parser.
//!
//! A rollback that runs `down.sql` is only as safe as the SQL in it, and a deploy that
//! runs `up.sql` can lock a busy table for minutes. This module reads a script and says,
//! for every statement that is not harmless, which of two things can go wrong:
//!
//! - [`Class::Blocking`]: the statement takes a strong lock for a long time (a table
//!   rewrite, a validating scan, an index build) or breaks code that is still running
//!   (a rename, a dropped index or view). Nothing is lost; the fix is to run it another way.
//! - [`Class::Destructive`]: rows, columns or whole objects may be gone afterwards
//!   (`DROP TABLE`, `DROP COLUMN`, `TRUNCATE`, `DELETE`/`UPDATE` without `WHERE`, a type
//!   change that can narrow). Only a backup brings them back.
//!
//! What it is not: a database. It never sees the schema, so it cannot know that a table
//! is empty, that `ALTER COLUMN ... TYPE text` widens a `varchar(20)`, or what a function
//! called by `SELECT f()` does. Where the text alone cannot tell, it leans towards the
//! worse class; squawk and strong_migrations make the same trade (reliability notes §4).
//!
//! How it works. The script is first cut into statements by a small scanner that knows
//! what can hide a `;` (quotes, `$tag$` dollar quoting, comments, the `BEGIN ... END` body
//! of a SQLite trigger or of a PostgreSQL `BEGIN ATOMIC` function) and skips psql
//! meta-commands (`\connect`, `\set`), so one statement the parser rejects does not hide
//! the findings in the others. Each statement is then parsed on its own by `sqlparser`
//! and the AST is matched exhaustively on the kinds migrations use; anything else is
//! reported as destructive ("not recognised"), never silently passed. sqlparser 0.59
//! cannot parse a few statements that real migrations use (`LOCK`, `CLUSTER`, `REINDEX`,
//! `DROP INDEX CONCURRENTLY`, SQLite triggers, `DO`, ...); for those, and only when the
//! parse fails, `recognise_head` classifies by the leading keywords from sqlparser's own
//! tokenizer, where the keywords alone decide the class. Everything else that fails to
//! parse is destructive with the parser's message.
//!
//! There is no error type: an input the linter does not understand is itself a finding.

use std::fmt;

use sqlparser::ast::{
    AlterColumnOperation, AlterIndexOperation, AlterSchemaOperation, AlterTableOperation, AlterTypeOperation,
    ColumnDef, ColumnOption, DataType, Expr, ObjectType, Query, SetExpr, Statement, TableConstraint, Value,
};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use super::dialect::Dialect;

/// How dangerous a statement is. Ordered so that the worst of several is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Safe,
    Blocking,
    Destructive,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Safe => "safe",
            Class::Blocking => "blocking",
            Class::Destructive => "destructive",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One statement that is not safe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub class: Class,
    /// 1-based line of the statement's first token in the script (leading comments skipped).
    pub line: usize,
    /// The statement's text with whitespace collapsed, cut to [`STATEMENT_CHARS`] characters.
    pub statement: String,
    pub reason: String,
}

/// The verdict on a whole script.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lint {
    /// The worst finding's class; `Safe` when there are no findings.
    pub class: Class,
    /// One per statement that is not safe, in script order.
    pub findings: Vec<Finding>,
    /// Safe statements that change rows (`DELETE`/`UPDATE` with a `WHERE`): in a down
    /// script, the undoing of data an upgrade created. Plans list them, so nobody is
    /// surprised that a rollback deletes rows.
    pub data_changes: Vec<Finding>,
}

/// How much of a statement a finding quotes.
pub const STATEMENT_CHARS: usize = 120;

/// Classifies every statement of a migration script.
pub fn classify(sql: &str, dialect: Dialect) -> Lint {
    let mut findings = Vec::new();
    let mut data_changes = Vec::new();
    for piece in super::sql::split(sql, dialect) {
        let verdict = classify_statement(piece.text, dialect);
        if verdict.class > Class::Safe {
            findings.push(Finding {
                class: verdict.class,
                line: piece.line,
                statement: shorten(piece.text),
                reason: verdict.reasons.join("; "),
            });
        } else if !verdict.data.is_empty() {
            data_changes.push(Finding {
                class: Class::Safe,
                line: piece.line,
                statement: shorten(piece.text),
                reason: verdict.data.join("; "),
            });
        }
    }
    let class = findings.iter().map(|f| f.class).max().unwrap_or(Class::Safe);
    Lint { class, findings, data_changes }
}

fn shorten(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= STATEMENT_CHARS {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(STATEMENT_CHARS - 1).collect();
    cut.push('…');
    cut
}

// ---------------------------------------------------------------------------------------
// Verdicts

/// The class of one statement and why. Equal classes keep every reason.
#[derive(Debug, Clone)]
struct Verdict {
    class: Class,
    reasons: Vec<String>,
    /// What a safe statement does to rows (a filtered DELETE or UPDATE).
    data: Vec<String>,
}

impl Verdict {
    fn safe() -> Self {
        Verdict { class: Class::Safe, reasons: Vec::new(), data: Vec::new() }
    }
    fn blocking(reason: impl Into<String>) -> Self {
        Verdict { class: Class::Blocking, reasons: vec![reason.into()], data: Vec::new() }
    }
    fn destructive(reason: impl Into<String>) -> Self {
        Verdict { class: Class::Destructive, reasons: vec![reason.into()], data: Vec::new() }
    }
    /// Safe, and changes the rows it selects.
    fn changes_data(what: impl Into<String>) -> Self {
        Verdict { class: Class::Safe, reasons: Vec::new(), data: vec![what.into()] }
    }
    fn unrecognised() -> Self {
        Verdict::destructive("not recognised: treated as destructive")
    }
    fn worst(mut self, other: Verdict) -> Verdict {
        let mut data = std::mem::take(&mut self.data);
        for d in &other.data {
            if !data.contains(d) {
                data.push(d.clone());
            }
        }
        let mut worst = match self.class.cmp(&other.class) {
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Equal => {
                for r in other.reasons {
                    if !self.reasons.contains(&r) {
                        self.reasons.push(r);
                    }
                }
                self
            }
        };
        worst.data = data;
        worst
    }
}

fn worst_of(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    verdicts.into_iter().fold(Verdict::safe(), Verdict::worst)
}

// ---------------------------------------------------------------------------------------
// Parsing one statement

fn sql_dialect(dialect: Dialect) -> Box<dyn SqlDialect> {
    match dialect {
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
    }
}

fn classify_statement(text: &str, dialect: Dialect) -> Verdict {
    let sql = sql_dialect(dialect);
    match Parser::parse_sql(sql.as_ref(), text) {
        Ok(statements) => worst_of(statements.iter().map(|s| statement(s, dialect))),
        Err(e) => recognise_head(text, dialect).unwrap_or_else(|| {
            let message = match &e {
                ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
                ParserError::RecursionLimitExceeded => "recursion limit exceeded".to_owned(),
            };
            Verdict::destructive(format!("could not be parsed: {message}"))
        }),
    }
}

fn statement(stmt: &Statement, dialect: Dialect) -> Verdict {
    let pg = dialect == Dialect::Postgres;
    match stmt {
        // Reading and writing rows.
        Statement::Query(q) => query(q, dialect),
        Statement::Insert(insert) => insert.source.as_deref().map_or_else(Verdict::safe, |q| query(q, dialect)),
        Statement::Update { selection, .. } => {
            rows_filter(selection.as_ref(), "UPDATE", "rewrites every row of the table")
        }
        Statement::Delete(delete) => rows_filter(delete.selection.as_ref(), "DELETE", "removes every row of the table"),
        // MERGE only touches rows its ON condition matches: it is to UPDATE/DELETE what a
        // WHERE clause is, so it is safe for the same reason an UPDATE with WHERE is.
        Statement::Merge { .. } => Verdict::safe(),
        Statement::Truncate { .. } => Verdict::destructive("TRUNCATE removes every row"),
        Statement::Copy { .. } => Verdict::safe(),
        Statement::Explain { analyze, options, statement: inner, .. } => {
            let option_analyze =
                options.iter().flatten().any(|o| o.name.value.eq_ignore_ascii_case("analyze") && !is_false(&o.arg));
            if *analyze || option_analyze {
                // EXPLAIN ANALYZE executes the statement.
                statement(inner, dialect)
            } else {
                Verdict::safe()
            }
        }
        // PREPARE is only written to be EXECUTEd, so judge it by what it will run.
        Statement::Prepare { statement: inner, .. } => statement(inner, dialect),
        Statement::Execute { .. } | Statement::Deallocate { .. } => Verdict::safe(),
        // Calling code: like `SELECT f()`, what it does is not visible here.
        Statement::Call(_) => Verdict::safe(),

        // Creating things never loses data and takes no lock that running code waits on,
        // except an index build.
        Statement::CreateTable(_)
        | Statement::CreateVirtualTable { .. }
        | Statement::CreateView { .. }
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateTrigger(_)
        | Statement::CreateSequence { .. }
        | Statement::CreateDomain(_)
        | Statement::CreateType { .. }
        | Statement::CreateExtension { .. }
        | Statement::CreatePolicy { .. }
        | Statement::CreateRole { .. } => Verdict::safe(),
        Statement::CreateIndex(index) => {
            if pg && !index.concurrently {
                Verdict::blocking("CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds")
            } else {
                // SQLite has no concurrent build and no concurrent writers to block.
                Verdict::safe()
            }
        }

        // Changing things.
        Statement::AlterTable { operations, .. } => worst_of(operations.iter().map(|op| alter_table(op, dialect))),
        Statement::AlterIndex { operation: AlterIndexOperation::RenameIndex { .. }, .. } => {
            Verdict::blocking("renaming an index breaks code and hints that name it")
        }
        Statement::AlterView { .. } => Verdict::blocking("redefining a view can break running code that reads it"),
        Statement::AlterType(alter) => match &alter.operation {
            AlterTypeOperation::AddValue(_) => Verdict::safe(),
            AlterTypeOperation::Rename(_) => Verdict::blocking("renaming a type breaks running code that names it"),
            AlterTypeOperation::RenameValue(_) => {
                Verdict::blocking("renaming an enum value breaks running code that writes or compares it")
            }
        },
        Statement::AlterSchema(alter) => worst_of(alter.operations.iter().map(|op| match op {
            AlterSchemaOperation::Rename { .. } => {
                Verdict::blocking("renaming a schema breaks running code that names it")
            }
            AlterSchemaOperation::OwnerTo { .. } => Verdict::safe(),
            _ => Verdict::unrecognised(),
        })),
        Statement::AlterRole { .. } | Statement::AlterPolicy { .. } => Verdict::safe(),
        Statement::RenameTable(_) => Verdict::blocking("renaming a table breaks running code that names it"),

        // Dropping things.
        Statement::Drop { object_type, .. } => drop(*object_type),
        Statement::DropFunction { .. } | Statement::DropProcedure { .. } => {
            Verdict::blocking("dropping a function breaks running code and triggers that call it")
        }
        Statement::DropTrigger(_) => Verdict::blocking("dropping a trigger changes what running code's writes do"),
        Statement::DropPolicy { .. } => Verdict::blocking("dropping a policy changes which rows running code sees"),
        Statement::DropDomain(_) => {
            Verdict::destructive("DROP DOMAIN fails or, with CASCADE, drops every column of that domain")
        }
        Statement::DropExtension { .. } => {
            Verdict::destructive("DROP EXTENSION fails or, with CASCADE, drops every column and object that uses it")
        }

        // Housekeeping.
        Statement::Vacuum(vacuum) => {
            if vacuum.full {
                Verdict::blocking("VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock")
            } else if !pg {
                Verdict::blocking("VACUUM rewrites the whole SQLite database file and holds its write lock")
            } else {
                Verdict::safe()
            }
        }
        Statement::Analyze { .. } => Verdict::safe(),
        Statement::Pragma { name, .. } if !pg => {
            pragma(name.0.last().and_then(|part| part.as_ident()).map_or("", |ident| ident.value.as_str()))
        }
        Statement::AttachDatabase { .. } if !pg => Verdict::safe(),

        // Session, transaction and metadata statements.
        Statement::Set(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Comment { .. }
        | Statement::Grant { .. }
        | Statement::Revoke { .. }
        | Statement::Discard { .. }
        | Statement::LISTEN { .. }
        | Statement::UNLISTEN { .. }
        | Statement::NOTIFY { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::ShowVariable { .. } => Verdict::safe(),

        _ => Verdict::unrecognised(),
    }
}

fn is_false(arg: &Option<Expr>) -> bool {
    matches!(arg, Some(Expr::Value(v)) if v.value == Value::Boolean(false))
}

/// `UPDATE`/`DELETE` are safe with a `WHERE` clause, destructive without one. `WHERE true`
/// is no filter at all.
fn rows_filter(selection: Option<&Expr>, verb: &str, effect: &str) -> Verdict {
    match selection {
        Some(Expr::Value(v)) if v.value == Value::Boolean(true) => {
            Verdict::destructive(format!("{verb} with WHERE true {effect}"))
        }
        Some(_) => Verdict::changes_data(format!("{verb} changes the rows its WHERE matches")),
        None => Verdict::destructive(format!("{verb} without WHERE {effect}")),
    }
}

/// A query is safe unless it hides data-modifying statements in its `WITH` clause or body
/// (`WITH d AS (DELETE FROM t RETURNING *) SELECT ...`, `WITH x AS (...) UPDATE ...`).
fn query(q: &Query, dialect: Dialect) -> Verdict {
    let ctes = q.with.iter().flat_map(|w| &w.cte_tables).map(|cte| query(&cte.query, dialect));
    worst_of(ctes).worst(set_expr(&q.body, dialect))
}

fn set_expr(body: &SetExpr, dialect: Dialect) -> Verdict {
    match body {
        SetExpr::Query(q) => query(q, dialect),
        SetExpr::SetOperation { left, right, .. } => set_expr(left, dialect).worst(set_expr(right, dialect)),
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => statement(s, dialect),
        _ => Verdict::safe(),
    }
}

fn drop(object_type: ObjectType) -> Verdict {
    match object_type {
        ObjectType::Table => Verdict::destructive("DROP TABLE deletes the table and every row in it"),
        ObjectType::Schema => {
            Verdict::destructive("DROP SCHEMA deletes the schema and, with CASCADE, every table in it")
        }
        ObjectType::Database => Verdict::destructive("DROP DATABASE deletes the whole database"),
        ObjectType::Sequence => Verdict::destructive("DROP SEQUENCE loses the sequence and its current value"),
        ObjectType::Type => Verdict::destructive("DROP TYPE fails or, with CASCADE, drops every column of that type"),
        // A view holds no rows: the previous migration's definition recreates it exactly,
        // so nothing is lost, but running code that reads it fails until then.
        ObjectType::View => Verdict::blocking("DROP VIEW breaks running code that reads the view (no rows are lost)"),
        // A materialized view's rows are derived from tables that are still there and come
        // back with a REFRESH, so it is blocking like a view, not destructive like a table.
        ObjectType::MaterializedView => {
            Verdict::blocking("DROP MATERIALIZED VIEW breaks running code that reads it (its rows can be recomputed)")
        }
        // Whether the index backs a uniqueness guarantee cannot be told from the text.
        ObjectType::Index => Verdict::blocking(
            "DROP INDEX locks the table, can remove a uniqueness guarantee and slows queries that used it",
        ),
        ObjectType::Role | ObjectType::User => {
            Verdict::blocking("dropping a role breaks running code that connects or is granted through it")
        }
        _ => Verdict::unrecognised(),
    }
}

fn alter_table(op: &AlterTableOperation, dialect: Dialect) -> Verdict {
    let pg = dialect == Dialect::Postgres;
    match op {
        AlterTableOperation::AddColumn { column_def, .. } => add_column(column_def, dialect),
        AlterTableOperation::AddConstraint { .. } if !pg => {
            Verdict::blocking("SQLite cannot add a constraint to an existing table: the statement fails")
        }
        AlterTableOperation::AddConstraint { constraint, not_valid } => match constraint {
            TableConstraint::ForeignKey { .. } | TableConstraint::Check { .. } if *not_valid => Verdict::safe(),
            TableConstraint::ForeignKey { .. } | TableConstraint::Check { .. } => Verdict::blocking(
                "ADD CONSTRAINT without NOT VALID checks every row under lock (add it NOT VALID, then VALIDATE CONSTRAINT)",
            ),
            TableConstraint::PrimaryKey { .. } | TableConstraint::Unique { .. } => Verdict::blocking(
                "adding a PRIMARY KEY or UNIQUE constraint builds its index under lock (build it CONCURRENTLY first)",
            ),
            _ => Verdict::blocking("adding an index-backed constraint builds its index under lock"),
        },
        AlterTableOperation::ValidateConstraint { .. } => Verdict::safe(),
        AlterTableOperation::DropColumn { .. } => Verdict::destructive("DROP COLUMN deletes the column's data"),
        AlterTableOperation::DropConstraint { .. }
        | AlterTableOperation::DropPrimaryKey { .. }
        | AlterTableOperation::DropForeignKey { .. }
        | AlterTableOperation::DropIndex { .. } => {
            Verdict::blocking("dropping a constraint removes a guarantee running code may rely on (no rows are lost)")
        }
        AlterTableOperation::RenameColumn { .. } => {
            Verdict::blocking("RENAME COLUMN breaks running code that uses the old name (no data is lost)")
        }
        AlterTableOperation::RenameTable { .. } => {
            Verdict::blocking("RENAME TO breaks running code that uses the old table name (no data is lost)")
        }
        AlterTableOperation::RenameConstraint { .. } => {
            Verdict::blocking("renaming a constraint breaks code that names it")
        }
        AlterTableOperation::AlterColumn { op, .. } => match op {
            AlterColumnOperation::SetNotNull => Verdict::blocking(
                "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock (add a NOT VALID CHECK first)",
            ),
            AlterColumnOperation::DropNotNull
            | AlterColumnOperation::SetDefault { .. }
            | AlterColumnOperation::DropDefault
            | AlterColumnOperation::AddGenerated { .. } => Verdict::safe(),
            AlterColumnOperation::SetDataType { data_type, using, .. } => type_change(data_type, using.as_ref()),
        },
        // MySQL forms of a type change; the same caution applies.
        AlterTableOperation::ChangeColumn { data_type, .. } | AlterTableOperation::ModifyColumn { data_type, .. } => {
            type_change(data_type, None)
        }
        AlterTableOperation::EnableRowLevelSecurity => {
            Verdict::blocking("ENABLE ROW LEVEL SECURITY hides every row from running code until policies allow it")
        }
        AlterTableOperation::OwnerTo { .. }
        | AlterTableOperation::DisableRowLevelSecurity
        | AlterTableOperation::DisableRule { .. }
        | AlterTableOperation::DisableTrigger { .. }
        | AlterTableOperation::EnableAlwaysRule { .. }
        | AlterTableOperation::EnableAlwaysTrigger { .. }
        | AlterTableOperation::EnableReplicaRule { .. }
        | AlterTableOperation::EnableReplicaTrigger { .. }
        | AlterTableOperation::EnableRule { .. }
        | AlterTableOperation::EnableTrigger { .. }
        | AlterTableOperation::ReplicaIdentity { .. }
        | AlterTableOperation::SetOptionsParens { .. }
            if pg =>
        {
            Verdict::safe()
        }
        _ => Verdict::unrecognised(),
    }
}

/// `ADD COLUMN`: safe when nullable or with a cheap default; blocking when PostgreSQL must
/// rewrite or scan the table, or when existing rows cannot satisfy `NOT NULL`.
fn add_column(column: &ColumnDef, dialect: Dialect) -> Verdict {
    let pg = dialect == Dialect::Postgres;
    let options = || column.options.iter().map(|o| &o.option);
    let not_null = options().any(|o| matches!(o, ColumnOption::NotNull));
    let default = options().find_map(|o| match o {
        ColumnOption::Default(e) => Some(e),
        _ => None,
    });
    let generated = options().any(|o| matches!(o, ColumnOption::Generated { .. } | ColumnOption::Identity(_)));

    let mut verdict = Verdict::safe();
    if not_null && default.is_none() && !generated {
        verdict = verdict.worst(Verdict::blocking(if pg {
            "ADD COLUMN ... NOT NULL without DEFAULT fails on a non-empty table and breaks running code's INSERTs"
        } else {
            "ADD COLUMN ... NOT NULL without DEFAULT is refused by SQLite and breaks running code's INSERTs"
        }));
    }
    if !pg {
        return verdict;
    }
    let type_name = column.data_type.to_string().to_ascii_lowercase();
    if generated
        || matches!(type_name.as_str(), "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8")
    {
        verdict = verdict.worst(Verdict::blocking(
            "a generated, identity or serial column fills every row: the table is rewritten under an ACCESS EXCLUSIVE lock",
        ));
    }
    if let Some(e) = default
        && calls_volatile(e)
    {
        verdict = verdict.worst(Verdict::blocking(
            "a volatile DEFAULT is evaluated per row: the table is rewritten under an ACCESS EXCLUSIVE lock",
        ));
    }
    for option in options() {
        match option {
            ColumnOption::Unique { .. } => {
                verdict = verdict.worst(Verdict::blocking(
                    "an inline PRIMARY KEY or UNIQUE builds its index under an ACCESS EXCLUSIVE lock",
                ))
            }
            ColumnOption::Check(_) => {
                verdict =
                    verdict.worst(Verdict::blocking("an inline CHECK is validated by scanning every row under lock"))
            }
            ColumnOption::ForeignKey { .. } => {
                verdict = verdict.worst(Verdict::blocking(
                    "an inline REFERENCES is validated under lock on both tables (add the FOREIGN KEY NOT VALID)",
                ))
            }
            _ => {}
        }
    }
    verdict
}

/// Functions whose value differs per row, so a `DEFAULT` using them cannot be stored once
/// in the catalog (PostgreSQL 11+'s fast path) and every row is rewritten.
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
];

fn calls_volatile(e: &Expr) -> bool {
    // The expression is printed back and re-tokenized rather than walked: sqlparser has no
    // visitor without its `visitor` feature, and a name followed by `(` is a call either way.
    let text = e.to_string();
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, &text).tokenize() else {
        return true;
    };
    let significant: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    significant.windows(2).any(|pair| match (pair[0], pair[1]) {
        (Token::Word(w), Token::LParen) => VOLATILE.iter().any(|v| w.value.eq_ignore_ascii_case(v)),
        _ => false,
    })
}

/// `ALTER COLUMN ... TYPE`: without the old type the change could narrow or fail on some
/// rows, so it is destructive, unless the new type is one that every usual source widens
/// into (`text`, unbounded `varchar`, `bigint`) and no `USING` expression rewrites values.
fn type_change(new: &DataType, using: Option<&Expr>) -> Verdict {
    let widening = matches!(
        new,
        DataType::Text
            | DataType::Varchar(None)
            | DataType::CharacterVarying(None)
            | DataType::BigInt(_)
            | DataType::Int8(_)
    );
    if widening && using.is_none() {
        Verdict::blocking(format!(
            "changing a column's type to {new} widens it but rewrites or rechecks the table under an exclusive lock"
        ))
    } else if using.is_some() {
        Verdict::destructive(format!("changing a column's type to {new} USING an expression rewrites every value"))
    } else {
        Verdict::destructive(format!("changing a column's type to {new} may narrow or fail on existing values"))
    }
}

fn pragma(name: &str) -> Verdict {
    match name.to_ascii_lowercase().as_str() {
        // Both let statements write the schema table directly: one typo corrupts the file.
        "writable_schema" | "schema_version" => {
            Verdict::destructive(format!("PRAGMA {name} can corrupt the database file"))
        }
        _ => Verdict::safe(),
    }
}

// ---------------------------------------------------------------------------------------
// Statements sqlparser cannot parse

/// Classifies a statement that sqlparser rejected by its leading keywords, for the few
/// kinds whose keywords alone decide the class. `None` leaves it destructive.
fn recognise_head(text: &str, dialect: Dialect) -> Option<Verdict> {
    let pg = dialect == Dialect::Postgres;
    let sql = sql_dialect(dialect);
    let tokens = Tokenizer::new(sql.as_ref(), text).tokenize().ok()?;
    let significant: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let words: Vec<String> = significant
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let has = |k: &str| w.contains(&k);
    let note = " (recognised by its leading keywords: sqlparser cannot parse this statement)";
    let blocking = |reason: &str| Some(Verdict::blocking(format!("{reason}{note}")));
    let destructive = |reason: &str| Some(Verdict::destructive(format!("{reason}{note}")));
    let create = match w.as_slice() {
        ["CREATE", "OR", "REPLACE", rest @ ..] | ["CREATE", rest @ ..] => rest,
        _ => &[],
    };
    match (w.as_slice(), create) {
        (["LOCK", ..], _) => blocking("LOCK holds a table lock until the transaction ends"),
        (["CLUSTER", ..], _) => blocking("CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock"),
        (["REINDEX", ..], _) if pg && has("CONCURRENTLY") => Some(Verdict::safe()),
        (["REINDEX", ..], _) => blocking("REINDEX without CONCURRENTLY blocks writes while it rebuilds"),
        (["REFRESH", "MATERIALIZED", "VIEW", "CONCURRENTLY", ..], _) => Some(Verdict::safe()),
        (["REFRESH", "MATERIALIZED", "VIEW", ..], _) => {
            blocking("REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of the view")
        }
        (["DO", ..], _) if pg => destructive("DO runs an anonymous code block the linter cannot see into"),
        (["DROP", "INDEX", ..], _) => {
            blocking("DROP INDEX can remove a uniqueness guarantee and slows queries that used it")
        }
        (["DROP", "TRIGGER", ..], _) => blocking("dropping a trigger changes what running code's writes do"),
        (["ALTER", "SEQUENCE", ..], _) if pg && has("RENAME") => {
            blocking("renaming a sequence breaks running code and defaults that name it")
        }
        (["ALTER", "SEQUENCE", ..], _) if pg => Some(Verdict::safe()),
        // Creating a routine or trigger runs nothing; the body is the next deploy's concern.
        (_, ["FUNCTION" | "PROCEDURE" | "TRIGGER" | "CONSTRAINT", ..]) => Some(Verdict::safe()),
        (_, ["TEMP" | "TEMPORARY", "TRIGGER", ..]) if !pg => Some(Verdict::safe()),
        (_, ["UNLOGGED", "TABLE", ..]) if pg => Some(Verdict::safe()),
        (["SET" | "RESET" | "GRANT" | "REVOKE", ..] | ["COMMENT", "ON", ..], _) => Some(Verdict::safe()),
        (["ALTER", "DEFAULT", "PRIVILEGES", ..], _) if pg => Some(Verdict::safe()),
        (["DETACH", ..] | ["VACUUM", "INTO", ..], _) if !pg => Some(Verdict::safe()),
        (["PRAGMA", ..], _) if !pg => {
            // `PRAGMA [schema.]name [= value | (value)]`: the name is the last word before
            // `=` or `(`.
            let name = significant
                .iter()
                .skip(1)
                .take_while(|t| !matches!(t, Token::Eq | Token::LParen))
                .filter_map(|t| match t {
                    Token::Word(w) => Some(w.value.as_str()),
                    _ => None,
                })
                .last()
                .unwrap_or("");
            Some(pragma(name))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(sql: &str, dialect: Dialect) -> Class {
        classify(sql, dialect).class
    }

    fn check_table(dialect: Dialect, expected: Class, table: &[&str]) {
        let mut wrong = Vec::new();
        for sql in table {
            let lint = classify(sql, dialect);
            if lint.class != expected {
                wrong.push(format!("{sql:?}: {} {:?}", lint.class, lint.findings.first().map(|f| &f.reason)));
            }
            match expected {
                Class::Safe => assert!(lint.findings.is_empty(), "{sql}: {:?}", lint.findings),
                _ => assert_eq!(lint.findings.len(), 1, "{sql}: {:?}", lint.findings),
            }
        }
        assert!(wrong.is_empty(), "expected {expected} for:\n{}", wrong.join("\n"));
    }

    // -----------------------------------------------------------------------------------
    // PostgreSQL tables

    const PG_DESTRUCTIVE: &[&str] = &[
        "DROP TABLE users",
        "DROP TABLE IF EXISTS users",
        "DROP TABLE users, orgs CASCADE",
        "drop table \"Users\"",
        "DROP TABLE public.users RESTRICT",
        "DROP SCHEMA legacy",
        "DROP SCHEMA IF EXISTS legacy CASCADE",
        "DROP DATABASE app",
        "DROP DATABASE IF EXISTS app",
        "DROP SEQUENCE users_id_seq",
        "DROP SEQUENCE IF EXISTS users_id_seq CASCADE",
        "DROP TYPE mood",
        "DROP TYPE IF EXISTS mood CASCADE",
        "DROP DOMAIN positive_int",
        "DROP EXTENSION postgis CASCADE",
        "ALTER TABLE users DROP COLUMN legacy_flag",
        "ALTER TABLE users DROP legacy_flag",
        "ALTER TABLE users DROP COLUMN IF EXISTS legacy_flag CASCADE",
        "ALTER TABLE IF EXISTS users DROP COLUMN a, DROP COLUMN b",
        "ALTER TABLE users ADD COLUMN b text, DROP COLUMN a",
        "TRUNCATE users",
        "TRUNCATE TABLE users",
        "TRUNCATE users, orgs RESTART IDENTITY CASCADE",
        "TRUNCATE ONLY users",
        "TRUNCATE users CONTINUE IDENTITY RESTRICT",
        "DELETE FROM users",
        "DELETE FROM public.users",
        "DELETE FROM users RETURNING id",
        "DELETE FROM ONLY users",
        "DELETE FROM users WHERE true",
        "UPDATE users SET admin = false",
        "UPDATE users SET a = 1, b = 2 RETURNING *",
        "UPDATE users u SET a = o.a FROM orgs o",
        "UPDATE users SET a = 1 WHERE TRUE",
        "WITH gone AS (DELETE FROM users RETURNING *) SELECT count(*) FROM gone",
        "WITH x AS (SELECT 1) DELETE FROM users",
        "WITH x AS (SELECT 1) UPDATE users SET a = 1",
        "EXPLAIN ANALYZE DELETE FROM users",
        "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM users",
        "PREPARE wipe AS DELETE FROM users",
        "ALTER TABLE users ALTER COLUMN email TYPE varchar(20)",
        "ALTER TABLE users ALTER COLUMN n TYPE integer",
        "ALTER TABLE users ALTER COLUMN n TYPE smallint",
        "ALTER TABLE users ALTER COLUMN n SET DATA TYPE numeric(10, 2)",
        "ALTER TABLE users ALTER COLUMN at TYPE timestamptz",
        "ALTER TABLE users ALTER COLUMN doc TYPE jsonb USING doc::jsonb",
        "ALTER TABLE users ALTER COLUMN n TYPE bigint USING n * 100",
        "ALTER TABLE users ALTER COLUMN flag TYPE boolean USING flag <> 0",
        "ALTER TABLE users ALTER email TYPE citext",
        "DO $$ BEGIN DELETE FROM users; END $$",
        "DO $body$ BEGIN RAISE NOTICE 'x'; END $body$ LANGUAGE plpgsql",
        "THIS IS NOT SQL",
        "CREATE TABEL users (id int)",
        "SELECT 'unterminated",
        "ALTER TABLE users ATTACH PARTITION users_2024 FOR VALUES FROM (1) TO (2)",
        "SECURITY LABEL ON TABLE users IS 'x'",
        "UPSERT INTO users VALUES (1)",
        "ALTER TABLE users SET SCHEMA other",
    ];

    const PG_BLOCKING: &[&str] = &[
        "CREATE INDEX users_email ON users (email)",
        "CREATE UNIQUE INDEX users_email ON users (lower(email))",
        "CREATE INDEX ON users (a)",
        "CREATE INDEX IF NOT EXISTS i ON users USING gin (data jsonb_path_ops) WHERE deleted_at IS NULL",
        "ALTER TABLE users ADD COLUMN n int NOT NULL",
        "ALTER TABLE users ADD n int NOT NULL",
        "ALTER TABLE users ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY",
        "ALTER TABLE users ADD COLUMN d int GENERATED ALWAYS AS (n * 2) STORED",
        "ALTER TABLE users ADD COLUMN id serial",
        "ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid()",
        "ALTER TABLE users ADD COLUMN r float DEFAULT random()",
        "ALTER TABLE users ADD COLUMN code text UNIQUE",
        "ALTER TABLE users ADD COLUMN n int CHECK (n > 0)",
        "ALTER TABLE users ADD COLUMN org_id int REFERENCES orgs (id)",
        "ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (org_id) REFERENCES orgs (id)",
        "ALTER TABLE users ADD FOREIGN KEY (org_id) REFERENCES orgs (id)",
        "ALTER TABLE users ADD CONSTRAINT positive CHECK (n > 0)",
        "ALTER TABLE users ADD CONSTRAINT pk PRIMARY KEY (id)",
        "ALTER TABLE ONLY users ADD CONSTRAINT u UNIQUE (email)",
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
        "ALTER TABLE users RENAME COLUMN email TO mail",
        "ALTER TABLE users RENAME email TO mail",
        "ALTER TABLE users RENAME TO people",
        "ALTER TABLE users RENAME CONSTRAINT a TO b",
        "ALTER INDEX users_email RENAME TO users_mail",
        "ALTER TYPE mood RENAME TO feeling",
        "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'",
        "ALTER SCHEMA app RENAME TO application",
        "ALTER TABLE users DROP CONSTRAINT users_email_key",
        "ALTER TABLE users DROP CONSTRAINT IF EXISTS fk CASCADE",
        "ALTER TABLE users ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE users ALTER COLUMN email TYPE text",
        "ALTER TABLE users ALTER COLUMN email SET DATA TYPE varchar",
        "ALTER TABLE users ALTER COLUMN email TYPE character varying",
        "ALTER TABLE users ALTER COLUMN n TYPE bigint",
        "ALTER TABLE users ALTER COLUMN n TYPE int8",
        "DROP INDEX users_email",
        "DROP INDEX IF EXISTS a, b",
        "DROP INDEX CONCURRENTLY users_email",
        "DROP INDEX CONCURRENTLY IF EXISTS users_email",
        "DROP VIEW active_users",
        "DROP VIEW IF EXISTS active_users CASCADE",
        "DROP MATERIALIZED VIEW stats",
        "DROP FUNCTION f(int)",
        "DROP FUNCTION IF EXISTS f",
        "DROP PROCEDURE p",
        "DROP TRIGGER t ON users",
        "DROP TRIGGER IF EXISTS t ON users CASCADE",
        "DROP POLICY p ON users",
        "DROP ROLE reporting",
        "VACUUM FULL users",
        "CLUSTER users USING users_pkey",
        "LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
        "LOCK users",
        "REINDEX TABLE users",
        "REINDEX INDEX users_email",
        "REFRESH MATERIALIZED VIEW stats",
        "ALTER SEQUENCE s RENAME TO t",
    ];

    const PG_SAFE: &[&str] = &[
        "CREATE TABLE users (id bigserial PRIMARY KEY, email text UNIQUE NOT NULL, at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE IF NOT EXISTS t (a int) PARTITION BY RANGE (a)",
        "CREATE TABLE t AS SELECT * FROM users",
        "CREATE UNLOGGED TABLE scratch (a int)",
        "CREATE TEMP TABLE scratch (a int)",
        "CREATE VIEW v AS SELECT id FROM users",
        "CREATE OR REPLACE VIEW v AS SELECT id FROM users",
        "CREATE MATERIALIZED VIEW mv AS SELECT 1",
        "CREATE INDEX CONCURRENTLY users_email ON users (email)",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email)",
        "CREATE INDEX CONCURRENTLY \"idx\" ON \"public\".\"users\" (\"a\")",
        "ALTER TABLE users ADD COLUMN nickname text",
        "ALTER TABLE users ADD nickname text NULL",
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS nickname text",
        "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true",
        "ALTER TABLE users ADD COLUMN at timestamptz NOT NULL DEFAULT now()",
        "ALTER TABLE users ADD COLUMN a int DEFAULT 0, ADD COLUMN b text",
        "ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID",
        "ALTER TABLE users ADD CONSTRAINT positive CHECK (n > 0) NOT VALID",
        "ALTER TABLE users VALIDATE CONSTRAINT fk",
        "ALTER TABLE users ALTER COLUMN email DROP NOT NULL",
        "ALTER TABLE users ALTER COLUMN n SET DEFAULT 0",
        "ALTER TABLE users ALTER COLUMN n DROP DEFAULT",
        "ALTER TABLE users OWNER TO app",
        "ALTER TABLE users SET (fillfactor = 70)",
        "ALTER TYPE mood ADD VALUE 'meh'",
        "CREATE SCHEMA app",
        "CREATE SCHEMA IF NOT EXISTS app AUTHORIZATION app",
        "CREATE FUNCTION add(a integer, b integer) RETURNS integer LANGUAGE SQL IMMUTABLE RETURN a + b",
        "CREATE OR REPLACE FUNCTION f() RETURNS trigger AS $$ BEGIN DROP TABLE users; RETURN NEW; END; $$ LANGUAGE plpgsql",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
        "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN TRUNCATE users; END $$",
        "CREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION f()",
        "CREATE TYPE mood AS ENUM ('sad', 'ok')",
        "CREATE SEQUENCE s START 1",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        "CREATE DOMAIN positive_int AS int CHECK (VALUE > 0)",
        "INSERT INTO users (email) VALUES ('a@b.c')",
        "INSERT INTO users SELECT * FROM old ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a",
        "UPDATE users SET admin = false WHERE id = 1",
        "UPDATE users u SET a = o.a FROM orgs o WHERE u.org_id = o.id",
        "DELETE FROM users WHERE deleted_at < now() - interval '1 year'",
        "DELETE FROM users USING orgs WHERE users.org_id = orgs.id",
        "SELECT 1",
        "SELECT pg_advisory_lock(1)",
        "EXPLAIN DELETE FROM users",
        "BEGIN",
        "COMMIT",
        "START TRANSACTION",
        "ROLLBACK",
        "SAVEPOINT a",
        "SET lock_timeout = '1s'",
        "SET LOCAL statement_timeout = 0",
        "SET search_path TO public, other",
        "SET SESSION AUTHORIZATION app",
        "RESET lock_timeout",
        "COMMENT ON TABLE users IS 'people'",
        "COMMENT ON COLUMN users.email IS 'unique'",
        "COMMENT ON INDEX users_email IS NULL",
        "GRANT SELECT ON users TO reporting",
        "GRANT reporting TO app",
        "REVOKE SELECT ON users FROM reporting",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO reporting",
        "VACUUM users",
        "ANALYZE users",
        "REINDEX INDEX CONCURRENTLY users_email",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY stats",
        "ALTER SEQUENCE users_id_seq OWNED BY users.id",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
        "CREATE POLICY p ON users USING (true)",
        "CALL refresh_stats()",
        "NOTIFY deploys",
    ];

    #[test]
    fn postgres_destructive_statements() {
        assert!(PG_DESTRUCTIVE.len() >= 50);
        check_table(Dialect::Postgres, Class::Destructive, PG_DESTRUCTIVE);
    }

    #[test]
    fn postgres_blocking_statements() {
        check_table(Dialect::Postgres, Class::Blocking, PG_BLOCKING);
    }

    #[test]
    fn postgres_safe_statements() {
        assert!(PG_SAFE.len() + PG_BLOCKING.len() >= 50);
        check_table(Dialect::Postgres, Class::Safe, PG_SAFE);
    }

    // -----------------------------------------------------------------------------------
    // SQLite tables

    const SQLITE_DESTRUCTIVE: &[&str] = &[
        "DROP TABLE users",
        "DROP TABLE IF EXISTS users",
        "DROP TABLE main.users",
        "drop table \"odd;name\"",
        "DROP TABLE [users]",
        "DROP TABLE `users`",
        "ALTER TABLE users DROP COLUMN legacy",
        "ALTER TABLE users DROP legacy",
        "ALTER TABLE main.users DROP COLUMN legacy",
        "DELETE FROM users",
        "DELETE FROM main.users",
        "DELETE FROM users RETURNING id",
        "DELETE FROM users WHERE true",
        "delete from users",
        "UPDATE users SET admin = 0",
        "UPDATE users SET a = 1, b = 2",
        "UPDATE OR REPLACE users SET a = 1",
        "UPDATE users SET a = u.a FROM old u",
        "UPDATE users SET a = 1 WHERE TRUE",
        "WITH x AS (SELECT 1) DELETE FROM users",
        "WITH x AS (SELECT 1) UPDATE users SET a = 1",
        "DELETE FROM \"users\"",
        "TRUNCATE users",
        "TRUNCATE TABLE users",
        "ALTER TABLE users ALTER COLUMN n TYPE integer",
        "ALTER TABLE users ALTER COLUMN n TYPE varchar(10)",
        "DROP SCHEMA app",
        "DROP SEQUENCE s",
        "DROP TYPE t",
        "PRAGMA writable_schema = 1",
        "PRAGMA writable_schema = ON",
        "PRAGMA schema_version = 3",
        "PRAGMA main.writable_schema = 'on'",
        "THIS IS NOT SQL",
        "CREATE TABEL users (id INTEGER)",
        "SELECT 'unterminated",
        "INSERT INTO users VALUES (",
        "ALTER TABLE users ADD CONSTRAINT",
        "UPSERT users",
        "DELETE users",
        "CREATE TABLE t (a INTEGER",
        "SELECT * FROM",
        "DROP",
        "ALTER TABLE",
        "UPDATE users",
        "MERGE",
        "WITH gone AS (DELETE FROM users RETURNING *) SELECT 1",
        "DELETE FROM users LIMIT",
        "CREATE INDEX",
        "ATTACH",
        "KILL 1",
        "DROP STAGE s",
    ];

    const SQLITE_BLOCKING: &[&str] = &[
        "ALTER TABLE users ADD COLUMN n INTEGER NOT NULL",
        "ALTER TABLE users ADD n TEXT NOT NULL",
        "ALTER TABLE users RENAME TO people",
        "ALTER TABLE users RENAME COLUMN a TO b",
        "ALTER TABLE users RENAME a TO b",
        "ALTER TABLE users ALTER COLUMN n TYPE text",
        "ALTER TABLE users ADD CONSTRAINT positive CHECK (n > 0)",
        "DROP INDEX users_email",
        "DROP INDEX IF EXISTS users_email",
        "DROP VIEW active_users",
        "DROP VIEW IF EXISTS active_users",
        "DROP TRIGGER users_audit",
        "DROP TRIGGER IF EXISTS users_audit",
        "VACUUM",
        "VACUUM main",
        "REINDEX",
        "REINDEX users",
    ];

    const SQLITE_SAFE: &[&str] = &[
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL) STRICT",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS users (a, b)",
        "CREATE TEMP TABLE scratch (a)",
        "CREATE TABLE t AS SELECT * FROM users",
        "CREATE TABLE t (a INTEGER CHECK (a > 0), b REFERENCES u(id) ON DELETE CASCADE)",
        "CREATE TABLE \"odd;name\" (a)",
        "CREATE INDEX users_email ON users (email)",
        "CREATE UNIQUE INDEX IF NOT EXISTS i ON users (a) WHERE a IS NOT NULL",
        "CREATE VIEW IF NOT EXISTS v AS SELECT 1",
        "CREATE VIRTUAL TABLE docs USING fts5(title, body)",
        "CREATE TRIGGER t AFTER INSERT ON users BEGIN UPDATE counts SET n = n + 1; DELETE FROM queue; END",
        "CREATE TEMP TRIGGER t AFTER INSERT ON users BEGIN SELECT CASE WHEN 1 THEN 2 END; END",
        "CREATE TRIGGER IF NOT EXISTS t AFTER INSERT ON users FOR EACH ROW WHEN NEW.a > 0 BEGIN INSERT INTO log VALUES (NEW.a); END",
        "ALTER TABLE users ADD COLUMN nickname TEXT",
        "ALTER TABLE users ADD nickname TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE users ADD COLUMN org_id INTEGER REFERENCES orgs(id)",
        "INSERT INTO users (name) VALUES ('a')",
        "INSERT OR REPLACE INTO users VALUES (1)",
        "REPLACE INTO users VALUES (1)",
        "INSERT INTO users DEFAULT VALUES",
        "INSERT INTO users VALUES (1) ON CONFLICT (a) DO NOTHING",
        "INSERT INTO users (a) SELECT a FROM old",
        "WITH x AS (SELECT 1) INSERT INTO users SELECT * FROM x",
        "UPDATE users SET a = 1 WHERE id = 1",
        "UPDATE users SET a = u.a FROM old u WHERE users.id = u.id",
        "DELETE FROM users WHERE id = 1",
        "SELECT 1",
        "SELECT [a], `b` FROM users",
        "EXPLAIN QUERY PLAN DELETE FROM users",
        "BEGIN",
        "BEGIN IMMEDIATE",
        "BEGIN EXCLUSIVE TRANSACTION",
        "COMMIT",
        "END TRANSACTION",
        "END",
        "ROLLBACK",
        "SAVEPOINT x",
        "RELEASE SAVEPOINT x",
        "ROLLBACK TO SAVEPOINT x",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA foreign_keys=ON",
        "PRAGMA foreign_keys = 0",
        "PRAGMA foreign_key_check",
        "PRAGMA user_version = 3",
        "PRAGMA journal_mode = WAL",
        "PRAGMA table_info(users)",
        "ANALYZE users",
        "ATTACH DATABASE 'x.db' AS x",
        "DETACH DATABASE x",
        "VACUUM INTO 'copy.db'",
    ];

    #[test]
    fn sqlite_destructive_statements() {
        assert!(SQLITE_DESTRUCTIVE.len() >= 50);
        check_table(Dialect::Sqlite, Class::Destructive, SQLITE_DESTRUCTIVE);
    }

    #[test]
    fn sqlite_blocking_statements() {
        check_table(Dialect::Sqlite, Class::Blocking, SQLITE_BLOCKING);
    }

    #[test]
    fn sqlite_safe_statements() {
        assert!(SQLITE_SAFE.len() + SQLITE_BLOCKING.len() >= 50);
        check_table(Dialect::Sqlite, Class::Safe, SQLITE_SAFE);
    }

    // -----------------------------------------------------------------------------------
    // Rules that differ by dialect

    #[test]
    fn plain_create_index_blocks_only_on_postgres() {
        let sql = "CREATE INDEX users_email ON users (email)";
        assert_eq!(class(sql, Dialect::Postgres), Class::Blocking);
        assert_eq!(class(sql, Dialect::Sqlite), Class::Safe);
        assert_eq!(class("CREATE INDEX CONCURRENTLY i ON users (email)", Dialect::Postgres), Class::Safe);
    }

    #[test]
    fn plain_vacuum_blocks_only_on_sqlite() {
        assert_eq!(class("VACUUM", Dialect::Postgres), Class::Safe);
        assert_eq!(class("VACUUM", Dialect::Sqlite), Class::Blocking);
        assert_eq!(class("VACUUM FULL users", Dialect::Postgres), Class::Blocking);
    }

    // -----------------------------------------------------------------------------------
    // Scripts

    #[test]
    fn empty_and_comment_only_scripts_are_safe() {
        for sql in ["", "   \n\t", "-- nothing\n/* at all */\n", ";;\n;", "-- no-transaction\n"] {
            for dialect in [Dialect::Postgres, Dialect::Sqlite] {
                let lint = classify(sql, dialect);
                assert_eq!(lint.class, Class::Safe, "{sql:?}");
                assert!(lint.findings.is_empty(), "{sql:?}");
            }
        }
    }

    #[test]
    fn findings_carry_the_line_where_each_statement_starts() {
        let sql = "-- no-transaction\n\
                   CREATE TABLE a (x text DEFAULT 'a;b');\n\
                   \n\
                   -- drop the old one\n\
                   DROP TABLE\n  old_things;\n\
                   /* block; comment */ INSERT INTO a VALUES ('it''s; fine');\n\
                   CREATE INDEX a_x\n  ON a (x); DELETE FROM a;\n\
                   UPDATE a SET x = 'y' WHERE x = 'z';\n";
        let lint = classify(sql, Dialect::Postgres);
        assert_eq!(lint.class, Class::Destructive);
        let got: Vec<(Class, usize, &str)> =
            lint.findings.iter().map(|f| (f.class, f.line, f.statement.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Class::Destructive, 5, "DROP TABLE old_things"),
                (Class::Blocking, 8, "CREATE INDEX a_x ON a (x)"),
                (Class::Destructive, 9, "DELETE FROM a"),
            ]
        );
    }

    #[test]
    fn dollar_quoted_function_body_mentioning_drop_table_is_safe() {
        let sql = "CREATE OR REPLACE FUNCTION cleanup() RETURNS void AS $fn$\n\
                   BEGIN\n\
                     EXECUTE 'DROP TABLE users';\n\
                     DROP TABLE sessions;\n\
                     DELETE FROM audit;\n\
                   END;\n\
                   $fn$ LANGUAGE plpgsql;\n\
                   CREATE FUNCTION two() RETURNS int AS $$ SELECT 2; $$ LANGUAGE sql;\n\
                   SELECT $$; DROP TABLE x;$$;\n";
        let lint = classify(sql, Dialect::Postgres);
        assert_eq!(lint.class, Class::Safe, "{:?}", lint.findings);
    }

    #[test]
    fn a_dollar_tag_inside_another_does_not_close_it() {
        let sql = "CREATE FUNCTION f() RETURNS text AS $outer$ SELECT $$;$$; DROP TABLE t; $outer$ LANGUAGE sql;\nDROP TABLE real_one;";
        let lint = classify(sql, Dialect::Postgres);
        assert_eq!(lint.findings.len(), 1, "{:?}", lint.findings);
        assert_eq!(lint.findings[0].line, 2);
        assert_eq!(lint.findings[0].statement, "DROP TABLE real_one");
    }

    #[test]
    fn an_unparseable_statement_does_not_hide_the_others() {
        let sql = "CREATE TABLE a (id int);\nTHIS IS NOT SQL;\nALTER TABLE a RENAME TO b;\nDROP TABLE c;\n";
        let lint = classify(sql, Dialect::Postgres);
        let got: Vec<(Class, usize)> = lint.findings.iter().map(|f| (f.class, f.line)).collect();
        assert_eq!(got, vec![(Class::Destructive, 2), (Class::Blocking, 3), (Class::Destructive, 4)]);
        assert!(lint.findings[0].reason.starts_with("could not be parsed: "), "{}", lint.findings[0].reason);
    }

    #[test]
    fn unterminated_quotes_and_comments_are_destructive() {
        for sql in ["SELECT 'never closed; DROP TABLE x;", "SELECT 1 /* never closed", "SELECT $$ never closed"] {
            let lint = classify(sql, Dialect::Postgres);
            assert_eq!(lint.class, Class::Destructive, "{sql}");
        }
        assert_eq!(class("SELECT \"never closed", Dialect::Sqlite), Class::Destructive);
    }

    #[test]
    fn unrecognised_statements_are_destructive() {
        let lint = classify("KILL 1", Dialect::Postgres);
        assert_eq!(lint.class, Class::Destructive);
        assert_eq!(lint.findings[0].reason, "not recognised: treated as destructive");
        // PRAGMA is not PostgreSQL.
        assert_eq!(class("PRAGMA foreign_keys = 0", Dialect::Postgres), Class::Destructive);
    }

    #[test]
    fn psql_meta_commands_and_no_transaction_comments_do_not_break_parsing() {
        let sql = "-- no-transaction\n\\set ON_ERROR_STOP on\n\\connect app\nCREATE INDEX CONCURRENTLY i ON users (email);\n\\echo done\nDROP TABLE old;\n";
        let lint = classify(sql, Dialect::Postgres);
        assert_eq!(lint.findings.len(), 1, "{:?}", lint.findings);
        assert_eq!((lint.findings[0].line, lint.findings[0].statement.as_str()), (6, "DROP TABLE old"));
    }

    #[test]
    fn sqlite_trigger_bodies_keep_their_semicolons() {
        let sql = "CREATE TRIGGER audit AFTER DELETE ON users BEGIN\n  INSERT INTO log VALUES (OLD.id);\n  UPDATE counts SET n = CASE WHEN n > 0 THEN n - 1 ELSE 0 END;\nEND;\nDELETE FROM users;\n";
        let lint = classify(sql, Dialect::Sqlite);
        assert_eq!(lint.findings.len(), 1, "{:?}", lint.findings);
        assert_eq!((lint.findings[0].line, lint.findings[0].statement.as_str()), (5, "DELETE FROM users"));
    }

    #[test]
    fn begin_atomic_function_bodies_keep_their_semicolons() {
        let sql = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  DELETE FROM t;\n  SELECT CASE WHEN true THEN 1 END;\nEND;\nTRUNCATE t;";
        let lint = classify(sql, Dialect::Postgres);
        assert_eq!(lint.findings.len(), 1, "{:?}", lint.findings);
        assert_eq!(lint.findings[0].line, 6);
    }

    #[test]
    fn escape_strings_and_quoted_identifiers_hide_semicolons() {
        let sql = "INSERT INTO t VALUES (E'it\\'s; DROP TABLE x;');\nSELECT \"a;b\" FROM t;\nDROP TABLE y;";
        let lint = classify(sql, Dialect::Postgres);
        assert_eq!(lint.findings.len(), 1, "{:?}", lint.findings);
        assert_eq!(lint.findings[0].line, 3);
        let sqlite = "SELECT [a;b], `c;d` FROM t;\nDELETE FROM t;";
        let lint = classify(sqlite, Dialect::Sqlite);
        assert_eq!(lint.findings.len(), 1, "{:?}", lint.findings);
        assert_eq!(lint.findings[0].line, 2);
    }

    #[test]
    fn nested_block_comments_follow_the_dialect() {
        // PostgreSQL nests comments, so `DROP TABLE a` is still inside one.
        let sql = "/* outer /* inner */ DROP TABLE a; */ SELECT 1;";
        assert_eq!(class(sql, Dialect::Postgres), Class::Safe);
        // SQLite ends the comment at the first `*/`.
        let sql = "/* outer /* inner */ DROP TABLE a;";
        assert_eq!(class(sql, Dialect::Sqlite), Class::Destructive);
    }

    #[test]
    fn filtered_deletes_and_updates_are_safe_and_listed_as_data_changes() {
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            let lint = classify(
                "SELECT 1;\nDELETE FROM settings WHERE key = 'new_flag';\nUPDATE t SET a = 0 WHERE a IS NULL;",
                dialect,
            );
            assert_eq!(lint.class, Class::Safe);
            assert!(lint.findings.is_empty());
            let lines: Vec<usize> = lint.data_changes.iter().map(|f| f.line).collect();
            assert_eq!(lines, [2, 3]);
            assert!(lint.data_changes[0].reason.contains("DELETE changes the rows its WHERE matches"));
            // Without a WHERE it is destructive, a finding, not a mere data change.
            let lint = classify("DELETE FROM settings;", dialect);
            assert_eq!((lint.class, lint.data_changes.len()), (Class::Destructive, 0));
        }
    }

    #[test]
    fn the_script_class_is_the_worst_finding() {
        let lint = classify("CREATE INDEX i ON t (a);\nALTER TABLE t RENAME a TO b;", Dialect::Postgres);
        assert_eq!(lint.class, Class::Blocking);
        assert_eq!(lint.findings.len(), 2);
        let lint = classify("CREATE INDEX i ON t (a);\nTRUNCATE t;\nSELECT 1;", Dialect::Postgres);
        assert_eq!(lint.class, Class::Destructive);
    }

    #[test]
    fn one_statement_with_several_problems_gives_one_finding_with_the_worst_reasons() {
        let lint = classify("ALTER TABLE t RENAME COLUMN a TO b, DROP COLUMN c, DROP COLUMN d", Dialect::Postgres);
        assert_eq!(lint.findings.len(), 1);
        assert_eq!(lint.findings[0].class, Class::Destructive);
        assert_eq!(lint.findings[0].reason, "DROP COLUMN deletes the column's data");
        let lint = classify("ALTER TABLE t ADD COLUMN n int NOT NULL UNIQUE", Dialect::Postgres);
        assert_eq!(lint.findings[0].class, Class::Blocking);
        assert!(lint.findings[0].reason.contains("; "), "{}", lint.findings[0].reason);
    }

    #[test]
    fn statements_are_collapsed_and_cut_to_120_characters() {
        let long = format!("DELETE   FROM\n\t users_{}", "x".repeat(200));
        let lint = classify(&long, Dialect::Postgres);
        let statement = &lint.findings[0].statement;
        assert_eq!(statement.chars().count(), STATEMENT_CHARS);
        assert!(statement.starts_with("DELETE FROM users_xxx"));
        assert!(statement.ends_with('…'));
    }

    #[test]
    fn unrecognised_statements_report_the_parser_message() {
        let lint = classify("ALTER TABLE users SET LOGGED", Dialect::Postgres);
        assert_eq!(lint.class, Class::Destructive);
        let reason = &lint.findings[0].reason;
        assert!(reason.starts_with("could not be parsed: Expected"), "{reason}");
        assert!(!reason.contains("sql parser error"), "{reason}");
    }

    #[test]
    fn head_recognition_says_so_in_the_reason() {
        let lint = classify("LOCK TABLE users IN ACCESS EXCLUSIVE MODE", Dialect::Postgres);
        assert_eq!(lint.class, Class::Blocking);
        assert!(lint.findings[0].reason.contains("leading keywords"), "{}", lint.findings[0].reason);
    }

    #[test]
    fn class_orders_and_serialises_in_lowercase() {
        assert!(Class::Safe < Class::Blocking && Class::Blocking < Class::Destructive);
        let lint = classify("DROP TABLE t;", Dialect::Sqlite);
        let json = serde_json::to_value(&lint).expect("serialises");
        assert_eq!(json["class"], "destructive");
        assert_eq!(json["findings"][0]["line"], 1);
        assert_eq!(json["findings"][0]["statement"], "DROP TABLE t");
    }

    #[test]
    fn non_ascii_text_splits_on_character_boundaries() {
        let sql = "INSERT INTO café (nom) VALUES ('crème; brûlée');\n-- é;\nDELETE FROM café;\nSELECT $é$ ; $é$;";
        let lint = classify(sql, Dialect::Postgres);
        assert_eq!(lint.findings.len(), 1, "{:?}", lint.findings);
        assert_eq!((lint.findings[0].line, lint.findings[0].statement.as_str()), (3, "DELETE FROM café"));
        assert_eq!(shorten(&"é".repeat(300)).chars().count(), STATEMENT_CHARS);
    }
}
