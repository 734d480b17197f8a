//! The class histogram: instances and shallow bytes per class, gathered in
//! the one pass over the dump, with sizes as the JVM lays objects out (the
//! layout is settled at the end, from the gaps between neighbouring objects).

use std::collections::HashMap;

use serde::Serialize;

use crate::hprof::{basic, ClassDump, Header, Visitor};
use crate::layout::{Detector, Layout, LAYOUTS};

/// One row of the histogram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub class: String,
    pub instances: u64,
    pub shallow_bytes: u64,
}

/// Count and total size (under each candidate layout) of some arrays.
#[derive(Clone, Copy, Default)]
struct ArrayTotals {
    count: u64,
    bytes: [u64; LAYOUTS],
}

impl ArrayTotals {
    fn add(&mut self, sizes: [u64; LAYOUTS]) {
        self.count += 1;
        for (total, size) in self.bytes.iter_mut().zip(sizes) {
            *total += size;
        }
    }
}

/// The visitor that counts.
#[derive(Default)]
pub struct Histogram {
    id_size: u8,
    strings: HashMap<u64, Box<str>>,
    /// Class object id to the string id of its name.
    class_names: HashMap<u64, u64>,
    classes: HashMap<u64, ClassDump>,
    /// Instance sizes per class under each layout, once its class chain is known.
    sizes: HashMap<u64, Option<[u64; LAYOUTS]>>,
    instances: HashMap<u64, u64>,
    object_arrays: HashMap<u64, ArrayTotals>,
    primitive_arrays: [ArrayTotals; 12],
    /// The last object seen: its id and sizes, to measure the gap to the next.
    previous: Option<(u64, [u64; LAYOUTS])>,
    detector: Detector,
    pub warnings: Vec<String>,
}

/// What the histogram found.
pub struct Counted {
    pub layout: Layout,
    /// The layout was told by the dump (not the default for want of evidence).
    pub layout_detected: bool,
    pub rows: Vec<Row>,
    pub objects: u64,
    pub classes: u64,
    pub shallow_bytes: u64,
}

impl Histogram {
    /// The name of a string id, or a placeholder naming the id.
    pub fn string(&self, id: u64) -> String {
        self.strings
            .get(&id)
            .map_or_else(|| format!("<string 0x{id:x}>"), |s| s.to_string())
    }

    /// A class's name in Java form (`java.lang.String`, `int[][]`).
    pub fn class_name(&self, class_id: u64) -> String {
        match self.class_names.get(&class_id) {
            Some(&name) => java_name(&self.string(name)),
            None => format!("<class 0x{class_id:x}>"),
        }
    }

    /// Sizes of an instance of `class_id` under each layout, when its class
    /// and superclasses are known.
    fn instance_sizes(&mut self, class_id: u64) -> Option<[u64; LAYOUTS]> {
        if let Some(sizes) = self.sizes.get(&class_id) {
            return *sizes;
        }
        let mut types = Vec::new();
        let mut class = class_id;
        let mut depth = 0;
        while class != 0 {
            let dump = self.classes.get(&class)?;
            types.extend(dump.fields.iter().map(|f| f.basic_type));
            class = dump.super_id;
            depth += 1;
            if depth > 1000 {
                return None;
            }
        }
        let sizes = Layout::ALL.map(|l| l.instance_size(types.iter().copied()));
        self.sizes.insert(class_id, Some(sizes));
        Some(sizes)
    }

    fn object(&mut self, id: u64, sizes: Option<[u64; LAYOUTS]>) {
        if let Some((previous, previous_sizes)) = self.previous {
            if let Some(gap) = id.checked_sub(previous) {
                self.detector.observe(gap, previous_sizes);
            }
        }
        self.previous = sizes.map(|s| (id, s));
    }

    /// Settles the layout and makes the rows, biggest first.
    pub fn finish(mut self) -> (Counted, Self) {
        let (layout, layout_detected) = self.detector.verdict();
        let which = Layout::ALL.iter().position(|l| *l == layout).unwrap_or(0);
        let mut rows = Vec::new();
        let class_ids: Vec<(u64, u64)> = self.instances.iter().map(|(&c, &n)| (c, n)).collect();
        for (class_id, count) in class_ids {
            let size = match self.instance_sizes(class_id) {
                Some(sizes) => sizes[which],
                None => {
                    self.warnings.push(format!(
                        "no class dump for class 0x{class_id:x} (or a superclass): its {count} instances are counted with no fields"
                    ));
                    layout.instance_size(std::iter::empty())
                }
            };
            rows.push(Row {
                class: self.class_name(class_id),
                instances: count,
                shallow_bytes: count * size,
            });
        }
        for (&class_id, totals) in &self.object_arrays {
            rows.push(Row {
                class: self.class_name(class_id),
                instances: totals.count,
                shallow_bytes: totals.bytes[which],
            });
        }
        for (t, totals) in self.primitive_arrays.iter().enumerate() {
            if totals.count > 0 {
                rows.push(Row {
                    class: format!("{}[]", basic::java_name(t as u8)),
                    instances: totals.count,
                    shallow_bytes: totals.bytes[which],
                });
            }
        }
        if let Some(row) = self.mirrors(layout) {
            rows.push(row);
        }
        rows.sort_by(|a, b| {
            b.shallow_bytes
                .cmp(&a.shallow_bytes)
                .then(a.class.cmp(&b.class))
        });
        let counted = Counted {
            layout,
            layout_detected,
            objects: rows.iter().map(|r| r.instances).sum(),
            classes: self.classes.len() as u64,
            shallow_bytes: rows.iter().map(|r| r.shallow_bytes).sum(),
            rows,
        };
        (counted, self)
    }

    /// The `java.lang.Class` objects: one per class dumped, each an instance
    /// of `java.lang.Class` with the class's static fields after its own.
    fn mirrors(&mut self, layout: Layout) -> Option<Row> {
        let class_class = self
            .class_names
            .iter()
            .find(|(_, &name)| {
                self.strings
                    .get(&name)
                    .is_some_and(|n| &**n == "java/lang/Class")
            })
            .map(|(&id, _)| id)?;
        let which = Layout::ALL.iter().position(|l| *l == layout).unwrap_or(0);
        let base = self.instance_sizes(class_class)?[which];
        let bytes = self
            .classes
            .values()
            .map(|c| {
                let statics: u64 = c
                    .statics
                    .iter()
                    .map(|s| layout.field_size(s.basic_type))
                    .sum();
                (base + statics).div_ceil(8) * 8
            })
            .sum();
        Some(Row {
            class: "java.lang.Class".to_string(),
            instances: self.classes.len() as u64,
            shallow_bytes: bytes,
        })
    }
}

impl Visitor for Histogram {
    fn header(&mut self, header: &Header) {
        self.id_size = header.id_size;
    }

    fn utf8(&mut self, id: u64, text: &[u8]) {
        self.strings
            .insert(id, crate::names::modified_utf8(text).into());
    }

    fn load_class(&mut self, _serial: u32, class_id: u64, name_id: u64) {
        self.class_names.insert(class_id, name_id);
    }

    fn class_dump(&mut self, class: ClassDump) {
        self.classes.insert(class.id, class);
    }

    fn instance(&mut self, id: u64, class_id: u64, _fields: &[u8]) {
        *self.instances.entry(class_id).or_default() += 1;
        let sizes = self.instance_sizes(class_id);
        self.object(id, sizes);
    }

    fn object_array(&mut self, id: u64, class_id: u64, length: u32) {
        let sizes = Layout::ALL.map(|l| l.array_size(basic::OBJECT, length));
        self.object_arrays.entry(class_id).or_default().add(sizes);
        self.object(id, Some(sizes));
    }

    fn primitive_array(&mut self, id: u64, element_type: u8, length: u32) {
        let sizes = Layout::ALL.map(|l| l.array_size(element_type, length));
        if let Some(totals) = self.primitive_arrays.get_mut(usize::from(element_type)) {
            totals.add(sizes);
        }
        self.object(id, Some(sizes));
    }

    fn warning(&mut self, text: String) {
        self.warnings.push(text);
    }
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
