//! The Finalizer overview: the `java.lang.ref.Finalizer` objects that are
//! registered (their object not yet found unreachable), queued for the
//! Finalizer thread, and being finalized, and what they keep alive, by class.
//! A Finalizer's `queue` tells its state (JDK 9+): the Finalizer queue while
//! registered, `ReferenceQueue.ENQUEUED` once queued, `ReferenceQueue.NULL`
//! (`NULL_QUEUE` from JDK 24) once the Finalizer thread took it.

use std::collections::HashMap;

use serde::Serialize;

use crate::dump::Dump;
use crate::histogram::Sizer;
use crate::ids::IdSet;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FinalizerReport {
    pub registered: u64,
    pub queued: u64,
    pub in_processing: u64,
    /// The objects waiting to be finalized (the Finalizers' referents), by class.
    pub referents: Vec<Referents>,
    /// Shallow bytes of the Finalizers and their referents.
    pub shallow_bytes: u64,
    /// Their share of the heap's shallow bytes.
    pub heap_percent: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Referents {
    pub class: String,
    pub count: u64,
    pub shallow_bytes: u64,
}

/// The overview, empty when the dump has no Finalizer class.
pub fn report(dump: &Dump, sizer: &Sizer, heap_bytes: u64) -> FinalizerReport {
    let mut out = FinalizerReport::default();
    let Some(finalizer) = dump.slot_named("java/lang/ref/Finalizer") else {
        return out;
    };
    let statics = |class: &str, name: &str| {
        let slot = dump.slot_named(class)?;
        let class = dump.class(slot)?.dump.as_ref()?;
        class
            .statics
            .iter()
            .find(|s| dump.strings.get(&s.name_id).is_some_and(|n| &**n == name))
            .map(|s| s.value)
    };
    let enqueued = statics("java/lang/ref/ReferenceQueue", "ENQUEUED");
    let null_queue = statics("java/lang/ref/ReferenceQueue", "NULL")
        .or_else(|| statics("java/lang/ref/ReferenceQueue", "NULL_QUEUE"));
    let mut referents = IdSet::default();
    let mut finalizers = IdSet::default();
    for (&id, (slot, _)) in &dump.fields {
        if *slot != finalizer {
            continue;
        }
        finalizers.insert(id);
        let queue = dump.field(id, "java/lang/ref/Reference", "queue");
        let referent = dump
            .field(id, "java/lang/ref/Reference", "referent")
            .unwrap_or(0);
        if queue.is_some() && queue == enqueued {
            out.queued += 1;
        } else if queue.is_some() && queue == null_queue {
            if referent != 0 {
                out.in_processing += 1;
            }
        } else {
            out.registered += 1;
        }
        if referent != 0 {
            referents.insert(referent);
        }
    }
    let mut by_slot: HashMap<u32, (u64, u64)> = HashMap::new();
    for i in dump.objects.find(&referents) {
        let group = by_slot.entry(dump.objects.slots[i]).or_default();
        group.0 += 1;
        group.1 += sizer.size_of(dump, i);
    }
    for i in dump.objects.find(&finalizers) {
        out.shallow_bytes += sizer.size_of(dump, i);
    }
    out.referents = by_slot
        .into_iter()
        .map(|(slot, (count, shallow_bytes))| Referents {
            class: dump.slot_name(slot),
            count,
            shallow_bytes,
        })
        .collect();
    out.referents.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.shallow_bytes.cmp(&a.shallow_bytes))
    });
    out.shallow_bytes += out.referents.iter().map(|r| r.shallow_bytes).sum::<u64>();
    out.heap_percent = out.shallow_bytes as f64 * 100.0 / heap_bytes.max(1) as f64;
    out
}
