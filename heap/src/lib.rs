//! `jvmapm heap FILE`: explains a HotSpot heap dump offline, in one streaming
//! pass with memory bounded by what the reports keep (per class, not per
//! object). The parser (`hprof`, over `input`) hands records to the reports
//! (`histogram`); `report` prints them.

pub mod histogram;
pub mod hprof;
pub mod input;
pub mod layout;
mod names;
pub mod report;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use histogram::Histogram;
use input::Input;
use report::Report;

/// Reads the dump at `path` and makes the report. A dump cut short or
/// damaged gives the report of what came before, marked partial; a file
/// that is not a heap dump at all is an error.
pub fn analyze(path: &Path) -> Result<Report, String> {
    let input = Input::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    analyze_input(input, &path.display().to_string())
}

/// [`analyze`] over any input; `file` names it in the report.
pub fn analyze_input(mut input: Input, file: &str) -> Result<Report, String> {
    let progress = Progress::start(&input);
    let mut histogram = Histogram::default();
    let outcome = hprof::parse(&mut input, &mut histogram);
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
    let (counted, histogram) = histogram.finish();
    let mut warnings = histogram.warnings;
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
        compressed_refs: counted.layout.compressed_oops,
        compressed_class_pointers: counted.layout.compressed_class_pointers,
        objects: counted.objects,
        classes: counted.classes,
        shallow_bytes: counted.shallow_bytes,
        partial,
        warnings,
        histogram: counted.rows,
    })
}

/// Bytes done, rate and time left on stderr while the dump is read, when
/// stderr is a terminal.
struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(input: &Input) -> Progress {
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
                    "\rjvmapm heap: {} of {} ({:.0}%), {}/s, {:.0} s left   ",
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
