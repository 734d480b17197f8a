//! Keeps a panic from crossing into the JVM. Every callback and native the
//! JVM calls runs its body through [`guarded`]: a caught panic disables the
//! agent (later callbacks return at once, its own threads stop) and says so
//! once, and the JVM runs on. This sits below everything that the JVM calls
//! into, so none of them needs the agent's lifecycle (`agent`) to be safe.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::log::line;
use crate::options::LogLevel;

static DISABLED: AtomicBool = AtomicBool::new(false);

/// The flag the agent's own threads stop on, set when the agent is disabled.
static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Runs a callback body, catching a panic: the agent is then disabled and
/// says so once; the JVM goes on. Once disabled, bodies are not run.
pub fn guarded(what: &str, body: impl FnOnce()) {
    if DISABLED.load(Ordering::Relaxed) {
        return;
    }
    if caught(body).is_none() {
        disable();
        line(
            LogLevel::Error,
            &format!("internal error in {what}; the agent is disabled and the JVM runs on"),
        );
    }
}

/// Runs `body`; `None` if it panicked.
pub fn caught<T>(body: impl FnOnce() -> T) -> Option<T> {
    panic::catch_unwind(AssertUnwindSafe(body)).ok()
}

/// From now on guarded bodies are skipped and the agent's threads stop.
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
    if let Some(stop) = STOP.get() {
        stop.store(true, Ordering::Release);
    }
}

/// Makes [`disable`] also set `stop`, the flag the agent's threads watch.
pub fn stop_on_disable(stop: Arc<AtomicBool>) {
    let _ = STOP.set(stop);
}
