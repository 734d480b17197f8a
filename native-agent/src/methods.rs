//! Names the frames of stack samples: `package.Class.method:line` from a
//! `jmethodID` and a bytecode index, through JVMTI on an attached thread
//! (the profiler's). Each method is looked up once and kept in a bounded
//! cache, emptied when full: that bounds memory, and the rare id HotSpot
//! reuses for another method (an obsolete one after a class redefinition)
//! is named right again after the next emptying.

use std::collections::HashMap;

use crate::jni::Jni;
use crate::jvmti::{FrameInfo, Jvmti, MethodId};

/// The most methods kept.
const MAX_METHODS: usize = 1 << 16;

struct Named {
    /// `com.acme.Orders.place`
    name: String,
    /// (first bytecode index, line), by bytecode index.
    lines: Box<[(i64, i32)]>,
}

/// The cache of method names.
pub struct Methods {
    jvmti: Jvmti,
    named: HashMap<usize, Named>,
}

impl Methods {
    pub fn new(jvmti: Jvmti) -> Methods {
        Methods {
            jvmti,
            named: HashMap::new(),
        }
    }

    /// The name of a frame, with its line when the class has a line table.
    pub fn frame(&mut self, jni: &Jni, frame: FrameInfo) -> String {
        let key = frame.method as usize;
        if !self.named.contains_key(&key) {
            if self.named.len() >= MAX_METHODS {
                self.named.clear();
            }
            let named = self.look_up(jni, frame.method);
            self.named.insert(key, named);
        }
        let named = &self.named[&key];
        match line_at(&named.lines, frame.location) {
            Some(line) => format!("{}:{line}", named.name),
            None => named.name.clone(),
        }
    }

    fn look_up(&self, jni: &Jni, method: MethodId) -> Named {
        let class = self.jvmti.declaring_class(method).ok();
        let class_name = class
            .and_then(|class| {
                let signature = self.jvmti.class_signature(class);
                jni.delete_local(class);
                signature.ok()
            })
            .map(|signature| java_name(&signature))
            .unwrap_or_else(|| "unknown".into());
        let method_name = self
            .jvmti
            .method_name(method)
            .unwrap_or_else(|_| "unknown".into());
        let mut lines = self.jvmti.line_numbers(method).unwrap_or_default();
        lines.sort_unstable();
        Named {
            name: format!("{class_name}.{method_name}"),
            lines: lines.into_boxed_slice(),
        }
    }
}

/// `com.acme.Orders` for the signature `Lcom/acme/Orders;`.
fn java_name(signature: &str) -> String {
    signature
        .strip_prefix('L')
        .and_then(|s| s.strip_suffix(';'))
        .unwrap_or(signature)
        .replace('/', ".")
}

/// The line of bytecode index `location` in a line table sorted by index;
/// none in a native method (index -1) or without a table.
fn line_at(lines: &[(i64, i32)], location: i64) -> Option<i32> {
    if location < 0 {
        return None;
    }
    let after = lines.partition_point(|&(start, _)| start <= location);
    after.checked_sub(1).map(|i| lines[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_signature_reads_as_its_java_name() {
        assert_eq!(java_name("Lcom/acme/Orders;"), "com.acme.Orders");
        assert_eq!(java_name("Lcom/acme/Orders$Line;"), "com.acme.Orders$Line");
        assert_eq!(java_name("[I"), "[I");
    }

    #[test]
    fn a_bytecode_index_falls_on_the_line_that_starts_before_it() {
        let lines = [(0, 10), (4, 11), (9, 14)];
        assert_eq!(line_at(&lines, 0), Some(10));
        assert_eq!(line_at(&lines, 3), Some(10));
        assert_eq!(line_at(&lines, 4), Some(11));
        assert_eq!(line_at(&lines, 200), Some(14));
        assert_eq!(line_at(&lines, -1), None, "native");
        assert_eq!(line_at(&[], 5), None);
    }
}
