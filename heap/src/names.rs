//! Strings as the JVM writes them in a dump: modified UTF-8 (a NUL is two
//! bytes, a character outside the BMP is a pair of three-byte surrogates).

/// Decodes modified UTF-8; anything malformed becomes U+FFFD.
pub fn modified_utf8(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (unit, len) = match b {
            0x00..=0x7F => (u16::from(b), 1),
            0xC0..=0xDF if i + 1 < bytes.len() => (
                (u16::from(b & 0x1F) << 6) | u16::from(bytes[i + 1] & 0x3F),
                2,
            ),
            0xE0..=0xEF if i + 2 < bytes.len() => (
                (u16::from(b & 0x0F) << 12)
                    | (u16::from(bytes[i + 1] & 0x3F) << 6)
                    | u16::from(bytes[i + 2] & 0x3F),
                3,
            ),
            _ => (0xFFFD, 1),
        };
        units.push(unit);
        i += len;
    }
    String::from_utf16_lossy(&units)
}

/// A JVM class name (`java/lang/String`, `[[I`, `[Ljava/lang/Object;`) in
/// Java form (`java.lang.String`, `int[][]`, `java.lang.Object[]`).
pub fn java_name(internal: &str) -> String {
    let dims = internal.bytes().take_while(|&b| b == b'[').count();
    if dims == 0 {
        return internal.replace('/', ".");
    }
    let element = &internal[dims..];
    let base = match element.as_bytes().first() {
        Some(b'L') => element[1..].trim_end_matches(';').replace('/', "."),
        Some(b'Z') => "boolean".into(),
        Some(b'C') => "char".into(),
        Some(b'F') => "float".into(),
        Some(b'D') => "double".into(),
        Some(b'B') => "byte".into(),
        Some(b'S') => "short".into(),
        Some(b'I') => "int".into(),
        Some(b'J') => "long".into(),
        _ => element.replace('/', "."),
    };
    format!("{base}{}", "[]".repeat(dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_surrogate_pairs_decode() {
        assert_eq!(modified_utf8(b"plain"), "plain");
        assert_eq!(modified_utf8(&[b'a', 0xC0, 0x80, b'b']), "a\0b");
        // U+1F600 as two three-byte surrogates.
        let smile = [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80];
        assert_eq!(modified_utf8(&smile), "\u{1F600}");
        assert_eq!(modified_utf8(&[0xFF, b'x']), "\u{FFFD}x");
    }

    #[test]
    fn class_names_read_as_java_writes_them() {
        assert_eq!(java_name("java/lang/String"), "java.lang.String");
        assert_eq!(java_name("[Ljava/lang/Object;"), "java.lang.Object[]");
        assert_eq!(java_name("[[I"), "int[][]");
        assert_eq!(
            java_name("java/util/HashMap$Node"),
            "java.util.HashMap$Node"
        );
    }
}
