//! `jvmapm heap FILE`: explains a HotSpot heap dump offline. One pass
//! (`hprof` over `input`) fills the `dump` model: names, classes, an object
//! table of 24 bytes an object, and the fields of the few objects the
//! reports read. A plain file is mapped and its heap segments parsed on
//! every core (`segments`); the objects the reports read are then read in
//! place. A gzip file is inflated front to back, and a further pass fetches
//! objects that came before what points at them. The reports (`histogram`,
//! `finalizer`, `threads`) read the model; `report` prints them.

pub mod dump;
pub mod finalizer;
pub mod histogram;
pub mod hprof;
mod ids;
pub mod input;
pub mod layout;
mod names;
pub mod report;
mod segments;
pub mod threads;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dump::Dump;
use hprof::{Header, Parsed};
use input::{Input, Mapped, ParseError};
use report::Report;

/// Further passes at most, to fetch objects the reports read.
const FURTHER_PASSES: usize = 2;

/// Reads the dump at `path` and makes the report. A dump cut short or
/// damaged gives the report of what came before, marked partial; a file
/// that is not a heap dump at all is an error. A plain file is mapped and
/// its heap parsed on every core; a gzip file is read front to back.
pub fn analyze(path: &Path) -> Result<Report, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = path.display().to_string();
    if !input::is_gzip(path).map_err(cannot)? {
        if let Ok(mapped) = Mapped::open(path) {
            return analyze_mapped(Arc::new(mapped), &file);
        }
    }
    let open = || Input::open(path).map_err(cannot);
    analyze_streamed(open()?, &file, Some(&open))
}

/// [`analyze`] over a dump in memory, read as a mapped file is.
pub fn analyze_bytes(bytes: Vec<u8>, file: &str) -> Result<Report, String> {
    analyze_mapped(Arc::new(Mapped::from_vec(bytes)), file)
}

/// [`analyze`] over any input, read once; `file` names it in the report.
pub fn analyze_input(input: Input, file: &str) -> Result<Report, String> {
    analyze_streamed(input, file, None)
}

fn new_dump() -> Dump {
    Dump::new(
        vec!["java/lang/ref/Finalizer", "java/lang/Thread"],
        threads::FOLLOW.to_vec(),
    )
}

/// What the pass over the dump found, before the reports.
type Outcome = Result<Parsed, (Option<Header>, ParseError)>;

fn analyze_mapped(mapped: Arc<Mapped>, file: &str) -> Result<Report, String> {
    let len = mapped.bytes().len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(done.clone(), len, "");
    let mut dump = new_dump();
    let outcome = segments::parse(&mapped, &mut dump, &done);
    progress.stop();
    if outcome.is_ok() {
        keep_what_reports_read(&mut dump, &mapped);
    }
    report(dump, outcome, file, len)
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
    for _ in 0..FURTHER_PASSES + 1 {
        let unresolved = threads::unresolved(dump);
        if unresolved.is_empty() {
            break;
        }
        let places = dump.places(&unresolved);
        dump.keep_at(mapped, places);
        for id in unresolved {
            if !dump.fields.contains_key(&id) && !dump.arrays.contains_key(&id) {
                dump.missing.insert(id);
            }
        }
    }
}

fn analyze_streamed(
    mut input: Input,
    file: &str,
    reopen: Option<&dyn Fn() -> Result<Input, String>>,
) -> Result<Report, String> {
    let progress = Progress::start(input.progress.clone(), input.file_len, "");
    let mut dump = new_dump();
    if !input.compressed {
        dump.objects.reserve_for(input.file_len);
    }
    let outcome = hprof::parse(&mut input, &mut dump);
    progress.stop();
    if outcome.is_ok() {
        if let Some(reopen) = reopen {
            further_passes(&mut dump, reopen)?;
        }
    }
    report(dump, outcome, file, input.offset())
}

/// The reports from what the pass found; `input_len` is where it stopped.
fn report(mut dump: Dump, outcome: Outcome, file: &str, input_len: u64) -> Result<Report, String> {
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
        Err((None, e)) => return Err(format!("{file}: {e}")),
    };
    let mut sizer = histogram::Sizer::new(&dump);
    let (counted, histogram_warnings) = histogram::count(&dump, &mut sizer);
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
    })
}

/// Reads a compressed dump again for the objects the reports want that came
/// before what points at them.
fn further_passes(
    dump: &mut Dump,
    reopen: &dyn Fn() -> Result<Input, String>,
) -> Result<(), String> {
    for pass in 0..FURTHER_PASSES {
        let unresolved = threads::unresolved(dump);
        if unresolved.is_empty() {
            break;
        }
        dump.wanted.extend(unresolved.iter().copied());
        dump.further_pass = true;
        let mut input = reopen()?;
        let progress = Progress::start(
            input.progress.clone(),
            input.file_len,
            &format!("pass {} ", pass + 2),
        );
        let outcome = hprof::parse(&mut input, dump);
        progress.stop();
        if let Err((_, e)) = outcome {
            return Err(format!("the dump changed while it was read: {e}"));
        }
        for id in unresolved {
            if !dump.fields.contains_key(&id) && !dump.arrays.contains_key(&id) {
                dump.missing.insert(id);
            }
        }
    }
    dump.further_pass = false;
    Ok(())
}

/// Bytes done, rate and time left on stderr while the dump is read, when
/// stderr is a terminal.
struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Shows `read` of `total` bytes until stopped.
    fn start(read: Arc<AtomicU64>, total: u64, what: &str) -> Progress {
        let what = what.to_string();
        let done = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { done, thread: None };
        }
        let total = total.max(1);
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let bytes = read.load(Ordering::Relaxed);
                let seconds = started.elapsed().as_secs_f64().max(0.001);
                let rate = bytes as f64 / seconds;
                let left = total.saturating_sub(bytes) as f64 / rate.max(1.0);
                eprint!(
                    "\rjvmapm heap: {what}{} of {} ({:.0}%), {}/s, {:.0} s left   ",
                    report::bytes(bytes),
                    report::bytes(total),
                    bytes as f64 * 100.0 / total as f64,
                    report::bytes(rate as u64),
                    left
                );
            }
            eprint!("\r{:70}\r", "");
        });
        Progress {
            done,
            thread: Some(thread),
        }
    }

    fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
