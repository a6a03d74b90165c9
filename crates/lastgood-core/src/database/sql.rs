//! Splitting a SQL script into statements, and quoting literals.
//!
//! Migrations run statement by statement so that a failure names the exact statement
//! and its line in the file. The splitter knows what hides a `;`: single-quoted
//! strings (with `''` escapes), double-quoted identifiers, PostgreSQL dollar quoting
//! (`$$ ... $$`, `$tag$ ... $tag$`), `--` line comments and nested `/* */` comments.
//! It does not parse SQL; it only finds the semicolons that end statements.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's text, without its terminating `;`, trimmed.
    pub text: String,
    /// 1-based line of the statement's first character in the script.
    pub line: usize,
}

pub fn split(script: &str) -> Vec<Statement> {
    let b = script.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |out: &mut Vec<Statement>, from: usize, to: usize| {
        let raw = &script[from..to];
        let text = raw.trim();
        if text.is_empty() || only_comments(text) {
            return;
        }
        let lead = raw.len() - raw.trim_start().len();
        let line = script[..from + lead].matches('\n').count() + 1;
        out.push(Statement { text: text.to_owned(), line });
    };
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < b.len() && depth > 0 {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' => {
                // $tag$ where tag is empty or an identifier not starting with a digit.
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let tag_ok = j < b.len() && b[j] == b'$' && !b.get(i + 1).is_some_and(u8::is_ascii_digit);
                if tag_ok {
                    let tag = &script[i..=j];
                    match script[j + 1..].find(tag) {
                        Some(end) => i = j + 1 + end + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
            }
            b';' => {
                push(&mut out, start, i);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut out, start, b.len());
    out
}

fn only_comments(text: &str) -> bool {
    // A tail of comments after the last `;` is not a statement.
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return true;
        }
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map(|(_, t)| t).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|(_, t)| t).unwrap_or("");
        } else {
            return false;
        }
    }
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
        split(s).into_iter().map(|s| (s.text, s.line)).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "CREATE TABLE a (x text DEFAULT 'a;b');\n-- a comment; with a semicolon\nINSERT INTO a VALUES ('it''s; fine');\n/* block; /* nested; */ still; */ SELECT 1;\n\nCREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;\nSELECT $$;$$;\nSELECT \"we;ird\" FROM a\n-- trailing comment only;\n";
        let got = texts(sql);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(got[0], ("CREATE TABLE a (x text DEFAULT 'a;b')".into(), 1));
        assert_eq!(got[1].1, 2);
        assert!(got[1].0.ends_with("INSERT INTO a VALUES ('it''s; fine')"), "{:?}", got[1]);
        assert!(got[3].0.starts_with("CREATE FUNCTION") && got[3].0.ends_with("LANGUAGE plpgsql"));
        assert_eq!(got[3].1, 6);
        assert_eq!(got[4].0, "SELECT $$;$$");
        assert!(got[5].0.starts_with("SELECT \"we;ird\" FROM a"), "{:?}", got[5]);
    }

    #[test]
    fn empty_and_comment_only_scripts_have_no_statements() {
        assert!(split("").is_empty());
        assert!(split("-- nothing here\n/* nor here */\n;\n").is_empty());
    }

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(literal("it's"), "'it''s'");
    }
}
