//! A mapped dump's heap segments, parsed on every core. The records before
//! the heap (names, classes, frames) are read first, in order, and every
//! class a LOAD CLASS names gets its slot. The segments are then split into
//! one run of consecutive segments a core; each run is parsed into a
//! [`Part`] of its own, and the parts are joined in dump order, so the
//! [`Dump`] ends up as one pass over the file would have left it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::dump::{Dump, Objects, RecentSlots, Root, Roots};
use crate::hprof::{self, ClassDump, Parsed, RootKind, Visitor};
use crate::ids::{IdMap, IdSet};
use crate::input::{Input, Mapped, ParseError};

/// Slots from here up are a part's own for classes no LOAD CLASS named;
/// joining gives them their real slots.
const PROVISIONAL: u32 = 1 << 31;

/// Parses a run of segments: the class slots it reads, and what it found.
struct Part<'a> {
    loaded: &'a IdMap<u32>,
    recent: RecentSlots,
    unknown_slots: IdMap<u32>,
    found: Found,
}

/// What one run of segments held, in dump order.
#[derive(Default)]
struct Found {
    /// Classes no LOAD CLASS named, by provisional slot.
    unknown: Vec<u64>,
    objects: Objects,
    class_dumps: Vec<ClassDump>,
    roots: Roots,
    warnings: Vec<String>,
}

impl Part<'_> {
    fn slot(&mut self, class_id: u64) -> u32 {
        let (loaded, unknown, unknown_slots) = (
            self.loaded,
            &mut self.found.unknown,
            &mut self.unknown_slots,
        );
        self.recent
            .get(class_id, |class_id| match loaded.get(&class_id) {
                Some(&slot) => slot,
                None => *unknown_slots.entry(class_id).or_insert_with(|| {
                    unknown.push(class_id);
                    PROVISIONAL + unknown.len() as u32 - 1
                }),
            })
    }
}

impl Visitor for Part<'_> {
    fn root(&mut self, kind: RootKind, id: u64, info: &[u32]) {
        self.found.roots.push(Root::new(kind, id, info));
    }

    fn class_dump(&mut self, class: ClassDump) {
        self.found.class_dumps.push(class);
    }

    #[inline(always)]
    fn instance(&mut self, at: u64, id: u64, class_id: u64, _fields: &[u8]) {
        let slot = self.slot(class_id);
        self.found.objects.push(id, slot, 0, at);
    }

    fn object_array(&mut self, at: u64, id: u64, class_id: u64, length: u32) {
        let slot = self.slot(class_id);
        self.found.objects.push(id, slot, length, at);
    }

    fn array_cut_short(&mut self, length: u32) {
        self.found.objects.cut_last(length);
    }

    #[inline(always)]
    fn primitive_array(&mut self, at: u64, id: u64, element_type: u8, length: u32) {
        self.found
            .objects
            .push(id, u32::from(element_type), length, at);
    }

    fn warning(&mut self, text: String) {
        self.found.warnings.push(text);
    }
}

/// Parses the whole mapped dump into `dump`: the records in order, then the
/// heap segments on every core. `progress` counts the bytes done.
pub fn parse(
    mapped: &Arc<Mapped>,
    dump: &mut Dump,
    progress: &AtomicU64,
) -> Result<Parsed, (Option<hprof::Header>, ParseError)> {
    let len = mapped.bytes().len();
    let mut input = Input::mapped(mapped.clone(), 0..len);
    dump.deferred_segments = Some(Vec::new());
    let walked = hprof::parse(&mut input, dump);
    let segments = dump.deferred_segments.take().unwrap_or_default();
    // The walk touched each segment's first page, and the kernel may have
    // mapped much more around it (a large page-cache folio): give it all
    // back before the segments are read for real.
    mapped.release(0..len);
    if let Err((None, e)) = walked {
        return Err((None, e));
    }
    dump.slot_loaded_classes();
    let runs = split(&segments, cores());
    let parts = runs.iter().map(|&run| {
        let mut part = Part {
            loaded: &dump.slot_of,
            recent: RecentSlots::default(),
            unknown_slots: IdMap::default(),
            found: Found::default(),
        };
        part.found
            .objects
            .reserve_for(run.iter().map(|s| s.1).sum());
        (run, part)
    });
    let parsed: Vec<(Found, Result<bool, ParseError>)> =
        parse_runs(mapped, dump.id_size, parts, Some(progress))
            .into_iter()
            .map(|(part, outcome)| (part.found, outcome))
            .collect();
    let mut skipped_data = false;
    let mut failure = None;
    for ((found, outcome), run) in parsed.into_iter().zip(&runs) {
        dump.runs.push((run.to_vec(), dump.objects.len()));
        join(dump, found);
        match outcome {
            Ok(skipped) => skipped_data |= skipped,
            Err(e) => {
                // Nothing after a run that failed counts.
                failure = Some(e);
                break;
            }
        }
    }
    progress.store(len as u64, Ordering::Relaxed);
    match (walked, failure) {
        (Err((header, walk_error)), failure) => {
            // A cut inside a segment fails both; the segment's own error
            // says where within it.
            Err((header, failure.unwrap_or(walk_error)))
        }
        (Ok(parsed), Some(e)) => Err((Some(parsed.header), e)),
        (Ok(mut parsed), None) => {
            parsed.skipped_data |= skipped_data;
            Ok(parsed)
        }
    }
}

/// Cores to parse on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(16))
}

/// Splits the segments into at most `n` runs of consecutive segments with
/// about as many bytes each.
fn split(segments: &[(u64, u64)], n: usize) -> Vec<&[(u64, u64)]> {
    let total: u64 = segments.iter().map(|s| s.1).sum();
    let share = total.div_ceil(n.max(1) as u64).max(1);
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, segment) in segments.iter().enumerate() {
        bytes += segment.1;
        if bytes >= share {
            runs.push(&segments[start..=i]);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < segments.len() {
        runs.push(&segments[start..]);
    }
    runs
}

/// Parses each run's segments with the visitor given for it, one thread a
/// run, giving each segment's pages back once it is parsed and adding its
/// bytes to `progress`. A run stops at its first segment that cannot be
/// read. Each visitor comes back, in run order, with whether part of its
/// run was skipped (an unknown sub-record) or where it failed.
pub fn parse_runs<'r, V: Visitor + Send>(
    mapped: &Arc<Mapped>,
    id_size: u8,
    runs: impl IntoIterator<Item = (&'r [(u64, u64)], V)>,
    progress: Option<&AtomicU64>,
) -> Vec<(V, Result<bool, ParseError>)> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = runs
            .into_iter()
            .map(|(run, mut visitor)| {
                scope.spawn(move || {
                    let mut skipped = false;
                    for &(at, len) in run {
                        let end = at.saturating_add(len).min(usize::MAX as u64) as usize;
                        let mut input = Input::mapped(mapped.clone(), at as usize..end);
                        match hprof::parse_segment(&mut input, id_size, &mut visitor, len) {
                            Ok(skipped_here) => skipped |= skipped_here,
                            Err(e) => return (visitor, Err(e)),
                        }
                        mapped.release(at as usize..end);
                        if let Some(progress) = progress {
                            progress.fetch_add(len, Ordering::Relaxed);
                        }
                    }
                    (visitor, Ok(skipped))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a segment parser panicked"))
            .collect()
    })
}

/// Adds a part to the dump, its classes given their real slots.
fn join(dump: &mut Dump, mut part: Found) {
    for class in part.class_dumps.drain(..) {
        dump.class_dump(class);
    }
    if !part.unknown.is_empty() {
        let real: Vec<u32> = part.unknown.iter().map(|&id| dump.slot(id)).collect();
        for slot in &mut part.objects.slots {
            if *slot >= PROVISIONAL {
                *slot = real[(*slot - PROVISIONAL) as usize];
            }
        }
    }
    dump.objects.append(part.objects);
    dump.roots.append(part.roots);
    dump.warnings.append(&mut part.warnings);
}

/// Finds where the sub-records of wanted objects start.
struct Finder<'a> {
    wanted: &'a IdSet,
    places: Vec<u64>,
}

impl Visitor for Finder<'_> {
    #[inline]
    fn instance(&mut self, at: u64, id: u64, _class_id: u64, _fields: &[u8]) {
        if self.wanted.contains(&id) {
            self.places.push(at);
        }
    }

    fn object_array(&mut self, at: u64, id: u64, _class_id: u64, _length: u32) {
        if self.wanted.contains(&id) {
            self.places.push(at);
        }
    }

    #[inline]
    fn primitive_array(&mut self, at: u64, id: u64, _element_type: u8, _length: u32) {
        if self.wanted.contains(&id) {
            self.places.push(at);
        }
    }
}

/// Where the sub-records of objects `wanted` start, found by parsing the
/// runs of a mapped dump again (on every core): for when the table's own
/// column of places was given up to save memory.
pub fn places(mapped: &Arc<Mapped>, dump: &Dump, wanted: &IdSet) -> Vec<u64> {
    let finders = dump.runs.iter().map(|(run, _)| {
        let finder = Finder {
            wanted,
            places: Vec::new(),
        };
        (&run[..], finder)
    });
    parse_runs(mapped, dump.id_size, finders, None)
        .into_iter()
        .flat_map(|(finder, _)| finder.places)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_keep_segments_in_order_with_even_bytes() {
        let segments: Vec<(u64, u64)> = (0..10).map(|i| (i * 100, 100)).collect();
        let runs = split(&segments, 2);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].len(), 5);
        assert_eq!(runs.concat(), segments);
        assert_eq!(split(&segments[..1], 4).len(), 1);
        assert!(split(&[], 2).is_empty());
    }
}
