//! Comparing two schemas: what differs between a fresh apply of the target revision and
//! the schema a down path left behind, each difference [`Severity::Semantic`] (a program
//! could notice; it fails a rehearsal) or [`Severity::Cosmetic`] (another name or column
//! order for the same thing; reported only).
//!
//! Objects are paired by name first and then, among those left over, by equal
//! definition, so a server-named index or constraint that came back under another name
//! is a rename, not one missing and one extra object. It works on [`Schema`] values
//! alone (no I/O) and is not a migration generator: it says what differs, never how to
//! fix it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::model::{Index, Schema, Table};

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

pub(super) const MISSING: &str = "missing in the rolled-back schema";
pub(super) const EXTRA: &str = "present after rollback but not in a fresh apply";

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

pub(super) fn semantic(object: String, what: impl Into<String>) -> Difference {
    Difference { severity: Severity::Semantic, object, what: what.into() }
}

pub(super) fn cosmetic(object: String, what: impl Into<String>) -> Difference {
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

/// The one difference a test expects.
#[cfg(test)]
pub(super) fn only(diffs: &[Difference]) -> &Difference {
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    &diffs[0]
}

#[cfg(test)]
mod tests {
    use super::*;

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
