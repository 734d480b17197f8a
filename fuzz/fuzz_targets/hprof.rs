//! Fuzz target for the heap dump parser and reports: any bytes given as a
//! dump give a report (perhaps partial) or an error naming a byte offset; a
//! panic, a hang or an allocation out of proportion is a bug.

#![no_main]

use jvmapm_analyzer::heap::input::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match jvmapm_analyzer::heap::analyze_input(Input::from_bytes(bytes.to_vec()), "fuzz") {
        Ok(report) => {
            let _ = report.json();
        }
        Err(e) => assert!(e.contains("at byte"), "{e}"),
    }
});
