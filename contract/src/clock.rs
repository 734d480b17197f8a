//! The wall clock as the store, the query API and the viewer count time:
//! whole Unix milliseconds (nanoseconds for span timestamps a load generator
//! writes). One definition, so every part reads "now" the same way.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds (0 if the clock is set before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Now, in Unix nanoseconds (0 if the clock is set before 1970).
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::{unix_ms, unix_ns};

    #[test]
    fn both_readings_are_of_the_same_clock() {
        let ms = unix_ms();
        let ns = unix_ns();
        // After 2020, and the nanoseconds no earlier than the milliseconds.
        assert!(ms > 1_577_836_800_000, "{ms}");
        assert!(ns / 1_000_000 >= ms, "{ns} vs {ms}");
    }
}
