//! The agent embeds the class files of its Java helper, committed in
//! `native-agent/java/classes/`, not compiled at build time (a build of the
//! agent needs no JDK). This test compiles `Hooks.java` again with
//! `native-agent/java/build.sh` and fails when the committed files are not
//! what the source gives, so a change to the source cannot ship without
//! them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::JvmTurn;

const JAVA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/native-agent/java");

const REBUILD: &str =
    "run native-agent/java/build.sh and commit native-agent/java/classes/ with the source";

/// The class files in `dir`, by name.
fn class_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "class"))
        .map(|path| (path.file_name().unwrap().to_string_lossy().into(), path))
        .collect()
}

/// What a class file declares and its code, without the constant pool's
/// layout: `javap -p -c -constants`. javac of another JDK (with the same
/// `--release`) may order the pool differently for the same code.
fn disassembly(class: &Path) -> String {
    let out = Command::new("javap")
        .args(["-p", "-c", "-constants"])
        .arg(class)
        .output()
        .expect("javap runs (scripts/test.sh installs a JDK)");
    assert!(
        out.status.success(),
        "javap {}: {}",
        class.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_committed_hooks_class_files_are_what_hooks_java_compiles_to() {
    let _jvms = JvmTurn::shared();
    let scratch = tempfile::tempdir().unwrap();
    let fresh_dir = scratch.path().join("classes");
    let status = Command::new(Path::new(JAVA_DIR).join("build.sh"))
        .arg(&fresh_dir)
        .status()
        .expect("build.sh runs (scripts/test.sh installs a JDK)");
    assert!(status.success(), "native-agent/java/build.sh failed");
    let committed = class_files(&Path::new(JAVA_DIR).join("classes"));
    let fresh = class_files(&fresh_dir);
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>(),
        "the committed class files are not those Hooks.java compiles to: {REBUILD}"
    );
    for (name, path) in &committed {
        if std::fs::read(path).unwrap() == std::fs::read(&fresh[name]).unwrap() {
            continue;
        }
        let (was, is) = (disassembly(path), disassembly(&fresh[name]));
        let first_difference = was
            .lines()
            .zip(is.lines())
            .find(|(a, b)| a != b)
            .map_or("one ends early".to_string(), |(a, b)| {
                format!("committed {a:?}, compiled {b:?}")
            });
        assert!(
            was == is,
            "native-agent/java/classes/{name} is not what Hooks.java compiles to \
             ({first_difference}): {REBUILD}"
        );
    }
}
