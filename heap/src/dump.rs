//! What one pass keeps of a dump, for the reports to read afterwards: names,
//! classes, stack frames, thread roots, and a table of every object (id,
//! class, array length: 16 bytes an object). The field values of the few
//! objects the reports look into (Finalizers, threads, the strings and
//! arrays they point at) are kept too; objects wanted only after they went
//! by are read in a further pass over the file.

use std::collections::HashMap;

use std::sync::Arc;

use crate::hprof::{basic, ClassDump, FieldDef, Frame, Header, RootKind, Visitor};
use crate::ids::{IdMap, IdSet};
use crate::input::{Input, Mapped, ParseError};

/// Slots below this are primitive arrays, by element type; a class's slot
/// is this plus its index in [`Dump::classes`].
pub const FIRST_CLASS_SLOT: u32 = 16;
/// Entries of the recent class lookups.
const RECENT_SLOTS: usize = 256;

/// A class seen in the dump (by its CLASS DUMP, or only as an object's class).
#[derive(Clone, Debug)]
pub struct Class {
    pub id: u64,
    pub dump: Option<ClassDump>,
    /// Whether its instances' fields are kept (Finalizers and threads).
    captured: Option<bool>,
}

/// Every object: parallel columns, in dump order.
#[derive(Default)]
pub struct Objects {
    pub ids: Vec<u64>,
    pub slots: Vec<u32>,
    /// Array length; 0 for instances.
    pub lengths: Vec<u32>,
    /// Where each object's sub-record starts, so a report can read it again.
    pub offsets: Vec<u64>,
    /// Whether the ids ascend, once asked (after the pass).
    sorted: std::sync::OnceLock<bool>,
}

impl Objects {
    /// Room for the objects a dump of `dump_bytes` may hold (at least 25
    /// bytes each): address space only, memory is taken as it fills.
    pub fn reserve_for(&mut self, dump_bytes: u64) {
        let objects = (dump_bytes / 25).min(1 << 32) as usize;
        self.ids.reserve(objects);
        self.slots.reserve(objects);
        self.lengths.reserve(objects);
        self.offsets.reserve(objects);
    }

    #[inline(always)]
    pub fn push(&mut self, id: u64, slot: u32, length: u32, at: u64) {
        self.ids.push(id);
        self.slots.push(slot);
        self.lengths.push(length);
        self.offsets.push(at);
    }

    /// Adds `other`'s objects after these, freeing each of its columns as
    /// soon as it is copied.
    pub fn append(&mut self, other: Objects) {
        self.sorted = std::sync::OnceLock::new();
        if self.ids.is_empty() {
            *self = other;
            return;
        }
        fn move_over<T: Copy>(to: &mut Vec<T>, from: Vec<T>) {
            to.extend_from_slice(&from);
        }
        move_over(&mut self.ids, other.ids);
        move_over(&mut self.slots, other.slots);
        move_over(&mut self.lengths, other.lengths);
        move_over(&mut self.offsets, other.offsets);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The last object, an array the dump cut short, holds `length` elements.
    pub fn cut_last(&mut self, length: u32) {
        if let Some(last) = self.lengths.last_mut() {
            *last = length;
        }
    }

    /// Gives up the id column for a packed copy (32-bit steps of 8 bytes
    /// from the lowest id), half its size, while nothing reads ids; none
    /// when the ids do not fit. [`Objects::unpack_ids`] brings it back.
    pub fn pack_ids(&mut self) -> Option<PackedIds> {
        let min = *self.ids.iter().min()?;
        let max = *self.ids.iter().max()?;
        let fits =
            (max - min) / 8 <= u64::from(u32::MAX) && self.ids.iter().all(|id| (id - min) % 8 == 0);
        if !fits {
            return None;
        }
        let packed = self.ids.iter().map(|id| ((id - min) / 8) as u32).collect();
        self.ids = Vec::new();
        Some(PackedIds { base: min, packed })
    }

    pub fn unpack_ids(&mut self, packed: Option<PackedIds>) {
        if let Some(PackedIds { base, packed }) = packed {
            self.ids = packed
                .into_iter()
                .map(|p| base + u64::from(p) * 8)
                .collect();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The table indexes of `wanted` ids that are in it: binary searches
    /// when the ids ascend (HotSpot walks the heap in address order), else
    /// one scan.
    pub fn find(&self, wanted: &IdSet) -> Vec<usize> {
        if wanted.is_empty() {
            return Vec::new();
        }
        if *self.sorted.get_or_init(|| self.ids.is_sorted()) {
            let mut found: Vec<usize> = wanted
                .iter()
                .filter_map(|id| self.ids.binary_search(id).ok())
                .collect();
            found.sort_unstable();
            return found;
        }
        (0..self.ids.len())
            .filter(|&i| wanted.contains(&self.ids[i]))
            .collect()
    }
}

/// An instance field and where its value lies in the instance's dumped values.
pub struct FieldAt<'a> {
    /// The class declaring it.
    pub declaring: u64,
    pub def: &'a FieldDef,
    pub at: usize,
    pub size: usize,
}

/// The object ids, packed (see [`Objects::pack_ids`]).
pub struct PackedIds {
    base: u64,
    packed: Vec<u32>,
}

/// A thread as its root record gives it.
#[derive(Clone, Copy, Debug)]
pub struct ThreadRoot {
    pub object_id: u64,
    pub thread_serial: u32,
    pub trace_serial: u32,
}

/// A GC root.
#[derive(Clone, Copy, Debug)]
pub struct Root {
    pub kind: RootKind,
    pub id: u64,
    /// Thread serial and frame number, where the kind has them.
    pub info: [u32; 2],
}

impl Root {
    pub fn new(kind: RootKind, id: u64, info: &[u32]) -> Root {
        Root {
            kind,
            id,
            info: [
                info.first().copied().unwrap_or(0),
                info.get(1).copied().unwrap_or(0),
            ],
        }
    }
}

/// The GC roots, in dump order, kept compactly: only the first root of
/// each object (the one a path from a root names), and the first thread
/// object root of each object (the one the thread report lists). A dump
/// repeating roots (fifty million of one root gzip into a megabyte) so costs
/// its different objects, not its records: a repeat of the root before is
/// dropped as it comes, and the list drops its later repeats whenever it has
/// doubled since it last did.
#[derive(Default)]
pub struct Roots {
    list: Vec<Root>,
    /// The length when repeats were last dropped.
    compacted: usize,
}

/// Roots kept before repeats are looked for.
const ROOTS_COMPACTED_FROM: usize = 1 << 16;

impl Roots {
    /// What makes a root a repeat of another.
    fn key(root: &Root) -> (u64, bool) {
        (root.id, root.kind == RootKind::ThreadObject)
    }

    pub fn push(&mut self, root: Root) {
        if self
            .list
            .last()
            .is_some_and(|last| Roots::key(last) == Roots::key(&root))
        {
            return;
        }
        self.list.push(root);
        if self.list.len() >= (2 * self.compacted).max(ROOTS_COMPACTED_FROM) {
            self.compact();
        }
    }

    /// Adds the roots of `later`, which come after these in the dump.
    pub fn append(&mut self, later: Roots) {
        self.list.extend_from_slice(&later.list);
        self.compact();
    }

    /// Drops every root but the first of its key, keeping the order.
    fn compact(&mut self) {
        let mut order: Vec<usize> = (0..self.list.len()).collect();
        order.sort_unstable_by_key(|&i| (Roots::key(&self.list[i]), i));
        let mut keep = vec![false; self.list.len()];
        let mut last = None;
        for i in order {
            let key = Some(Roots::key(&self.list[i]));
            if key != last {
                keep[i] = true;
                last = key;
            }
        }
        let mut keep = keep.into_iter();
        self.list.retain(|_| keep.next().unwrap_or(false));
        self.list.shrink_to(self.list.len() * 2);
        self.compacted = self.list.len();
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Root> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[derive(Default)]
pub struct Dump {
    pub id_size: u8,
    pub strings: IdMap<Box<str>>,
    /// Class object id to its name's string id.
    pub class_names: IdMap<u64>,
    /// LOAD CLASS serial to class object id (frames name classes by serial).
    pub class_serials: HashMap<u32, u64>,
    pub slot_of: IdMap<u32>,
    pub classes: Vec<Class>,
    pub objects: Objects,
    pub frames: IdMap<Frame>,
    /// Stack trace serial to its frame ids.
    pub traces: HashMap<u32, Vec<u64>>,
    /// The GC roots: their kind, the object (or class) each holds, and its
    /// numbers (a thread serial and frame number where it has them).
    pub roots: Roots,
    /// Heap dump segments as a mapped dump's pass split them into runs:
    /// each run's segments and the table index of its first object.
    pub runs: Vec<(Vec<(u64, u64)>, usize)>,
    /// Class slot and instance field bytes of the objects looked into.
    pub fields: IdMap<(u32, Vec<u8>)>,
    /// Contents of the arrays looked into (an object array's as ids).
    pub arrays: IdMap<Vec<u8>>,
    /// Objects whose content is wanted when they come by.
    pub wanted: IdSet,
    /// Wanted objects not found in the dump at all.
    pub missing: IdSet,
    /// Class names whose instances (and subclasses' instances) are kept.
    pub captured_classes: Vec<&'static str>,
    /// Reference fields (declaring class, field) whose targets are wanted
    /// too when an object holding them is kept: a thread's name, the
    /// string's bytes.
    pub follow: Vec<(&'static str, &'static str)>,
    /// In a further pass only wanted objects are looked at.
    pub further_pass: bool,
    /// The wanted object array whose elements are coming, in a further pass.
    array_kept: Option<u64>,
    recent_slots: RecentSlots,
    pub warnings: Vec<String>,
    /// Heap dump segments left for [`crate::segments`] to parse, when
    /// it parses them (a mapped dump); `None` parses them in the pass.
    pub deferred_segments: Option<Vec<(u64, u64)>>,
}

/// Class ids last looked up, by a hash of the id: most objects are of a
/// few classes, and this spares the map.
pub struct RecentSlots(Vec<(u64, u32)>);

impl Default for RecentSlots {
    fn default() -> RecentSlots {
        RecentSlots(vec![(0, 0); RECENT_SLOTS])
    }
}

impl RecentSlots {
    /// The slot of `class_id`: from the recent ones, or from `lookup`.
    #[inline(always)]
    pub fn get(&mut self, class_id: u64, lookup: impl FnOnce(u64) -> u32) -> u32 {
        let cached = &mut self.0[(class_id >> 3) as usize % RECENT_SLOTS];
        if cached.0 == class_id && class_id != 0 {
            return cached.1;
        }
        let slot = lookup(class_id);
        *cached = (class_id, slot);
        slot
    }
}

impl Dump {
    pub fn new(
        captured_classes: Vec<&'static str>,
        follow: Vec<(&'static str, &'static str)>,
    ) -> Dump {
        Dump {
            captured_classes,
            follow,
            ..Dump::default()
        }
    }

    /// The value of field `name` declared by class `declaring` (internal
    /// name) in kept object `id`: an id, or a primitive's bits.
    pub fn field(&self, id: u64, declaring: &str, name: &str) -> Option<u64> {
        let (slot, bytes) = self.fields.get(&id)?;
        self.field_layout(*slot)
            .find(|f| {
                self.internal_name(f.declaring) == Some(declaring)
                    && self
                        .strings
                        .get(&f.def.name_id)
                        .is_some_and(|n| &**n == name)
            })
            .and_then(|f| Some(basic::value(bytes.get(f.at..f.at + f.size)?)))
    }

    /// The name of the reference field of kept object `id` that holds `value`.
    pub fn field_holding(&self, id: u64, value: u64) -> Option<String> {
        let (slot, bytes) = self.fields.get(&id)?;
        self.field_layout(*slot)
            .find(|f| {
                f.def.basic_type == basic::OBJECT
                    && bytes.get(f.at..f.at + f.size).map(basic::value) == Some(value)
            })
            .map(|f| self.string(f.def.name_id))
    }

    /// The fields of an instance of `slot` as the dump lays out its values:
    /// the class's own first, then each superclass's, up to the first class
    /// without a CLASS DUMP.
    pub fn field_layout(&self, slot: u32) -> impl Iterator<Item = FieldAt<'_>> + '_ {
        let mut at = 0;
        self.superclasses(slot)
            .map_while(|class_slot| self.class(class_slot))
            .map_while(|class| Some((class.id, class.dump.as_ref()?)))
            .flat_map(|(declaring, class_dump)| {
                class_dump.fields.iter().map(move |def| (declaring, def))
            })
            .map_while(move |(declaring, def)| {
                let size = basic::dump_size(def.basic_type, self.id_size)?;
                let field = FieldAt {
                    declaring,
                    def,
                    at,
                    size,
                };
                at += size;
                Some(field)
            })
    }

    /// `slot` and its superclasses' slots, nearest first (a cycle in a
    /// damaged dump goes round at most once per class).
    fn superclasses(&self, slot: u32) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(Some(slot), |&s| self.super_slot(s)).take(self.classes.len() + 1)
    }

    /// Keeps an instance's fields and wants what its followed fields point at.
    fn keep(&mut self, id: u64, slot: u32, fields: &[u8]) {
        self.fields.insert(id, (slot, fields.to_vec()));
        let follow = self.follow.clone();
        for (declaring, name) in follow {
            if let Some(target) = self.field(id, declaring, name).filter(|&t| t != 0) {
                self.wanted.insert(target);
            }
        }
    }

    pub fn string(&self, id: u64) -> String {
        self.strings
            .get(&id)
            .map_or_else(|| format!("<string 0x{id:x}>"), |s| s.to_string())
    }

    /// The JVM's name of a class (`java/lang/String`), if it was loaded.
    pub fn internal_name(&self, class_id: u64) -> Option<&str> {
        let name = self.class_names.get(&class_id)?;
        self.strings.get(name).map(|s| &**s)
    }

    /// A class's name in Java form.
    pub fn class_name(&self, class_id: u64) -> String {
        match self.internal_name(class_id) {
            Some(name) => crate::names::java_name(name),
            None => format!("<class 0x{class_id:x}>"),
        }
    }

    /// The name of what lives in `slot`: a class or `byte[]` and such.
    pub fn slot_name(&self, slot: u32) -> String {
        match self.class(slot) {
            Some(class) => self.class_name(class.id),
            None => format!("{}[]", crate::hprof::basic::java_name(slot as u8)),
        }
    }

    pub fn class(&self, slot: u32) -> Option<&Class> {
        self.classes
            .get(slot.checked_sub(FIRST_CLASS_SLOT)? as usize)
    }

    /// The slot of the class named `internal` (`java/lang/ref/Finalizer`).
    pub fn slot_named(&self, internal: &str) -> Option<u32> {
        let id = self
            .class_names
            .iter()
            .find(|(_, &name)| self.strings.get(&name).is_some_and(|n| &**n == internal))
            .map(|(&id, _)| id)?;
        self.slot_of.get(&id).copied()
    }

    /// The slot of class `class_id`, given one when it is new.
    pub fn slot(&mut self, class_id: u64) -> u32 {
        let (slot_of, classes) = (&mut self.slot_of, &mut self.classes);
        self.recent_slots.get(class_id, |class_id| {
            *slot_of.entry(class_id).or_insert_with(|| {
                classes.push(Class {
                    id: class_id,
                    dump: None,
                    captured: None,
                });
                FIRST_CLASS_SLOT + classes.len() as u32 - 1
            })
        })
    }

    /// Gives every class a LOAD CLASS record named a slot, in serial order,
    /// so that segments parsed apart agree on them.
    pub fn slot_loaded_classes(&mut self) {
        let mut loaded: Vec<(u32, u64)> = self
            .class_serials
            .iter()
            .map(|(&serial, &id)| (serial, id))
            .collect();
        loaded.sort_unstable();
        for (_, id) in loaded {
            self.slot(id);
        }
    }

    /// The threads, from their ROOT THREAD OBJECT records.
    pub fn threads(&self) -> impl Iterator<Item = ThreadRoot> + '_ {
        self.roots
            .iter()
            .filter(|r| r.kind == RootKind::ThreadObject)
            .map(|r| ThreadRoot {
                object_id: r.id,
                thread_serial: r.info[0],
                trace_serial: r.info[1],
            })
    }

    /// The slot of class `slot`'s superclass, when its CLASS DUMP names one.
    pub fn super_slot(&self, slot: u32) -> Option<u32> {
        let super_id = self.class(slot)?.dump.as_ref()?.super_id;
        self.slot_of
            .get(&super_id)
            .copied()
            .filter(|_| super_id != 0)
    }

    /// A value for every class (by index in [`Dump::classes`]), each made
    /// by `value(slot, its superclass's value)` (none at the top of a chain:
    /// no superclass, or a cycle in a damaged dump). Each chain is walked
    /// once, so a chain of 200 000 classes costs 200 000 steps, not 200 000
    /// walks of its length.
    pub fn along_chains<T: Clone>(&self, value: impl Fn(u32, Option<&T>) -> T) -> Vec<T> {
        let n = self.classes.len();
        let index = |slot: u32| (slot - FIRST_CLASS_SLOT) as usize;
        let mut values: Vec<Option<T>> = vec![None; n];
        let mut walked = vec![false; n];
        let mut walk = Vec::new();
        for start in 0..n {
            // Up to a class valued already (or walked now: a cycle), or the top.
            let mut at = Some(FIRST_CLASS_SLOT + start as u32);
            while let Some(slot) = at.filter(|&s| !walked[index(s)]) {
                walked[index(slot)] = true;
                walk.push(slot);
                at = self.super_slot(slot);
            }
            // Then down, each class after its superclass.
            while let Some(slot) = walk.pop() {
                let above = self
                    .super_slot(slot)
                    .and_then(|s| values[index(s)].as_ref());
                values[index(slot)] = Some(value(slot, above));
            }
        }
        values
            .into_iter()
            .map(|v| v.expect("every class is valued"))
            .collect()
    }

    /// Whether instances of `slot` are kept: it or a superclass is named in
    /// `captured_classes`. Known once asked, for the class and every
    /// superclass on the way up.
    pub fn captures(&mut self, slot: u32) -> bool {
        let index = |slot: u32| (slot - FIRST_CLASS_SLOT) as usize;
        // Up to a class known already, or the top.
        let mut walk = Vec::new();
        let mut captured = false;
        let mut at = Some(slot);
        while let Some(s) = at {
            if let Some(known) = self.classes[index(s)].captured {
                captured = known;
                break;
            }
            if walk.len() > self.classes.len() {
                break;
            }
            walk.push(s);
            at = self.super_slot(s);
        }
        // Then down.
        for &s in walk.iter().rev() {
            captured |= self
                .internal_name(self.classes[index(s)].id)
                .is_some_and(|n| self.captured_classes.contains(&n));
            self.classes[index(s)].captured = Some(captured);
        }
        self.classes[index(slot)].captured.unwrap_or(captured)
    }
}

impl Dump {
    /// Keeps copies of the objects whose sub-records start at `places` in a
    /// mapped dump (instances and primitive arrays); returns how many it
    /// read.
    pub fn keep_at(
        &mut self,
        mapped: &Arc<Mapped>,
        places: impl IntoIterator<Item = u64>,
    ) -> usize {
        let size = self.id_size;
        let mut found = 0;
        for at in places {
            let mut input = Input::mapped(mapped.clone(), at as usize..mapped.bytes().len());
            let parsed = (|| -> Result<(), ParseError> {
                let sub = input.u8("a sub-record tag")?;
                let id = input.id(size, "an object id")?;
                input.u32("a stack trace serial")?;
                if sub == 0x21 {
                    let class_id = input.id(size, "a class id")?;
                    let len = input.u32("a field byte count")? as usize;
                    let fields = input.bytes(len, "field values")?;
                    let slot = self.slot(class_id);
                    self.keep(id, slot, fields);
                } else if sub == 0x22 {
                    let length = input.u32("an array length")? as usize;
                    input.id(size, "an array class id")?;
                    let data = input.bytes(length * usize::from(size), "array elements")?;
                    self.arrays.insert(id, data.to_vec());
                } else if sub == 0x23 {
                    let length = input.u32("an array length")? as usize;
                    let t = input.u8("an element type")?;
                    let bytes = length * basic::dump_size(t, size).unwrap_or(1);
                    let data = input.bytes(bytes, "array elements")?;
                    self.arrays.insert(id, data.to_vec());
                }
                Ok(())
            })();
            if parsed.is_ok() {
                found += 1;
            }
        }
        found
    }

    /// Where the sub-records of the objects `ids` start, for those in the table.
    pub fn places(&self, ids: &[u64]) -> Vec<u64> {
        let wanted: IdSet = ids.iter().copied().collect();
        self.objects
            .find(&wanted)
            .into_iter()
            .map(|i| self.objects.offsets[i])
            .collect()
    }
}

impl Visitor for Dump {
    fn header(&mut self, header: &Header) {
        self.id_size = header.id_size;
    }

    fn utf8(&mut self, id: u64, text: &[u8]) {
        if !self.further_pass {
            self.strings
                .insert(id, crate::names::modified_utf8(text).into());
        }
    }

    fn load_class(&mut self, serial: u32, class_id: u64, name_id: u64) {
        if !self.further_pass {
            self.class_names.insert(class_id, name_id);
            self.class_serials.insert(serial, class_id);
        }
    }

    fn frame(&mut self, frame: Frame) {
        if !self.further_pass {
            self.frames.insert(frame.id, frame);
        }
    }

    fn trace(&mut self, serial: u32, _thread_serial: u32, frames: Vec<u64>) {
        if !self.further_pass {
            self.traces.insert(serial, frames);
        }
    }

    fn root(&mut self, kind: RootKind, id: u64, info: &[u32]) {
        if self.further_pass {
            return;
        }
        self.roots.push(Root::new(kind, id, info));
    }

    fn class_dump(&mut self, class: ClassDump) {
        if self.further_pass {
            return;
        }
        let slot = self.slot(class.id);
        self.classes[(slot - FIRST_CLASS_SLOT) as usize].dump = Some(class);
    }

    fn instance(&mut self, at: u64, id: u64, class_id: u64, fields: &[u8]) {
        if self.further_pass {
            if self.wanted.contains(&id) && !self.fields.contains_key(&id) {
                let slot = self.slot(class_id);
                self.keep(id, slot, fields);
            }
            return;
        }
        let slot = self.slot(class_id);
        self.objects.push(id, slot, 0, at);
        if self.captures(slot) || (!self.wanted.is_empty() && self.wanted.contains(&id)) {
            self.keep(id, slot, fields);
        }
    }

    fn object_array(&mut self, at: u64, id: u64, class_id: u64, length: u32) {
        self.array_kept = None;
        if !self.further_pass {
            let slot = self.slot(class_id);
            self.objects.push(id, slot, length, at);
        } else if self.wanted.contains(&id) && !self.arrays.contains_key(&id) {
            self.arrays.insert(id, Vec::new());
            self.array_kept = Some(id);
        }
    }

    fn array_cut_short(&mut self, length: u32) {
        if !self.further_pass {
            self.objects.cut_last(length);
        }
    }

    fn object_array_elements(&mut self, ids: &[u8]) {
        if let Some(array) = self.array_kept.and_then(|id| self.arrays.get_mut(&id)) {
            array.extend_from_slice(ids);
        }
    }

    fn primitive_array(&mut self, at: u64, id: u64, element_type: u8, length: u32) {
        if !self.further_pass {
            self.objects.push(id, u32::from(element_type), length, at);
        }
    }

    fn wants_array_content(&mut self, id: u64) -> bool {
        !self.wanted.is_empty() && self.wanted.contains(&id) && !self.arrays.contains_key(&id)
    }

    fn primitive_array_content(&mut self, id: u64, _element_type: u8, data: &[u8]) {
        self.arrays.insert(id, data.to_vec());
    }

    fn warning(&mut self, text: String) {
        if !self.further_pass {
            self.warnings.push(text);
        }
    }

    fn heap_segment(&mut self, at: u64, len: u64) -> bool {
        match &mut self.deferred_segments {
            Some(segments) => {
                segments.push((at, len));
                true
            }
            None => false,
        }
    }
}
