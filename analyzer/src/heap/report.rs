//! The report of a dump: as readable text (tables cut to `--top` rows) or as
//! one JSON object.

use std::fmt::Write;

use serde::Serialize;

use crate::heap::finalizer::FinalizerReport;
use crate::heap::histogram::Row;
use crate::heap::threads::ThreadInfo;

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
        let _ = writeln!(
            out,
            "\nClass histogram (by shallow bytes, top {top} of {})",
            self.histogram.len()
        );
        let _ = writeln!(out, "{:>12} {:>14} {:>6}  class", "instances", "bytes", "%");
        for row in self.histogram.iter().take(top) {
            let _ = writeln!(
                out,
                "{:>12} {:>14} {:>5.1}%  {}",
                row.instances,
                row.shallow_bytes,
                row.shallow_bytes as f64 * 100.0 / self.shallow_bytes.max(1) as f64,
                row.class
            );
        }
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
        out
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
