//! The terminal XLog viewer of jvmapm (`jvmapm xlog`): the scatter of every
//! transaction, live from `jvmapm serve` or offline from a data directory,
//! with the JVM's health beside it.

pub mod app;
pub mod points;
pub mod scatter;
pub mod source;
