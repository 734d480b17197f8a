//! The class histogram: instances and shallow bytes per class, from the
//! object table of one pass, with sizes as the JVM lays objects out (the
//! layout is told by the gaps between neighbouring objects).

use serde::Serialize;

use crate::dump::{Dump, FIRST_CLASS_SLOT};
use crate::hprof::basic;
use crate::layout::{Detector, Layout, LAYOUTS};

/// One row of the histogram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The class's slot in the dump model.
    #[serde(skip)]
    pub slot: u32,
    pub class: String,
    pub instances: u64,
    pub shallow_bytes: u64,
    /// What the class's objects keep alive (not with `--no-dominators`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_bytes: Option<u64>,
}

/// Shallow sizes of the dump's objects under each candidate layout.
pub struct Sizer {
    /// Instance size per class slot, when its class chain is known.
    instance: Vec<Option<[u64; LAYOUTS]>>,
    /// Whether objects of a slot are arrays, by slot.
    arrays: Vec<bool>,
    /// Under the chosen layout: where elements start and how wide they are,
    /// by primitive type slot, and for arrays of references last.
    geometry: [(u64, u64); FIRST_CLASS_SLOT as usize + 1],
    /// Under the chosen layout: the size of an instance, by class slot.
    instance_chosen: Vec<u64>,
    /// The layout in force (an index into [`Layout::ALL`]).
    pub chosen: usize,
    /// The slot of `java.lang.Class`, looked up once (there may be
    /// hundreds of thousands of classes to size).
    class_class: Option<u32>,
}

impl Sizer {
    pub fn new(dump: &Dump) -> Sizer {
        // What each class and its superclasses declare, each chain walked
        // once: bytes of primitive fields, references, and whether the
        // chain is whole (every class dumped, up to one without superclass).
        let declared = dump.along_chains(|slot, above: Option<&(u64, u64, bool)>| {
            let Some(class_dump) = dump.class(slot).and_then(|c| c.dump.as_ref()) else {
                return (0, 0, false);
            };
            let (mut primitive, mut references, whole) =
                above.copied().unwrap_or((0, 0, class_dump.super_id == 0));
            for field in &class_dump.fields {
                match field.basic_type {
                    basic::OBJECT => references += 1,
                    t => primitive += basic::dump_size(t, 8).unwrap_or(0) as u64,
                }
            }
            (primitive, references, whole)
        });
        let instance = declared
            .into_iter()
            .map(|(primitive, references, whole)| {
                whole.then(|| Layout::ALL.map(|l| l.instance_size_of(primitive, references)))
            })
            .collect();
        let arrays = (0..FIRST_CLASS_SLOT + dump.classes.len() as u32)
            .map(|slot| is_array(dump, slot))
            .collect();
        let mut sizer = Sizer {
            instance,
            arrays,
            geometry: [(0, 0); FIRST_CLASS_SLOT as usize + 1],
            instance_chosen: Vec::new(),
            chosen: 0,
            class_class: dump.slot_named("java/lang/Class"),
        };
        sizer.choose(0);
        sizer
    }

    /// Settles the layout (an index into [`Layout::ALL`]).
    pub fn choose(&mut self, chosen: usize) {
        self.chosen = chosen;
        let layout = self.layout();
        for (t, geometry) in self.geometry.iter_mut().enumerate() {
            let t = if t == FIRST_CLASS_SLOT as usize {
                basic::OBJECT
            } else {
                t as u8
            };
            let width = layout.field_size(t).max(1);
            *geometry = (layout.array_base(width), width);
        }
        let fieldless = layout.instance_size(std::iter::empty());
        self.instance_chosen = (0..FIRST_CLASS_SLOT)
            .map(|_| 0)
            .chain(
                self.instance
                    .iter()
                    .map(|sizes| sizes.map_or(fieldless, |s| s[chosen])),
            )
            .collect();
    }

    pub fn is_array(&self, slot: u32) -> bool {
        self.arrays.get(slot as usize).copied().unwrap_or(false)
    }

    /// An object's size under each layout: an instance of a class slot, or
    /// an array (`length` elements) of a class slot or primitive type slot.
    pub fn sizes(&self, slot: u32, length: u32, is_array: bool) -> Option<[u64; LAYOUTS]> {
        if slot < FIRST_CLASS_SLOT {
            return Some(Layout::ALL.map(|l| l.array_size(slot as u8, length)));
        }
        if is_array {
            return Some(Layout::ALL.map(|l| l.array_size(basic::OBJECT, length)));
        }
        self.instance[(slot - FIRST_CLASS_SLOT) as usize]
    }

    /// The size of a class's `java.lang.Class` object: its own fields, then
    /// the class's static fields.
    pub fn mirror_size(&self, class: &crate::hprof::ClassDump) -> u64 {
        let base = self.class_class.map_or(0, |slot| self.size(slot, 0));
        let layout = self.layout();
        let statics: u64 = class
            .statics
            .iter()
            .map(|s| layout.field_size(s.basic_type))
            .sum();
        (base + statics).div_ceil(8) * 8
    }

    pub fn layout(&self) -> Layout {
        Layout::ALL[self.chosen]
    }

    /// Object `i` of the table under the chosen layout.
    pub fn size_of(&self, dump: &Dump, i: usize) -> u64 {
        self.size(dump.objects.slots[i], dump.objects.lengths[i])
    }

    /// An object of `slot` (an array of `length`) under the chosen layout.
    #[inline]
    pub fn size(&self, slot: u32, length: u32) -> u64 {
        let slot = slot as usize;
        if self.arrays[slot] {
            let (base, width) = self.geometry[slot.min(FIRST_CLASS_SLOT as usize)];
            (base + width * u64::from(length)).div_ceil(8) * 8
        } else {
            self.instance_chosen[slot]
        }
    }
}

/// Whether objects of `slot` are arrays (a primitive type, or an array class).
pub fn is_array(dump: &Dump, slot: u32) -> bool {
    slot < FIRST_CLASS_SLOT
        || dump
            .class(slot)
            .and_then(|c| dump.internal_name(c.id))
            .is_some_and(|n| n.starts_with('['))
}

/// What the histogram found.
pub struct Counted {
    /// The layout was told by the dump (not the default for want of evidence).
    pub layout_detected: bool,
    pub rows: Vec<Row>,
    pub objects: u64,
    pub classes: u64,
    pub shallow_bytes: u64,
}

/// Gaps sampled to tell the layout.
const GAP_SAMPLES: usize = 200_000;

/// Settles the layout and counts every object, biggest classes first.
pub fn count(dump: &Dump, sizer: &mut Sizer) -> (Counted, Vec<String>) {
    let objects = &dump.objects;
    let arrays = sizer.arrays.clone();
    let mut detector = Detector::default();
    for i in 0..objects.len().saturating_sub(1).min(GAP_SAMPLES) {
        let slot = objects.slots[i];
        if let (Some(gap), Some(sizes)) = (
            objects.ids[i + 1].checked_sub(objects.ids[i]),
            sizer.sizes(slot, objects.lengths[i], arrays[slot as usize]),
        ) {
            detector.observe(gap, sizes);
        }
    }
    let (layout, layout_detected) = detector.verdict();
    sizer.choose(Layout::ALL.iter().position(|l| *l == layout).unwrap_or(0));
    // Instances of a class are all one size: counted here, sized below.
    let mut counts = vec![(0u64, 0u64); arrays.len()];
    for i in 0..objects.len() {
        let slot = objects.slots[i] as usize;
        counts[slot].0 += 1;
        if arrays[slot] {
            counts[slot].1 += sizer.size_of(dump, i);
        }
    }
    for (slot, (n, bytes)) in counts.iter_mut().enumerate() {
        if !arrays[slot] {
            *bytes = *n * sizer.size(slot as u32, 0);
        }
    }
    let mut warnings = Vec::new();
    let mut rows: Vec<Row> = counts
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(slot, &(instances, shallow_bytes))| {
            let slot = slot as u32;
            if !arrays[slot as usize] && sizer.sizes(slot, 0, false).is_none() {
                warnings.push(format!(
                    "no class dump for {} (or a superclass): its {instances} instances are counted as having no fields",
                    dump.slot_name(slot)
                ));
            }
            Row {
                slot,
                class: dump.slot_name(slot),
                instances,
                shallow_bytes,
                retained_bytes: None,
            }
        })
        .collect();
    if let Some(row) = mirrors(dump, sizer) {
        rows.push(row);
    }
    rows.sort_by(|a, b| {
        b.shallow_bytes
            .cmp(&a.shallow_bytes)
            .then(a.class.cmp(&b.class))
    });
    warnings.sort();
    let counted = Counted {
        layout_detected,
        objects: rows.iter().map(|r| r.instances).sum(),
        classes: dump.classes.iter().filter(|c| c.dump.is_some()).count() as u64,
        shallow_bytes: rows.iter().map(|r| r.shallow_bytes).sum(),
        rows,
    };
    (counted, warnings)
}

/// The `java.lang.Class` objects: one per class dumped, each an instance of
/// `java.lang.Class` with the class's static fields after its own.
fn mirrors(dump: &Dump, sizer: &Sizer) -> Option<Row> {
    let slot = dump.slot_named("java/lang/Class")?;
    let dumped: Vec<_> = dump
        .classes
        .iter()
        .filter_map(|c| c.dump.as_ref())
        .collect();
    Some(Row {
        slot,
        class: "java.lang.Class".to_string(),
        instances: dumped.len() as u64,
        shallow_bytes: dumped.iter().map(|c| sizer.mirror_size(c)).sum(),
        retained_bytes: None,
    })
}
