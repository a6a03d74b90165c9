//! A database schema as data, and a semantic comparison of two of them.
//!
//! `lastgood db rehearse` proves a rollback path by comparing the schema left by the
//! down scripts with a fresh apply of the target revision. A textual comparison of two
//! dumps would drown that proof in noise: the server names unnamed indexes and
//! constraints, a column dropped and added back lands at the end of the table, and
//! whitespace differs between two spellings of the same view. So the schema is read into
//! a [`Schema`] of canonical definitions (the server's own `pg_get_*def` output on
//! PostgreSQL, `sqlite_master` text with whitespace, spacing and keyword case normalised
//! on SQLite), and [`diff`] sorts what differs into two kinds:
//!
//! - [`Severity::Semantic`]: something a program could notice, such as a missing table,
//!   column, index, view, function, sequence, type or constraint, or a column whose type,
//!   nullability or default changed. These fail a rehearsal.
//! - [`Severity::Cosmetic`]: the same objects under another name (an index or constraint
//!   with an identical definition) or the same columns in another order (one difference
//!   per table). These are reported but do not fail it.
//!
//! This is not a migration generator: it says what differs, never how to fix it, and it
//! reads only what a rollback can get wrong (no grants, comments, statistics or
//! ownership). lastgood's own bookkeeping (the `lastgood` schema on PostgreSQL,
//! `lastgood_*` tables on SQLite) is left out, since it differs by design.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One database's schema, keyed by object name. On PostgreSQL, names outside `public`
/// are qualified as `schema.name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
    pub indexes: BTreeMap<String, Index>,
    /// View name to normalised definition (materialized views start with `MATERIALIZED `).
    pub views: BTreeMap<String, String>,
    /// `name(argtypes)` to normalised definition (`pg_get_functiondef`).
    pub functions: BTreeMap<String, String>,
    pub sequences: BTreeSet<String>,
    /// Enums, domains, composite and range types (PostgreSQL) to a canonical definition.
    pub types: BTreeMap<String, String>,
    /// `table.trigger` to normalised definition.
    pub triggers: BTreeMap<String, String>,
    /// Extension name to installed version (PostgreSQL). Objects that belong to an
    /// extension are not listed elsewhere: the extension stands for them.
    pub extensions: BTreeMap<String, String>,
    /// Namespaces other than the excluded system ones (PostgreSQL), so a schema left
    /// empty by a rollback still shows.
    pub schemas: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Table {
    /// In ordinal order.
    pub columns: Vec<Column>,
    /// Constraint name to normalised definition (`pg_get_constraintdef` on PostgreSQL).
    /// SQLite constraints are mostly unnamed, so there the key is the definition itself.
    pub constraints: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    /// The default expression; identity and generated columns show their generation
    /// clause here (`GENERATED ALWAYS AS IDENTITY`, `GENERATED ALWAYS AS (...) STORED`).
    pub default: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Index {
    pub table: String,
    /// The normalised `CREATE INDEX` statement with the index's own name removed, so two
    /// indexes that differ only by name have equal definitions.
    pub definition: String,
    pub unique: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Cosmetic,
    Semantic,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub severity: Severity,
    /// What differs: `table users`, `column users.email`, `index users_email_idx`.
    pub object: String,
    /// A sentence saying how: `missing in the rolled-back schema`.
    pub what: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read the {reading} of the PostgreSQL schema: {message}")]
    Postgres {
        reading: &'static str,
        message: String,
        #[source]
        source: postgres::Error,
    },
    #[error("cannot read the {reading} of the SQLite schema: {source}")]
    Sqlite {
        reading: String,
        #[source]
        source: rusqlite::Error,
    },
}

fn pg_err(reading: &'static str) -> impl FnOnce(postgres::Error) -> SchemaError {
    move |source| SchemaError::Postgres { reading, message: super::pg_client::message(&source), source }
}

fn sqlite_err(reading: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> SchemaError {
    let reading = reading.into();
    move |source| SchemaError::Sqlite { reading, source }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

/// The namespaces that are read: everything but the system's and lastgood's own.
const PG_NAMESPACES: &str = "SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', \
     'lastgood') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%'";

/// `schema.name`, or `name` in `public`: the SQL for a qualified name of `n`/`c`-style
/// aliases.
fn pg_qualified(ns: &str, name: &str) -> String {
    format!("CASE WHEN {ns}.nspname = 'public' THEN {name} ELSE {ns}.nspname || '.' || {name} END")
}

/// A condition that is true when the object is not a member of an extension.
fn pg_not_extension_member(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass AND d.objid = {oid} \
         AND d.deptype = 'e')"
    )
}

/// Reads every user schema except `pg_catalog`, `information_schema`, `pg_toast*`,
/// temporary schemas and `lastgood`.
///
/// Runs in one read-only repeatable-read transaction (one snapshot) with `search_path`
/// set to `public` for its duration, so the server's definitions qualify exactly the
/// names outside `public`, as the keys do, whatever the caller's session had.
pub fn introspect_postgres(client: &mut postgres::Client) -> Result<Schema, SchemaError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg_err("snapshot"))?;
    tx.batch_execute("SET LOCAL search_path = public").map_err(pg_err("snapshot"))?;
    let mut schema = Schema::default();

    for row in tx
        .query(&format!("SELECT nspname FROM pg_namespace WHERE oid IN ({PG_NAMESPACES}) ORDER BY 1"), &[])
        .map_err(pg_err("schemas"))?
    {
        schema.schemas.insert(row.get(0));
    }
    for row in tx.query("SELECT extname, extversion FROM pg_extension", &[]).map_err(pg_err("extensions"))? {
        schema.extensions.insert(row.get(0), row.get(1));
    }

    let class_name = pg_qualified("n", "c.relname");
    let not_ext = pg_not_extension_member("pg_class", "c.oid");
    let relations = format!(
        "SELECT c.oid, {class_name}, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relnamespace IN ({PG_NAMESPACES}) AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND {not_ext}"
    );
    let mut table_oids = Vec::new();
    for row in tx.query(&relations, &[]).map_err(pg_err("relations"))? {
        let oid: u32 = row.get(0);
        let name: String = row.get(1);
        let kind: String = row.get(2);
        match kind.as_str() {
            "S" => {
                schema.sequences.insert(name);
            }
            "v" | "m" => {}
            _ => {
                table_oids.push(oid);
                schema.tables.insert(name, Table::default());
            }
        }
    }

    let columns = format!(
        "SELECT {class_name}, a.attname, \
           format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attcollation <> t.typcollation \
             THEN ' COLLATE ' || quote_ident(co.collname) ELSE '' END, \
           NOT a.attnotnull, \
           CASE WHEN a.attidentity = 'a' THEN 'GENERATED ALWAYS AS IDENTITY' \
                WHEN a.attidentity = 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY' \
                WHEN a.attgenerated = 's' THEN 'GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED' \
                ELSE pg_get_expr(ad.adbin, ad.adrelid) END \
         FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_collation co ON co.oid = a.attcollation \
         LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
         WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum"
    );
    for row in tx.query(&columns, &[&table_oids]).map_err(pg_err("columns"))? {
        let table: String = row.get(0);
        let column = Column {
            name: row.get(1),
            data_type: row.get(2),
            nullable: row.get(3),
            default: row.get::<_, Option<String>>(4).map(|d| collapse_whitespace(&d)),
        };
        if let Some(t) = schema.tables.get_mut(&table) {
            t.columns.push(column);
        }
    }

    // NOT NULL is a column property here; PostgreSQL 18 also lists it as a constraint
    // (contype 'n'), which would count it twice.
    let constraints = format!(
        "SELECT {class_name}, co.conname, pg_get_constraintdef(co.oid, true) FROM pg_constraint co \
         JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE co.conrelid = ANY($1) AND co.contype <> 'n'"
    );
    for row in tx.query(&constraints, &[&table_oids]).map_err(pg_err("constraints"))? {
        let table: String = row.get(0);
        if let Some(t) = schema.tables.get_mut(&table) {
            t.constraints.insert(row.get(1), collapse_whitespace(&row.get::<_, String>(2)));
        }
    }

    // Indexes that implement a primary key, unique or exclusion constraint are shown
    // as that constraint, not twice.
    let index_name = pg_qualified("n", "ic.relname");
    let indexes = format!(
        "SELECT {index_name}, {class_name}, pg_get_indexdef(i.indexrelid), quote_ident(ic.relname), i.indisunique \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = ic.relnamespace \
         WHERE ic.relnamespace IN ({PG_NAMESPACES}) AND {} \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid \
           AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x'))",
        pg_not_extension_member("pg_class", "c.oid")
    );
    for row in tx.query(&indexes, &[]).map_err(pg_err("indexes"))? {
        let definition: String = row.get(2);
        let quoted_name: String = row.get(3);
        schema.indexes.insert(
            row.get(0),
            Index {
                table: row.get(1),
                definition: strip_pg_index_name(&collapse_whitespace(&definition), &quoted_name),
                unique: row.get(4),
            },
        );
    }

    let views = format!(
        "SELECT {class_name}, CASE WHEN c.relkind = 'm' THEN 'MATERIALIZED ' ELSE '' END || pg_get_viewdef(c.oid, true) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relnamespace IN ({PG_NAMESPACES}) AND c.relkind IN ('v', 'm') AND {not_ext}"
    );
    for row in tx.query(&views, &[]).map_err(pg_err("views"))? {
        schema.views.insert(row.get(0), collapse_whitespace(&row.get::<_, String>(1)));
    }

    // pg_get_functiondef refuses aggregates, so they get a definition made of their
    // parts; the CASE keeps it from being called on them.
    let functions = format!(
        "SELECT {} || '(' || oidvectortypes(p.proargtypes) || ')', \
           CASE WHEN p.prokind = 'a' THEN \
             (SELECT format('AGGREGATE %s(%s) (SFUNC = %s, STYPE = %s, FINALFUNC = %s, INITCOND = %L)', \
                p.proname, pg_get_function_arguments(p.oid), ag.aggtransfn, format_type(ag.aggtranstype, NULL), \
                ag.aggfinalfn, ag.agginitval) FROM pg_aggregate ag WHERE ag.aggfnoid = p.oid) \
           ELSE pg_get_functiondef(p.oid) END \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE p.pronamespace IN ({PG_NAMESPACES}) AND {}",
        pg_qualified("n", "p.proname"),
        pg_not_extension_member("pg_proc", "p.oid")
    );
    for row in tx.query(&functions, &[]).map_err(pg_err("functions"))? {
        schema.functions.insert(row.get(0), collapse_whitespace(&row.get::<_, Option<String>>(1).unwrap_or_default()));
    }

    // Array types and the row types of tables come with their table; multiranges come
    // with their range.
    let types = format!(
        "SELECT {}, CASE t.typtype \
           WHEN 'e' THEN 'ENUM (' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) \
             FROM pg_enum e WHERE e.enumtypid = t.oid) || ')' \
           WHEN 'd' THEN 'DOMAIN ' || format_type(t.typbasetype, t.typtypmod) \
             || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END \
             || coalesce(' DEFAULT ' || pg_get_expr(t.typdefaultbin, 0), '') \
             || coalesce((SELECT ' ' || string_agg(pg_get_constraintdef(co.oid, true), ' ' ORDER BY 1) \
               FROM pg_constraint co WHERE co.contypid = t.oid), '') \
           WHEN 'c' THEN 'COMPOSITE (' || (SELECT string_agg(quote_ident(a.attname) || ' ' \
               || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) \
             FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) || ')' \
           WHEN 'r' THEN (SELECT 'RANGE (SUBTYPE = ' || format_type(r.rngsubtype, NULL) || ')' \
             FROM pg_range r WHERE r.rngtypid = t.oid) \
           ELSE 'TYPE ' || t.typtype::text END \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE t.typnamespace IN ({PG_NAMESPACES}) AND t.typtype IN ('e', 'd', 'c', 'r', 'b') \
         AND t.typcategory <> 'A' \
         AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') AND {}",
        pg_qualified("n", "t.typname"),
        pg_not_extension_member("pg_type", "t.oid")
    );
    for row in tx.query(&types, &[]).map_err(pg_err("types"))? {
        schema.types.insert(row.get(0), collapse_whitespace(&row.get::<_, Option<String>>(1).unwrap_or_default()));
    }

    let triggers = format!(
        "SELECT {class_name} || '.' || tg.tgname, pg_get_triggerdef(tg.oid, true) FROM pg_trigger tg \
         JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relnamespace IN ({PG_NAMESPACES}) AND NOT tg.tgisinternal AND {not_ext}"
    );
    for row in tx.query(&triggers, &[]).map_err(pg_err("triggers"))? {
        schema.triggers.insert(row.get(0), collapse_whitespace(&row.get::<_, String>(1)));
    }

    tx.commit().map_err(pg_err("snapshot"))?;
    Ok(schema)
}

/// `CREATE [UNIQUE] INDEX name ON ...` without `name`, so renamed copies compare equal.
fn strip_pg_index_name(definition: &str, quoted_name: &str) -> String {
    for head in ["CREATE UNIQUE INDEX ", "CREATE INDEX "] {
        if let Some(rest) = definition.strip_prefix(head).and_then(|r| r.strip_prefix(quoted_name)) {
            return format!("{}{}", head.trim_end(), rest);
        }
    }
    definition.to_owned()
}

// ---------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------

/// Runs of whitespace become one space; leading and trailing whitespace go. Enough for
/// PostgreSQL, whose `pg_get_*def` output is canonical except for line breaks.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

const MISSING: &str = "missing in the rolled-back schema";
const EXTRA: &str = "present after rollback but not in a fresh apply";

/// What differs between `expected` (a fresh apply of the target revision) and `actual`
/// (the schema after the down path), in a stable order: schemas, extensions, types,
/// sequences, tables with their columns and constraints, indexes, views, functions and
/// triggers, each by name.
pub fn diff(expected: &Schema, actual: &Schema) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_set(&mut out, "schema", &expected.schemas, &actual.schemas);
    diff_map(&mut out, "extension", &expected.extensions, &actual.extensions, |e, a| {
        format!("version is {a} after rollback, {e} in a fresh apply")
    });
    diff_map(&mut out, "type", &expected.types, &actual.types, changed_definition);
    diff_set(&mut out, "sequence", &expected.sequences, &actual.sequences);
    for (name, e) in &expected.tables {
        match actual.tables.get(name) {
            None => out.push(semantic(format!("table {name}"), MISSING)),
            Some(a) => diff_table(&mut out, name, e, a),
        }
    }
    for name in actual.tables.keys().filter(|n| !expected.tables.contains_key(*n)) {
        out.push(semantic(format!("table {name}"), EXTRA));
    }
    diff_indexes(&mut out, &expected.indexes, &actual.indexes);
    diff_map(&mut out, "view", &expected.views, &actual.views, changed_definition);
    diff_map(&mut out, "function", &expected.functions, &actual.functions, changed_definition);
    diff_map(&mut out, "trigger", &expected.triggers, &actual.triggers, changed_definition);
    out
}

fn semantic(object: String, what: impl Into<String>) -> Difference {
    Difference { severity: Severity::Semantic, object, what: what.into() }
}

fn cosmetic(object: String, what: impl Into<String>) -> Difference {
    Difference { severity: Severity::Cosmetic, object, what: what.into() }
}

fn diff_set(out: &mut Vec<Difference>, kind: &str, expected: &BTreeSet<String>, actual: &BTreeSet<String>) {
    for name in expected.difference(actual) {
        out.push(semantic(format!("{kind} {name}"), MISSING));
    }
    for name in actual.difference(expected) {
        out.push(semantic(format!("{kind} {name}"), EXTRA));
    }
}

fn diff_map(
    out: &mut Vec<Difference>,
    kind: &str,
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
    changed: impl Fn(&str, &str) -> String,
) {
    for (name, e) in expected {
        match actual.get(name) {
            None => out.push(semantic(format!("{kind} {name}"), MISSING)),
            Some(a) if a != e => out.push(semantic(format!("{kind} {name}"), changed(e, a))),
            Some(_) => {}
        }
    }
    for name in actual.keys().filter(|n| !expected.contains_key(*n)) {
        out.push(semantic(format!("{kind} {name}"), EXTRA));
    }
}

/// A sentence for two definitions that differ; long ones are cut to the neighbourhood
/// of the first difference so the sentence stays readable.
fn changed_definition(expected: &str, actual: &str) -> String {
    const SHORT: usize = 100;
    if expected.chars().count() <= SHORT && actual.chars().count() <= SHORT {
        return format!("definition is `{actual}` after rollback, `{expected}` in a fresh apply");
    }
    let at = expected.chars().zip(actual.chars()).take_while(|(e, a)| e == a).count();
    format!(
        "definition differs from character {}: `{}` after rollback, `{}` in a fresh apply",
        at + 1,
        excerpt(actual, at),
        excerpt(expected, at)
    )
}

fn excerpt(text: &str, at: usize) -> String {
    const BEFORE: usize = 20;
    const AFTER: usize = 40;
    let chars: Vec<char> = text.chars().collect();
    let start = at.saturating_sub(BEFORE);
    let end = (at + AFTER).min(chars.len());
    let mut s = String::new();
    if start > 0 {
        s.push('…');
    }
    s.extend(&chars[start.min(end)..end]);
    if end < chars.len() {
        s.push('…');
    }
    s
}

fn diff_table(out: &mut Vec<Difference>, table: &str, expected: &Table, actual: &Table) {
    for e in &expected.columns {
        let object = format!("column {table}.{}", e.name);
        let Some(a) = actual.columns.iter().find(|a| a.name == e.name) else {
            out.push(semantic(object, MISSING));
            continue;
        };
        if a.data_type != e.data_type {
            out.push(semantic(
                object.clone(),
                format!("type is {} after rollback, {} in a fresh apply", a.data_type, e.data_type),
            ));
        }
        if a.nullable != e.nullable {
            let null = |n: bool| if n { "nullable" } else { "NOT NULL" };
            out.push(semantic(
                object.clone(),
                format!("{} after rollback, {} in a fresh apply", null(a.nullable), null(e.nullable)),
            ));
        }
        if a.default != e.default {
            let shown = |d: &Option<String>| d.as_deref().map_or("none".to_owned(), |d| format!("`{d}`"));
            out.push(semantic(
                object,
                format!("default is {} after rollback, {} in a fresh apply", shown(&a.default), shown(&e.default)),
            ));
        }
    }
    for a in actual.columns.iter().filter(|a| !expected.columns.iter().any(|e| e.name == a.name)) {
        out.push(semantic(format!("column {table}.{}", a.name), EXTRA));
    }

    // Order is judged on the columns both sides have, so a missing column is not also
    // reported as a reordering.
    let common = |of: &Table, other: &Table| -> Vec<String> {
        of.columns.iter().filter(|c| other.columns.iter().any(|o| o.name == c.name)).map(|c| c.name.clone()).collect()
    };
    if common(expected, actual) != common(actual, expected) {
        let names = |t: &Table| t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
        out.push(cosmetic(
            format!("table {table}"),
            format!("column order differs: {} after rollback; {} in a fresh apply", names(actual), names(expected)),
        ));
    }

    let pairs = pair_by_definition(&expected.constraints, &actual.constraints, |d| d);
    for pair in pairs {
        match pair {
            Pair::Same => {}
            Pair::Changed { name, expected, actual } => out.push(semantic(
                format!("constraint {table}.{name}"),
                format!("definition is `{actual}` after rollback, `{expected}` in a fresh apply"),
            )),
            Pair::Renamed { expected, actual } => out.push(cosmetic(
                format!("constraint {table}.{expected}"),
                format!("named {actual} after rollback, {expected} in a fresh apply (same definition)"),
            )),
            Pair::Missing(name) => out.push(semantic(format!("constraint {table}.{name}"), MISSING)),
            Pair::Extra(name) => out.push(semantic(format!("constraint {table}.{name}"), EXTRA)),
        }
    }
}

fn diff_indexes(out: &mut Vec<Difference>, expected: &BTreeMap<String, Index>, actual: &BTreeMap<String, Index>) {
    for pair in pair_by_definition(expected, actual, |i| i) {
        match pair {
            Pair::Same => {}
            Pair::Changed { name, expected, actual } => {
                let what = if expected.table != actual.table {
                    format!("is on {} after rollback, on {} in a fresh apply", actual.table, expected.table)
                } else {
                    format!(
                        "definition is `{}` after rollback, `{}` in a fresh apply",
                        actual.definition, expected.definition
                    )
                };
                out.push(semantic(format!("index {name}"), what));
            }
            Pair::Renamed { expected, actual } => out.push(cosmetic(
                format!("index {expected}"),
                format!("named {actual} after rollback, {expected} in a fresh apply (same definition)"),
            )),
            Pair::Missing(name) => out.push(semantic(format!("index {name}"), MISSING)),
            Pair::Extra(name) => out.push(semantic(format!("index {name}"), EXTRA)),
        }
    }
}

/// How one named object of a fresh apply relates to the rolled-back schema.
enum Pair<'a, T> {
    Same,
    Changed {
        name: &'a str,
        expected: &'a T,
        actual: &'a T,
    },
    /// Another name, the same definition: the server named it (`users_email_idx` vs
    /// `users_email_idx1`), or a down script recreated it under an older name.
    Renamed {
        expected: &'a str,
        actual: &'a str,
    },
    Missing(&'a str),
    Extra(&'a str),
}

/// Pairs objects by name first, then pairs what is left by equal definition (renames),
/// in name order on both sides so the result is stable.
fn pair_by_definition<'a, T: PartialEq, D: PartialEq + ?Sized>(
    expected: &'a BTreeMap<String, T>,
    actual: &'a BTreeMap<String, T>,
    definition: impl Fn(&T) -> &D,
) -> Vec<Pair<'a, T>> {
    let mut pairs = Vec::new();
    let mut unmatched_expected = Vec::new();
    for (name, e) in expected {
        match actual.get(name) {
            Some(a) if a == e => pairs.push(Pair::Same),
            Some(a) => pairs.push(Pair::Changed { name, expected: e, actual: a }),
            None => unmatched_expected.push((name.as_str(), e)),
        }
    }
    let mut unmatched_actual: Vec<(&str, &T)> =
        actual.iter().filter(|(n, _)| !expected.contains_key(*n)).map(|(n, a)| (n.as_str(), a)).collect();
    for (name, e) in unmatched_expected {
        match unmatched_actual.iter().position(|(_, a)| definition(a) == definition(e)) {
            Some(i) => {
                let (actual_name, _) = unmatched_actual.remove(i);
                pairs.push(Pair::Renamed { expected: name, actual: actual_name });
            }
            None => pairs.push(Pair::Missing(name)),
        }
    }
    pairs.extend(unmatched_actual.into_iter().map(|(n, _)| Pair::Extra(n)));
    pairs
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::database::url::{DbUrl, PgUrl};

    // -- PostgreSQL ----------------------------------------------------------------------

    fn admin_url() -> PgUrl {
        let url = std::env::var("LASTGOOD_TEST_PG").unwrap_or_else(|_| {
            panic!(
                "LASTGOOD_TEST_PG is not set: these tests need a PostgreSQL server; \
                 run `eval \"$(scripts/services.sh)\"` first"
            )
        });
        match DbUrl::parse(&url, Path::new("/")) {
            Ok(DbUrl::Postgres(pg)) => pg,
            other => panic!("LASTGOOD_TEST_PG is not a postgres:// URL: {:?}", other.map(|_| "sqlite")),
        }
    }

    /// A scratch database on the test server, dropped when the guard is.
    struct TestDb {
        admin: PgUrl,
        name: String,
    }

    static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

    impl TestDb {
        fn new() -> Self {
            let admin = admin_url();
            let name = format!("lg_schema_{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
            let mut c = admin.client_config("lastgood-test").connect(postgres::NoTls).expect("connect to test server");
            // Separate calls: a multi-statement string runs as one transaction block,
            // which CREATE DATABASE refuses.
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop stale test database");
            c.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
            Self { admin, name }
        }

        fn client(&self) -> postgres::Client {
            self.admin.with_database(&self.name).client_config("lastgood-test").connect(postgres::NoTls).unwrap()
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Ok(mut c) = self.admin.client_config("lastgood-test").connect(postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        }
    }

    fn pg_schema(sql: &str) -> Schema {
        let db = TestDb::new();
        let mut c = db.client();
        c.batch_execute(sql).unwrap_or_else(|e| panic!("{}\n{sql}", crate::database::pg_client::message(&e)));
        introspect_postgres(&mut c).unwrap()
    }

    fn pg_diff(fresh: &str, rolled_back: &str) -> Vec<Difference> {
        diff(&pg_schema(fresh), &pg_schema(rolled_back))
    }

    fn only(diffs: &[Difference]) -> &Difference {
        assert_eq!(diffs.len(), 1, "{diffs:#?}");
        &diffs[0]
    }

    const USERS: &str = "CREATE TABLE users (id serial PRIMARY KEY, email varchar(255) NOT NULL UNIQUE, \
                         name text DEFAULT 'x', org_id int);\n";

    #[test]
    fn pg_identical_schemas_have_no_differences() {
        let sql = format!(
            "{USERS} CREATE INDEX ON users (lower(email)); CREATE VIEW named AS SELECT id, name FROM users; \
             CREATE FUNCTION one() RETURNS int LANGUAGE sql AS 'SELECT 1'; CREATE TYPE mood AS ENUM ('a', 'b'); \
             CREATE SEQUENCE counter; CREATE SCHEMA billing; \
             CREATE TABLE billing.invoices (id int PRIMARY KEY, user_id int REFERENCES users(id), CHECK (id > 0));"
        );
        let fresh = pg_schema(&sql);
        let rolled_back = pg_schema(&sql);
        assert_eq!(diff(&fresh, &rolled_back), vec![]);
        assert_eq!(fresh, rolled_back);
        assert!(fresh.tables.contains_key("users"));
        assert!(fresh.views.contains_key("named"));
        assert!(fresh.functions.contains_key("one()"), "{:?}", fresh.functions);
        assert_eq!(fresh.types["mood"], "ENUM ('a', 'b')");
        assert!(fresh.sequences.contains("counter") && fresh.sequences.contains("users_id_seq"));
        let users = &fresh.tables["users"];
        assert_eq!(
            users.columns,
            vec![
                Column {
                    name: "id".into(),
                    data_type: "integer".into(),
                    nullable: false,
                    default: Some("nextval('users_id_seq'::regclass)".into())
                },
                Column {
                    name: "email".into(),
                    data_type: "character varying(255)".into(),
                    nullable: false,
                    default: None
                },
                Column {
                    name: "name".into(),
                    data_type: "text".into(),
                    nullable: true,
                    default: Some("'x'::text".into())
                },
                Column { name: "org_id".into(), data_type: "integer".into(), nullable: true, default: None },
            ]
        );
        assert_eq!(users.constraints["users_pkey"], "PRIMARY KEY (id)");
        // Constraint-backed indexes show as constraints only.
        assert_eq!(fresh.indexes.keys().collect::<Vec<_>>(), vec!["users_lower_idx"]);
        assert_eq!(
            fresh.indexes["users_lower_idx"].definition,
            "CREATE INDEX ON public.users USING btree (lower((email)::text))"
        );
    }

    #[test]
    fn pg_column_order_only_is_one_cosmetic_difference() {
        let diffs = pg_diff(
            "CREATE TABLE t (a int, b int, c int);",
            "CREATE TABLE t (a int, c int); ALTER TABLE t ADD COLUMN b int;",
        );
        assert_eq!(
            only(&diffs),
            &cosmetic("table t".into(), "column order differs: a, c, b after rollback; a, b, c in a fresh apply")
        );
    }

    #[test]
    fn pg_missing_index_is_semantic() {
        let diffs = pg_diff(&format!("{USERS} CREATE INDEX users_org_idx ON users (org_id);"), USERS);
        assert_eq!(only(&diffs), &semantic("index users_org_idx".into(), MISSING));
    }

    #[test]
    fn pg_varchar_length_is_semantic() {
        let diffs = pg_diff(USERS, &USERS.replace("varchar(255)", "varchar(100)"));
        assert_eq!(
            only(&diffs),
            &semantic(
                "column users.email".into(),
                "type is character varying(100) after rollback, character varying(255) in a fresh apply"
            )
        );
    }

    #[test]
    fn pg_renamed_identical_index_and_constraint_are_cosmetic() {
        let diffs = pg_diff(
            &format!("{USERS} CREATE INDEX users_org_idx ON users (org_id); ALTER TABLE users ADD CHECK (org_id > 0);"),
            &format!(
                "{USERS} CREATE INDEX users_org_id_idx ON users (org_id); \
                 ALTER TABLE users ADD CONSTRAINT org_positive CHECK (org_id > 0);"
            ),
        );
        assert_eq!(
            diffs,
            vec![
                cosmetic(
                    "constraint users.users_org_id_check".into(),
                    "named org_positive after rollback, users_org_id_check in a fresh apply (same definition)"
                ),
                cosmetic(
                    "index users_org_idx".into(),
                    "named users_org_id_idx after rollback, users_org_idx in a fresh apply (same definition)"
                ),
            ]
        );
    }

    #[test]
    fn pg_missing_view_is_semantic() {
        let diffs = pg_diff(&format!("{USERS} CREATE VIEW emails AS SELECT email FROM users;"), USERS);
        assert_eq!(only(&diffs), &semantic("view emails".into(), MISSING));
    }

    #[test]
    fn pg_changed_view_is_semantic() {
        let diffs = pg_diff(
            &format!("{USERS} CREATE VIEW emails AS SELECT email FROM users;"),
            &format!("{USERS} CREATE VIEW emails AS SELECT email FROM users WHERE org_id IS NULL;"),
        );
        assert_eq!(only(&diffs).severity, Severity::Semantic);
        assert!(only(&diffs).what.contains("WHERE users.org_id IS NULL"), "{diffs:#?}");
    }

    #[test]
    fn pg_function_body_differs_is_semantic_but_whitespace_is_not() {
        let f = |body: &str| format!("CREATE FUNCTION add1(a int) RETURNS int LANGUAGE sql AS $$ {body} $$;");
        let diffs = pg_diff(&f("SELECT a + 1"), &f("SELECT a + 2"));
        let d = only(&diffs);
        assert_eq!((d.severity.clone(), d.object.as_str()), (Severity::Semantic, "function add1(integer)"));
        assert!(d.what.contains("a + 2") && d.what.contains("a + 1"), "{}", d.what);
        assert_eq!(pg_diff(&f("SELECT a + 1"), &f("SELECT\n    a + 1")), vec![]);
    }

    #[test]
    fn pg_nullable_differs_is_semantic() {
        let diffs = pg_diff(USERS, &USERS.replace("varchar(255) NOT NULL", "varchar(255)"));
        assert_eq!(
            only(&diffs),
            &semantic("column users.email".into(), "nullable after rollback, NOT NULL in a fresh apply")
        );
    }

    #[test]
    fn pg_default_differs_is_semantic() {
        let diffs = pg_diff(USERS, &USERS.replace("DEFAULT 'x'", "DEFAULT 'y'"));
        assert_eq!(
            only(&diffs),
            &semantic(
                "column users.name".into(),
                "default is `'y'::text` after rollback, `'x'::text` in a fresh apply"
            )
        );
    }

    #[test]
    fn pg_objects_in_other_schemas_are_qualified() {
        let schema = pg_schema(
            "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int PRIMARY KEY, total int); \
             CREATE INDEX totals ON billing.invoices (total); CREATE VIEW billing.big AS SELECT id FROM billing.invoices; \
             CREATE FUNCTION billing.f(x text) RETURNS text LANGUAGE sql AS 'SELECT x'; \
             CREATE TYPE billing.state AS ENUM ('open');",
        );
        assert_eq!(schema.tables.keys().collect::<Vec<_>>(), vec!["billing.invoices"]);
        assert_eq!(schema.indexes["billing.totals"].table, "billing.invoices");
        assert!(schema.views.contains_key("billing.big"));
        assert!(schema.functions.contains_key("billing.f(text)"), "{:?}", schema.functions);
        assert!(schema.types.contains_key("billing.state"));
        assert!(schema.schemas.contains("billing"));

        let diffs = pg_diff("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);", "CREATE SCHEMA billing;");
        assert_eq!(only(&diffs), &semantic("table billing.invoices".into(), MISSING));
    }

    #[test]
    fn pg_lastgood_schema_is_ignored() {
        let diffs = pg_diff(
            USERS,
            &format!(
                "{USERS} CREATE SCHEMA lastgood; CREATE TABLE lastgood.migrations (version text PRIMARY KEY); \
                 CREATE INDEX ON lastgood.migrations (version);"
            ),
        );
        assert_eq!(diffs, vec![]);
    }

    #[test]
    fn pg_enum_values_and_leftover_sequence_are_semantic() {
        let diffs = pg_diff(
            "CREATE TYPE mood AS ENUM ('happy', 'sad');",
            "CREATE TYPE mood AS ENUM ('happy', 'sad', 'meh'); CREATE SEQUENCE leftover;",
        );
        assert_eq!(
            diffs,
            vec![
                semantic(
                    "type mood".into(),
                    "definition is `ENUM ('happy', 'sad', 'meh')` after rollback, `ENUM ('happy', 'sad')` in a fresh apply"
                ),
                semantic("sequence leftover".into(), EXTRA),
            ]
        );
    }

    #[test]
    fn pg_introspection_leaves_the_session_search_path_alone() {
        let db = TestDb::new();
        let mut c = db.client();
        c.batch_execute("CREATE SCHEMA app; SET search_path = app, public; CREATE TABLE t (id int);").unwrap();
        let schema = introspect_postgres(&mut c).unwrap();
        assert!(schema.tables.contains_key("app.t"));
        let path: String = c.query_one("SHOW search_path", &[]).unwrap().get(0);
        assert_eq!(path, "app, public");
    }

    #[test]
    fn pg_reads_domains_composites_ranges_aggregates_matviews_and_triggers() {
        let sql = "CREATE DOMAIN positive AS int NOT NULL DEFAULT 1 CHECK (VALUE > 0); \
                   CREATE TYPE pair AS (a int, b text); CREATE TYPE span AS RANGE (SUBTYPE = float8); \
                   CREATE AGGREGATE total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0'); \
                   CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY, n int, twice int GENERATED ALWAYS AS (n * 2) STORED); \
                   CREATE MATERIALIZED VIEW m AS SELECT id FROM t; CREATE INDEX m_id ON m (id); \
                   CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; \
                   CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();";
        let schema = pg_schema(sql);
        assert_eq!(schema.types["positive"], "DOMAIN integer NOT NULL DEFAULT 1 CHECK (VALUE > 0)");
        assert_eq!(schema.types["pair"], "COMPOSITE (a integer, b text)");
        assert_eq!(schema.types["span"], "RANGE (SUBTYPE = double precision)");
        assert_eq!(schema.types.len(), 3, "{:?}", schema.types);
        assert_eq!(
            schema.functions["total(integer)"],
            "AGGREGATE total(integer) (SFUNC = int4pl, STYPE = integer, FINALFUNC = -, INITCOND = '0')"
        );
        let defaults: Vec<_> = schema.tables["t"].columns.iter().map(|c| c.default.as_deref()).collect();
        assert_eq!(
            defaults,
            vec![Some("GENERATED ALWAYS AS IDENTITY"), None, Some("GENERATED ALWAYS AS ((n * 2)) STORED")]
        );
        assert!(schema.views["m"].starts_with("MATERIALIZED SELECT"), "{}", schema.views["m"]);
        assert_eq!(schema.indexes["m_id"].table, "m");
        assert_eq!(
            schema.triggers["t.t_touch"],
            "CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch()"
        );
        assert!(schema.sequences.contains("t_id_seq"));
        assert_eq!(schema.extensions.get("plpgsql").map(|_| ()), Some(()));
        assert_eq!(diff(&schema, &pg_schema(sql)), vec![]);
    }

    // -- SQLite --------------------------------------------------------------------------

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

    // -- Pure parts ----------------------------------------------------------------------

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
        assert_eq!(
            strip_pg_index_name("CREATE INDEX \"My idx\" ON public.t USING btree (a)", "\"My idx\""),
            "CREATE INDEX ON public.t USING btree (a)"
        );
    }

    #[test]
    fn long_definitions_are_cut_around_the_first_difference() {
        let e = format!("{} SELECT 1", "x".repeat(200));
        let a = format!("{} SELECT 2", "x".repeat(200));
        let x12 = "x".repeat(12);
        assert_eq!(
            changed_definition(&e, &a),
            format!(
                "definition differs from character 209: `…{x12} SELECT 2` after rollback, `…{x12} SELECT 1` in a fresh apply"
            )
        );
    }
}
