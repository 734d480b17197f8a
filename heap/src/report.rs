//! The report of a dump: as readable text (tables cut to `--top` rows) or as
//! one JSON object.

use std::fmt::Write;

use serde::Serialize;

use crate::finalizer::FinalizerReport;
use crate::histogram::Row;
use crate::retained::{Hop, Suspect, TopObject};
use crate::threads::ThreadInfo;

/// The biggest objects by retained size.
#[derive(Clone, Debug, Serialize)]
pub struct DominatorReport {
    pub top: Vec<TopObject>,
    /// Objects nothing but their Finalizer keeps alive.
    pub kept_by_finalizers: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub format: String,
    pub id_size: u8,
    pub compressed_refs: bool,
    pub compressed_class_pointers: bool,
    pub objects: u64,
    pub classes: u64,
    pub shallow_bytes: u64,
    pub partial: bool,
    pub warnings: Vec<String>,
    pub histogram: Vec<Row>,
    pub finalizer: FinalizerReport,
    pub threads: Vec<ThreadInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dominators: Option<DominatorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_suspects: Option<Vec<Suspect>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_to_root: Option<Vec<Hop>>,
}

impl Report {
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }

    /// The text report, each table cut to `top` rows.
    pub fn text(&self, top: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.file);
        let _ = writeln!(
            out,
            "{}, {}-byte ids, {} objects in {} classes, {} shallow{}",
            self.format,
            self.id_size,
            self.objects,
            self.classes,
            bytes(self.shallow_bytes),
            if self.partial {
                " (PARTIAL: see the warnings)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "object layout: compressed oops {}, compressed class pointers {}",
            on_off(self.compressed_refs),
            on_off(self.compressed_class_pointers)
        );
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        if let Some(path) = &self.path_to_root {
            let _ = writeln!(out, "\nPath from a GC root");
            write_path(&mut out, path);
        }
        if let Some(suspects) = &self.leak_suspects {
            self.write_suspects(&mut out, suspects);
        }
        self.write_histogram(&mut out, top);
        if let Some(dominators) = &self.dominators {
            write_dominators(&mut out, dominators, top);
        }
        self.write_finalizer(&mut out, top);
        self.write_threads(&mut out, top);
        // Names come from the dump: no escape sequence reaches the terminal.
        printable_lines(&out)
    }
}

impl Report {
    /// The class histogram, `top` rows, with retained bytes when known.
    fn write_histogram(&self, out: &mut String, top: usize) {
        let _ = writeln!(
            out,
            "\nClass histogram (by shallow bytes, top {top} of {})",
            self.histogram.len()
        );
        let retained = self.dominators.is_some();
        let _ = writeln!(
            out,
            "{:>12} {:>14} {:>6}{}  class",
            "instances",
            "bytes",
            "%",
            if retained { "       retained" } else { "" }
        );
        for row in self.histogram.iter().take(top) {
            let _ = writeln!(
                out,
                "{:>12} {:>14} {:>5.1}%{}  {}",
                row.instances,
                row.shallow_bytes,
                row.shallow_bytes as f64 * 100.0 / self.shallow_bytes.max(1) as f64,
                row.retained_bytes
                    .map_or(String::new(), |r| format!(" {:>14}", r)),
                row.class
            );
        }
    }

    /// Finalizers: how many, what they keep, and by class what they hold.
    fn write_finalizer(&self, out: &mut String, top: usize) {
        let f = &self.finalizer;
        let _ = writeln!(
            out,
            "\nFinalizer: {} registered, {} queued for the Finalizer thread, {} being finalized; \
             with what they keep {} ({:.1}% of the heap)",
            f.registered,
            f.queued,
            f.in_processing,
            bytes(f.shallow_bytes),
            f.heap_percent
        );
        if !f.referents.is_empty() {
            let _ = writeln!(
                out,
                "{:>12} {:>14}  objects the Finalizers hold, by class",
                "objects", "bytes"
            );
            for r in f.referents.iter().take(top) {
                let _ = writeln!(out, "{:>12} {:>14}  {}", r.count, r.shallow_bytes, r.class);
            }
        }
    }

    /// Each thread's name, state and `top` frames.
    fn write_threads(&self, out: &mut String, top: usize) {
        let _ = writeln!(out, "\nThreads ({})", self.threads.len());
        for t in &self.threads {
            let _ = writeln!(
                out,
                "\"{}\" {}",
                t.name.as_deref().unwrap_or("?"),
                t.state.as_deref().unwrap_or("")
            );
            for frame in t.stack.iter().take(top) {
                let _ = writeln!(out, "    {frame}");
            }
        }
    }

    fn write_suspects(&self, out: &mut String, suspects: &[Suspect]) {
        let _ = writeln!(
            out,
            "\nLeak suspects (keeping more than 10% of the heap): {}",
            suspects.len()
        );
        for (n, s) in suspects.iter().enumerate() {
            let what = if s.kind == "class" {
                format!("the instances of {}", s.class)
            } else {
                format!("{} 0x{:x}", s.class, s.object_id)
            };
            let _ = writeln!(
                out,
                "{}. {what} keep {} ({:.1}% of the heap)",
                n + 1,
                bytes(s.retained_bytes),
                s.percent
            );
            if let Some(a) = &s.accumulation {
                if a.holder_class.is_empty() {
                    let _ = writeln!(out, "   {} objects of {}", a.count, a.class);
                } else {
                    let _ = writeln!(
                        out,
                        "   {} objects of {} hang from {} 0x{:x}",
                        a.count, a.class, a.holder_class, a.object_id
                    );
                }
            }
            let _ = writeln!(out, "   shortest path from a GC root:");
            write_path(out, &s.path_to_root);
        }
    }
}

/// The biggest objects by retained size, `top` rows.
fn write_dominators(out: &mut String, dominators: &DominatorReport, top: usize) {
    let _ = writeln!(
            out,
            "\nBiggest objects by retained size (top {top}); {} objects kept alive only by their Finalizer",
            dominators.kept_by_finalizers
        );
    let _ = writeln!(
        out,
        "{:>14} {:>12} {:>18} {:>18}  class",
        "retained", "shallow", "object", "dominated by"
    );
    for o in dominators.top.iter().take(top) {
        let _ = writeln!(
            out,
            "{:>14} {:>12} {:>18} {:>18}  {}",
            o.retained_bytes,
            o.shallow_bytes,
            format!("0x{:x}", o.object_id),
            o.dominator_id
                .map_or_else(|| "GC roots".to_string(), |d| format!("0x{d:x}")),
            o.class
        );
    }
}

/// One line a step, indented as it goes down.
fn write_path(out: &mut String, path: &[Hop]) {
    if path.is_empty() {
        let _ = writeln!(out, "     (no GC root reaches it)");
    }
    for (depth, hop) in path.iter().enumerate() {
        let indent = "  ".repeat(depth.min(20));
        if let Some(left_out) = hop.elided {
            let _ = writeln!(out, "     {indent}... {left_out} steps left out ...");
            continue;
        }
        let _ = writeln!(
            out,
            "     {indent}{} 0x{:x}  ({})",
            hop.class, hop.object_id, hop.field
        );
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// `1.2 GB`, `340 MB`, `12 KB`, `512 B`.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} KB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

/// `text` with its line breaks kept and every other control character
/// (C0, DEL, C1) replaced by U+FFFD. Class, thread and field names come
/// from the dump: no escape sequence in one reaches the terminal, and the
/// damage stays visible.
pub(crate) fn printable_lines(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}
