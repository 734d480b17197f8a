//! `jvmapm heap FILE`: explains a HotSpot heap dump offline. One pass
//! (`hprof` over `input`) fills the `dump` model: names, classes, an object
//! table of 24 bytes an object, and the fields of the few objects the
//! reports read. A plain file is mapped and its heap segments parsed on
//! every core (`segments`); the objects the reports read are then read in
//! place. A gzip file is inflated front to back, and a further pass fetches
//! objects that came before what points at them. The reports (`histogram`,
//! `finalizer`, `threads`) read the model; `report` prints them.
//!
//! A crate of its own: it shares nothing with the analyzer's server, so
//! `jvmapm heap`, its tests and its fuzz target build without the OTLP
//! stack, and it can be built with optimizations on its own.

pub mod diff;
pub mod dominators;
pub mod dump;
mod error;
pub mod finalizer;
pub mod graph;
pub mod histogram;
pub mod hprof;
mod ids;
pub mod input;
pub mod layout;
pub mod names;
mod progress;
pub mod report;
pub mod retained;
mod segments;
pub mod threads;

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use dump::Dump;
pub use error::Error;
use hprof::{Header, Parsed, Visitor};
use input::{Input, Mapped, ParseError};
use progress::Progress;
use report::Report;

/// Further reads at most, to fetch objects the reports read.
const FURTHER_PASSES: usize = 2;

/// What to analyze beyond the histogram, Finalizers and threads.
#[derive(Clone, Debug)]
pub struct Options {
    /// The dominator tree: retained sizes, biggest objects, leak suspects.
    pub dominators: bool,
    /// Rows of the biggest objects by retained size.
    pub top: usize,
    /// An object whose path from a GC root is wanted.
    pub path_to_root: Option<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dominators: true,
            top: 30,
            path_to_root: None,
        }
    }
}

/// Reads the dump at `path` and makes the report. A dump cut short or
/// damaged gives the report of what came before, marked partial; a file
/// that is not a heap dump at all is an error. A plain file is mapped and
/// its heap parsed on every core; a gzip file is read front to back.
///
/// `-` is standard input. Standard input, a pipe or a FIFO (anything but a
/// regular file) is opened once and read as a stream, front to back: the
/// report of one pass (no dominator tree, which reads the heap twice).
pub fn analyze(path: &Path, options: &Options) -> Result<Report, Error> {
    let file = path.display().to_string();
    let path = if path == Path::new("-") {
        Path::new("/dev/stdin")
    } else {
        path
    };
    let cannot = |cause| Error::Read {
        file: file.clone(),
        cause,
    };
    let regular = std::fs::metadata(path)
        .map_err(cannot)?
        .file_type()
        .is_file();
    if !regular {
        let source = std::fs::File::open(path).map_err(cannot)?;
        let input = Input::stream(Box::new(source)).map_err(cannot)?;
        return analyze_streamed(input, &file, None, options);
    }
    if !input::is_gzip(path).map_err(cannot)? {
        if let Ok(mapped) = Mapped::open(path) {
            return analyze_mapped(Arc::new(mapped), &file, options);
        }
    }
    let open = || Input::open(path).map_err(cannot);
    analyze_streamed(open()?, &file, Some(&open), options)
}

/// [`analyze`] over a dump in memory, read as a mapped file is.
pub fn analyze_bytes(bytes: Vec<u8>, file: &str, options: &Options) -> Result<Report, Error> {
    analyze_mapped(Arc::new(Mapped::from_vec(bytes)), file, options)
}

/// [`analyze`] over any input, read once (so without the dominator tree,
/// which reads the heap twice); `file` names it in the report.
pub fn analyze_input(input: Input, file: &str) -> Result<Report, Error> {
    let options = Options {
        dominators: false,
        ..Options::default()
    };
    analyze_streamed(input, file, None, &options)
}

fn new_dump() -> Dump {
    Dump::new(
        vec!["java/lang/ref/Finalizer", "java/lang/Thread"],
        threads::FOLLOW.to_vec(),
    )
}

/// What the pass over the dump found, before the reports.
type Outcome = Result<Parsed, (Option<Header>, ParseError)>;

/// Opens the dump again, to read it front to back from the start.
type Reopen<'a> = &'a dyn Fn() -> Result<Input, Error>;

/// Where the dump can be read again, after the first pass.
enum Source<'a> {
    Mapped(&'a Arc<Mapped>),
    /// Front to back from a new start, when it can be opened again.
    Streamed(Option<Reopen<'a>>),
}

impl<'a> Source<'a> {
    /// Keeps the fields (or elements) of objects `ids` in the model.
    fn keep(&self, dump: &mut Dump, ids: &[u64]) -> Result<(), Error> {
        match self {
            Source::Mapped(mapped) => {
                let places = if dump.objects.offsets.is_empty() {
                    segments::places(mapped, dump, &ids.iter().copied().collect())
                } else {
                    dump.places(ids)
                };
                dump.keep_at(mapped, places);
            }
            Source::Streamed(Some(reopen)) => {
                dump.wanted.extend(ids.iter().copied());
                dump.further_pass = true;
                let read = read_again(*reopen, "reading objects again: ", dump);
                dump.further_pass = false;
                read?;
            }
            Source::Streamed(None) => {}
        }
        for &id in ids {
            if !dump.fields.contains_key(&id) && !dump.arrays.contains_key(&id) {
                dump.missing.insert(id);
            }
        }
        Ok(())
    }

    /// Where the object graph's references can be read, unless the dump
    /// is a stream read once.
    fn references(&self) -> Option<graph::References<'a>> {
        match self {
            Source::Mapped(mapped) => Some(graph::References::Mapped(mapped)),
            Source::Streamed(reopen) => reopen.map(graph::References::Reopened),
        }
    }
}

/// Reads the dump again from the start for `visitor`, showing progress as
/// `what`; a dump that no longer parses has changed since the first pass.
fn read_again(reopen: Reopen, what: &str, visitor: &mut impl Visitor) -> Result<(), Error> {
    let mut input = reopen()?;
    let progress = Progress::start(input.progress.clone(), input.file_len, what);
    let read = hprof::parse(&mut input, visitor);
    progress.stop();
    read.map(|_| ()).map_err(|(_, e)| Error::Changed(e))
}

fn analyze_mapped(mapped: Arc<Mapped>, file: &str, options: &Options) -> Result<Report, Error> {
    let len = mapped.bytes().len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(done.clone(), len, "");
    let mut dump = new_dump();
    let outcome = segments::parse(&mapped, &mut dump, &done);
    progress.stop();
    if outcome.is_ok() {
        keep_what_reports_read(&mut dump, &mapped);
    }
    report(dump, outcome, file, len, &Source::Mapped(&mapped), options)
}

/// Keeps the fields of the objects the reports read (Finalizers, threads)
/// and of what they point at, read in place in the mapped dump.
fn keep_what_reports_read(dump: &mut Dump, mapped: &Arc<Mapped>) {
    let captured: Vec<bool> = (0..dump.classes.len() as u32)
        .map(|i| dump.captures(dump::FIRST_CLASS_SLOT + i))
        .collect();
    let objects = &dump.objects;
    let places: Vec<u64> = (0..objects.len())
        .filter(|&i| {
            objects.slots[i]
                .checked_sub(dump::FIRST_CLASS_SLOT)
                .is_some_and(|c| captured[c as usize])
        })
        .map(|i| objects.offsets[i])
        .collect();
    dump.keep_at(mapped, places);
    let _ = keep_what_threads_read(dump, &Source::Mapped(mapped));
}

fn analyze_streamed(
    mut input: Input,
    file: &str,
    reopen: Option<Reopen>,
    options: &Options,
) -> Result<Report, Error> {
    let progress = Progress::start(input.progress.clone(), input.file_len, "");
    let mut dump = new_dump();
    if !input.compressed {
        dump.objects.reserve_for(input.file_len);
    }
    let outcome = hprof::parse(&mut input, &mut dump);
    progress.stop();
    let source = Source::Streamed(reopen);
    if outcome.is_ok() {
        keep_what_threads_read(&mut dump, &source)?;
    }
    report(dump, outcome, file, input.offset(), &source, options)
}

/// The reports from what the pass found; `input_len` is where it stopped.
fn report(
    mut dump: Dump,
    outcome: Outcome,
    file: &str,
    input_len: u64,
    source: &Source,
    options: &Options,
) -> Result<Report, Error> {
    let mut cut_between_records = false;
    let (header, partial, failure) = match outcome {
        Ok(parsed) => {
            cut_between_records = !parsed.heap_complete;
            (
                parsed.header,
                parsed.skipped_data || cut_between_records,
                None,
            )
        }
        Err((Some(header), e)) => (header, true, Some(e)),
        Err((None, cause)) => {
            return Err(Error::NotADump {
                file: file.to_string(),
                cause,
            })
        }
    };
    let mut sizer = histogram::Sizer::new(&dump);
    let (mut counted, histogram_warnings) = histogram::count(&dump, &mut sizer);
    let finalizer = finalizer::report(&dump, &sizer, counted.shallow_bytes);
    let threads = threads::report(&dump);
    let mut warnings = std::mem::take(&mut dump.warnings);
    warnings.extend(histogram_warnings);
    if let Some(e) = failure {
        warnings.insert(
            0,
            format!("the dump is damaged or cut short {e}; the report covers what comes before"),
        );
    }
    if cut_between_records {
        warnings.insert(
            0,
            format!(
                "the dump ends at byte {} without the end of its heap dump (HEAP DUMP END): cut short? The report covers what comes before",
                input_len
            ),
        );
    }
    if !counted.layout_detected {
        warnings.push(
            "no neighbouring objects told the object layout: sizes assume compressed oops and class pointers".into(),
        );
    }
    let wants_graph = options.dominators || options.path_to_root.is_some();
    let analysis = if wants_graph && partial {
        warnings.push(
            "no dominator tree or paths for a partial dump: the references that are missing would make them wrong".into(),
        );
        Analysis::default()
    } else if let (true, Some(references)) = (wants_graph, source.references()) {
        dominator_reports(
            &mut dump,
            &sizer,
            source,
            references,
            options,
            &mut counted.rows,
        )?
    } else if wants_graph {
        warnings.push(
            "no dominator tree or paths for a stream (standard input, a pipe): they read the dump twice; give a file for them".into(),
        );
        Analysis::default()
    } else {
        Analysis::default()
    };
    Ok(Report {
        file: file.to_string(),
        format: header.format,
        id_size: header.id_size,
        compressed_refs: sizer.layout().compressed_oops,
        compressed_class_pointers: sizer.layout().compressed_class_pointers,
        objects: counted.objects,
        classes: counted.classes,
        shallow_bytes: counted.shallow_bytes,
        partial,
        warnings,
        histogram: counted.rows,
        finalizer,
        threads,
        dominators: analysis.dominators,
        leak_suspects: analysis.leak_suspects,
        path_to_root: analysis.path_to_root,
    })
}

/// What the dominator tree adds to the report.
#[derive(Default)]
struct Analysis {
    dominators: Option<report::DominatorReport>,
    leak_suspects: Option<Vec<retained::Suspect>>,
    path_to_root: Option<Vec<retained::Hop>>,
}

/// Builds the object graph (its references read from `references`) and
/// its dominator tree (unless only a path is wanted) and makes their
/// reports; adds retained bytes to `rows`.
fn dominator_reports(
    dump: &mut Dump,
    sizer: &histogram::Sizer,
    source: &Source,
    references: graph::References,
    options: &Options,
    rows: &mut [histogram::Row],
) -> Result<Analysis, Error> {
    let target = options.path_to_root;
    let mapped = matches!(references, graph::References::Mapped(_));
    let mut graph = graph::build(dump, sizer, references)?;
    let mut analysis = Analysis::default();
    let mut found = Vec::new();
    // Array lengths were for sizes, which the graph now holds; places are
    // found again for the few objects the paths go through.
    dump.objects.lengths = Vec::new();
    if mapped {
        dump.objects.offsets = Vec::new();
    }
    if options.dominators {
        // Each node's class: the objects' slots column, lent for a while.
        let class_class = dump
            .slot_named("java/lang/Class")
            .unwrap_or(dominators::NONE);
        let mut class_of = std::mem::take(&mut dump.objects.slots);
        class_of.extend(std::iter::repeat_n(class_class, dump.classes.len()));
        class_of.push(dominators::NONE);
        let slots = dump::FIRST_CLASS_SLOT as usize + dump.classes.len();
        let packed = dump.objects.pack_ids();
        let tree = retained::compute(&mut graph, &class_of, slots);
        dump.objects.unpack_ids(packed);
        for row in rows.iter_mut() {
            row.retained_bytes = tree.per_class.get(row.slot as usize).copied();
        }
        found = retained::suspects(&graph, &tree, &class_of);
        class_of.truncate(graph.objects);
        dump.objects.slots = class_of;
        let names = retained::Names {
            dump,
            graph: &graph,
        };
        analysis.dominators = Some(report::DominatorReport {
            top: retained::top_objects(&names, &tree, options.top),
            kept_by_finalizers: graph.finalizable.len() as u64,
        });
    }
    let target_node = match target {
        Some(id) => Some(node_of(dump, &graph, id).ok_or(Error::NoSuchObject(id))?),
        None => None,
    };
    let paths: Vec<Vec<u32>> = found
        .iter()
        .map(|f| f.path_end())
        .chain(target_node)
        .map(|node| retained::path(&graph.parents, graph.root, node))
        .collect();
    graph.parents = Vec::new();
    // Only the steps a path shows are named (a long one leaves its middle out).
    let mut on_paths: Vec<u64> = paths
        .iter()
        .flat_map(|path| retained::named_nodes(path))
        .filter(|&node| (node as usize) < graph.objects)
        .map(|node| dump.objects.ids[node as usize])
        .collect();
    on_paths.sort_unstable();
    on_paths.dedup();
    source.keep(dump, &on_paths)?;
    let names = retained::Names {
        dump,
        graph: &graph,
    };
    let mut paths = paths.into_iter();
    if options.dominators {
        analysis.leak_suspects = Some(
            found
                .iter()
                .zip(paths.by_ref())
                .map(|(f, path)| f.describe(&names, &path))
                .collect(),
        );
    }
    if target_node.is_some() {
        analysis.path_to_root = paths.next().map(|path| retained::hops(&names, &path));
    }
    Ok(analysis)
}

/// The graph node of object (or class) `id`.
fn node_of(dump: &Dump, graph: &graph::ObjectGraph, id: u64) -> Option<u32> {
    if let Some(&slot) = dump.slot_of.get(&id) {
        return Some(graph.class_node(slot));
    }
    let wanted: ids::IdSet = [id].into_iter().collect();
    dump.objects.find(&wanted).first().map(|&i| i as u32)
}

/// Keeps what the thread report reads and the first pass could not keep:
/// objects that came before what points at them (a thread's name before
/// the thread), a step of the chain at a time.
fn keep_what_threads_read(dump: &mut Dump, source: &Source) -> Result<(), Error> {
    for _ in 0..FURTHER_PASSES {
        let unresolved = threads::unresolved(dump);
        if unresolved.is_empty() {
            break;
        }
        source.keep(dump, &unresolved)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
