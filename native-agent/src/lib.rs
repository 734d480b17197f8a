//! The jvmapm JVMTI agent (`libjvmapm_agent.so`), loaded with
//! `java -agentpath:/path/libjvmapm_agent.so=service=orders,endpoint=...`.
//!
//! It runs inside a customer's JVM, so it follows the rules of DESIGN.md
//! ("Native agent rules"): every entry point runs inside `catch_unwind`, a bad
//! option string refuses the JVM start with one clear line, and nothing here
//! may block an application thread. This much is the loading ground: option
//! parsing, the JVMTI bindings it needs, and the agent's own log.

#[cfg(panic = "abort")]
compile_error!(
    "jvmapm-agent must be built with panic = \"unwind\": a panic is caught at the FFI boundary and disables the agent instead of killing the JVM"
);

mod entry;
mod jvmti;
mod log;
pub mod options;
