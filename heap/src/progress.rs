//! What `jvmapm heap` shows while it reads a dump: bytes done, rate and
//! time left, on stderr when stderr is a terminal (a pass over tens of
//! gigabytes takes minutes).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report;

/// Bytes done, rate and time left on stderr while the dump is read, when
/// stderr is a terminal.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Shows `read` of `total` bytes until stopped.
    pub fn start(read: Arc<AtomicU64>, total: u64, what: &str) -> Progress {
        let what = what.to_string();
        let done = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { done, thread: None };
        }
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let bytes = read.load(Ordering::Relaxed);
                let seconds = started.elapsed().as_secs_f64().max(0.001);
                let rate = bytes as f64 / seconds;
                let left = total.saturating_sub(bytes) as f64 / rate.max(1.0);
                if total == 0 {
                    eprint!(
                        "\rjvmapm heap: {what}{}, {}/s   ",
                        report::bytes(bytes),
                        report::bytes(rate as u64),
                    );
                    continue;
                }
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

    pub fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread {
            let _ = t.join();
        }
    }
}
