//! The object graph of a dump, for the dominator tree. One node per object
//! of the table (its index), one per class (its `java.lang.Class` object,
//! after the objects, by slot), and last a virtual root that points at every
//! GC root. References are read in a second pass over the heap (over the
//! mapped segments on every core, or front to back for gzip): an instance's
//! reference fields and its class, an object array's elements and its
//! class, a class's static fields, loader and superclass, and a class
//! loader's classes.
//!
//! `java.lang.ref.Reference.referent` is not followed: weak, soft and
//! phantom references do not keep an object alive. A Finalizer's referent
//! is kept alive, as the JVM keeps it, but only where nothing else holds
//! it: such objects hang from the root as kept by their Finalizer, so the
//! dominator tree shows what really holds the rest.

use std::sync::Arc;

use crate::dominators::{Graph, NONE};
use crate::dump::{Dump, FIRST_CLASS_SLOT};
use crate::histogram::Sizer;
use crate::hprof::{basic, RootKind, Visitor};
use crate::ids::IdMap;
use crate::input::Mapped;
use crate::{segments, Error, Reopen};

/// The graph and what the analyses need to read it.
pub struct ObjectGraph {
    pub graph: Graph,
    /// Objects in the table: nodes below this are objects.
    pub objects: usize,
    /// The virtual root.
    pub root: u32,
    /// Shallow size of every node (bytes, at most `u32::MAX`).
    pub shallow: Vec<u32>,
    /// Objects only their Finalizer keeps alive.
    pub finalizable: Vec<u32>,
    /// Shortest paths from the GC roots: each node's parent on one (NONE
    /// where none reaches, the root its own).
    pub parents: Vec<u32>,
}

/// The node of class `slot`'s `java.lang.Class` object in a graph of
/// `objects` objects: classes follow the objects, by slot.
fn class_node(objects: usize, slot: u32) -> u32 {
    (objects + (slot - FIRST_CLASS_SLOT) as usize) as u32
}

impl ObjectGraph {
    /// The node of class `slot`'s `java.lang.Class` object.
    pub fn class_node(&self, slot: u32) -> u32 {
        class_node(self.objects, slot)
    }

    /// The class slot of a class node.
    pub fn class_slot(&self, node: u32) -> Option<u32> {
        let index = (node as usize).checked_sub(self.objects)?;
        (node != self.root).then_some(FIRST_CLASS_SLOT + index as u32)
    }
}

/// Finds the node of an id: an object of the table (by address, in a
/// bucketed index over the sorted ids), else a class.
pub struct NodeIndex<'a> {
    ids: &'a [u64],
    /// When the table's ids do not ascend: its indexes in id order.
    order: Option<Vec<u32>>,
    sorted: Option<Vec<u64>>,
    min: u64,
    shift: u32,
    /// Index (into the sorted ids) of the first id of each bucket, and one past.
    starts: Vec<u32>,
    classes: &'a IdMap<u32>,
    objects: usize,
}

impl<'a> NodeIndex<'a> {
    pub fn new(dump: &'a Dump) -> NodeIndex<'a> {
        let ids = &dump.objects.ids[..];
        let (order, sorted) = if ids.is_sorted() {
            (None, None)
        } else {
            let mut order: Vec<u32> = (0..ids.len() as u32).collect();
            order.sort_unstable_by_key(|&i| ids[i as usize]);
            let sorted = order.iter().map(|&i| ids[i as usize]).collect();
            (Some(order), Some(sorted))
        };
        let by_id = sorted.as_deref().unwrap_or(ids);
        let (min, max) = match (by_id.first(), by_id.last()) {
            (Some(&min), Some(&max)) => (min, max),
            _ => (0, 0),
        };
        // About four objects a bucket.
        let buckets_wanted = (by_id.len() / 4).max(1) as u64;
        let span = max - min + 1;
        let shift = (span / buckets_wanted).max(1).ilog2();
        let buckets = (span >> shift) as usize + 1;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut at = 0usize;
        for bucket in 0..=buckets as u64 {
            while at < by_id.len() && (by_id[at] - min) >> shift < bucket {
                at += 1;
            }
            starts.push(at as u32);
        }
        NodeIndex {
            ids,
            order,
            sorted,
            min,
            shift,
            starts,
            classes: &dump.slot_of,
            objects: ids.len(),
        }
    }

    /// The node of `id`, if the dump holds it.
    #[inline]
    pub fn node(&self, id: u64) -> Option<u32> {
        self.object(id)
            .or_else(|| Some(class_node(self.objects, *self.classes.get(&id)?)))
    }

    #[inline]
    fn object(&self, id: u64) -> Option<u32> {
        let bucket = (id.checked_sub(self.min)? >> self.shift) as usize;
        let (&lo, &hi) = (self.starts.get(bucket)?, self.starts.get(bucket + 1)?);
        let by_id = self.sorted.as_deref().unwrap_or(self.ids);
        let found = lo as usize + by_id[lo as usize..hi as usize].binary_search(&id).ok()?;
        Some(match &self.order {
            Some(order) => order[found],
            None => found as u32,
        })
    }
}

/// Per class slot: where its instances hold references, and whether an
/// instance's reference to its class is worth an edge.
///
/// An instance's field values are its class's, then its superclass's, and
/// so on: a class's fields lie at the same distance from the end in every
/// subclass. So each class lists only the reference fields it declares, by
/// that distance, and points at the nearest superclass declaring some:
/// every chain is planned once, however long.
struct Plan {
    id_size: usize,
    /// Reference fields a class declares, as distances from the end of
    /// its instances' field values, by slot: `fields[ranges[slot].0..ranges[slot].1]`.
    fields: Vec<u64>,
    ranges: Vec<(u32, u32)>,
    /// The nearest superclass declaring reference fields, or NONE.
    up: Vec<u32>,
    /// Bytes of field values an instance of the slot has: its class's and
    /// its superclasses' up to the first without a CLASS DUMP.
    values: Vec<u64>,
    /// The class node an object of the slot points at, or NONE (a class
    /// that is a GC root anyway, or a primitive array).
    class_edge: Vec<u32>,
}

impl Plan {
    fn new(dump: &Dump, objects: usize, rooted: &[bool]) -> Plan {
        let slots = FIRST_CLASS_SLOT as usize + dump.classes.len();
        let id_size = usize::from(dump.id_size);
        // Per class: bytes of its own field values, and where its
        // references lie in them (java.lang.ref.Reference.referent left out).
        let own: Vec<(u64, Vec<u64>)> = dump
            .classes
            .iter()
            .map(|class| {
                let Some(class_dump) = &class.dump else {
                    return (0, Vec::new());
                };
                let is_reference = dump.internal_name(class.id) == Some("java/lang/ref/Reference");
                let mut at = 0u64;
                let mut references = Vec::new();
                for def in &class_dump.fields {
                    let referent = is_reference
                        && dump
                            .strings
                            .get(&def.name_id)
                            .is_some_and(|n| &**n == "referent");
                    if def.basic_type == basic::OBJECT && !referent {
                        references.push(at);
                    }
                    at += basic::dump_size(def.basic_type, dump.id_size).unwrap_or(0) as u64;
                }
                (at, references)
            })
            .collect();
        let own_of = |slot: u32| &own[(slot - FIRST_CLASS_SLOT) as usize];
        // Per class: its instances' bytes of values, and the nearest class
        // up its chain declaring references, itself included and not.
        let chains = dump.along_chains(|slot, above: Option<&(u64, u32, u32)>| {
            let (bytes, references) = own_of(slot);
            let (above_bytes, above_refs, _) = above.copied().unwrap_or((0, NONE, NONE));
            let nearest = if references.is_empty() {
                above_refs
            } else {
                slot
            };
            (bytes + above_bytes, nearest, above_refs)
        });
        let mut plan = Plan {
            id_size,
            fields: Vec::new(),
            ranges: vec![(0, 0); slots],
            up: vec![NONE; slots],
            values: vec![0; slots],
            class_edge: vec![NONE; slots],
        };
        for slot in FIRST_CLASS_SLOT..slots as u32 {
            let i = (slot - FIRST_CLASS_SLOT) as usize;
            if !rooted[i] {
                plan.class_edge[slot as usize] = class_node(objects, slot);
            }
            let total = chains[i].0;
            plan.values[slot as usize] = total;
            plan.up[slot as usize] = chains[i].2;
            let start = plan.fields.len() as u32;
            plan.fields.extend(own[i].1.iter().map(|&at| total - at));
            plan.ranges[slot as usize] = (start, plan.fields.len() as u32);
        }
        plan
    }
}

/// Class loaders and the classes they defined: a loader keeps its classes
/// alive, as the JVM's loader does.
struct Loaders {
    /// One bit an object: whether it is a loader of a dumped class.
    bits: Vec<u64>,
    classes: std::collections::HashMap<u32, Vec<u32>>,
}

impl Loaders {
    fn new(dump: &Dump, index: &NodeIndex, objects: usize) -> Loaders {
        let mut loaders = Loaders {
            bits: vec![0; objects.div_ceil(64)],
            classes: Default::default(),
        };
        for (i, class) in dump.classes.iter().enumerate() {
            let Some(loader) = class.dump.as_ref().map(|d| d.loader_id).filter(|&l| l != 0) else {
                continue;
            };
            let slot = FIRST_CLASS_SLOT + i as u32;
            if let Some(node) = index.node(loader).filter(|&n| (n as usize) < objects) {
                loaders.bits[node as usize / 64] |= 1 << (node % 64);
                loaders
                    .classes
                    .entry(node)
                    .or_default()
                    .push(class_node(objects, slot));
            }
        }
        loaders
    }

    /// The classes object `node` defined, if it is a loader.
    #[inline]
    fn classes_of(&self, node: usize) -> Option<&Vec<u32>> {
        if self.bits[node / 64] & (1 << (node % 64)) == 0 {
            return None;
        }
        self.classes.get(&(node as u32))
    }
}

/// Reads the references of a run of objects, in table order.
struct EdgeReader<'a> {
    plan: &'a Plan,
    loaders: &'a Loaders,
    index: &'a NodeIndex<'a>,
    slots: &'a [u32],
    /// Table index of the next object, and where the run's objects end.
    next: usize,
    end: usize,
    /// For each object of the run, where its references end in `targets`
    /// (the run's part of the graph's offsets), and how many are done.
    ends: &'a mut [u32],
    done: usize,
    targets: Vec<u32>,
    /// The object array whose elements are coming is in the run.
    in_array: bool,
}

impl<'a> EdgeReader<'a> {
    /// Reads objects `first..end` of the table; `ends` is their part of the
    /// graph's offsets.
    fn new(
        (plan, loaders, index, slots): Shared<'a>,
        first: usize,
        end: usize,
        ends: &'a mut [u32],
    ) -> EdgeReader<'a> {
        EdgeReader {
            plan,
            loaders,
            index,
            slots,
            next: first,
            end,
            ends,
            done: 0,
            targets: Vec::with_capacity((end - first) * 2),
            in_array: false,
        }
    }

    /// Starts the next object of the table; false past the run's end.
    #[inline]
    fn start(&mut self) -> Option<u32> {
        if self.next >= self.end {
            return None;
        }
        let slot = self.slots[self.next];
        self.next += 1;
        Some(slot)
    }

    #[inline]
    fn finish(&mut self) {
        self.ends[self.done] = self.targets.len() as u32;
        self.done += 1;
    }

    #[inline]
    fn reference(&mut self, id: u64) {
        if id != 0 {
            if let Some(node) = self.index.node(id) {
                self.targets.push(node);
            }
        }
    }

    #[inline]
    fn id_at(bytes: &[u8], id_size: usize) -> u64 {
        if id_size == 4 {
            u64::from(u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")))
        } else {
            u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"))
        }
    }
}

impl Visitor for EdgeReader<'_> {
    #[inline]
    fn instance(&mut self, _at: u64, _id: u64, _class_id: u64, fields: &[u8]) {
        self.in_array = false;
        let Some(slot) = self.start() else { return };
        let plan = self.plan;
        let values = plan.values[slot as usize];
        let mut declaring = slot;
        while declaring != NONE {
            let (from, to) = plan.ranges[declaring as usize];
            for &from_end in &plan.fields[from as usize..to as usize] {
                let offset = values.saturating_sub(from_end) as usize;
                if let Some(bytes) = fields.get(offset..offset + plan.id_size) {
                    self.reference(Self::id_at(bytes, plan.id_size));
                }
            }
            declaring = plan.up[declaring as usize];
        }
        let class = plan.class_edge[slot as usize];
        if class != NONE {
            self.targets.push(class);
        }
        if let Some(classes) = self.loaders.classes_of(self.next - 1) {
            self.targets.extend_from_slice(classes);
        }
        self.finish();
    }

    fn object_array(&mut self, _at: u64, _id: u64, _class_id: u64, _length: u32) {
        self.in_array = false;
        let Some(slot) = self.start() else { return };
        self.in_array = true;
        let class = self.plan.class_edge[slot as usize];
        if class != NONE {
            self.targets.push(class);
        }
        // The elements come next; the array is finished by the next object.
        self.finish();
    }

    fn object_array_elements(&mut self, ids: &[u8]) {
        if !self.in_array {
            return;
        }
        let id_size = self.plan.id_size;
        for bytes in ids.chunks_exact(id_size) {
            self.reference(Self::id_at(bytes, id_size));
        }
        // The array's references end after its last elements so far.
        if let Some(end) = self.done.checked_sub(1).map(|last| &mut self.ends[last]) {
            *end = self.targets.len() as u32;
        }
    }

    #[inline]
    fn primitive_array(&mut self, _at: u64, _id: u64, _element_type: u8, _length: u32) {
        self.in_array = false;
        if self.start().is_some() {
            self.finish();
        }
    }
}

/// Heap segments (offset, length) and the table indexes their objects take.
type RunOfObjects<'a> = (&'a [(u64, u64)], usize, usize);

/// What every run's [`EdgeReader`] reads with.
type Shared<'a> = (&'a Plan, &'a Loaders, &'a NodeIndex<'a>, &'a [u32]);

/// Where the graph's references are read, in a second pass over the heap.
#[derive(Clone, Copy)]
pub enum References<'a> {
    /// In place in the mapped dump, its segments on every core.
    Mapped(&'a Arc<Mapped>),
    /// Front to back, from the dump opened again.
    Reopened(Reopen<'a>),
}

/// Builds the graph of `dump`, its references read again from `references`.
pub fn build(dump: &Dump, sizer: &Sizer, references: References) -> Result<ObjectGraph, Error> {
    let objects = dump.objects.len();
    let classes = dump.classes.len();
    let root = (objects + classes) as u32;
    if objects + classes >= NONE as usize - 1 {
        return Err(Error::TooManyObjects {
            objects,
            most: NONE - 2,
        });
    }
    let plan = Plan::new(dump, objects, &sticky_classes(dump));
    let index = NodeIndex::new(dump);
    let loaders = Loaders::new(dump, &index, objects);
    let runs = runs_of(dump, references);
    // Room for every node's end, written in place: the objects' by their
    // runs, then the classes' and the root's.
    let mut offsets = vec![0u32; objects + classes + 2];
    let shared = (&plan, &loaders, &index, &dump.objects.slots[..]);
    let read = read_runs(dump, shared, references, &runs, &mut offsets[1..=objects])?;
    let mut graph = Graph {
        offsets,
        targets: Vec::new(),
    };
    join_runs(&mut graph, read, &runs)?;
    graph.offsets.truncate(objects + 1);
    add_class_edges(&mut graph, dump, &index);
    add_root_edges(&mut graph, dump, &index);
    let (parents, finalizable) = paths_and_finalizable(dump, &index, &mut graph, root);
    let shallow = shallow_sizes(dump, sizer);
    Ok(ObjectGraph {
        graph,
        objects,
        root,
        shallow,
        finalizable,
        parents,
    })
}

/// Per class: whether it is a sticky-class GC root (a system class), so an
/// instance's reference to it adds nothing to the tree.
fn sticky_classes(dump: &Dump) -> Vec<bool> {
    let mut rooted = vec![false; dump.classes.len()];
    for root in dump.roots.iter() {
        if root.kind == RootKind::StickyClass {
            if let Some(&slot) = dump.slot_of.get(&root.id) {
                rooted[(slot - FIRST_CLASS_SLOT) as usize] = true;
            }
        }
    }
    rooted
}

/// Each run's segments and the table indexes of its objects: the first
/// pass's runs in a mapped dump, else one run of every object.
fn runs_of<'a>(dump: &'a Dump, references: References) -> Vec<RunOfObjects<'a>> {
    let objects = dump.objects.len();
    match references {
        References::Mapped(_) => dump
            .runs
            .iter()
            .enumerate()
            .map(|(i, (segments, first))| {
                let end = dump.runs.get(i + 1).map_or(objects, |r| r.1);
                (&segments[..], *first, end)
            })
            .collect(),
        References::Reopened(_) => vec![(&[][..], 0, objects)],
    }
}

/// Reads the references of every run's objects, each run's ends written
/// into its part of `ends` (the objects' offsets): for each run, its
/// targets and how many of its objects it read.
fn read_runs(
    dump: &Dump,
    shared: Shared,
    references: References,
    runs: &[RunOfObjects],
    mut ends: &mut [u32],
) -> Result<Vec<(Vec<u32>, usize)>, Error> {
    let mut parts = Vec::with_capacity(runs.len());
    for (_, first, end) in runs {
        let (part, tail) = std::mem::take(&mut ends).split_at_mut(end - first);
        parts.push(part);
        ends = tail;
    }
    let reader = |first: usize, end: usize, ends| EdgeReader::new(shared, first, end, ends);
    Ok(match references {
        References::Mapped(mapped) => {
            let readers = runs
                .iter()
                .zip(parts)
                .map(|(&(segments, first, end), part)| (segments, reader(first, end, part)));
            segments::parse_runs(mapped, dump.id_size, readers, None)
                .into_iter()
                .map(|(reader, _)| (reader.targets, reader.done))
                .collect()
        }
        References::Reopened(reopen) => {
            let part = parts.pop().unwrap_or_default();
            let mut reader = reader(0, dump.objects.len(), part);
            crate::read_again(reopen, "reading references: ", &mut reader)?;
            vec![(reader.targets, reader.done)]
        }
    })
}

/// Joins the runs' targets into the graph's, in table order, and makes
/// their ends (each relative to its run) the graph's offsets.
fn join_runs(
    graph: &mut Graph,
    read: Vec<(Vec<u32>, usize)>,
    runs: &[RunOfObjects],
) -> Result<(), Error> {
    for ((targets, done), (_, first, end)) in read.into_iter().zip(runs) {
        let base = graph.targets.len() as u64;
        if base + targets.len() as u64 >= u64::from(u32::MAX) {
            return Err(Error::TooManyReferences);
        }
        let base = base as u32;
        let part = &mut graph.offsets[first + 1..=*end];
        // Objects of a run cut short have no references.
        part[done..].fill(targets.len() as u32);
        for offset in part {
            *offset += base;
        }
        if graph.targets.is_empty() {
            graph.targets = targets;
        } else {
            graph.targets.extend_from_slice(&targets);
        }
    }
    Ok(())
}

/// Adds each class's node: its static references, loader and superclass.
fn add_class_edges(graph: &mut Graph, dump: &Dump, index: &NodeIndex) {
    for class in &dump.classes {
        if let Some(class_dump) = &class.dump {
            let ids = class_dump
                .statics
                .iter()
                .filter(|s| s.basic_type == basic::OBJECT)
                .map(|s| s.value)
                .chain([class_dump.loader_id, class_dump.super_id]);
            graph
                .targets
                .extend(ids.filter(|&id| id != 0).filter_map(|id| index.node(id)));
        }
        graph.offsets.push(graph.targets.len() as u32);
    }
}

/// Adds the virtual root's node, pointing at every GC root once.
fn add_root_edges(graph: &mut Graph, dump: &Dump, index: &NodeIndex) {
    let mut from_root: Vec<u32> = dump
        .roots
        .iter()
        .filter_map(|root| index.node(root.id))
        .collect();
    from_root.sort_unstable();
    from_root.dedup();
    graph.targets.extend_from_slice(&from_root);
    graph.offsets.push(graph.targets.len() as u32);
}

/// Every node's shallow size: objects, then class mirrors, then the root's 0.
fn shallow_sizes(dump: &Dump, sizer: &Sizer) -> Vec<u32> {
    let mut shallow: Vec<u32> = (0..dump.objects.len())
        .map(|i| sizer.size_of(dump, i).min(u64::from(u32::MAX)) as u32)
        .collect();
    shallow.extend(dump.classes.iter().map(|class| {
        class
            .dump
            .as_ref()
            .map_or(0, |d| sizer.mirror_size(d).min(u64::from(u32::MAX)) as u32)
    }));
    shallow.push(0);
    shallow
}

/// Shortest paths from the GC roots, breadth first: each node's parent on
/// one (NONE where none reaches). Then the Finalizers' referents that
/// nothing else reaches are hung from the root, and the paths go on from
/// them; they are returned too.
fn paths_and_finalizable(
    dump: &Dump,
    index: &NodeIndex,
    graph: &mut Graph,
    root: u32,
) -> (Vec<u32>, Vec<u32>) {
    let mut parents = vec![NONE; graph.node_count()];
    parents[root as usize] = root;
    breadth_first(graph, &mut parents, vec![root]);
    let Some(finalizer) = dump.slot_named("java/lang/ref/Finalizer") else {
        return (parents, Vec::new());
    };
    let mut referents: Vec<u32> = dump
        .fields
        .iter()
        .filter(|(_, (slot, _))| *slot == finalizer)
        .filter_map(|(&id, _)| dump.field(id, "java/lang/ref/Reference", "referent"))
        .filter(|&r| r != 0)
        .filter_map(|r| index.node(r))
        .filter(|&r| parents[r as usize] == NONE)
        .collect();
    referents.sort_unstable();
    referents.dedup();
    graph.targets.extend_from_slice(&referents);
    *graph.offsets.last_mut().expect("the root's end") = graph.targets.len() as u32;
    for &r in &referents {
        parents[r as usize] = root;
    }
    breadth_first(graph, &mut parents, referents.clone());
    (parents, referents)
}

/// Goes on breadth first from `start` (reached already), setting the
/// parent of each node it reaches first.
fn breadth_first(graph: &Graph, parents: &mut [u32], start: Vec<u32>) {
    let mut queue = std::collections::VecDeque::from(start);
    while let Some(v) = queue.pop_front() {
        for &w in graph.successors(v) {
            if parents[w as usize] == NONE {
                parents[w as usize] = v;
                queue.push_back(w);
            }
        }
    }
}
