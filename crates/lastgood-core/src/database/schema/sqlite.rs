//! Reading an SQLite schema into a [`Schema`], from `sqlite_master` and the table
//! pragmas.
//!
//! SQLite keeps each `CREATE` statement as it was written, so two spellings of one
//! definition must be made to compare equal: a small tokenizer here splits the stored
//! text into words, quoted names and punctuation, and [`render`] writes it back with
//! one spacing and upper-case keywords. That tokenizer is not the statement splitter
//! (`database/sql.rs`, which only finds where statements end) nor a parser (the linter
//! uses sqlparser): it only normalises. This is not the SQLite migration driver
//! (`database/driver/sqlite.rs`) nor the ledger's store (`ledger/sqlite.rs`).

use std::collections::BTreeMap;

use super::error::SchemaError;
use super::model::{Column, Index, Schema, Table};

fn sqlite_err(reading: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> SchemaError {
    let reading = reading.into();
    move |source| SchemaError::Sqlite { reading, source }
}

/// Reads the `main` database: tables, indexes, views and triggers from `sqlite_master`
/// and the table pragmas, skipping `sqlite_*` internals and lastgood's `lastgood_*`
/// bookkeeping.
///
/// SQLite keeps little structure: columns, keys and unique constraints come from the
/// pragmas; CHECK constraints only exist in the `CREATE TABLE` text, so they are
/// found there. SQLite constraints are rarely named, so each is keyed by its definition.
pub fn introspect_sqlite(conn: &rusqlite::Connection) -> Result<Schema, SchemaError> {
    let mut schema = Schema::default();
    let mut objects = Vec::new();
    {
        let mut stmt = conn
            .prepare(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 AND tbl_name NOT LIKE 'lastgood\\_%' ESCAPE '\\' AND tbl_name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 ORDER BY type, name",
            )
            .map_err(sqlite_err("catalog"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(sqlite_err("catalog"))?;
        for row in rows {
            objects.push(row.map_err(sqlite_err("catalog"))?);
        }
    }

    for (kind, name, table, sql) in &objects {
        let sql = sql.as_deref().unwrap_or_default();
        match kind.as_str() {
            "table" => {
                schema.tables.insert(name.clone(), sqlite_table(conn, name, sql)?);
            }
            // Indexes without SQL are the automatic ones behind PRIMARY KEY and UNIQUE,
            // which the table's constraints already show.
            "index" if !sql.is_empty() => {
                let tokens = tokenize(sql);
                let definition = render(&strip_sqlite_index_name(&tokens));
                let unique = tokens.iter().take(3).any(|t| t.eq_ignore_ascii_case("UNIQUE"));
                schema.indexes.insert(name.clone(), Index { table: table.clone(), definition, unique });
            }
            "view" => {
                schema.views.insert(name.clone(), render(&tokenize(sql)));
            }
            "trigger" => {
                schema.triggers.insert(format!("{table}.{name}"), render(&tokenize(sql)));
            }
            _ => {}
        }
    }
    Ok(schema)
}

fn sqlite_table(conn: &rusqlite::Connection, name: &str, sql: &str) -> Result<Table, SchemaError> {
    let mut table = Table::default();
    let quoted = format!("'{}'", name.replace('\'', "''"));
    let mut pk: Vec<(i64, String)> = Vec::new();
    {
        // table_xinfo includes generated columns (hidden 2 and 3); hidden 1 are the
        // hidden columns of virtual tables.
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo({quoted})"
            ))
            .map_err(sqlite_err(format!("columns of {name}")))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(sqlite_err(format!("columns of {name}")))?;
        for row in rows {
            let (col, ty, notnull, default, pk_pos, hidden) = row.map_err(sqlite_err(format!("columns of {name}")))?;
            if hidden == 1 {
                continue;
            }
            // Type names are case-insensitive in SQLite (`varchar` and `VARCHAR` are one type).
            let mut data_type = render(&tokenize(&ty)).to_ascii_uppercase();
            match hidden {
                2 => data_type.push_str(" GENERATED ALWAYS VIRTUAL"),
                3 => data_type.push_str(" GENERATED ALWAYS STORED"),
                _ => {}
            }
            if pk_pos > 0 {
                pk.push((pk_pos, col.clone()));
            }
            table.columns.push(Column {
                name: col,
                data_type,
                nullable: !notnull,
                default: default.map(|d| render(&tokenize(&d))),
            });
        }
    }
    let mut add = |definition: String| {
        table.constraints.insert(definition.clone(), definition);
    };
    if !pk.is_empty() {
        pk.sort();
        add(format!("PRIMARY KEY ({})", pk.into_iter().map(|(_, c)| c).collect::<Vec<_>>().join(", ")));
    }

    // UNIQUE constraints are implemented by automatic indexes with origin 'u'.
    let unique: Vec<String> = {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_index_list({quoted}) WHERE origin = 'u' ORDER BY name"))
            .map_err(sqlite_err(format!("indexes of {name}")))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(sqlite_err(format!("indexes of {name}")))?;
        rows.collect::<Result<_, _>>().map_err(sqlite_err(format!("indexes of {name}")))?
    };
    for index in unique {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
            .map_err(sqlite_err(format!("index {index}")))?;
        let cols: Vec<Option<String>> = stmt
            .query_map([&index], |r| r.get(0))
            .map_err(sqlite_err(format!("index {index}")))?
            .collect::<Result<_, _>>()
            .map_err(sqlite_err(format!("index {index}")))?;
        let cols: Vec<String> = cols.into_iter().map(|c| c.unwrap_or_else(|| "<expression>".into())).collect();
        add(format!("UNIQUE ({})", cols.join(", ")));
    }

    // Foreign keys: one row per column pair, grouped by id.
    let mut fks: BTreeMap<i64, SqliteForeignKey> = BTreeMap::new();
    {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list({quoted}) \
                 ORDER BY id, seq"
            ))
            .map_err(sqlite_err(format!("foreign keys of {name}")))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(sqlite_err(format!("foreign keys of {name}")))?;
        for row in rows {
            let (id, target, from, to, on_update, on_delete) =
                row.map_err(sqlite_err(format!("foreign keys of {name}")))?;
            let fk = fks.entry(id).or_insert_with(|| SqliteForeignKey {
                target,
                from: Vec::new(),
                to: Vec::new(),
                on_update,
                on_delete,
            });
            fk.from.push(from);
            fk.to.push(to);
        }
    }
    for SqliteForeignKey { target, from, to, on_update, on_delete } in fks.into_values() {
        let mut def = format!("FOREIGN KEY ({}) REFERENCES {target}", from.join(", "));
        // `to` is NULL when the reference names the parent's primary key implicitly.
        if to.iter().all(Option::is_some) {
            def.push_str(&format!("({})", to.into_iter().flatten().collect::<Vec<_>>().join(", ")));
        }
        for (clause, action) in [("ON UPDATE", on_update), ("ON DELETE", on_delete)] {
            if action != "NO ACTION" {
                def.push_str(&format!(" {clause} {action}"));
            }
        }
        add(def);
    }

    for check in sqlite_checks(sql) {
        add(check);
    }
    Ok(table)
}

/// One foreign key, gathered from its `pragma_foreign_key_list` rows.
struct SqliteForeignKey {
    target: String,
    from: Vec<String>,
    /// `None` where the reference names the parent's primary key implicitly.
    to: Vec<Option<String>>,
    on_update: String,
    on_delete: String,
}

/// The `CHECK (...)` clauses of a `CREATE TABLE` statement, column and table level.
fn sqlite_checks(sql: &str) -> Vec<String> {
    let tokens = tokenize(sql);
    let mut checks = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].eq_ignore_ascii_case("CHECK") && tokens.get(i + 1).is_some_and(|t| t == "(") {
            let mut depth = 0;
            let mut end = i + 1;
            for (j, t) in tokens.iter().enumerate().skip(i + 1) {
                match t.as_str() {
                    "(" => depth += 1,
                    ")" => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
                end = j;
            }
            checks.push(render(&tokens[i..=end]));
            i = end + 1;
        } else {
            i += 1;
        }
    }
    checks
}

/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [schema.]name ON ...` without the name.
fn strip_sqlite_index_name(tokens: &[String]) -> Vec<String> {
    let mut i = 0;
    let is = |t: Option<&String>, word: &str| t.is_some_and(|t| t.eq_ignore_ascii_case(word));
    if !is(tokens.first(), "CREATE") {
        return tokens.to_vec();
    }
    i += 1;
    if is(tokens.get(i), "UNIQUE") {
        i += 1;
    }
    if !is(tokens.get(i), "INDEX") {
        return tokens.to_vec();
    }
    i += 1;
    if is(tokens.get(i), "IF") && is(tokens.get(i + 1), "NOT") && is(tokens.get(i + 2), "EXISTS") {
        i += 3;
    }
    let mut out = tokens[..i].to_vec();
    let mut rest = i + 1;
    if tokens.get(rest).is_some_and(|t| t == ".") {
        rest += 2;
    }
    out.extend_from_slice(tokens.get(rest..).unwrap_or_default());
    out
}

/// Keywords written in upper case by [`render`]; other bare words (identifiers) keep
/// their case. SQLite treats both case-insensitively, but people notice identifiers.
const KEYWORDS: &[&str] = &[
    "ABORT",
    "ACTION",
    "AFTER",
    "ALL",
    "ALWAYS",
    "AND",
    "AS",
    "ASC",
    "AUTOINCREMENT",
    "BEFORE",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "CONFLICT",
    "CONSTRAINT",
    "CREATE",
    "CROSS",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "DEFAULT",
    "DEFERRABLE",
    "DEFERRED",
    "DELETE",
    "DESC",
    "DISTINCT",
    "EACH",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXISTS",
    "FAIL",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "GENERATED",
    "GLOB",
    "GROUP",
    "HAVING",
    "IF",
    "IGNORE",
    "IMMEDIATE",
    "IN",
    "INDEX",
    "INITIALLY",
    "INNER",
    "INSERT",
    "INSTEAD",
    "INTERSECT",
    "INTO",
    "IS",
    "ISNULL",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MATCH",
    "NATURAL",
    "NO",
    "NOT",
    "NOTNULL",
    "NULL",
    "OF",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "PRIMARY",
    "RAISE",
    "REFERENCES",
    "REGEXP",
    "REPLACE",
    "RESTRICT",
    "RIGHT",
    "ROLLBACK",
    "ROW",
    "ROWID",
    "SELECT",
    "SET",
    "STORED",
    "STRICT",
    "TABLE",
    "TEMP",
    "TEMPORARY",
    "THEN",
    "TRIGGER",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USING",
    "VALUES",
    "VIEW",
    "VIRTUAL",
    "WHEN",
    "WHERE",
    "WITH",
    "WITHOUT",
];

/// Splits SQL into words, quoted strings and identifiers (kept verbatim), runs of
/// operator characters and single punctuation; whitespace and comments are dropped.
fn tokenize(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let is_op = |c: char| "<>=!|+-*/%&~^".contains(c);
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i = (i + 2).min(chars.len());
            continue;
        }
        let close = match c {
            '\'' | '"' | '`' => Some(c),
            '[' => Some(']'),
            _ => None,
        };
        if let Some(close) = close {
            i += 1;
            loop {
                match chars.get(i) {
                    None => break,
                    // A doubled closing quote is an escaped one (not for `[...]`).
                    Some(&ch) if ch == close && close != ']' && chars.get(i + 1) == Some(&close) => i += 2,
                    Some(&ch) if ch == close => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
        } else if is_word(c) {
            while i < chars.len() && (is_word(chars[i]) || (chars[i] == '.' && chars[start].is_ascii_digit())) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let upper = word.to_ascii_uppercase();
            tokens.push(if KEYWORDS.contains(&upper.as_str()) { upper } else { word });
            continue;
        } else if is_op(c) {
            while i < chars.len() && is_op(chars[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
        tokens.push(chars[start..i].iter().collect());
    }
    tokens
}

/// Joins tokens with one space, except none before `,` `)` `.` `;` and `(`, and none
/// after `(` and `.`: `CREATE INDEX ON t(a, b)` however it was spaced.
fn render(tokens: &[impl AsRef<str>]) -> String {
    let mut out = String::new();
    let mut previous: Option<&str> = None;
    for token in tokens {
        let token = token.as_ref();
        let glue = matches!(token, "," | ")" | "." | ";" | "(") || matches!(previous, Some("(" | "."));
        if previous.is_some() && !glue {
            out.push(' ');
        }
        out.push_str(token);
        previous = Some(token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::schema::diff::{Difference, EXTRA, MISSING, cosmetic, diff, only, semantic};

    fn sqlite_schema(sql: &str) -> Schema {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(sql).unwrap();
        introspect_sqlite(&c).unwrap()
    }

    fn sqlite_diff(fresh: &str, rolled_back: &str) -> Vec<Difference> {
        diff(&sqlite_schema(fresh), &sqlite_schema(rolled_back))
    }

    const SQ_USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, \
                            name TEXT DEFAULT 'x', org_id INTEGER REFERENCES orgs(id) ON DELETE CASCADE, \
                            CHECK (length(email) > 3));\n";

    #[test]
    fn sqlite_identical_schemas_have_no_differences_despite_spelling() {
        let fresh = sqlite_schema(&format!(
            "{SQ_USERS} CREATE INDEX users_org ON users(org_id, name); CREATE VIEW v AS SELECT id FROM users;"
        ));
        let rolled_back = sqlite_schema(
            "create table users (id integer primary key, email varchar(255)   not null unique, \
             name text default 'x', org_id integer references orgs ( id ) on delete cascade, check(length(email)>3)); \
             create index \"users_org\" on users ( org_id,name ); create view v as select id from users;",
        );
        assert_eq!(diff(&fresh, &rolled_back), vec![]);
        let users = &fresh.tables["users"];
        assert_eq!(
            users.constraints.keys().collect::<Vec<_>>(),
            vec![
                "CHECK(length(email) > 3)",
                "FOREIGN KEY (org_id) REFERENCES orgs(id) ON DELETE CASCADE",
                "PRIMARY KEY (id)",
                "UNIQUE (email)",
            ]
        );
        assert_eq!(fresh.indexes["users_org"].definition, "CREATE INDEX ON users(org_id, name)");
        assert_eq!(fresh.views["v"], "CREATE VIEW v AS SELECT id FROM users");
    }

    #[test]
    fn sqlite_column_order_only_is_one_cosmetic_difference() {
        let diffs = sqlite_diff(
            "CREATE TABLE t (a INTEGER, b TEXT, c TEXT);",
            "CREATE TABLE t (a INTEGER, c TEXT); ALTER TABLE t ADD COLUMN b TEXT;",
        );
        assert_eq!(
            only(&diffs),
            &cosmetic("table t".into(), "column order differs: a, c, b after rollback; a, b, c in a fresh apply")
        );
    }

    #[test]
    fn sqlite_missing_and_renamed_indexes() {
        let with = |name: &str| format!("{SQ_USERS} CREATE UNIQUE INDEX {name} ON users (name);");
        assert_eq!(only(&sqlite_diff(&with("users_name"), SQ_USERS)), &semantic("index users_name".into(), MISSING));
        assert_eq!(
            only(&sqlite_diff(&with("users_name"), &with("idx_users_name"))),
            &cosmetic(
                "index users_name".into(),
                "named idx_users_name after rollback, users_name in a fresh apply (same definition)"
            )
        );
    }

    #[test]
    fn sqlite_type_nullability_default_and_check_differences_are_semantic() {
        let diffs = sqlite_diff(
            SQ_USERS,
            &SQ_USERS
                .replace("VARCHAR(255) NOT NULL", "VARCHAR(100)")
                .replace("DEFAULT 'x'", "")
                .replace("CHECK (length(email) > 3)", "CHECK (length(email) > 4)"),
        );
        assert_eq!(
            diffs,
            vec![
                semantic(
                    "column users.email".into(),
                    "type is VARCHAR(100) after rollback, VARCHAR(255) in a fresh apply"
                ),
                semantic("column users.email".into(), "nullable after rollback, NOT NULL in a fresh apply"),
                semantic("column users.name".into(), "default is none after rollback, `'x'` in a fresh apply"),
                semantic("constraint users.CHECK(length(email) > 3)".into(), MISSING),
                semantic("constraint users.CHECK(length(email) > 4)".into(), EXTRA),
            ]
        );
    }

    #[test]
    fn sqlite_missing_view_and_trigger_are_semantic_and_bookkeeping_is_ignored() {
        let diffs = sqlite_diff(
            &format!(
                "{SQ_USERS} CREATE VIEW emails AS SELECT email FROM users; \
                 CREATE TRIGGER touch AFTER UPDATE ON users BEGIN SELECT 1; END;"
            ),
            &format!(
                "{SQ_USERS} CREATE TABLE lastgood_migrations (version TEXT PRIMARY KEY); \
                 CREATE INDEX lastgood_idx ON lastgood_migrations(version); \
                 CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT); DROP TABLE seq;"
            ),
        );
        assert_eq!(
            diffs,
            vec![semantic("view emails".into(), MISSING), semantic("trigger users.touch".into(), MISSING)]
        );
    }

    #[test]
    fn render_normalises_spacing_and_keyword_case() {
        assert_eq!(
            render(&tokenize("create  unique index [i] on \"T\"( a ,b)where a>=1 -- note\n and b = 'x  y'")),
            "CREATE UNIQUE INDEX [i] ON \"T\"(a, b) WHERE a >= 1 AND b = 'x  y'"
        );
        assert_eq!(
            render(&strip_sqlite_index_name(&tokenize("CREATE INDEX IF NOT EXISTS main.i ON t(a)"))),
            "CREATE INDEX IF NOT EXISTS ON t(a)"
        );
    }
}
