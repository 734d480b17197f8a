//! The threads of the dump: name and state read from their `java.lang.Thread`
//! objects (and the `FieldHolder` of JDK 19+), and their stacks from the
//! dump's stack traces.

use serde::Serialize;

use crate::dump::Dump;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadInfo {
    pub name: Option<String>,
    /// `RUNNABLE`, `WAITING`, ... when the dump tells.
    pub state: Option<String>,
    /// Frames, innermost first, as `at Class.method(File.java:12)`.
    pub stack: Vec<String>,
}

/// The fields a kept thread's objects point at that the report reads.
pub const FOLLOW: [(&str, &str); 3] = [
    ("java/lang/Thread", "name"),
    ("java/lang/Thread", "holder"),
    ("java/lang/String", "value"),
];

pub fn report(dump: &Dump) -> Vec<ThreadInfo> {
    dump.threads()
        .map(|root| {
            let thread = root.object_id;
            let name = name(dump, thread);
            let status = dump
                .field(thread, "java/lang/Thread", "threadStatus")
                .or_else(|| {
                    let holder = dump.field(thread, "java/lang/Thread", "holder")?;
                    dump.field(holder, "java/lang/Thread$FieldHolder", "threadStatus")
                });
            let stack = dump
                .traces
                .get(&root.trace_serial)
                .map(|frames| frames.iter().map(|f| frame_text(dump, *f)).collect())
                .unwrap_or_default();
            ThreadInfo {
                name,
                state: status.map(|s| state_of(s as u32).to_string()),
                stack,
            }
        })
        .collect()
}

/// A thread's name, when its objects were kept.
pub fn name(dump: &Dump, thread: u64) -> Option<String> {
    dump.field(thread, "java/lang/Thread", "name")
        .and_then(|s| string_value(dump, s))
}

/// Objects the report would read that are not kept yet (found earlier in the
/// dump than what points at them): a further pass can fetch them.
pub fn unresolved(dump: &Dump) -> Vec<u64> {
    let mut out = Vec::new();
    let mut want = |id: Option<u64>, kept: bool| {
        if let Some(id) = id.filter(|&id| id != 0 && !kept && !dump.missing.contains(&id)) {
            out.push(id);
        }
    };
    for root in dump.threads() {
        let thread = root.object_id;
        want(Some(thread), dump.fields.contains_key(&thread));
        let name = dump.field(thread, "java/lang/Thread", "name");
        want(name, name.is_some_and(|n| dump.fields.contains_key(&n)));
        let holder = dump.field(thread, "java/lang/Thread", "holder");
        want(holder, holder.is_some_and(|h| dump.fields.contains_key(&h)));
        if let Some(value) = name.and_then(|n| dump.field(n, "java/lang/String", "value")) {
            want(Some(value), dump.arrays.contains_key(&value));
        }
    }
    out
}

/// A `java.lang.String`'s text: Latin-1 or UTF-16 bytes (JDK 9+, by
/// `coder`), or the chars of older JDKs.
pub fn string_value(dump: &Dump, string: u64) -> Option<String> {
    let value = dump.field(string, "java/lang/String", "value")?;
    let bytes = dump.arrays.get(&value)?;
    match dump.field(string, "java/lang/String", "coder") {
        Some(0) => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        // UTF-16 in the JVM's byte order (little-endian on x86 and ARM).
        Some(_) => Some(String::from_utf16_lossy(
            &bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )),
        // A char[]: the dump writes chars big-endian.
        None => Some(String::from_utf16_lossy(
            &bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )),
    }
}

/// `at java.lang.Thread.sleep(Native Method)`.
pub fn frame_text(dump: &Dump, frame_id: u64) -> String {
    let Some(frame) = dump.frames.get(&frame_id) else {
        return format!("at <frame 0x{frame_id:x}>");
    };
    let class = dump
        .class_serials
        .get(&frame.class_serial)
        .map_or_else(|| "?".to_string(), |&id| dump.class_name(id));
    let method = dump.string(frame.method_name_id);
    let source = dump.strings.get(&frame.source_file_id);
    let place = match (frame.line, source) {
        (-3, _) => "Native Method".to_string(),
        (-2, _) => "Compiled frame".to_string(),
        (line, Some(file)) if line > 0 => format!("{file}:{line}"),
        (_, Some(file)) => file.to_string(),
        (_, None) => "Unknown Source".to_string(),
    };
    format!("at {class}.{method}({place})")
}

/// `java.lang.Thread.State` from a `threadStatus` (JVMTI thread state bits),
/// as `jdk.internal.misc.VM.toThreadState` reads it.
fn state_of(status: u32) -> &'static str {
    if status & 0x4 != 0 {
        "RUNNABLE"
    } else if status & 0x400 != 0 {
        "BLOCKED"
    } else if status & 0x10 != 0 {
        "WAITING"
    } else if status & 0x20 != 0 {
        "TIMED_WAITING"
    } else if status & 0x2 != 0 {
        "TERMINATED"
    } else if status & 0x1 == 0 {
        "NEW"
    } else {
        "RUNNABLE"
    }
}
