//! Load generators and benchmark drivers for jvmapm; `spans` makes the
//! realistic exports they send or time.

pub mod spans;
