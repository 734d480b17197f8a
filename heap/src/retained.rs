//! What the dominator tree tells an operator: how much each class keeps
//! alive, the objects that keep the most, leak suspects with the point where
//! their objects accumulate, and the shortest path from a GC root to any
//! object, with the fields it goes through.

use serde::Serialize;

use crate::dominators::{self, Dominators, NONE};
use crate::dump::Dump;
use crate::graph::ObjectGraph;
use crate::hprof::{basic, RootKind};

/// A suspect keeps more than this share of the heap.
const SUSPECT_SHARE: f64 = 0.10;
/// Going down from a suspect, a child keeping at least this share of its
/// parent's retained size is where the memory still is.
const FOLLOW_SHARE: f64 = 0.80;

/// The path of a suspect goes down from the biggest of its accumulated
/// objects while a child keeps at least this share: to where the memory is.
const REPRESENTATIVE_SHARE: f64 = 0.50;

/// The dominator tree and retained sizes of a graph.
pub struct Retained {
    pub idom: Vec<u32>,
    /// Reachable nodes, each after its immediate dominator.
    pub preorder: Vec<u32>,
    pub retained: Vec<u64>,
    /// Retained bytes by class slot.
    pub per_class: Vec<u64>,
}

/// Computes dominators and retained sizes; `class_of` gives each node's
/// class slot (NONE for the root). The graph's references are given up
/// once the dominators are known (the paths need only `parents`).
pub fn compute(graph: &mut ObjectGraph, class_of: &[u32], slots: usize) -> Retained {
    let doms: Dominators = dominators::dominators(&graph.graph, graph.root);
    graph.graph = Default::default();
    let retained = dominators::retained_sizes(&doms, &graph.shallow);
    let per_class = dominators::retained_per_class(&doms, &retained, class_of, slots);
    Retained {
        idom: doms.idom,
        preorder: doms.preorder,
        retained,
        per_class,
    }
}

/// One of the objects that keep the most.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopObject {
    pub object_id: u64,
    pub class: String,
    pub shallow_bytes: u64,
    pub retained_bytes: u64,
    /// The object that dominates it; none when only GC roots do.
    pub dominator_id: Option<u64>,
}

/// Steps a path keeps from its start, and from its end: those between are
/// left out (a linked list makes paths of a million steps).
pub const PATH_HEAD: usize = 20;
pub const PATH_TAIL: usize = 20;

/// One step of a path from a GC root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub object_id: u64,
    pub class: String,
    /// How the step before refers to this object (`queue`, `[12]`,
    /// `static TIMER`), or for the first, which GC root it is.
    pub field: String,
    /// In place of the steps left out of a long path: how many they are
    /// (the hop's id is 0, its class `...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elided: Option<u64>,
}

/// The indexes of the steps of a path of `len` steps that are shown.
fn shown_steps(len: usize) -> impl Iterator<Item = usize> {
    let head = len.min(PATH_HEAD + PATH_TAIL);
    (0..head.min(PATH_HEAD)).chain(len.saturating_sub(PATH_TAIL).max(head.min(PATH_HEAD))..len)
}

/// The nodes of `path` whose fields name its shown steps: the shown steps,
/// and the step before each.
pub fn named_nodes(path: &[u32]) -> impl Iterator<Item = u32> + '_ {
    shown_steps(path.len())
        .flat_map(|i| [i.checked_sub(1), Some(i)])
        .flatten()
        .map(|i| path[i])
}

/// Where many similar objects hang below a suspect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Accumulation {
    /// The object they hang from.
    pub object_id: u64,
    pub holder_class: String,
    /// The class of most of what hangs there, and how many of them.
    pub class: String,
    pub count: u64,
}

/// An object (or a class, by its `java.lang.Class`) that keeps more than a
/// tenth of the heap, or a class whose objects together do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suspect {
    pub object_id: u64,
    pub class: String,
    /// `object`, or `class` when the class's instances keep it together.
    pub kind: &'static str,
    pub retained_bytes: u64,
    pub percent: f64,
    pub accumulation: Option<Accumulation>,
    pub path_to_root: Vec<Hop>,
}

/// Reads node names and ids for the reports.
pub struct Names<'a> {
    pub dump: &'a Dump,
    pub graph: &'a ObjectGraph,
}

impl Names<'_> {
    pub fn id(&self, node: u32) -> u64 {
        match self.graph.class_slot(node) {
            Some(slot) => self.dump.class(slot).map_or(0, |c| c.id),
            None if (node as usize) < self.graph.objects => self.dump.objects.ids[node as usize],
            None => 0,
        }
    }

    pub fn class(&self, node: u32) -> String {
        match self.graph.class_slot(node) {
            Some(slot) => format!("class {}", self.dump.slot_name(slot)),
            None if (node as usize) < self.graph.objects => {
                self.dump.slot_name(self.dump.objects.slots[node as usize])
            }
            None => "<root>".into(),
        }
    }
}

/// The `top` objects (and classes' static data) keeping the most.
pub fn top_objects(names: &Names, retained: &Retained, top: usize) -> Vec<TopObject> {
    let root = names.graph.root;
    let mut nodes: Vec<u32> = (0..root).collect();
    let key = |v: &u32| (std::cmp::Reverse(retained.retained[*v as usize]), *v);
    if nodes.len() > top {
        nodes.select_nth_unstable_by_key(top, key);
        nodes.truncate(top);
    }
    nodes.sort_by_key(key);
    nodes
        .into_iter()
        .filter(|&v| retained.retained[v as usize] > 0)
        .map(|v| {
            let d = retained.idom[v as usize];
            TopObject {
                object_id: names.id(v),
                class: names.class(v),
                shallow_bytes: u64::from(names.graph.shallow[v as usize]),
                retained_bytes: retained.retained[v as usize],
                dominator_id: (d != NONE && d != root).then(|| names.id(d)),
            }
        })
        .collect()
}

/// A suspect found in the tree, before its path is named.
pub struct Found {
    pub node: u32,
    pub kind: &'static str,
    pub retained: u64,
    /// Its share of what the GC roots keep, in percent.
    pub percent: f64,
    pub pile: Option<Pile>,
}

/// Where a suspect's objects accumulate.
#[derive(Clone, Copy)]
pub struct Pile {
    /// The object they hang from (none for a class suspect: its instances).
    pub holder: Option<u32>,
    /// The class slot of most of them, and how many there are.
    pub class: u32,
    pub count: u64,
    /// Where the biggest of them keeps its memory: the path goes there.
    pub representative: u32,
}

impl Found {
    /// Where the suspect's path from a GC root goes.
    pub fn path_end(&self) -> u32 {
        self.pile.map_or(self.node, |p| p.representative)
    }

    /// The suspect, named, with `path` (from [`Found::path_end`]).
    pub fn describe(&self, names: &Names, path: &[u32]) -> Suspect {
        let class_name = |slot: u32| {
            if slot == NONE {
                "<classes>".to_string()
            } else {
                names.dump.slot_name(slot)
            }
        };
        Suspect {
            object_id: names.id(self.node),
            class: match self.pile {
                Some(pile) if self.kind == "class" => class_name(pile.class),
                _ => names.class(self.node),
            },
            kind: self.kind,
            retained_bytes: self.retained,
            percent: self.percent,
            accumulation: self.pile.map(|pile| Accumulation {
                object_id: pile.holder.map_or(0, |h| names.id(h)),
                holder_class: pile.holder.map_or_else(String::new, |h| names.class(h)),
                class: class_name(pile.class),
                count: pile.count,
            }),
            path_to_root: hops(names, path),
        }
    }
}

/// The suspects: the topmost objects keeping more than a tenth of the heap
/// (their dominators keep less), then classes whose objects together do.
pub fn suspects(graph: &ObjectGraph, retained: &Retained, class_of: &[u32]) -> Vec<Found> {
    let heap = retained.retained[graph.root as usize];
    let big = |v: u32| retained.retained[v as usize] as f64 > heap as f64 * SUSPECT_SHARE;
    let mut found = object_suspects(graph, retained, class_of, big);
    let classes = class_suspects(graph, retained, class_of, &found, big);
    found.extend(classes);
    found.sort_by_key(|f| (std::cmp::Reverse(f.retained), f.node));
    found
}

/// The topmost objects that are `big` (their dominators are not), each
/// with where its memory piles up.
fn object_suspects(
    graph: &ObjectGraph,
    retained: &Retained,
    class_of: &[u32],
    big: impl Fn(u32) -> bool,
) -> Vec<Found> {
    let root = graph.root;
    let heap = retained.retained[root as usize];
    let mut found: Vec<Found> = (0..root)
        .filter(|&v| big(v))
        .filter(|&v| {
            let d = retained.idom[v as usize];
            d == root || d == NONE || !big(d)
        })
        .map(|v| Found {
            node: v,
            kind: "object",
            retained: retained.retained[v as usize],
            percent: retained.retained[v as usize] as f64 * 100.0 / heap.max(1) as f64,
            pile: None,
        })
        .collect();
    let mut biggest_child = vec![NONE; graph.shallow.len()];
    for (v, &d) in retained.idom.iter().enumerate() {
        if d != NONE {
            let best = &mut biggest_child[d as usize];
            if *best == NONE || retained.retained[v] > retained.retained[*best as usize] {
                *best = v as u32;
            }
        }
    }
    // Down from `at` while one child keeps `share` of what its parent keeps.
    let descend = |mut at: u32, share: f64| loop {
        let child = biggest_child[at as usize];
        if child == NONE
            || (retained.retained[child as usize] as f64)
                < retained.retained[at as usize] as f64 * share
        {
            return at;
        }
        at = child;
    };
    for suspect in &mut found {
        let at = descend(suspect.node, FOLLOW_SHARE);
        suspect.pile = accumulation(retained, class_of, at).map(|pile| Pile {
            representative: descend(pile.representative, REPRESENTATIVE_SHARE),
            ..pile
        });
    }
    found
}

/// What the object suspects (`found`) hold is theirs: a class is a suspect
/// of its own when its objects keep a tenth of the heap together, none
/// alone (`big`), and most of what they keep lies outside the object
/// suspects.
fn class_suspects(
    graph: &ObjectGraph,
    retained: &Retained,
    class_of: &[u32],
    found: &[Found],
    big: impl Fn(u32) -> bool,
) -> Vec<Found> {
    let root = graph.root;
    let heap = retained.retained[root as usize];
    let mut under = vec![false; graph.shallow.len()];
    for f in found {
        under[f.node as usize] = true;
    }
    for &v in &retained.preorder {
        let d = retained.idom[v as usize];
        if d != NONE && under[d as usize] {
            under[v as usize] = true;
        }
    }
    let slots = retained.per_class.len();
    // Per class: instances, bytes kept under object suspects, the biggest.
    let mut instances = vec![(0u64, 0u64, NONE); slots];
    for v in 0..root {
        let class = class_of[v as usize];
        if class == NONE {
            continue;
        }
        let entry = &mut instances[class as usize];
        entry.0 += 1;
        if under[v as usize] {
            entry.1 += retained.retained[v as usize];
        }
        if entry.2 == NONE || retained.retained[v as usize] > retained.retained[entry.2 as usize] {
            entry.2 = v;
        }
    }
    drop(under);
    // Classes themselves (java.lang.Class) are suspects only one by one.
    let mirrors = class_of.get(graph.objects).copied().unwrap_or(NONE);
    let mut classes = Vec::new();
    for (slot, &bytes) in retained.per_class.iter().enumerate() {
        let (count, held, biggest) = instances[slot];
        if slot as u32 != mirrors
            && bytes as f64 > heap as f64 * SUSPECT_SHARE
            && biggest != NONE
            && !big(biggest)
            && held < bytes / 2
        {
            classes.push(Found {
                node: biggest,
                kind: "class",
                retained: bytes,
                percent: bytes as f64 * 100.0 / heap.max(1) as f64,
                pile: Some(Pile {
                    holder: None,
                    class: slot as u32,
                    count,
                    representative: biggest,
                }),
            });
        }
    }
    classes
}

/// What hangs from `at`: the class whose dominated children keep the most,
/// their count, and the biggest of them.
fn accumulation(retained: &Retained, class_of: &[u32], at: u32) -> Option<Pile> {
    let mut by_class: std::collections::HashMap<u32, (u64, u64, u32)> = Default::default();
    for (v, &d) in retained.idom.iter().enumerate() {
        if d == at {
            let entry = by_class.entry(class_of[v]).or_insert((0, 0, v as u32));
            entry.0 += retained.retained[v];
            entry.1 += 1;
            if retained.retained[v] > retained.retained[entry.2 as usize] {
                entry.2 = v as u32;
            }
        }
    }
    let (&class, &(_, count, biggest)) = by_class
        .iter()
        .max_by_key(|(&class, e)| (e.0, std::cmp::Reverse(class)))?;
    Some(Pile {
        holder: Some(at),
        class,
        count,
        representative: biggest,
    })
}

/// The nodes from a GC root down to `node` (the root itself left out);
/// empty when no root reaches it.
pub fn path(parents: &[u32], root: u32, node: u32) -> Vec<u32> {
    let mut path = Vec::new();
    let mut at = node;
    while at != root {
        let Some(&p) = parents.get(at as usize).filter(|&&p| p != NONE) else {
            return Vec::new();
        };
        path.push(at);
        at = p;
    }
    path.reverse();
    path
}

/// Names the steps of a path: the field, element or static each goes
/// through, from objects whose fields the dump model holds.
/// A path longer than [`PATH_HEAD`] and [`PATH_TAIL`] steps together keeps
/// those at its start and end, with one hop between saying how many steps
/// are left out.
pub fn hops(names: &Names, path: &[u32]) -> Vec<Hop> {
    let mut hops = Vec::new();
    let mut next = 0;
    for i in shown_steps(path.len()) {
        if i > next {
            let left_out = (i - next) as u64;
            hops.push(Hop {
                object_id: 0,
                class: "...".into(),
                field: format!("{left_out} steps left out"),
                elided: Some(left_out),
            });
        }
        next = i + 1;
        let node = path[i];
        let id = names.id(node);
        let field = match i.checked_sub(1).map(|p| path[p]) {
            None => root_kind(names, node),
            Some(p) => field_between(names, p, id, node).unwrap_or_else(|| "?".into()),
        };
        hops.push(Hop {
            object_id: id,
            class: names.class(node),
            field,
            elided: None,
        });
    }
    hops
}

fn root_kind(names: &Names, node: u32) -> String {
    if names.graph.finalizable.contains(&node) {
        return "kept alive by its Finalizer".into();
    }
    let id = names.id(node);
    let dump = names.dump;
    let Some(root) = dump.roots.iter().find(|r| r.id == id) else {
        return "GC root".into();
    };
    let kind = format!("GC root: {:?}", root.kind);
    let in_thread = matches!(
        root.kind,
        RootKind::JavaFrame | RootKind::JniLocal | RootKind::NativeStack | RootKind::ThreadBlock
    );
    let Some(thread) = dump
        .threads()
        .find(|t| in_thread && t.thread_serial == root.info[0])
    else {
        return kind;
    };
    let name = crate::threads::name(dump, thread.object_id).unwrap_or_else(|| "?".into());
    let frame = (root.kind == RootKind::JavaFrame)
        .then(|| {
            dump.traces
                .get(&thread.trace_serial)?
                .get(root.info[1] as usize)
        })
        .flatten()
        .map(|&frame| format!(", {}", crate::threads::frame_text(dump, frame)))
        .unwrap_or_default();
    format!("{kind} in thread \"{name}\"{frame}")
}

/// How node `from` refers to the object `to_id` (node `to`).
fn field_between(names: &Names, from: u32, to_id: u64, to: u32) -> Option<String> {
    let dump = names.dump;
    if let Some(slot) = names.graph.class_slot(from) {
        let class = dump.class(slot)?.dump.as_ref()?;
        if let Some(s) = class
            .statics
            .iter()
            .find(|s| s.basic_type == basic::OBJECT && s.value == to_id)
        {
            return Some(format!("static {}", dump.string(s.name_id)));
        }
        if class.loader_id == to_id {
            return Some("<class loader>".into());
        }
        return (class.super_id == to_id).then(|| "<superclass>".into());
    }
    let from_id = names.id(from);
    if let Some(class) = names
        .graph
        .class_slot(to)
        .and_then(|slot| dump.class(slot)?.dump.as_ref())
    {
        if class.loader_id == from_id {
            return Some("<defined class>".into());
        }
    }
    if names.graph.class_slot(to).is_some()
        && dump.objects.slots[from as usize] == names.graph.class_slot(to)?
    {
        return Some("<class>".into());
    }
    if let Some(elements) = dump.arrays.get(&from_id) {
        let size = usize::from(dump.id_size);
        return elements
            .chunks_exact(size)
            .position(|e| basic::value(e) == to_id)
            .map(|i| format!("[{i}]"));
    }
    dump.field_holding(from_id, to_id)
}
