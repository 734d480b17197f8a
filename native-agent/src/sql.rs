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
    let sql = without_driver_decoration(sql.trim());
    let mut out = String::with_capacity(sql.len().min(MAX_LENGTH));
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let mut last_space = true;
    while i < chars.len() && out.len() < MAX_LENGTH {
        let c = chars[i];
        let previous_is_word = out
            .chars()
            .last()
            .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$');
        match c {
            '\'' => {
                // A string literal; '' is an escaped quote inside it.
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                // N'...', X'...', E'...': the prefix letter goes too.
                if previous_is_word
                    && out
                        .chars()
                        .last()
                        .is_some_and(|p| matches!(p.to_ascii_uppercase(), 'N' | 'X' | 'E' | 'B'))
                    && !out
                        .chars()
                        .rev()
                        .nth(1)
                        .is_some_and(|p| p.is_alphanumeric() || p == '_')
                {
                    out.pop();
                }
                out.push('?');
                i += 1;
                last_space = false;
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += 1;
                }
                out.extend(&chars[start..(i + 1).min(chars.len())]);
                i += 1;
                last_space = false;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() && !previous_is_word => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
                {
                    i += 1;
                }
                out.push('?');
                last_space = false;
            }
            c if c.is_whitespace() => {
                if !last_space {
                    out.push(' ');
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
    out.trim_end().to_string()
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
    }
}
