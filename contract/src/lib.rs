//! What the agent, the analyzer, the viewer and the CLI must agree on, in one
//! place: the names that cross the wire between agent and analyzer, the
//! duration syntax operators write on both sides, the wall clock in Unix
//! milliseconds, and the small random generator they all draw from.
//!
//! It has no dependencies, because the agent links it into a customer's JVM.

pub mod clock;
pub mod duration;
pub mod names;
pub mod random;
