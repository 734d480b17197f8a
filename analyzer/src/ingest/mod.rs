//! The build stage: turns what the receivers hand over (OTLP trace and metric
//! exports, as bytes or decoded) into what the store keeps, without I/O.
//!
//! [`xlog`] reads each span straight from the protobuf bytes ([`wire`],
//! [`span_reader`]) and makes XLog points, span details and JVM events;
//! [`jvm_metrics`] turns metric exports into plain samples. Both read
//! attributes through `otlp_values`, which the query side also uses to show
//! them.

pub mod jvm_metrics;
pub(crate) mod otlp_values;
mod span_reader;
pub mod wire;
pub mod xlog;
