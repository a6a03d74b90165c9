//! Splitting a SQL script into statements, and quoting literals.
//!
//! Migrations run statement by statement so that a failure names the exact statement
//! and its line in the file, and the linter judges statement by statement: both use
//! this one splitter, so what is linted is what runs. It knows what hides a `;` in each
//! dialect: quoted strings (`''` escapes, PostgreSQL `E'...'` backslashes), quoted
//! identifiers (and SQLite's `[...]` and backticks), dollar quoting (`$$`, `$tag$`),
//! `--` and `/* */` comments (nested on PostgreSQL), and the `BEGIN ... END` bodies of
//! SQLite triggers and PostgreSQL `BEGIN ATOMIC` functions. It does not parse SQL.

use super::dialect::Dialect;

/// One statement of a script, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// From the first token to just before the terminating `;`, trailing space trimmed.
    pub text: &'a str,
    /// 1-based line of the first token.
    pub line: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Cuts a script at the semicolons that end statements. Leading comments and psql
/// meta-commands (a line starting with `\` between statements) are not part of any
/// statement; a tail of comments after the last `;` is not a statement.
///
/// Unterminated quotes and comments run to the end of the script, which the parser then
/// rejects: an unclosed quote must not make the rest of the script look harmless.
pub fn split<'a>(script: &'a str, dialect: Dialect) -> Vec<Piece<'a>> {
    let pg = dialect == Dialect::Postgres;
    let b = script.as_bytes();
    let mut pieces = Vec::new();
    let mut start: Option<usize> = None;
    // The first few words of the current statement, upper-cased ("" for a quoted name),
    // to recognise statements whose body holds semicolons.
    let mut head: Vec<String> = Vec::new();
    let mut previous = String::new();
    // Nesting inside a BEGIN ... END body (CASE ... END nests too).
    let mut depth = 0usize;
    let mut line = 1;
    let mut counted = 0;
    let mut finish = |pieces: &mut Vec<Piece<'a>>, from: usize, to: usize| {
        line += script[counted..from].matches('\n').count();
        counted = from;
        pieces.push(Piece { text: script[from..to].trim_end(), line });
    };

    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b';' && depth == 0 {
            if let Some(s) = start.take() {
                finish(&mut pieces, s, i);
            }
            head.clear();
            previous.clear();
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && next == Some(b'-') {
            i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p);
        } else if c == b'/' && next == Some(b'*') {
            i = skip_block_comment(b, i, pg);
        } else if c == b'\\' && start.is_none() {
            i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p);
        } else {
            start.get_or_insert(i);
            if c == b'\'' {
                let backslashes = pg && i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_word_byte(b[i - 2]));
                i = skip_quoted(b, i, b'\'', backslashes);
            } else if c == b'"' || c == b'`' {
                i = skip_quoted(b, i, c, false);
                push_word(&mut head, &mut previous, String::new());
            } else if c == b'[' && !pg {
                i = b[i..].iter().position(|&x| x == b']').map_or(b.len(), |p| i + p + 1);
                push_word(&mut head, &mut previous, String::new());
            } else if c == b'$' && pg {
                i = dollar_quote_end(script, i).unwrap_or(i + 1);
            } else if is_word_byte(c) {
                let end =
                    b[i..].iter().position(|&x| !(is_word_byte(x) || (pg && x == b'$'))).map_or(b.len(), |p| i + p);
                let word = script[i..end].to_ascii_uppercase();
                i = end;
                if depth > 0 {
                    match word.as_str() {
                        "CASE" => depth += 1,
                        "END" => depth -= 1,
                        _ => {}
                    }
                } else if opens_body(&head, &previous, &word, pg) {
                    depth = 1;
                }
                push_word(&mut head, &mut previous, word);
            } else {
                i += 1;
            }
        }
    }
    if let Some(s) = start {
        finish(&mut pieces, s, b.len());
    }
    pieces
}

fn push_word(head: &mut Vec<String>, previous: &mut String, word: String) {
    if head.len() < 4 {
        head.push(word.clone());
    }
    *previous = word;
}

/// Whether `word` opens a body whose statements end in `;` but belong to this statement:
/// SQLite's `CREATE [TEMP] TRIGGER ... BEGIN ... END` and PostgreSQL's SQL-standard
/// `CREATE FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END`.
fn opens_body(head: &[String], previous: &str, word: &str, pg: bool) -> bool {
    let h: Vec<&str> = head.iter().map(String::as_str).collect();
    if pg {
        word == "ATOMIC"
            && previous == "BEGIN"
            && matches!(h.as_slice(), ["CREATE", "FUNCTION" | "PROCEDURE", ..] | ["CREATE", "OR", "REPLACE", ..])
    } else {
        word == "BEGIN"
            && matches!(h.as_slice(), ["CREATE", "TRIGGER", ..] | ["CREATE", "TEMP" | "TEMPORARY", "TRIGGER", ..])
    }
}

/// Index just past a quoted string or identifier starting at `i`; a doubled quote is an
/// escaped quote, and in an `E'...'` string so is a backslash before anything.
fn skip_quoted(b: &[u8], i: usize, quote: u8, backslashes: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if backslashes && b[j] == b'\\' {
            j += 2;
        } else if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// Index just past a `/* */` comment starting at `i`. PostgreSQL nests them; SQLite ends
/// at the first `*/`.
fn skip_block_comment(b: &[u8], i: usize, nested: bool) -> usize {
    let mut depth = 1;
    let mut j = i + 2;
    while j < b.len() {
        if nested && b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// If a PostgreSQL dollar quote (`$$` or `$tag$`, the tag not starting with a digit) opens
/// at `i`, the index just past its closing tag (the end of the script if it never closes).
/// `$1` and other parameters are not quotes.
fn dollar_quote_end(script: &str, i: usize) -> Option<usize> {
    let b = script.as_bytes();
    let mut j = i + 1;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while j < b.len() && is_word_byte(b[j]) {
        j += 1;
    }
    if b.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &script[i..=j];
    Some(script[j + 1..].find(tag).map_or(b.len(), |end| j + 1 + end + tag.len()))
}

/// A SQL string literal: `'it''s'`. Both PostgreSQL (with standard_conforming_strings,
/// the default since 9.1) and SQLite read it back exactly.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(String, usize)> {
        split(s, Dialect::Postgres).into_iter().map(|s| (s.text.to_owned(), s.line)).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "CREATE TABLE a (x text DEFAULT 'a;b');\n-- a comment; with a semicolon\nINSERT INTO a VALUES ('it''s; fine');\n/* block; /* nested; */ still; */ SELECT 1;\n\nCREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;\nSELECT $$;$$;\nSELECT \"we;ird\" FROM a\n-- trailing comment only;\n";
        let got = texts(sql);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(got[0], ("CREATE TABLE a (x text DEFAULT 'a;b')".into(), 1));
        // The line of the statement itself, not of the comment before it.
        assert_eq!(got[1].1, 3);
        assert!(got[1].0.ends_with("INSERT INTO a VALUES ('it''s; fine')"), "{:?}", got[1]);
        assert!(got[3].0.starts_with("CREATE FUNCTION") && got[3].0.ends_with("LANGUAGE plpgsql"));
        assert_eq!(got[3].1, 6);
        assert_eq!(got[4].0, "SELECT $$;$$");
        assert!(got[5].0.starts_with("SELECT \"we;ird\" FROM a"), "{:?}", got[5]);
    }

    #[test]
    fn empty_and_comment_only_scripts_have_no_statements() {
        assert!(split("", Dialect::Postgres).is_empty());
        assert!(split("-- nothing here\n/* nor here */\n;\n", Dialect::Sqlite).is_empty());
    }

    #[test]
    fn splitter_keeps_parameters_and_identifiers_with_dollars() {
        let pieces = split("INSERT INTO t VALUES ($1, $2); SELECT a$b$ FROM t; SELECT 1", Dialect::Postgres);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text).collect();
        assert_eq!(texts, vec!["INSERT INTO t VALUES ($1, $2)", "SELECT a$b$ FROM t", "SELECT 1"]);
    }

    #[test]
    fn sqlite_trigger_bodies_stay_whole() {
        let sql = "CREATE TABLE t (a int);\nCREATE TRIGGER t_a AFTER INSERT ON t BEGIN\n  UPDATE t SET a = 1;\n  DELETE FROM t WHERE a = 2;\nEND;\nSELECT 1;";
        let pieces = split(sql, Dialect::Sqlite);
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        assert!(pieces[1].text.starts_with("CREATE TRIGGER") && pieces[1].text.ends_with("END"));
        assert_eq!(pieces[1].line, 2);
    }

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(literal("it's"), "'it''s'");
    }
}
