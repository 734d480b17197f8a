//! The agent's own log: stderr or a file (option `log=`), filtered by
//! `log_level=`. Lines start with `[jvmapm]` so they stand out in a JVM's
//! output. Writing never panics and never fails the caller.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::{Mutex, OnceLock};

use crate::options::{LogLevel, LogTarget};

struct Logger {
    level: LogLevel,
    sink: Mutex<Box<dyn Write + Send>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Opens the log; a file is appended to. Only the first call takes effect.
pub fn init(target: &LogTarget, level: LogLevel) -> io::Result<()> {
    let sink: Box<dyn Write + Send> = match target {
        LogTarget::Stderr => Box::new(io::stderr()),
        LogTarget::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
    };
    let _ = LOGGER.set(Logger {
        level,
        sink: Mutex::new(sink),
    });
    Ok(())
}

/// Writes one line at `level`, if the log is open and the level is enabled.
pub fn line(level: LogLevel, message: &str) {
    let Some(logger) = LOGGER.get() else { return };
    if level > logger.level {
        return;
    }
    let name = match level {
        LogLevel::Error => "ERROR",
        LogLevel::Warn => "WARN",
        LogLevel::Info => "INFO",
        LogLevel::Debug => "DEBUG",
    };
    if let Ok(mut sink) = logger.sink.lock() {
        let _ = writeln!(sink, "[jvmapm] {name} {message}");
        let _ = sink.flush();
    }
}

/// Whether debug lines are wanted (so that what only they report is
/// measured only then).
pub fn debugging() -> bool {
    LOGGER.get().is_some_and(|l| l.level >= LogLevel::Debug)
}

/// Writes a debug line, building it only when debug lines are wanted.
pub fn debug(message: impl FnOnce() -> String) {
    if debugging() {
        line(LogLevel::Debug, &message());
    }
}

/// Writes a line the first time `trouble` happens and never again, so a
/// recurring problem cannot flood the log.
pub fn once(trouble: &'static str, level: LogLevel, message: &str) {
    static SEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let first = match SEEN.lock() {
        Ok(mut seen) if !seen.contains(&trouble) => {
            seen.push(trouble);
            true
        }
        _ => false,
    };
    if first {
        line(level, message);
    }
}
