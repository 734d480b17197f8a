//! `jvmapm heap --diff OLD NEW`: what grew between two dumps of one JVM,
//! class by class, from their histograms (classes are matched by name).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::report::{bytes, printable_lines, Report};

/// One class in both dumps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Growth {
    pub class: String,
    pub instances_old: u64,
    pub instances_new: u64,
    pub instances_delta: i64,
    pub bytes_old: u64,
    pub bytes_new: u64,
    pub bytes_delta: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub old: String,
    pub new: String,
    pub shallow_bytes_old: u64,
    pub shallow_bytes_new: u64,
    /// Every class, most grown in bytes first (then in instances).
    pub classes: Vec<Growth>,
}

/// A class's instances and bytes in one dump.
#[derive(Clone, Copy, Default)]
struct Side {
    instances: u64,
    bytes: u64,
}

pub fn diff(old: &Report, new: &Report) -> Diff {
    let mut by_class: BTreeMap<&str, [Side; 2]> = BTreeMap::new();
    for (side, report) in [old, new].into_iter().enumerate() {
        for row in &report.histogram {
            let entry = &mut by_class.entry(&row.class).or_default()[side];
            entry.instances += row.instances;
            entry.bytes += row.shallow_bytes;
        }
    }
    let mut classes: Vec<Growth> = by_class
        .into_iter()
        .map(|(class, [old, new])| {
            (
                class,
                (old.instances, old.bytes),
                (new.instances, new.bytes),
            )
        })
        .map(|(class, (i0, b0), (i1, b1))| Growth {
            class: class.to_string(),
            instances_old: i0,
            instances_new: i1,
            instances_delta: i1 as i64 - i0 as i64,
            bytes_old: b0,
            bytes_new: b1,
            bytes_delta: b1 as i64 - b0 as i64,
        })
        .collect();
    classes.sort_by(|a, b| {
        b.bytes_delta
            .cmp(&a.bytes_delta)
            .then(b.instances_delta.cmp(&a.instances_delta))
            .then(a.class.cmp(&b.class))
    });
    Diff {
        old: old.file.clone(),
        new: new.file.clone(),
        shallow_bytes_old: old.shallow_bytes,
        shallow_bytes_new: new.shallow_bytes,
        classes,
    }
}

impl Diff {
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the diff serializes")
    }

    /// The `top` classes that grew most in bytes, then those that shrank most.
    pub fn text(&self, top: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ({}) -> {} ({})",
            self.old,
            bytes(self.shallow_bytes_old),
            self.new,
            bytes(self.shallow_bytes_new)
        );
        let _ = writeln!(out, "\nGrew most (top {top})");
        let header = format!(
            "{:>14} {:>12} {:>14} {:>14}  class",
            "bytes +/-", "instances +/-", "bytes now", "instances now"
        );
        let _ = writeln!(out, "{header}");
        let line = |out: &mut String, g: &Growth| {
            let _ = writeln!(
                out,
                "{:>+14} {:>+12} {:>14} {:>14}  {}",
                g.bytes_delta, g.instances_delta, g.bytes_new, g.instances_new, g.class
            );
        };
        for g in self
            .classes
            .iter()
            .filter(|g| g.bytes_delta > 0 || g.instances_delta > 0)
            .take(top)
        {
            line(&mut out, g);
        }
        let shrank: Vec<&Growth> = self
            .classes
            .iter()
            .rev()
            .filter(|g| g.bytes_delta < 0)
            .take(top)
            .collect();
        if !shrank.is_empty() {
            let _ = writeln!(out, "\nShrank most");
            let _ = writeln!(out, "{header}");
            for g in shrank {
                line(&mut out, g);
            }
        }
        printable_lines(&out)
    }
}
