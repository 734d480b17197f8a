//! Strings from the wire made safe to show: a service name, endpoint or
//! attribute can hold any character, and control characters (escape
//! sequences that retitle or clear a terminal, carriage returns that hide a
//! line's start) must not reach an operator's terminal or a text file read in
//! one. Each is replaced by U+FFFD, so the damage stays visible.

use std::borrow::Cow;

/// What stands for a control character.
pub const REPLACEMENT: char = '\u{FFFD}';

/// `text` with every control character (C0, DEL, C1) replaced.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { REPLACEMENT } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Makes every string of a JSON value printable, keys included, in place.
pub fn printable_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(clean) = printable(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(printable_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.chars().any(char::is_control)) {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    printable_json(&mut item);
                    map.insert(printable(&key).into_owned(), item);
                }
            } else {
                map.values_mut().for_each(printable_json);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_other_controls_are_replaced() {
        let hostile = "orders\u{1b}]2;pwned\u{7}\u{1b}[2J\r\n\t\u{7f}\u{9b}31m";
        let clean = printable(hostile);
        assert!(!clean.chars().any(char::is_control), "{clean:?}");
        assert_eq!(clean.chars().filter(|&c| c == REPLACEMENT).count(), 8);
        assert!(clean.starts_with("orders\u{FFFD}]2;pwned"));
        assert!(matches!(printable("주문 /orders"), Cow::Borrowed(_)));

        let mut json = serde_json::json!({
            "service": hostile,
            "attributes": {"key\u{1b}": ["a\u{1b}b", 3, null]},
        });
        printable_json(&mut json);
        let text = json.to_string();
        assert!(
            !text.contains("\\u001b") && !text.contains('\u{1b}'),
            "{text}"
        );
        assert_eq!(json["attributes"]["key\u{FFFD}"][0], "a\u{FFFD}b");
    }
}
