//! Fuzz target for the heap dump parser and reports, read front to back and
//! as a mapped file: any bytes given as a dump give a report (perhaps
//! partial) or an error naming a byte offset; a panic, a hang or an
//! allocation out of proportion is a bug.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run hprof fuzz/seeds/hprof -- -max_total_time=60`
//! (the seeds are hostile dumps, scaled down: repeated GC roots, a long
//! superclass chain, arrays cut short, a long path from a GC root).

#![no_main]

use jvmapm_heap::input::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let streamed = jvmapm_heap::analyze_input(Input::from_bytes(bytes.to_vec()), "fuzz");
    let mapped = jvmapm_heap::analyze_bytes(bytes.to_vec(), "fuzz", &Default::default());
    for outcome in [streamed, mapped] {
        match outcome {
            Ok(report) => {
                let _ = report.json();
            }
            Err(e) => assert!(e.to_string().contains("at byte"), "{e}"),
        }
    }
});
