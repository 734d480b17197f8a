//! `jvmapm heap` on dumps made by real JVMs (`jcmd GC.heap_dump`): the
//! HeapShapes fixture checked against `jcmd GC.class_histogram` of the same
//! quiet JVM, for each object layout HotSpot offers, plain and gzip; dumps
//! cut at many offsets; the classic Finalizer leak; graphs whose dominators
//! and retained sizes are known by construction; and `--diff`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{java_fixtures, java_launchers, jvmapm, launcher_version};
use serde_json::Value;

/// The layouts: compressed oops and class pointers, then without each.
const LAYOUTS: [(&[&str], bool, bool); 3] = [
    (&[], true, true),
    (&["-XX:-UseCompressedOops"], false, true),
    (
        &["-XX:-UseCompressedOops", "-XX:-UseCompressedClassPointers"],
        false,
        false,
    ),
];

/// A fixture in a JVM of `launcher`, quiet once it said "ready".
struct Quiet {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    jcmd: PathBuf,
}

impl Quiet {
    fn start(launcher: &Path, flags: &[&str], class: &str) -> Quiet {
        let mut child = Command::new(launcher)
            .args(flags)
            .arg("-cp")
            .arg(java_fixtures())
            .arg(class)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut quiet = Quiet {
            out: BufReader::new(child.stdout.take().unwrap()),
            child,
            jcmd: launcher.with_file_name("jcmd"),
        };
        assert_eq!(quiet.line(), "ready");
        quiet
    }

    /// The fixture's next line.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Says a line to the fixture and returns its answer.
    fn say(&mut self, line: &str) -> String {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        self.line()
    }

    /// HeapShapes without the shared archive, so every java.lang.Class in
    /// the heap is a loaded class's, as in the dump.
    fn heap_shapes(launcher: &Path, flags: &[&str]) -> Quiet {
        let mut all = vec!["-Xshare:off"];
        all.extend(flags);
        Quiet::start(launcher, &all, "HeapShapes")
    }

    fn jcmd(&self, args: &[&str]) -> String {
        let out = Command::new(&self.jcmd)
            .arg(self.child.id().to_string())
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "jcmd {args:?}: {text}");
        text
    }

    /// `jcmd GC.heap_dump` (a live dump) to `path`, with `extra` options.
    fn dump(&self, extra: &[&str], path: &Path) {
        let mut args = vec!["GC.heap_dump"];
        args.extend(extra);
        args.push(path.to_str().unwrap());
        let said = self.jcmd(&args);
        assert!(said.contains("Heap dump file created"), "{said}");
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// jcmd's histogram by class in Java form, and its total bytes.
fn jcmd_histogram(text: &str) -> (HashMap<String, (u64, u64)>, u64) {
    let mut rows = HashMap::new();
    let mut total = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [rank, instances, bytes, class, ..] if rank.ends_with(':') => {
                rows.insert(
                    jvmapm_analyzer::heap::histogram::java_name(class),
                    (instances.parse().unwrap(), bytes.parse().unwrap()),
                );
            }
            ["Total", _, bytes] => total = bytes.parse().unwrap(),
            _ => {}
        }
    }
    (rows, total)
}

fn report(dump: &Path) -> Value {
    let (ok, out, err) = jvmapm(&["heap", "--json", dump.to_str().unwrap()]);
    assert!(ok, "jvmapm heap {}: {err}", dump.display());
    serde_json::from_str(&out).unwrap()
}

fn rows_of(report: &Value) -> HashMap<String, (u64, u64)> {
    report["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let class = r["class"].as_str().unwrap().to_string();
            let counts = (
                r["instances"].as_u64().unwrap(),
                r["shallow_bytes"].as_u64().unwrap(),
            );
            (class, counts)
        })
        .collect()
}

#[test]
fn the_histogram_matches_jcmd_for_every_layout_and_gzip_gives_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    for launcher in java_launchers() {
        let jdk = launcher_version(&launcher);
        for (flags, compressed_oops, compressed_class_pointers) in LAYOUTS {
            let what = format!("JDK {jdk} {flags:?}");
            // jcmd does not overwrite a file: a name per dump.
            let name = format!("shapes-{jdk}-{}", flags.len());
            let plain = dir.path().join(format!("{name}.hprof"));
            let gzip = dir.path().join(format!("{name}.hprof.gz"));
            let (mut histogram, total) = {
                let jvm = Quiet::heap_shapes(&launcher, flags);
                let histogram = jvm.jcmd(&["GC.class_histogram"]);
                jvm.dump(&[], &plain);
                jvm.dump(&["-gz=1"], &gzip);
                jcmd_histogram(&histogram)
            };
            // JDK 19+ fills dead space with arrays of FillerElement, which
            // the dumper writes as int arrays: in a dump they are int[].
            if let Some((n, bytes)) = histogram.remove("jdk.internal.vm.FillerElement[]") {
                let ints = histogram.entry("int[]".to_string()).or_default();
                *ints = (ints.0 + n, ints.1 + bytes);
            }
            let ours = report(&plain);
            assert_eq!(ours["format"], "JAVA PROFILE 1.0.2", "{what}");
            assert_eq!(ours["id_size"], 8, "{what}");
            assert_eq!(ours["partial"], false, "{what}: {}", ours["warnings"]);
            assert_eq!(ours["compressed_refs"], compressed_oops, "{what}");
            assert_eq!(
                ours["compressed_class_pointers"], compressed_class_pointers,
                "{what}"
            );
            let rows = rows_of(&ours);
            let mut compared = 0;
            for (class, counts) in &histogram {
                if class.contains("HeapShapes") || class.ends_with("[]") {
                    assert_eq!(rows.get(class), Some(counts), "{what}: {class}");
                    compared += 1;
                }
            }
            assert!(compared >= 20, "{what}: only {compared} rows compared");
            for class in [
                "HeapShapes$Empty",
                "HeapShapes$Narrow",
                "HeapShapes$Node",
                "long[]",
                "HeapShapes$Node[]",
            ] {
                assert!(histogram.contains_key(class), "{what}: jcmd lists {class}");
            }
            let shallow = ours["shallow_bytes"].as_u64().unwrap();
            let off = (shallow as f64 - total as f64).abs() / total as f64;
            assert!(off < 0.01, "{what}: ours {shallow} bytes, jcmd {total}");

            let mut zipped = report(&gzip);
            zipped["file"] = ours["file"].clone();
            assert_eq!(zipped, ours, "{what}: the gzip dump reads the same");
        }
    }
}

#[test]
fn a_dump_cut_anywhere_gives_an_error_or_a_partial_report() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("shapes.hprof");
    let launcher = &java_launchers()[0];
    Quiet::heap_shapes(launcher, &[]).dump(&[], &dump);
    let bytes = std::fs::read(&dump).unwrap();
    let whole = jvmapm_analyzer::heap::analyze(&dump, &Default::default()).unwrap();
    assert!(!whole.partial);
    let mut cuts: Vec<usize> = (0..40).collect();
    cuts.extend((1..150).map(|i| bytes.len() / 150 * i + i % 7));
    cuts.push(bytes.len() - 1);
    for cut in cuts {
        let input = jvmapm_analyzer::heap::input::Input::from_bytes(bytes[..cut].to_vec());
        let streamed = jvmapm_analyzer::heap::analyze_input(input, "cut");
        let mapped =
            jvmapm_analyzer::heap::analyze_bytes(bytes[..cut].to_vec(), "cut", &Default::default());
        for outcome in [streamed, mapped] {
            match outcome {
                Err(e) => {
                    assert!(
                        cut < 31,
                        "only a cut header is no report at all (cut at {cut}): {e}"
                    );
                    assert!(e.contains("at byte"), "{e}");
                }
                Ok(report) => {
                    assert!(report.partial, "cut at {cut} of {}", bytes.len());
                    assert!(
                        report.warnings[0].contains("at byte"),
                        "{:?}",
                        report.warnings
                    );
                    assert!(report.objects <= whole.objects, "cut at {cut}");
                }
            }
        }
    }
    let (ok, _, err) = jvmapm(&[
        "heap",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Cargo.toml")
            .to_str()
            .unwrap(),
    ]);
    assert!(!ok && err.contains("not an HPROF"), "{err}");
}

#[test]
fn the_finalizer_overview_names_the_leaking_statements_and_the_threads_show_why() {
    let dir = tempfile::tempdir().unwrap();
    for launcher in java_launchers() {
        let jdk = launcher_version(&launcher);
        let dump = dir.path().join(format!("leak-{jdk}.hprof"));
        Quiet::start(&launcher, &[], "FinalizerLeak").dump(&[], &dump);
        let report = report(&dump);
        let finalizer = &report["finalizer"];
        assert_eq!(finalizer["registered"], 3000, "JDK {jdk}: {finalizer:#}");
        assert_eq!(finalizer["queued"], 500, "JDK {jdk}: {finalizer:#}");
        assert_eq!(finalizer["in_processing"], 1, "JDK {jdk}: {finalizer:#}");
        let top = &finalizer["referents"][0];
        assert_eq!(top["class"], "FinalizerLeak$LeakyStatement", "JDK {jdk}");
        assert_eq!(top["count"], 3000, "JDK {jdk}");
        assert_eq!(top["shallow_bytes"], 3000 * 24, "JDK {jdk}");
        let threads = report["threads"].as_array().unwrap();
        let thread = |name: &str| {
            threads
                .iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("JDK {jdk}: no thread {name} in {threads:#?}"))
        };
        let stack = |name: &str| thread(name)["stack"].to_string();
        assert!(
            stack("Finalizer").contains("FinalizerLeak$Blocker.finalize"),
            "JDK {jdk}"
        );
        assert!(
            stack("statement-timeouts").contains("java.util.TimerThread.mainLoop"),
            "JDK {jdk}"
        );
        assert_eq!(
            thread("statement-timeouts")["state"],
            "TIMED_WAITING",
            "JDK {jdk}"
        );
        assert_eq!(thread("main")["state"], "RUNNABLE", "JDK {jdk}");
        // The statements are a leak suspect: they hang from the timer's
        // queue, and the path runs from the Timer thread through its queue
        // to a statement and what it holds.
        let suspects = report["leak_suspects"].as_array().unwrap();
        let timer = suspects
            .iter()
            .find(|s| s["accumulation"]["holder_class"] == "java.util.TimerTask[]")
            .unwrap_or_else(|| panic!("JDK {jdk}: the timer queue is a suspect: {suspects:#?}"));
        // All but the task the timer thread holds on its stack, if any.
        let tasks = timer["accumulation"]["count"].as_u64().unwrap();
        assert!((2999..=3000).contains(&tasks), "JDK {jdk}: {tasks}");
        assert!(
            timer["retained_bytes"].as_u64().unwrap() > 3000 * (24 + 112),
            "JDK {jdk}"
        );
        let classes: Vec<&str> = timer["path_to_root"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hop| hop["class"].as_str().unwrap())
            .collect();
        assert_eq!(
            classes[..4],
            [
                "java.util.TaskQueue",
                "java.util.TimerTask[]",
                "FinalizerLeak$1",
                "FinalizerLeak$LeakyStatement"
            ],
            "JDK {jdk}: {timer:#}"
        );
        let held_by = timer["path_to_root"][0]["field"].as_str().unwrap();
        assert!(
            held_by.contains("in thread \"statement-timeouts\""),
            "JDK {jdk}: {held_by}"
        );
        // The queued objects are only their Finalizers' to keep.
        assert!(
            report["dominators"]["kept_by_finalizers"].as_u64().unwrap() >= 500,
            "JDK {jdk}"
        );
    }
}

/// The histogram row of `class`: (instances, shallow bytes, retained bytes).
fn retained_row(report: &Value, class: &str) -> (u64, u64, u64) {
    let row = report["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["class"] == class)
        .unwrap_or_else(|| panic!("no row for {class}"));
    (
        row["instances"].as_u64().unwrap(),
        row["shallow_bytes"].as_u64().unwrap(),
        row["retained_bytes"].as_u64().unwrap(),
    )
}

#[test]
fn retained_sizes_and_dominators_are_exact_on_graphs_built_to_be_known() {
    let dir = tempfile::tempdir().unwrap();
    for launcher in java_launchers() {
        let jdk = launcher_version(&launcher);
        let dump = dir.path().join(format!("dominators-{jdk}.hprof"));
        Quiet::start(&launcher, &[], "DominatorShapes").dump(&[], &dump);
        let report = report(&dump);
        assert_eq!(report["compressed_class_pointers"], true, "JDK {jdk}");
        // A byte[n] with compressed class pointers: 16 bytes, then n, aligned to 8.
        let bytes = |n: u64| (16 + n).div_ceil(8) * 8;
        let own = |class: &str| {
            let (instances, shallow, _) =
                retained_row(&report, &format!("DominatorShapes${class}"));
            assert_eq!(instances, 1, "JDK {jdk}: one {class}");
            shallow
        };
        let retained = |class: &str| retained_row(&report, &format!("DominatorShapes${class}")).2;
        let expect =
            |class: &str, want: u64| assert_eq!(retained(class), want, "JDK {jdk}: {class}");
        // The chain: each link keeps the rest.
        expect("ChainTail", own("ChainTail") + bytes(100));
        expect(
            "ChainMiddle",
            own("ChainMiddle") + own("ChainTail") + bytes(100),
        );
        expect(
            "ChainHead",
            own("ChainHead") + own("ChainMiddle") + own("ChainTail") + bytes(100),
        );
        // The diamond: the bottom is the top's, not a side's.
        expect("DiamondLeft", own("DiamondLeft"));
        expect("DiamondRight", own("DiamondRight"));
        expect("DiamondBottom", own("DiamondBottom") + bytes(200));
        expect(
            "DiamondTop",
            own("DiamondTop")
                + own("DiamondLeft")
                + own("DiamondRight")
                + own("DiamondBottom")
                + bytes(200),
        );
        // The cycle, entered at A: A keeps all, B keeps C, C its bytes.
        let cycle_c = own("CycleC") + bytes(300);
        expect("CycleC", cycle_c);
        expect("CycleB", own("CycleB") + cycle_c);
        expect("CycleA", own("CycleA") + own("CycleB") + cycle_c);
        // A shared child belongs to neither owner.
        expect("SharedOwnerOne", own("SharedOwnerOne"));
        expect("SharedOwnerTwo", own("SharedOwnerTwo"));
        expect("SharedChild", own("SharedChild") + bytes(400));
        // A weak reference keeps nothing: the strong owner keeps the target.
        let (_, weak_reference, _) = retained_row(&report, "java.lang.ref.WeakReference");
        let weak_target = own("WeakTarget") + bytes(500);
        expect("WeakTarget", weak_target);
        let weak_owner = retained("WeakOwner");
        assert!(
            weak_owner >= own("WeakOwner") + weak_target + 32
                && weak_owner <= own("WeakOwner") + weak_target + weak_reference,
            "JDK {jdk}: the weak owner keeps its target and its WeakReference: {weak_owner}"
        );
        // A soft reference keeps nothing: its target is kept by nobody.
        expect("SoftTarget", 0);
        let soft_owner = retained("SoftOwner");
        assert!(
            soft_owner > own("SoftOwner") && soft_owner < own("SoftOwner") + 64,
            "JDK {jdk}: the soft owner keeps only its SoftReference: {soft_owner}"
        );
        // The big cache behind a static field is the leak suspect: its 2000
        // entries hang from the map's table, reached through ENTRIES.
        let suspects = report["leak_suspects"].as_array().unwrap();
        let cache = suspects
            .iter()
            .find(|s| s["accumulation"]["class"] == "java.util.HashMap$Node")
            .unwrap_or_else(|| panic!("JDK {jdk}: the cache is a suspect: {suspects:#?}"));
        assert_eq!(cache["accumulation"]["count"], 2000, "JDK {jdk}");
        assert_eq!(
            cache["accumulation"]["holder_class"],
            "java.util.HashMap$Node[]"
        );
        assert!(cache["retained_bytes"].as_u64().unwrap() > 2000 * bytes(5000));
        let path: Vec<String> = cache["path_to_root"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hop| {
                format!(
                    "{} {}",
                    hop["field"].as_str().unwrap(),
                    hop["class"].as_str().unwrap()
                )
            })
            .collect();
        let path = path.join(" / ");
        for step in [
            "static ENTRIES java.util.HashMap",
            "table java.util.HashMap$Node[]",
            "java.util.HashMap$Node",
            "value byte[]",
        ] {
            assert!(path.contains(step), "JDK {jdk}: {step} in {path}");
        }
        assert!(path.starts_with("GC root"), "JDK {jdk}: {path}");
        // The biggest objects name what dominates them.
        let top = report["dominators"]["top"].as_array().unwrap();
        assert!(top.len() >= 10, "JDK {jdk}");
        assert!(top
            .windows(2)
            .all(|w| w[0]["retained_bytes"].as_u64() >= w[1]["retained_bytes"].as_u64()));
        // Any object's path, by id.
        let entries = cache["path_to_root"]
            .as_array()
            .unwrap()
            .iter()
            .find(|hop| hop["field"] == "static ENTRIES")
            .unwrap()["object_id"]
            .as_u64()
            .unwrap();
        let (ok, out, err) = jvmapm(&[
            "heap",
            "--no-dominators",
            "--path-to-root",
            &format!("0x{entries:x}"),
            dump.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        assert!(
            out.contains("Path from a GC root") && out.contains("static ENTRIES"),
            "{out}"
        );
        assert!(!out.contains("Leak suspects"), "--no-dominators: {out}");
    }
}

#[test]
fn diff_names_the_class_that_grew_between_two_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let launcher = &java_launchers()[0];
    let mut jvm = Quiet::start(launcher, &[], "Grows");
    assert_eq!(jvm.say("grow"), "grown");
    let (old, new) = (dir.path().join("old.hprof"), dir.path().join("new.hprof"));
    jvm.dump(&[], &old);
    assert_eq!(jvm.say("grow"), "grown");
    assert_eq!(jvm.say("grow"), "grown");
    jvm.dump(&[], &new);
    let (ok, out, err) = jvmapm(&[
        "heap",
        "--json",
        "--diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let diff: Value = serde_json::from_str(&out).unwrap();
    let top = &diff["classes"][0];
    assert_eq!(top["class"], "Grows$Entry", "{diff:#}");
    assert_eq!(top["instances_old"], 10000);
    assert_eq!(top["instances_new"], 30000);
    assert_eq!(top["instances_delta"], 20000);
    // 12 bytes of header and a long, aligned to 8.
    assert_eq!(top["bytes_delta"], 20000 * 24);
    let (ok, text, err) = jvmapm(&[
        "heap",
        "--diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let first = text
        .lines()
        .skip_while(|l| !l.starts_with("Grew most"))
        .nth(2)
        .unwrap_or_default();
    assert!(
        first.contains("+480000") && first.contains("Grows$Entry"),
        "{text}"
    );
}
