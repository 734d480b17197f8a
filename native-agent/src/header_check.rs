//! Test support: reads the installed JDK's `jvmti.h` so the hand-written
//! JVMTI function-table slots, event numbers and capability bits can be
//! checked against the real header (JNI's come from `jni-sys`). The tests
//! need a JDK (scripts/test.sh installs one); without its headers they fail
//! and say so.

use std::collections::HashMap;
use std::path::PathBuf;

/// The `include` directory of the JDK found through `JAVA_HOME` or `javac`.
fn include_dir() -> Option<PathBuf> {
    let home = match std::env::var_os("JAVA_HOME") {
        Some(home) => PathBuf::from(home),
        None => {
            let javac = std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("javac"))
                .find(|p| p.is_file())?;
            std::fs::canonicalize(javac)
                .ok()?
                .parent()?
                .parent()?
                .to_path_buf()
        }
    };
    let include = home.join("include");
    include.is_dir().then_some(include)
}

/// The header's text between `start` and the next `end`.
fn section(header: &str, start: &str, end: &str) -> String {
    let dir =
        include_dir().expect("a JDK's include directory (set JAVA_HOME or put javac on PATH)");
    let text = std::fs::read_to_string(dir.join(header)).expect("the JDK has its C headers");
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{header} has {start:?}"))
        + start.len();
    let to = from
        + text[from..]
            .find(end)
            .unwrap_or_else(|| panic!("{header} has {end:?}"));
    text[from..to].to_string()
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Function-table entries of the struct in `header` that opens with `start`,
/// by name, numbered from 0 (`void *reservedN` entries count).
pub fn indexes_in(header: &str, start: &str, end: &str) -> HashMap<String, usize> {
    let body = section(header, start, end);
    let mut names = Vec::new();
    let mut rest = body.as_str();
    loop {
        let reserved = rest.find("void *reserved");
        let function = rest.find("JNICALL *");
        let (at, skip) = match (reserved, function) {
            (Some(r), Some(f)) if r < f => (r, "void *".len()),
            (_, Some(f)) => (f, "JNICALL *".len()),
            (Some(r), None) => (r, "void *".len()),
            (None, None) => break,
        };
        rest = &rest[at + skip..];
        names.push(identifier(rest));
    }
    names.into_iter().enumerate().map(|(i, n)| (n, i)).collect()
}

/// `NAME = number` constants (decimal or `0x` hex) of an enum in `header`.
pub fn enum_values(header: &str, start: &str, end: &str) -> HashMap<String, u32> {
    section(header, start, end)
        .split(',')
        .filter_map(|item| {
            let (name, value) = item.split_once('=')?;
            let value = value.trim();
            let value = match value.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => value.parse().ok()?,
            };
            Some((name.trim().to_string(), value))
        })
        .collect()
}

/// The bit-field names of `jvmtiCapabilities`, in order (bit 0 first).
pub fn capability_bits() -> Vec<String> {
    let body = section(
        "jvmti.h",
        "typedef struct {\n    unsigned int can_tag_objects",
        "}",
    );
    let mut bits = vec!["can_tag_objects".to_string()];
    bits.extend(
        body.split("unsigned int ")
            .skip(1)
            .map(|field| identifier(field.trim_start())),
    );
    bits
}
