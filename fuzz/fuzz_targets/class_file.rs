//! Fuzz target for the agent's class-file rewriter: any bytes a class loader
//! might hand the ClassFileLoadHook are parsed, and whatever parses has every
//! wrappable method wrapped; a refusal is fine, a panic or a hang is a bug.

#![no_main]

use jvmapm_agent::classfile::{rewrite, ClassFile, Probe};
use jvmapm_agent::probe::MethodProbe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(class) = ClassFile::parse(bytes) else {
        return;
    };
    let probe = MethodProbe { site: 0 };
    let targets: Vec<(usize, &dyn Probe)> = (0..class.methods.len())
        .filter(|&i| class.wrappable(&class.methods[i]).is_ok())
        .map(|i| (i, &probe as &dyn Probe))
        .collect();
    if let Ok(wrapped) = rewrite(&class, &targets, None) {
        ClassFile::parse(&wrapped).expect("a wrapped class parses again");
    }
});
