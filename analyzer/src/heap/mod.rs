//! `jvmapm heap FILE`: explains a HotSpot heap dump offline. One streaming
//! pass (`hprof` over `input`) fills the `dump` model: names, classes, an
//! object table of 16 bytes an object, and the fields of the few objects the
//! reports read; a further pass fetches those that came before what points at
//! them. The reports (`histogram`, `finalizer`, `threads`) read the model;
//! `report` prints them.

pub mod dump;
pub mod finalizer;
pub mod histogram;
pub mod hprof;
mod ids;
pub mod input;
pub mod layout;
mod names;
pub mod report;
pub mod threads;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dump::Dump;
use input::Input;
use report::Report;

/// Further passes at most, to fetch objects the reports read.
const FURTHER_PASSES: usize = 2;

/// Reads the dump at `path` and makes the report. A dump cut short or
/// damaged gives the report of what came before, marked partial; a file
/// that is not a heap dump at all is an error.
pub fn analyze(path: &Path) -> Result<Report, String> {
    let open = || Input::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let again = Again {
        path,
        reopen: &open,
    };
    analyze_with(open()?, &path.display().to_string(), Some(again))
}

/// [`analyze`] over any input, read once; `file` names it in the report.
pub fn analyze_input(input: Input, file: &str) -> Result<Report, String> {
    analyze_with(input, file, None)
}

/// How to read the dump again: at offsets (a plain file), or from the start.
struct Again<'a> {
    path: &'a Path,
    reopen: &'a dyn Fn() -> Result<Input, String>,
}

fn analyze_with(mut input: Input, file: &str, again: Option<Again>) -> Result<Report, String> {
    let compressed = input.compressed;
    let progress = Progress::start(&input, "");
    let mut dump = Dump::new(
        vec!["java/lang/ref/Finalizer", "java/lang/Thread"],
        threads::FOLLOW.to_vec(),
    );
    if !input.compressed {
        dump.objects.reserve_for(input.file_len);
    }
    let outcome = hprof::parse(&mut input, &mut dump);
    progress.stop();
    let input_len = input.offset();
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
    if failure.is_none() {
        match again {
            Some(again) if !compressed => fetch_at_offsets(&mut dump, again.path)?,
            Some(again) => further_passes(&mut dump, again.reopen)?,
            None => {}
        }
    }
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

/// Reads the objects the reports want that came before what points at them
/// (a thread's name before the thread) at the offsets the pass noted.
fn fetch_at_offsets(dump: &mut Dump, path: &Path) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for _ in 0..FURTHER_PASSES + 1 {
        let unresolved = threads::unresolved(dump);
        if unresolved.is_empty() {
            break;
        }
        dump.fetch(&file, &unresolved);
        for id in unresolved {
            if !dump.fields.contains_key(&id) && !dump.arrays.contains_key(&id) {
                dump.missing.insert(id);
            }
        }
    }
    Ok(())
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
        let progress = Progress::start(&input, &format!("pass {} ", pass + 2));
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
    fn start(input: &Input, what: &str) -> Progress {
        let what = what.to_string();
        let done = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { done, thread: None };
        }
        let (read, total) = (input.progress.clone(), input.file_len.max(1));
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
