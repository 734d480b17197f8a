//! The modules of each crate import each other one way, as ARCHITECTURE.md
//! draws them: a cycle (the exporter importing the lifecycle that starts it,
//! a parser importing the report that reads it) is what makes a code base
//! hard to enter, and the compiler allows it. This test reads every crate's
//! sources, collects which module names which (`crate::a::b`, `use
//! crate::{a, b}`, `super::x`, outside test code), and fails on a cycle,
//! naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose module graph must stay acyclic, by source folder.
const CRATES: &[&str] = &[
    "native-agent/src",
    "analyzer/src",
    "tui/src",
    "heap/src",
    "contract/src",
    "src",
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a::b` for `src/a/b.rs` or `src/a/b/mod.rs`; "" for the crate root.
fn module_path(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).expect("a file under its crate");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The file's code without comments and without its `#[cfg(test)]` tail:
/// tests may reach anywhere.
fn code(text: &str) -> String {
    let mut kept = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        kept.push_str(line.split("//").next().unwrap_or(""));
        kept.push('\n');
    }
    kept
}

/// The longest known module that `path` (a `::`-separated path from the
/// crate root) starts with.
fn resolve(modules: &BTreeSet<String>, path: &[&str]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

fn identifier_paths(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| !word.is_empty())
        .map(|word| word.split("::").filter(|s| !s.is_empty()).collect())
}

fn graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let sources: BTreeMap<String, String> = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).expect("a readable source file");
            (module_path(root, file), code(&text))
        })
        .collect();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, text) in &sources {
        let parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        let mut named = BTreeSet::new();
        for path in identifier_paths(text) {
            match path.first() {
                Some(&"crate") => named.extend(resolve(&modules, &path[1..])),
                Some(&"super") => {
                    let mut full = parent.to_vec();
                    full.extend(&path[1..]);
                    named.extend(resolve(&modules, &full));
                }
                _ => {}
            }
        }
        // `use crate::{a, b::c}`: the names right inside the braces.
        for group in text.split("crate::{").skip(1) {
            let group = group.split('}').next().unwrap_or("");
            for path in identifier_paths(group) {
                named.extend(resolve(&modules, &path));
            }
        }
        named.retain(|target| {
            !target.is_empty() && target != module && !module.starts_with(&format!("{target}::"))
        });
        graph.insert(module.clone(), named);
    }
    graph
}

/// One cycle of the graph, as the modules along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        graph: &Graph,
        module: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(module) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|m| m == module).expect("on the path");
                let mut cycle = path[from..].to_vec();
                cycle.push(module.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(module.to_string(), Mark::Open);
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(module.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|module| visit(graph, module, &mut marks, &mut Vec::new()))
}

#[test]
fn every_crate_imports_its_modules_one_way() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cycles = Vec::new();
    for krate in CRATES {
        let root = workspace.join(krate);
        let graph = graph(&root);
        assert!(graph.len() > 1, "{krate} has modules to check");
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{krate}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other in a circle (move what both need below them):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn a_cycle_is_found_and_named() {
    let graph: Graph = [
        ("agent", &["exporter"][..]),
        ("exporter", &["ring", "guard"]),
        ("guard", &["agent"]),
        ("ring", &[]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_string(), to.iter().map(|s| s.to_string()).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph).expect("a cycle").join(" -> "),
        "agent -> exporter -> guard -> agent"
    );
    let mut acyclic = graph;
    acyclic.get_mut("guard").unwrap().clear();
    assert_eq!(find_cycle(&acyclic), None);
}
