//! The jvmapm JVMTI agent (`libjvmapm_agent.so`), loaded with
//! `java -agentpath:/path/libjvmapm_agent.so=service=orders,endpoint=...`.
//!
//! It runs inside a customer's JVM: every entry point runs inside
//! `catch_unwind` (`guard`), a bad option string refuses the JVM start with
//! one clear line, and nothing here may block an application thread.
//!
//! Threads: application threads run the wrapped methods (`instrument`,
//! `probe`), which reach `transaction` through the helper class: clocks,
//! atomics and a non-blocking hand-over, never a lock or a wait. The VM
//! thread runs the GC callbacks (atomics only). `sampler` reads the JVM on
//! one attached daemon thread; `profiler` samples the stacks of slow
//! transactions on another; `exporter` talks to the backend on one native
//! thread. At VMDeath the dying thread waits at most 0.5 s for the
//! profiler's last profiles, runs a last sampling round and waits at most
//! 2 s for the flush.
//!
//! Modules import downwards only, never in a cycle:
//! - bottom, holding no agent state: the FFI (`jni`, and `jvmti` on it),
//!   `clock`, `ring`, `guard` (the panic barrier), and pure code: `options`,
//!   `log`, `classfile` and `probe`, `sql`, `url` (what an outgoing call's
//!   span says of its URL), `interned`, `otlp`, `resource`,
//!   `stacks` (folding stack samples into a profile's text),
//!   `profile_budget` (the profiler's samples and CPU a second);
//! - middle, the work: `transaction` and `ended` (what application threads
//!   record), `instrument` (with `executors`, the JDK's hand-overs of
//!   tasks to other threads), `gc`, `management`, `heapdump`, `metrics`,
//!   `sampler`, `threads` and `methods` (a transaction's thread and the
//!   names of its frames, for) `profiler`, `record`, `profile_join`,
//!   `trace_client`, `exporter`; `agct`, only with the feature
//!   `agct-probe`, samples for `profiler` the other way, to measure it;
//! - top: `agent`, the lifecycle, called only by `entry` (the exported
//!   `Agent_OnLoad` and `Agent_OnAttach`). Nothing else imports either.

// `classfile`, `probe` and `options` are public for the fuzz targets in
// fuzz/ (the crate is also built as an rlib for them), `exporter_bench`
// (feature `bench`) for bench/; nothing else is.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(panic = "abort")]
compile_error!(
    "jvmapm-agent must be built with panic = \"unwind\": a panic is caught at the FFI boundary and disables the agent instead of killing the JVM"
);

#[cfg(feature = "agct-probe")]
mod agct;
mod agent;
pub mod classfile;
mod clock;
mod ended;
mod entry;
mod executors;
mod exporter;
#[cfg(feature = "bench")]
pub mod exporter_bench;
mod gc;
mod guard;
#[cfg(test)]
mod header_check;
mod heapdump;
mod instrument;
mod interned;
mod jni;
mod jvmti;
mod log;
mod management;
mod methods;
mod metrics;
pub mod options;
mod otlp;
pub mod probe;
mod profile_budget;
mod profile_join;
mod profiler;
mod record;
mod resource;
mod ring;
mod sampler;
mod sql;
mod stacks;
mod threads;
mod trace_client;
mod transaction;
mod url;
