//! SQL text as it goes into a span: literals replaced by `?`, so statements
//! that differ only in their values read (and group) as one, and no value a
//! user typed leaves the JVM. Strings ('...' with '' escapes), numbers (not
//! parts of names) and hex and national literals become `?`; `--` comments
//! are dropped (they may hold values too); quoted identifiers ("...") are
//! kept; runs of white space become one space.
//!
//! A prepared statement's text comes from its `toString()`, which drivers
//! decorate: H2 writes `prep3: UPDATE ... {1: 42}`, MySQL
//! `com.mysql.cj.jdbc.ClientPreparedStatement: UPDATE ...`. The name before
//! `: ` and H2's parameter list go, so the statement reads as it was prepared.

/// The longest statement text kept in a span, in bytes.
const MAX_LENGTH: usize = 4096;

pub fn normalize(sql: &str) -> String {
    let sql = without_driver_decoration(sql.trim()).as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(sql.len().min(MAX_LENGTH));
    // Bytes of a name: ASCII letters, digits, `_`, `$`, and every byte of a
    // non-ASCII character (SQL's own syntax is all ASCII, so scanning bytes
    // never splits a character).
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let mut i = 0;
    let mut last_space = true;
    while i < sql.len() && out.len() < MAX_LENGTH {
        let c = sql[i];
        let previous_is_word = out.last().is_some_and(|&p| is_word(p));
        match c {
            b'\'' => {
                // A string literal; '' is an escaped quote inside it.
                i += 1;
                while i < sql.len() {
                    if sql[i] == b'\'' {
                        if sql.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                // N'...', X'...', E'...': the prefix letter goes too.
                let n = out.len();
                if n >= 1
                    && matches!(out[n - 1].to_ascii_uppercase(), b'N' | b'X' | b'E' | b'B')
                    && !(n >= 2 && (out[n - 2].is_ascii_alphanumeric() || out[n - 2] == b'_'))
                {
                    out.pop();
                }
                out.push(b'?');
                i += 1;
                last_space = false;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < sql.len() && sql[i] != b'"' {
                    i += 1;
                }
                out.extend_from_slice(&sql[start..(i + 1).min(sql.len())]);
                i += 1;
                last_space = false;
            }
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                while i < sql.len() && sql[i] != b'\n' {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() && !previous_is_word => {
                while i < sql.len()
                    && (sql[i].is_ascii_alphanumeric() || sql[i] == b'.' || sql[i] == b'_')
                {
                    i += 1;
                }
                out.push(b'?');
                last_space = false;
            }
            c if c.is_ascii_whitespace() => {
                if !last_space {
                    out.push(b' ');
                    last_space = true;
                }
                i += 1;
            }
            c => {
                out.push(c);
                last_space = false;
                i += 1;
            }
        }
    }
    // Cut at the length bound, and back to the end of the last whole
    // character (the input is UTF-8, so that is the only place it can break).
    out.truncate(MAX_LENGTH);
    if let Err(broken) = std::str::from_utf8(&out) {
        out.truncate(broken.valid_up_to());
    }
    while out.last() == Some(&b' ') {
        out.pop();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `sql` without a leading `NAME: ` (a name has no white space) and a
/// trailing ` {1: ..., 2: ...}` parameter list.
fn without_driver_decoration(sql: &str) -> &str {
    let sql = match sql.split_once(": ") {
        Some((name, rest))
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '$')) =>
        {
            rest
        }
        _ => sql,
    };
    match sql.rsplit_once(" {") {
        Some((statement, parameters))
            if parameters.ends_with('}')
                && parameters.starts_with(|c: char| c.is_ascii_digit())
                && parameters.contains(": ") =>
        {
            statement
        }
        _ => sql,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn literals_become_placeholders() {
        assert_eq!(
            normalize("SELECT * FROM orders WHERE id = 42 AND name = 'O''Brien'"),
            "SELECT * FROM orders WHERE id = ? AND name = ?"
        );
        assert_eq!(
            normalize("insert into t(a, b) values (1.5e3, N'x'), (-7, X'ff')"),
            "insert into t(a, b) values (?, ?), (-?, ?)"
        );
    }

    #[test]
    fn names_with_digits_and_quoted_names_stay() {
        assert_eq!(
            normalize("select col1, \"Table 2\".x from t2 where a = ?"),
            "select col1, \"Table 2\".x from t2 where a = ?"
        );
    }

    #[test]
    fn white_space_collapses_and_comments_go() {
        assert_eq!(
            normalize("SELECT a\n\t FROM   t -- the 3 rows\nWHERE b = 'x'  "),
            "SELECT a FROM t WHERE b = ?"
        );
    }

    #[test]
    fn drivers_decorations_of_prepared_statements_go() {
        assert_eq!(
            normalize("prep4: UPDATE items SET hits = hits + 1 WHERE id = ? {1: 2}"),
            "UPDATE items SET hits = hits + ? WHERE id = ?"
        );
        assert_eq!(
            normalize("com.mysql.cj.jdbc.ClientPreparedStatement: SELECT a FROM t WHERE b = 'x'"),
            "SELECT a FROM t WHERE b = ?"
        );
        // JDBC escapes and plain text stay as they are.
        assert_eq!(
            normalize("SELECT {fn NOW()} FROM t WHERE a = ': '"),
            "SELECT {fn NOW()} FROM t WHERE a = ?"
        );
    }

    #[test]
    fn broken_text_never_panics() {
        for text in ["'unterminated", "\"open", "--", "", "'", "N'", "1e"] {
            let _ = normalize(text);
        }
        let long = "x".repeat(10_000);
        assert!(normalize(&long).len() <= 4096);
        for wide in ["é", "€"] {
            let cut = normalize(&wide.repeat(5_000));
            assert!(cut.len() > 4000 && cut.len() <= 4096, "{}", cut.len());
            assert!(
                cut.chars().all(|c| c.to_string() == wide),
                "cut between characters"
            );
        }
    }

    #[test]
    fn names_in_any_script_keep_their_digits() {
        assert_eq!(
            normalize("SELECT prix€2, größe3 FROM t WHERE größe3 > 10 AND n = 'café'"),
            "SELECT prix€2, größe3 FROM t WHERE größe3 > ? AND n = ?"
        );
    }
}
